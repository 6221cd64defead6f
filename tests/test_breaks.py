"""Break allowances, exemptions, the fair break line, Erlang C headroom, Jain's index."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_stats.breaks import (
    Allowance,
    BreakConfig,
    BreakLine,
    allowance,
    fairness_index,
    jain_index,
    last_break_end,
    standing,
)
from agent_stats.erlang import (
    Traffic,
    erlang_c,
    estimate_traffic,
    has_headroom,
    predicted_service_level,
    spare_agents,
)
from agent_stats.errors import InvalidConfigError
from agent_stats.ledger import AgentLedger
from agent_stats.states import AgentState, NotReadyReason

S = AgentState
R = NotReadyReason
HOUR = 3600


def _shift() -> AgentLedger:
    """Eight logged-in hours with every kind of not-ready time."""
    ledger = AgentLedger("a1", since=0)
    ledger.transition(0, S.READY)
    ledger.transition(HOUR, S.NOT_READY, R.BREAK)  # 600 counted
    ledger.transition(HOUR + 600, S.READY)
    ledger.transition(2 * HOUR, S.NOT_READY, R.PERSONAL)  # 240: all exempt
    ledger.transition(2 * HOUR + 240, S.READY)
    ledger.transition(3 * HOUR, S.NOT_READY, R.PERSONAL)  # 420: 300 exempt, 120 counted
    ledger.transition(3 * HOUR + 420, S.ON_CALL)
    ledger.transition(3 * HOUR + 900, S.NOT_READY, R.RECOVERY)  # 900 exempt
    ledger.transition(3 * HOUR + 1800, S.NOT_READY, R.LUNCH)  # scheduled: not counted
    ledger.transition(4 * HOUR + 1800, S.READY)
    ledger.transition(8 * HOUR, S.LOGGED_OUT)
    return ledger


def test_allowance_earned_taken_and_exempt() -> None:
    ledger = _shift()
    got = allowance(ledger.intervals_between(0, 86400, now=10 * HOUR), BreakConfig())
    assert got.earned_s == 8 * 300
    assert got.taken_s == 600 + 120
    assert got.exempt_s == 240 + 300 + 900
    assert got.unused_s == 2400 - 720
    assert got.ratio == pytest.approx(720 / 2400)


def test_standing_for_the_line() -> None:
    ledger = _shift()
    config = BreakConfig()
    assert last_break_end(ledger.intervals, config) == 4 * HOUR + 1800  # end of lunch
    got, last = standing(ledger, 0, 10 * HOUR, config)
    assert got.taken_s == 720 and last == 4 * HOUR + 1800
    fresh = AgentLedger("a2", since=0, state=S.READY)
    assert standing(fresh, 0, HOUR, config) == (
        allowance(fresh.intervals_between(0, HOUR, HOUR), config),
        None,
    )
    assert standing(fresh, 0, HOUR, config)[0].earned_s == 300


def test_allowance_options() -> None:
    ledger = _shift()
    config = BreakConfig(
        earn_per_hour_s=600,
        personal_exempt_s=180,
        counted_reasons=frozenset({R.BREAK, R.LUNCH}),
    )
    got = allowance(ledger.intervals_between(0, 86400, now=10 * HOUR), config)
    assert got.earned_s == 8 * 600
    assert got.taken_s == 600 + (240 - 180) + (420 - 180) + HOUR
    assert got.exempt_s == 180 + 180 + 900


def test_recovery_and_personal_cannot_be_counted_or_queued() -> None:
    with pytest.raises(InvalidConfigError):
        BreakConfig(counted_reasons=frozenset({R.RECOVERY}))
    with pytest.raises(InvalidConfigError):
        BreakConfig(queued_reasons=frozenset({R.PERSONAL}))


def test_personal_and_recovery_are_granted_at_once_without_headroom() -> None:
    line = BreakLine(BreakConfig())
    for reason in (R.PERSONAL, R.RECOVERY, R.TECHNICAL):
        grant = line.request(100, "a1", reason, unused_s=-500, last_break_end=99)
        assert grant is not None and grant.waited_s == 0 and grant.reason is reason
    assert len(line) == 0
    assert line.decide(100, spare=0) == []


def test_requests_wait_and_are_granted_in_fair_order() -> None:
    line = BreakLine(BreakConfig(max_wait_s=900))
    assert line.request(0, "low", R.BREAK, unused_s=100, last_break_end=None) is None
    assert line.request(10, "rich_recent", R.BREAK, unused_s=600, last_break_end=500) is None
    assert line.request(20, "rich_long_ago", R.LUNCH, unused_s=600, last_break_end=100) is None
    assert line.request(30, "rich_never", R.BREAK, unused_s=600, last_break_end=None) is None
    assert line.request(40, "rich_never_b", R.BREAK, unused_s=600, last_break_end=None) is None
    order = [r.agent_id for r in line.waiting()]
    assert order == ["rich_never", "rich_never_b", "rich_long_ago", "rich_recent", "low"]
    assert line.position("rich_recent") == 4
    # asking again keeps the place
    line.request(50, "rich_never", R.BREAK, unused_s=600, last_break_end=None)
    assert line.waiting()[0].requested_at == 30

    assert line.decide(100, spare=0) == []
    grants = line.decide(200, spare=2)
    assert [(g.agent_id, g.waited_s, g.forced) for g in grants] == [
        ("rich_never", 170, False),
        ("rich_never_b", 160, False),
    ]
    assert line.next_deadline() == 900
    grants = line.decide(900, spare=0)  # "low" has waited 900 s: granted regardless
    assert [(g.agent_id, g.forced) for g in grants] == [("low", True)]
    grants = line.decide(905, spare=1)  # last break at 100 beats last break at 500
    assert [(g.agent_id, g.reason, g.forced) for g in grants] == [("rich_long_ago", R.LUNCH, False)]
    assert line.next_deadline() == 910
    grants = line.decide(910, spare=1)  # overdue: forced, and it uses the spare place
    assert [(g.agent_id, g.forced) for g in grants] == [("rich_recent", True)]
    line.request(920, "rich_recent", R.BREAK, unused_s=0, last_break_end=None)
    assert line.cancel("rich_recent") and not line.cancel("rich_recent")
    assert len(line) == 0 and line.next_deadline() is None


def test_refresh_reorders_the_line() -> None:
    line = BreakLine(BreakConfig())
    line.request(0, "a", R.BREAK, unused_s=100, last_break_end=None)
    line.request(0, "b", R.BREAK, unused_s=50, last_break_end=None)
    line.refresh("b", unused_s=200, last_break_end=None)
    assert [r.agent_id for r in line.waiting()] == ["b", "a"]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), max_wait=st.sampled_from([60.0, 300.0, 900.0]))
def test_no_request_waits_past_the_maximum(seed: int, max_wait: float) -> None:
    """Requests arrive at random under scarce headroom; the daemon decides on every
    request, every 30 s tick and at each deadline, as the service will."""
    rng = random.Random(seed)
    line = BreakLine(BreakConfig(max_wait_s=max_wait))
    arrivals = sorted((rng.uniform(0, 3600), f"a{i}") for i in range(30))
    ticks = [30.0 * k for k in range(1, 200)]
    events = sorted([(t, "arrive", a) for t, a in arrivals] + [(t, "tick", "") for t in ticks])
    granted: dict[str, float] = {}
    now = 0.0
    for t, kind, agent in events:
        deadline = line.next_deadline()
        while deadline is not None and deadline <= t:
            for g in line.decide(deadline, spare=0):
                granted[g.agent_id] = g.waited_s
            deadline = line.next_deadline()
        now = t
        if kind == "arrive":
            line.request(now, agent, R.BREAK, rng.uniform(-300, 900), rng.choice([None, 0.0]))
        spare = 1 if rng.random() < 0.1 else 0
        for g in line.decide(now, spare=spare):
            granted[g.agent_id] = g.waited_s
    assert len(granted) + len(line) == 30
    assert all(w <= max_wait + 1e-6 for w in granted.values())  # float rounding of r + m - r
    assert all(now - r.requested_at < max_wait for r in line.waiting())


def test_jain_index_values() -> None:
    assert jain_index([0.5, 0.5, 0.5]) == pytest.approx(1.0)
    assert jain_index([1.0, 0.0, 0.0, 0.0]) == pytest.approx(1 / 4)
    assert jain_index([1.0, 2.0]) == pytest.approx(9 / 10)
    assert jain_index([]) == 1.0
    assert jain_index([0.0, 0.0]) == 1.0
    with pytest.raises(ValueError):
        jain_index([-1.0, 1.0])


def test_fairness_index_over_taken_by_earned() -> None:
    allowances = {
        "a": Allowance(earned_s=2400, taken_s=1200, exempt_s=0),
        "b": Allowance(earned_s=1200, taken_s=600, exempt_s=300),
        "c": Allowance(earned_s=0, taken_s=0, exempt_s=0),  # earned nothing: left out
    }
    assert fairness_index(allowances) == pytest.approx(1.0)
    allowances["b"] = Allowance(earned_s=1200, taken_s=0, exempt_s=300)
    assert fairness_index(allowances) == pytest.approx(1 / 2)


def _erlang_c_direct(n: int, a: float) -> float:
    """Textbook form, for checking the recursion."""
    top = a**n / math.factorial(n) * n / (n - a)
    return top / (sum(a**k / math.factorial(k) for k in range(n)) + top)


def test_erlang_c_values() -> None:
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    for n, a in [(3, 2.0), (12, 10.0), (30, 25.5)]:
        assert erlang_c(n, a) == pytest.approx(_erlang_c_direct(n, a))
    assert erlang_c(5, 5.0) == 1.0
    assert erlang_c(5, 0.0) == 0.0
    traffic = Traffic(arrival_rate=10 / 180, aht_s=180)  # 10 Erlangs
    expected = 1 - _erlang_c_direct(12, 10.0) * math.exp(-2 * 20 / 180)
    assert predicted_service_level(12, traffic, 20) == pytest.approx(expected)
    assert predicted_service_level(10, traffic, 20) == 0.0


def test_headroom_is_one_agent_fewer_still_on_target() -> None:
    traffic = Traffic(arrival_rate=10 / 180, aht_s=180)
    levels = {n: predicted_service_level(n, traffic, 20) for n in range(11, 17)}
    assert all(levels[n] < levels[n + 1] for n in range(11, 16))
    target = 0.8
    enough = min(n for n in levels if levels[n] >= target)
    assert has_headroom(enough + 1, traffic, 20, target)
    assert not has_headroom(enough, traffic, 20, target)
    assert spare_agents(enough + 3, traffic, 20, target) == 3
    idle = Traffic(arrival_rate=0, aht_s=180)
    assert spare_agents(5, idle, 20, target) == 4
    assert spare_agents(5, idle, 20, target, min_staffed=3) == 2
    assert spare_agents(0, idle, 20, target) == 0


def test_estimate_traffic() -> None:
    t = estimate_traffic(arrivals=60, window_s=1800, handled_calls=50, handle_time_s=50 * 240)
    assert t.arrival_rate == pytest.approx(1 / 30) and t.aht_s == 240
    assert t.erlangs == pytest.approx(8)
    assert estimate_traffic(0, 1800, 0, 0, default_aht_s=200).aht_s == 200

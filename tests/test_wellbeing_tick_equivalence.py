"""The incremental wellbeing tick against a full scan, over busy random centres.

Each tick, ``StatsService.check_wellbeing`` (which looks only at agents
something happened to, at the occupancy alone when only its trajectory moved,
and at those whose next crossing is due) must hold and raise exactly the alerts
a scan of every logged-in agent finds from its whole ledger and calls
(``wellbeing.signals``, the definition). The centre is busy and its occupancy
hovers around the limit, calls straddle the long-call limit, agents rest, log
out and take hard calls, so every kind of crossing comes often; the clock is
injected (``task.Clock``). ``test_a_look_planned_late_is_caught`` checks that
the comparison fails when the incremental path misses a crossing.
"""

from __future__ import annotations

import heapq
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agent_stats.watch as watch_module
from agent_stats.breaks import BreakConfig
from agent_stats.roster import AgentProfile, AgentRoster
from agent_stats.running import Glance, steady_parts
from agent_stats.service import StatsService
from agent_stats.sla import day_start
from agent_stats.states import AgentState, NotReadyReason
from agent_stats.store import StatsStore
from agent_stats.wellbeing import HandledCall, WellbeingConfig, alerts, signals
from agent_stats.wellbeing_looks import refreshed
from routing.events import CallAnswered, CallCompleted
from tests.stats_helpers import SLA, T0, clock_at

BUSY = WellbeingConfig(
    max_without_break_s=1500.0, min_rest_s=60.0, occupancy_window_s=1200.0,
    occupancy_limit=0.8, occupancy_min_staffed_s=300.0, hard_calls_limit=2,
    hard_calls_window_s=900.0, long_call_s=300.0,
)
REASONS = list(NotReadyReason)


def run_centre(seed: int, config: WellbeingConfig, agents: int, ticks: int,
               tick_s: tuple[float, ...] = (15.0,)) -> dict[str, int]:
    """A busy centre in simulated time; after every tick the incremental check and a
    scan of every agent must agree. Returns how many looks of each kind were made."""
    rng = random.Random(seed)
    profiles = [AgentProfile(f"a{i}", f"Agent {i}", f"PJSIP/{300 + i}", ("fa",))
                for i in range(agents)]
    roster = AgentRoster(profiles, T0)
    clock = clock_at(T0)
    service = StatsService(
        store=StatsStore(None, SLA),  # type: ignore[arg-type]
        roster=roster, clock=clock, sla=SLA, breaks=BreakConfig(), wellbeing=config,
    )
    handled: dict[str, list[HandledCall]] = {p.agent_id: [] for p in profiles}
    open_calls: dict[str, tuple[str, float, bool]] = {}
    steps: list[tuple[float, int, str]] = [(T0 + rng.uniform(0, 30), i, "log in")
                                           for i in range(agents)]
    heapq.heapify(steps)
    made = 0

    def after(at: float, i: int, what: str) -> None:
        heapq.heappush(steps, (at, i, what))

    def run_until(t: float) -> None:
        nonlocal made
        while steps and steps[0][0] < t:
            at, i, what = heapq.heappop(steps)
            agent = f"a{i}"
            if what == "log in":
                roster.log_in(agent, at)
                after(at + rng.expovariate(1 / 20), i, "ring")
            elif what == "ring":
                made += 1
                roster.ringing(agent, f"c{made}", at)
                open_calls[agent] = (f"c{made}", -1.0, rng.random() < 0.12)
                after(at + rng.uniform(1, 6), i, "answer")
            elif what == "answer":
                call_id, _, hard = open_calls[agent]
                roster.answered(agent, hard, at)
                open_calls[agent] = (call_id, at, hard)
                service.on_routing_event(CallAnswered(call_id, at, agent, at - 10, hard))
                # most calls are short, some cross the long-call limit
                length = rng.uniform(20, 200) if rng.random() < 0.8 else rng.uniform(200, 600)
                after(at + length, i, "hang up")
            elif what == "hang up":
                call_id, answered, hard = open_calls.pop(agent)
                roster.call_ended(agent, at)
                service.on_routing_event(CallCompleted(call_id, at, agent, answered))
                handled[agent].append(HandledCall(answered, at, hard, call_id))
                after(at + rng.uniform(3, 40), i, "ready")
            elif what == "ready":
                roster.set_ready(agent, at)
                r = rng.random()
                if r < 0.06:  # a break or other not-ready spell, short or long
                    after(at + rng.uniform(1, 20), i, "not ready")
                elif r < 0.075:
                    after(at + rng.uniform(1, 20), i, "log out")
                else:
                    after(at + rng.expovariate(1 / rng.choice([5.0, 30.0, 120.0])), i, "ring")
            elif what == "not ready":
                roster.set_not_ready(agent, rng.choice(REASONS), at)
                after(at + rng.uniform(10, 400), i, "ready")
            elif what == "log out":
                roster.log_out(agent, at)
                # logging out ends the agent's alerts (``StatsService.on_agent_change``),
                # even between two ticks: back in, they are raised afresh
                active.pop(agent, None)
                after(at + rng.uniform(30, 900), i, "log in")

    active: dict[str, set[str]] = {}
    raised: set[str] = set()
    for _ in range(ticks):
        clock.advance(rng.choice(tick_s))
        t = clock.seconds()
        run_until(t)
        got = service.check_wellbeing(t)
        # the scan: every logged-in agent's signals from its whole ledger and calls
        d0 = day_start(t, SLA)
        want = []
        for p in profiles:
            agent = p.agent_id
            status = roster.get(agent)
            if status.state is AgentState.LOGGED_OUT:
                active.pop(agent, None)
                continue
            calls = list(handled[agent])
            if agent in open_calls and open_calls[agent][1] >= 0:
                call_id, answered, hard = open_calls[agent]
                calls.append(HandledCall(answered, None, hard, call_id))
            found = alerts(signals(status.ledger, calls, t, d0, config), config)
            before = active.get(agent, set())
            want += [(agent, a.kind.value, float(a.value)) for a in found
                     if a.kind.value not in before]
            active[agent] = {a.kind.value for a in found}
        assert [(r.agent_id, r.kind, r.value) for r in got] == want, f"tick at {t - T0:.0f} s"
        assert all(r.at == t for r in got)
        raised.update(r.kind for r in got)
        assert {a: {k.value for k in kinds} for a, kinds in service.active_alerts.items()
                if roster.get(a).state is not AgentState.LOGGED_OUT} == active, (
            f"tick at {t - T0:.0f} s")
    w = service.watch
    return {"whole": w.whole_looks, "occupancy": w.occupancy_looks, "calls": made,
            "kinds": len(raised)}


@pytest.mark.parametrize("seed", [11, 12])
def test_incremental_tick_equals_a_scan_of_every_agent(seed: int) -> None:
    looks = run_centre(seed, BUSY, agents=12, ticks=480)  # two hours
    # the cheap path was taken, and often: the comparison covers it
    assert looks["occupancy"] > 200
    assert looks["whole"] > 200


def test_every_alert_kind_comes_and_goes() -> None:
    config = WellbeingConfig(**{**BUSY.__dict__, "consecutive_calls_limit": 6})
    looks = run_centre(13, config, agents=8, ticks=600, tick_s=(5.0, 15.0, 40.0))
    assert looks["kinds"] == 5


def test_a_look_planned_late_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison fails when the incremental path misses a crossing: here every
    planned look comes 60 s after the computed crossing."""
    real = steady_parts

    def late(*args: Any) -> tuple[float, float]:
        occupancy_at, others = real(*args)
        return occupancy_at + 60.0, others + 60.0

    monkeypatch.setattr(watch_module, "steady_parts", late)
    with pytest.raises(AssertionError, match="tick at"):
        run_centre(11, BUSY, agents=12, ticks=480)


def test_an_occupancy_look_on_stale_figures_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """... and when a look at the occupancy alone does not take the window's figures
    again (it would neither see a flip nor plan the next one right)."""
    real = refreshed

    def stale(g: Glance, *args: Any) -> Glance:
        fresh = real(g, *args)
        return fresh._replace(occupancy=g.occupancy, staffed_s=g.staffed_s,
                              handling_s=g.handling_s)

    monkeypatch.setattr(watch_module, "refreshed", stale)
    with pytest.raises(AssertionError, match="tick at"):
        run_centre(11, BUSY, agents=12, ticks=480)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    agents=st.integers(1, 10),
    tick_s=st.sampled_from([(15.0,), (5.0, 15.0), (15.0, 40.0, 90.0)]),
    occupancy_limit=st.floats(0.3, 1.0),
    window_s=st.floats(120.0, 2400.0),
    min_staffed_share=st.floats(0.0, 1.0),
    long_call_s=st.floats(30.0, 900.0),
    max_without_break_s=st.floats(300.0, 3000.0),
    min_rest_s=st.floats(0.0, 300.0),
    hard_calls_limit=st.integers(1, 3),
    hard_calls_window_s=st.floats(60.0, 1800.0),
    consecutive=st.one_of(st.none(), st.integers(2, 10)),
)
def test_incremental_tick_equals_a_scan_for_any_config(
    seed: int, agents: int, tick_s: tuple[float, ...], occupancy_limit: float,
    window_s: float, min_staffed_share: float, long_call_s: float,
    max_without_break_s: float, min_rest_s: float, hard_calls_limit: int,
    hard_calls_window_s: float, consecutive: int | None,
) -> None:
    config = WellbeingConfig(
        max_without_break_s=max_without_break_s, min_rest_s=min_rest_s,
        occupancy_window_s=window_s, occupancy_limit=occupancy_limit,
        occupancy_min_staffed_s=window_s * min_staffed_share,
        hard_calls_limit=hard_calls_limit, hard_calls_window_s=hard_calls_window_s,
        long_call_s=long_call_s, consecutive_calls_limit=consecutive,
    )
    run_centre(seed, config, agents, 240, tick_s)

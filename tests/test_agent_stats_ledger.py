"""The agent time ledger: every second in exactly one state, across restarts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_stats.errors import BadSnapshotError, ClockWentBackwardsError, InvalidTransitionError
from agent_stats.ledger import AgentLedger, Interval
from agent_stats.states import AgentState, NotReadyReason, StateKey

S = AgentState
R = NotReadyReason


def test_a_whole_shift_sums_to_the_second() -> None:
    ledger = AgentLedger("a1", since=0)
    ledger.transition(1000, S.READY)  # login
    ledger.transition(1060, S.RINGING)
    ledger.transition(1070, S.ON_CALL)
    ledger.transition(1370, S.WRAP_UP)
    ledger.transition(1400, S.READY)
    ledger.transition(2000, S.NOT_READY, R.BREAK)
    closed = ledger.transition(2300, S.NOT_READY, R.PERSONAL)  # a reason change splits
    assert closed == [Interval(2000, 2300, S.NOT_READY, R.BREAK)]
    ledger.transition(2400, S.READY)
    ledger.transition(3000, S.NOT_READY, R.BREAK)
    # The daemon persisted at 3100, died, and came back at 3400 with the agent still on break.
    snapshot = json.loads(json.dumps(ledger.to_dict()))
    restored = AgentLedger.from_dict(snapshot)
    closed = restored.reconcile(3100, 3400, observed=(S.NOT_READY, R.BREAK))
    assert closed == [
        Interval(3000, 3100, S.NOT_READY, R.BREAK),
        Interval(3100, 3400, S.UNKNOWN),
    ]
    restored.transition(3500, S.READY)
    restored.transition(4000, S.NOT_READY, R.TRAINING)
    restored.transition(4600, S.LOGGED_OUT)

    totals = restored.totals(1000, 4600, now=5000)
    assert totals.total == totals.span == 3600
    assert dict(totals.seconds) == {
        (S.READY, None): 60 + 600 + 600 + 500,
        (S.RINGING, None): 10,
        (S.ON_CALL, None): 300,
        (S.WRAP_UP, None): 30,
        (S.NOT_READY, R.BREAK): 300 + 100 + 100,
        (S.NOT_READY, R.PERSONAL): 100,
        (S.NOT_READY, R.TRAINING): 600,
        (S.UNKNOWN, None): 300,
    }
    assert totals.logged_in == 3600
    whole_day = restored.totals(0, 86400, now=5000)
    assert whole_day.span == 5000 and whole_day.total == 5000
    assert whole_day.of(S.LOGGED_OUT) == 1000 + 400


def test_short_gap_keeps_a_break_whole() -> None:
    ledger = AgentLedger("a1", since=0, state=S.NOT_READY, reason=R.BREAK)
    assert ledger.reconcile(last_persisted_at=100, now=130) == []
    assert ledger.key == (S.NOT_READY, R.BREAK) and ledger.since == 0
    ledger.transition(300, S.READY)
    assert ledger.intervals == (Interval(0, 300, S.NOT_READY, R.BREAK),)


def test_reconnect_applies_the_observed_state_from_now() -> None:
    ledger = AgentLedger("a1", since=0, state=S.READY)
    closed = ledger.reconcile(last_persisted_at=50, now=70, observed=(S.ON_CALL, None))
    assert closed == [Interval(0, 70, S.READY)]
    assert ledger.key == (S.ON_CALL, None)


def test_long_gap_while_logged_out_stays_logged_out() -> None:
    ledger = AgentLedger("a1", since=0)
    assert ledger.reconcile(10, 5000) == []
    assert ledger.totals(0, 5000, 5000).seconds == {(S.LOGGED_OUT, None): 5000}


def test_reconcile_is_idempotent() -> None:
    ledger = AgentLedger("a1", since=0, state=S.READY)
    ledger.reconcile(100, 1000)
    before = ledger.to_dict()
    assert ledger.reconcile(100, 1000) == []
    assert ledger.to_dict() == before


def test_invalid_transitions_are_refused() -> None:
    ledger = AgentLedger("a1", since=100)
    with pytest.raises(InvalidTransitionError):
        ledger.transition(200, S.NOT_READY)
    with pytest.raises(InvalidTransitionError):
        ledger.transition(200, S.READY, R.BREAK)
    with pytest.raises(ClockWentBackwardsError):
        ledger.transition(50, S.READY)
    assert ledger.transition(100, S.READY) == []  # no time passed: nothing closed
    assert ledger.transition(150, S.READY) == []  # same state: nothing closed


def test_bad_snapshots_are_refused() -> None:
    good = AgentLedger("a1", since=0)
    good.transition(10, S.READY)
    raw = good.to_dict()
    with pytest.raises(BadSnapshotError):
        AgentLedger.from_dict({**raw, "version": 99})
    with pytest.raises(BadSnapshotError):
        AgentLedger.from_dict({**raw, "open": {**raw["open"], "since": 11}})
    with pytest.raises(BadSnapshotError):
        AgentLedger.from_dict({**raw, "intervals": [[0, 10, "not_ready", None]]})
    with pytest.raises(BadSnapshotError):
        AgentLedger.from_dict({"agent_id": "a1"})


KEYS: list[StateKey] = [(s, None) for s in S if s is not S.NOT_READY] + [
    (S.NOT_READY, r) for r in R
]

steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3600),
        st.sampled_from(KEYS),
        st.booleans(),  # a restart before this step
        st.integers(min_value=0, max_value=600),
    ),
    max_size=40,
)


@given(
    steps=steps,
    origin=st.integers(0, 10**6),
    a=st.integers(-5000, 200000),
    length=st.integers(0, 200000),
)
def test_random_sequences_never_overlap_and_sum_exactly(
    steps: list[tuple[int, StateKey, bool, int]], origin: int, a: int, length: int
) -> None:
    ledger = AgentLedger("a1", since=origin)
    now = origin
    for dt, key, restart, gap in steps:
        if restart:
            ledger = AgentLedger.from_dict(json.loads(json.dumps(ledger.to_dict())))
            ledger.reconcile(now, now + gap, observed=key)
            now += gap
        now += dt
        ledger.transition(now, *key)
    intervals = ledger.intervals
    for before, after in zip(intervals, intervals[1:], strict=False):
        assert before.end == after.start
        assert before.start < before.end
    assert not intervals or intervals[-1].end == ledger.since
    start = origin + a
    end = start + length
    totals = ledger.totals(start, end, now)
    assert totals.total == max(0, min(end, now) - start)
    middle = start + length // 3
    first, second = ledger.totals(start, middle, now), ledger.totals(middle, end, now)
    for key in set(totals.seconds) | set(first.seconds) | set(second.seconds):
        assert first.seconds.get(key, 0) + second.seconds.get(key, 0) == totals.seconds.get(key, 0)


def test_float_times_sum_to_the_span_closely() -> None:
    ledger = AgentLedger("a1", since=1_700_000_000.123)
    t = 1_700_000_000.123
    for i in range(500):
        t += 0.1 * (i % 7) + 0.013
        ledger.transition(t, *KEYS[i % len(KEYS)])
    totals = ledger.totals(1_700_000_000.0, t + 5, t + 1)
    assert totals.total == pytest.approx(totals.span, abs=1e-6)


def test_pruning_keeps_a_bounded_ledger_and_the_recent_totals() -> None:
    day = 86400.0
    pruned, whole = AgentLedger("a1", since=0), AgentLedger("a1", since=0)
    seen = 0
    fresh: list[Interval] = []
    for d in range(10):
        for ledger in (pruned, whole):
            t = d * day + 8 * 3600
            ledger.transition(t, S.READY)
            for _ in range(40):
                ledger.transition(t + 300, S.ON_CALL)
                ledger.transition(t + 600, S.NOT_READY, R.BREAK)
                ledger.transition(t + 700, S.READY)
                t += 700
            ledger.transition(t, S.LOGGED_OUT)
        now = d * day + 23 * 3600
        horizon = (d - 1) * day  # the start of the previous day
        pruned.prune(horizon)
        assert pruned.interval_count == whole.interval_count  # counted from the start
        fresh += pruned.intervals_from(seen)  # a reader's place survives the prune
        seen = pruned.interval_count
        assert len(pruned.intervals) <= 2 * (2 + 3 * 40)
        assert pruned.origin == whole.origin == 0
        for start in (d * day, now - 3600, horizon):
            assert pruned.totals(start, now, now) == whole.totals(start, now, now)
            assert pruned.intervals_between(start, now, now) == whole.intervals_between(
                start, now, now)
    assert fresh == list(whole.intervals)
    assert pruned.prune(9 * day) > 0 and pruned.intervals_from(0) == list(pruned.intervals)

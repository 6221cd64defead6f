"""``wellbeing.window_seconds`` gives the very floats the ledger's totals give (occupancy's inputs)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_stats.ledger import AgentLedger
from agent_stats.states import HANDLING_STATES, STAFFED_STATES, AgentState, NotReadyReason
from agent_stats.wellbeing import window_seconds

KEYS = [
    (AgentState.LOGGED_OUT, None), (AgentState.READY, None), (AgentState.RINGING, None),
    (AgentState.ON_CALL, None), (AgentState.WRAP_UP, None), (AgentState.UNKNOWN, None),
    (AgentState.NOT_READY, NotReadyReason.BREAK), (AgentState.NOT_READY, NotReadyReason.LUNCH),
]


@settings(max_examples=300, deadline=None)
@given(
    origin=st.floats(1.7e9, 1.8e9),
    steps=st.lists(st.tuples(st.floats(0.001, 900.0), st.sampled_from(KEYS)), max_size=60),
    prune_at=st.floats(0.0, 1.0),
    start_at=st.floats(-0.2, 1.2),
    window_s=st.floats(0.0, 7200.0),
    after_s=st.floats(0.0, 600.0),
)
def test_window_seconds_equal_the_totals_exactly(
    origin: float, steps: list[tuple[float, tuple[AgentState, NotReadyReason | None]]],
    prune_at: float, start_at: float, window_s: float, after_s: float,
) -> None:
    ledger = AgentLedger("a1", origin)
    t = origin
    for gap, key in steps:
        t += gap
        ledger.transition(t, *key)
    ledger.prune(origin + prune_at * (t - origin))  # what the service's pruning leaves
    now = t + after_s
    start = origin + start_at * (now - origin) - window_s
    totals = ledger.totals(start, now, now)
    want = (
        sum(totals.state(s) for s in STAFFED_STATES),
        sum(totals.state(s) for s in HANDLING_STATES),
    )
    assert window_seconds(ledger, start, now) == want

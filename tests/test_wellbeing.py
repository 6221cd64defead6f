"""Wellbeing signals and alerts from a ledger and handled calls."""

from __future__ import annotations

import pytest

from agent_stats.errors import InvalidConfigError
from agent_stats.ledger import AgentLedger
from agent_stats.states import AgentState, NotReadyReason
from agent_stats.wellbeing import (
    AlertKind,
    HandledCall,
    WellbeingConfig,
    alerts,
    signals,
)

S = AgentState
R = NotReadyReason
HOUR = 3600
CONFIG = WellbeingConfig()


def _kinds(
    ledger: AgentLedger, calls: list[HandledCall], now: float, config: WellbeingConfig = CONFIG
) -> set[AlertKind]:
    return {a.kind for a in alerts(signals(ledger, calls, now, 0, config), config)}


def test_too_long_without_a_break() -> None:
    ledger = AgentLedger("a1", since=0)
    ledger.transition(100, S.READY)  # login
    s = signals(ledger, [], 100 + 2 * HOUR - 1, 0, CONFIG)
    assert s.since_break_s == 2 * HOUR - 1
    assert AlertKind.NO_BREAK not in _kinds(ledger, [], 100 + 2 * HOUR - 1)
    assert AlertKind.NO_BREAK in _kinds(ledger, [], 100 + 2 * HOUR)

    ledger.transition(2 * HOUR, S.NOT_READY, R.PERSONAL)  # 60 s: too short to count as rest
    ledger.transition(2 * HOUR + 60, S.READY)
    assert signals(ledger, [], 2 * HOUR + 100, 0, CONFIG).since_break_s == 2 * HOUR + 100 - 100

    ledger.transition(2 * HOUR + 200, S.NOT_READY, R.BREAK)
    resting = signals(ledger, [], 2 * HOUR + 250, 0, CONFIG)
    assert resting.resting and resting.since_break_s == 0
    ledger.transition(2 * HOUR + 800, S.READY)
    after = signals(ledger, [], 2 * HOUR + 900, 0, CONFIG)
    assert after.since_break_s == 100
    ledger.transition(3 * HOUR, S.LOGGED_OUT)
    assert signals(ledger, [], 4 * HOUR, 0, CONFIG).since_break_s is None


def test_occupancy_over_the_last_hour() -> None:
    ledger = AgentLedger("a1", since=0, state=S.READY)
    t = 0
    for _ in range(10):  # each 360 s: 30 ready, 300 on call, 30 wrap-up
        ledger.transition(t + 30, S.ON_CALL)
        ledger.transition(t + 330, S.WRAP_UP)
        ledger.transition(t + 360, S.READY)
        t += 360
    s = signals(ledger, [], HOUR, 0, CONFIG)
    assert s.occupancy == pytest.approx(330 / 360)
    assert s.staffed_in_window_s == HOUR
    assert AlertKind.HIGH_OCCUPANCY in _kinds(ledger, [], HOUR)
    assert AlertKind.HIGH_OCCUPANCY not in _kinds(
        ledger, [], HOUR, WellbeingConfig(occupancy_limit=0.95)
    )


def test_occupancy_needs_enough_staffed_time() -> None:
    ledger = AgentLedger("a1", since=0)
    ledger.transition(HOUR - 600, S.ON_CALL)  # logged in ten minutes ago, straight into a call
    s = signals(ledger, [], HOUR, 0, CONFIG)
    assert s.occupancy == 1.0 and s.staffed_in_window_s == 600
    assert AlertKind.HIGH_OCCUPANCY not in _kinds(ledger, [], HOUR)
    logged_out = AgentLedger("a2", since=0)
    assert signals(logged_out, [], HOUR, 0, CONFIG).occupancy is None


def test_several_hard_calls_in_a_short_time() -> None:
    ledger = AgentLedger("a1", since=0, state=S.READY)
    spread = [HandledCall(t, t + 60, hard=True) for t in (0, 2000, 4000)]
    close = [HandledCall(t, t + 60, hard=True) for t in (5000, 6000, 7000)]
    s = signals(ledger, spread, 4100, 0, CONFIG)
    assert (s.hard_calls_today, s.hard_calls_recent) == (3, 2)
    assert AlertKind.HARD_CALLS not in _kinds(ledger, spread, 4100)
    s = signals(ledger, spread + close, 7100, 0, CONFIG)
    assert (s.hard_calls_today, s.hard_calls_recent) == (6, 4)  # 4000 to 7000
    assert AlertKind.HARD_CALLS in _kinds(ledger, spread + close, 7100)
    assert signals(ledger, spread, 4100, 1000, CONFIG).hard_calls_today == 2


def test_consecutive_and_long_calls() -> None:
    ledger = AgentLedger("a1", since=0, state=S.READY)
    ledger.transition(1000, S.NOT_READY, R.BREAK)
    ledger.transition(1600, S.READY)
    calls = [
        HandledCall(100, 400),  # before the break
        HandledCall(1700, 1800),
        HandledCall(1900, 3200),  # long: 1300 s
        HandledCall(3300, None),  # current
    ]
    s = signals(ledger, calls, 4600, 0, CONFIG)
    assert s.consecutive_calls == 3
    assert s.long_calls_today == 2  # 1900-3200 and the current one (1300 s so far)
    assert s.current_call_s == 1300
    kinds = _kinds(ledger, calls, 4600, WellbeingConfig(consecutive_calls_limit=3))
    assert kinds == {AlertKind.LONG_CALL, AlertKind.CONSECUTIVE_CALLS}
    assert _kinds(ledger, calls, 4000) == set()


def test_bad_config_names_the_key() -> None:
    with pytest.raises(InvalidConfigError) as err:
        WellbeingConfig(occupancy_limit=1.5)
    assert err.value.key == "occupancy_limit"

"""Wellbeing signals of an agent, and the alerts a supervisor sees.

Signals at ``now`` (all from the ledger and the agent's handled calls):

* ``since_break_s``: time since the end of the last *rest* — a not-ready
  interval with a reason in ``REST_REASONS`` (break, lunch, personal, recovery)
  lasting at least ``min_rest_s`` — or since the agent logged in, if there was
  none; 0 while resting; None while logged out.
* ``occupancy``: over the last ``occupancy_window_s`` (an hour), time on a call
  or in wrap-up over staffed time (ready, ringing, on a call, wrap-up); None
  when the agent was not staffed in that window.
* ``consecutive_calls``: calls answered since that last rest (or login).
* ``hard_calls_today`` and ``hard_calls_recent`` (within ``hard_calls_window_s``):
  calls flagged hard (an abusive-caller report, a high-severity complaint).
* ``long_calls_today``: calls of ``long_call_s`` or longer (the current one
  counts once it is that long), and ``current_call_s``.

Alerts: ``NO_BREAK`` when ``since_break_s >= max_without_break_s``;
``HIGH_OCCUPANCY`` when occupancy is above ``occupancy_limit`` and the agent
was staffed for at least ``occupancy_min_staffed_s`` of the window (so that the
first minutes of a shift do not alarm); ``HARD_CALLS`` when ``hard_calls_recent
>= hard_calls_limit``; ``LONG_CALL`` when the current call reaches
``long_call_s``; ``CONSECUTIVE_CALLS`` when ``consecutive_calls_limit`` is set
and reached.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from agent_stats.errors import InvalidConfigError
from agent_stats.ledger import AgentLedger, Interval
from agent_stats.states import HANDLING_STATES, REST_REASONS, STAFFED_STATES, AgentState

MAX_WITHOUT_BREAK_S = 7200.0
MIN_REST_S = 120.0
OCCUPANCY_WINDOW_S = 3600.0
OCCUPANCY_LIMIT = 0.9
OCCUPANCY_MIN_STAFFED_S = 1800.0
HARD_CALLS_LIMIT = 3
HARD_CALLS_WINDOW_S = 3600.0
LONG_CALL_S = 1200.0


@dataclass(frozen=True)
class WellbeingConfig:
    max_without_break_s: float = MAX_WITHOUT_BREAK_S
    min_rest_s: float = MIN_REST_S
    occupancy_window_s: float = OCCUPANCY_WINDOW_S
    occupancy_limit: float = OCCUPANCY_LIMIT
    occupancy_min_staffed_s: float = OCCUPANCY_MIN_STAFFED_S
    hard_calls_limit: int = HARD_CALLS_LIMIT
    hard_calls_window_s: float = HARD_CALLS_WINDOW_S
    long_call_s: float = LONG_CALL_S
    consecutive_calls_limit: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "max_without_break_s",
            "min_rest_s",
            "occupancy_window_s",
            "occupancy_min_staffed_s",
            "hard_calls_window_s",
            "long_call_s",
        ):
            if getattr(self, name) < 0:
                raise InvalidConfigError(name, "must be >= 0")
        if not 0.0 <= self.occupancy_limit <= 1.0:
            raise InvalidConfigError("occupancy_limit", "must be a fraction between 0 and 1")
        if self.hard_calls_limit < 1:
            raise InvalidConfigError("hard_calls_limit", "must be >= 1")
        if self.consecutive_calls_limit is not None and self.consecutive_calls_limit < 1:
            raise InvalidConfigError("consecutive_calls_limit", "must be >= 1 or unset")


@dataclass(frozen=True, slots=True)
class HandledCall:
    """A call the agent answered; ``ended_at`` is None while it lasts."""

    answered_at: float
    ended_at: float | None = None
    hard: bool = False
    call_id: str = ""

    def duration(self, now: float) -> float:
        return (now if self.ended_at is None else self.ended_at) - self.answered_at


@dataclass(frozen=True, slots=True)
class WellbeingSignals:
    agent_id: str
    now: float
    since_break_s: float | None
    resting: bool
    occupancy: float | None
    staffed_in_window_s: float
    consecutive_calls: int
    hard_calls_today: int
    hard_calls_recent: int
    long_calls_today: int
    current_call_s: float | None


class AlertKind(StrEnum):
    NO_BREAK = "no_break"
    HIGH_OCCUPANCY = "high_occupancy"
    HARD_CALLS = "hard_calls"
    LONG_CALL = "long_call"
    CONSECUTIVE_CALLS = "consecutive_calls"


@dataclass(frozen=True, slots=True)
class Alert:
    agent_id: str
    kind: AlertKind
    value: float
    limit: float


def _is_rest(interval: Interval, config: WellbeingConfig) -> bool:
    return (
        interval.state is AgentState.NOT_READY
        and interval.reason in REST_REASONS
        and interval.duration >= config.min_rest_s
    )


def _last_reset(ledger: AgentLedger, config: WellbeingConfig) -> float:
    """End of the last rest or logout: the moment the agent last started fresh."""
    for interval in reversed(ledger.intervals):
        if interval.state is AgentState.LOGGED_OUT or _is_rest(interval, config):
            return interval.end
    return ledger.origin


def window_seconds(ledger: AgentLedger, start: float, now: float) -> tuple[float, float]:
    """Staffed and handling seconds in ``[start, now)``: the same floats as summing
    ``ledger.totals(start, now, now).state(s)`` over the staffed (handling) states.

    Staffed states take no reason, so each state's seconds are one correctly
    rounded sum (``math.fsum``) of its clipped pieces, as in ``totals``; the
    states are then added in the same order. Without building the clipped
    intervals: about 20 times faster over an hour of a busy agent's ledger."""
    if now <= start:
        return 0.0, 0.0
    parts: dict[AgentState, list[float]] = {s: [] for s in STAFFED_STATES}
    get = parts.get
    for interval in ledger.intervals_ending_after(start):
        piece = get(interval.state)
        if piece is not None:
            lo, hi = interval.start, interval.end
            if lo < start:
                lo = start
            if hi > now:
                hi = now
            if hi > lo:
                piece.append(hi - lo)
    since = ledger.since
    if ledger.state in STAFFED_STATES and now > since:
        lo = since if since > start else start
        if now > lo:
            parts[ledger.state].append(now - lo)
    staffed = sum(math.fsum(parts[s]) for s in STAFFED_STATES)
    handling = sum(math.fsum(parts[s]) for s in HANDLING_STATES)
    return staffed, handling


def ledger_signals(
    ledger: AgentLedger, reset: float, now: float, config: WellbeingConfig
) -> tuple[float | None, bool, float | None, float]:
    """``since_break_s``, ``resting``, ``occupancy``, staffed seconds in the window."""
    resting = ledger.state is AgentState.NOT_READY and ledger.reason in REST_REASONS
    if ledger.state is AgentState.LOGGED_OUT:
        since_break: float | None = None
    elif resting:
        since_break = 0.0
    else:
        since_break = now - reset
    staffed, handling = window_seconds(ledger, now - config.occupancy_window_s, now)
    occupancy = handling / staffed if staffed > 0 else None
    return since_break, resting, occupancy, staffed


def signals(
    ledger: AgentLedger,
    calls: Iterable[HandledCall],
    now: float,
    day_start: float,
    config: WellbeingConfig,
) -> WellbeingSignals:
    calls = list(calls)
    reset = _last_reset(ledger, config)
    since_break, resting, occupancy, staffed = ledger_signals(ledger, reset, now, config)
    today = [c for c in calls if day_start <= c.answered_at <= now]
    current = [c for c in calls if c.ended_at is None and c.answered_at <= now]
    return WellbeingSignals(
        agent_id=ledger.agent_id,
        now=now,
        since_break_s=since_break,
        resting=resting,
        occupancy=occupancy,
        staffed_in_window_s=staffed,
        consecutive_calls=sum(1 for c in calls if reset <= c.answered_at <= now),
        hard_calls_today=sum(1 for c in today if c.hard),
        hard_calls_recent=sum(
            1 for c in calls if c.hard and now - config.hard_calls_window_s < c.answered_at <= now
        ),
        long_calls_today=sum(1 for c in today if c.duration(now) >= config.long_call_s),
        current_call_s=max((c.duration(now) for c in current), default=None),
    )


def alerts(s: WellbeingSignals, config: WellbeingConfig) -> list[Alert]:
    found: list[Alert] = []
    if s.since_break_s is not None and s.since_break_s >= config.max_without_break_s:
        found.append(
            Alert(s.agent_id, AlertKind.NO_BREAK, s.since_break_s, config.max_without_break_s)
        )
    if (
        s.occupancy is not None
        and s.occupancy > config.occupancy_limit
        and s.staffed_in_window_s >= config.occupancy_min_staffed_s
    ):
        found.append(
            Alert(s.agent_id, AlertKind.HIGH_OCCUPANCY, s.occupancy, config.occupancy_limit)
        )
    if s.hard_calls_recent >= config.hard_calls_limit:
        found.append(
            Alert(s.agent_id, AlertKind.HARD_CALLS, s.hard_calls_recent, config.hard_calls_limit)
        )
    if s.current_call_s is not None and s.current_call_s >= config.long_call_s:
        found.append(Alert(s.agent_id, AlertKind.LONG_CALL, s.current_call_s, config.long_call_s))
    limit = config.consecutive_calls_limit
    if limit is not None and s.consecutive_calls >= limit:
        found.append(Alert(s.agent_id, AlertKind.CONSECUTIVE_CALLS, s.consecutive_calls, limit))
    return found


ALERT_LOOK_EARLY_S = 0.001
"""How much earlier than computed an agent is looked at again (float rounding of times)."""


class AlertFigures(Protocol):
    """What :func:`alerts_steady_until` reads (``WellbeingSignals`` has it)."""

    @property
    def now(self) -> float: ...
    @property
    def since_break_s(self) -> float | None: ...
    @property
    def resting(self) -> bool: ...
    @property
    def hard_calls_recent(self) -> int: ...
    @property
    def current_call_s(self) -> float | None: ...


def alerts_steady_until(
    s: AlertFigures,
    config: WellbeingConfig,
    occupancy_steady_s: float,
    hard_call_expires_at: float | None,
    calls_forgotten_at: float | None,
) -> float:
    """Until when the agent's alerts stay as they are at ``s.now`` if nothing happens to it.

    "Nothing happens": no state change, no call answered or ended (those make the
    heartbeat look again anyway). Never later than the first moment an alert
    could appear or go with time alone; earlier is harmless (the heartbeat
    looks, finds the same alerts, and asks again). ``occupancy_steady_s``: how
    long the occupancy alert keeps its state (``running.WindowSums``);
    ``hard_call_expires_at``: when the oldest hard call of
    ``hard_calls_window_s`` leaves it; ``calls_forgotten_at``: when the oldest
    kept call is forgotten.
    """
    now = s.now
    if s.since_break_s is None:
        return math.inf  # logged out: nothing moves until they log in
    soon = now + occupancy_steady_s
    if not s.resting and s.since_break_s < config.max_without_break_s:
        soon = min(soon, now + (config.max_without_break_s - s.since_break_s))
    if s.current_call_s is not None and s.current_call_s < config.long_call_s:
        soon = min(soon, now + (config.long_call_s - s.current_call_s))
    if s.hard_calls_recent >= config.hard_calls_limit and hard_call_expires_at is not None:
        soon = min(soon, hard_call_expires_at)
    if calls_forgotten_at is not None:
        soon = min(soon, calls_forgotten_at)
    return soon - ALERT_LOOK_EARLY_S

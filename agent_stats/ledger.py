"""The agent time ledger: every second of a shift in exactly one state.

A ledger holds the closed intervals of one agent and one *open* interval (the
current state, since when). ``transition`` closes the open interval at ``now``
and opens the next, so intervals are contiguous and never overlap by
construction; a change of not-ready reason is a transition like any other and
splits the interval. ``totals`` clips intervals to a span and attributes any
time before the ledger's origin to ``LOGGED_OUT``, so the buckets always sum to
the span exactly (exactly in real arithmetic; with whole-second times, exactly
in floats too).

Restarts and reconnects (``reconcile``)
---------------------------------------
The storage keeps the ledger (``to_dict``) and a heartbeat, ``last_persisted_at``:
the last moment the daemon is known to have been watching the agent. After a
daemon restart, or when the AMI link comes back, the time between
``last_persisted_at`` and ``now`` was not observed. The rule:

* a gap up to ``trust_gap_s`` (default ``RECONCILE_TRUST_GAP_S`` = 60 s, a
  quick restart or heartbeat jitter) goes to the last known state: the agent
  almost surely stayed in it, and a break in progress continues unsplit;
* a longer gap goes to ``UNKNOWN``, a neutral bucket: it counts as logged-in
  time (earning allowance, so an outage never costs the agent), but never as
  break, call or ready time, because nobody knows which it was; if the agent was
  logged out, the gap stays ``LOGGED_OUT``;
* from ``now`` on, the agent is in the state observed by the resync
  (``observed``), or, if none was observed, in the last known state again.

Nothing already recorded is touched, and the gap is counted once: the open
interval is closed at ``last_persisted_at`` and the next one starts there.

Pruning (``prune``)
-------------------
A daemon that runs for weeks drops closed intervals it no longer needs (the
storage keeps every day). ``interval_count`` and ``intervals_from`` keep
counting from the first interval ever recorded, so a reader that folds in new
intervals by position is not disturbed; ``origin`` stays the first recorded
second. Spans before the first kept interval are reported as ``LOGGED_OUT``,
as for a ledger restored from storage with only its recent days.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent_stats.errors import BadSnapshotError, ClockWentBackwardsError
from agent_stats.states import (
    LOGGED_IN_STATES,
    AgentState,
    NotReadyReason,
    StateKey,
    check_key,
)

RECONCILE_TRUST_GAP_S = 60.0
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Interval:
    """``[start, end)`` in one state (and reason, when not ready)."""

    start: float
    end: float
    state: AgentState
    reason: NotReadyReason | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def key(self) -> StateKey:
        return self.state, self.reason

    def clip(self, start: float, end: float) -> Interval | None:
        """This interval cut to ``[start, end)``, or None if nothing is left."""
        lo, hi = max(self.start, start), min(self.end, end)
        if hi <= lo:
            return None
        return Interval(lo, hi, self.state, self.reason)

    def to_list(self) -> list[Any]:
        return [self.start, self.end, self.state.value, self.reason.value if self.reason else None]

    @classmethod
    def from_list(cls, raw: Any) -> Interval:
        try:
            start, end, state, reason = raw
            st, rs = check_key(
                AgentState(state), None if reason is None else NotReadyReason(reason)
            )
            interval = cls(float(start), float(end), st, rs)
        except (TypeError, ValueError) as exc:
            raise BadSnapshotError(f"bad interval {raw!r}: {exc}") from exc
        if interval.end < interval.start:
            raise BadSnapshotError(f"interval ends before it starts: {raw!r}")
        return interval


@dataclass(frozen=True)
class LedgerTotals:
    """Seconds per ``(state, reason)`` over ``[start, end)``; they sum to ``end - start``."""

    start: float
    end: float
    seconds: Mapping[StateKey, float]

    @property
    def span(self) -> float:
        return self.end - self.start

    @property
    def total(self) -> float:
        return math.fsum(self.seconds.values())

    def of(self, state: AgentState, reason: NotReadyReason | None = None) -> float:
        return self.seconds.get((state, reason), 0.0)

    def state(self, state: AgentState) -> float:
        """All seconds in ``state``, whatever the reason."""
        return math.fsum(v for (s, _), v in self.seconds.items() if s is state)

    def reason(self, reason: NotReadyReason) -> float:
        return self.of(AgentState.NOT_READY, reason)

    @property
    def logged_in(self) -> float:
        return math.fsum(v for (s, _), v in self.seconds.items() if s in LOGGED_IN_STATES)


class AgentLedger:
    """The time ledger of one agent. Pure: every method takes ``now``."""

    def __init__(
        self,
        agent_id: str,
        since: float,
        state: AgentState = AgentState.LOGGED_OUT,
        reason: NotReadyReason | None = None,
        intervals: Iterable[Interval] = (),
    ) -> None:
        self.agent_id = agent_id
        self._intervals: list[Interval] = list(intervals)
        self._check_chain(since)
        self._state, self._reason = check_key(state, reason)
        self._open_start = since
        self._origin = self._intervals[0].start if self._intervals else since
        self._dropped = 0
        """Closed intervals pruned so far (positions count them)."""

    def _check_chain(self, open_start: float) -> None:
        for before, after in zip(self._intervals, self._intervals[1:], strict=False):
            if after.start != before.end:
                raise BadSnapshotError(f"intervals not contiguous at {before.end!r}")
        if self._intervals and self._intervals[-1].end != open_start:
            raise BadSnapshotError("the open interval does not start where the last one ends")

    # -- reading ---------------------------------------------------------

    @property
    def state(self) -> AgentState:
        return self._state

    @property
    def reason(self) -> NotReadyReason | None:
        return self._reason

    @property
    def key(self) -> StateKey:
        return self._state, self._reason

    @property
    def since(self) -> float:
        """Start of the open interval (the current state)."""
        return self._open_start

    @property
    def origin(self) -> float:
        """Start of the first recorded second (pruning does not move it)."""
        return self._origin

    @property
    def kept_from(self) -> float:
        """Start of the first closed interval still held (``origin`` if none was pruned)."""
        return self._intervals[0].start if self._intervals else self._open_start

    @property
    def intervals(self) -> tuple[Interval, ...]:
        """Closed intervals, oldest first."""
        return tuple(self._intervals)

    def intervals_ending_after(self, t: float) -> list[Interval]:
        """Closed intervals that end after ``t``, oldest first (no copy of the older ones)."""
        intervals = self._intervals
        if not intervals or intervals[0].end > t:
            return intervals[:]
        return intervals[bisect.bisect_right(intervals, t, key=_interval_end):]

    @property
    def interval_count(self) -> int:
        """How many closed intervals were ever recorded, pruned ones included (no copy)."""
        return self._dropped + len(self._intervals)

    def intervals_from(self, index: int) -> list[Interval]:
        """Closed intervals from position ``index`` on (those added since a reader last looked).

        Positions count pruned intervals too; pruned ones are not returned."""
        return self._intervals[max(0, index - self._dropped):]

    def prunable(self, before: float) -> bool:
        """Whether ``prune(before)`` would drop anything (O(1))."""
        return bool(self._intervals) and self._intervals[0].end <= before

    def prune(self, before: float) -> int:
        """Drop the closed intervals that end by ``before``; returns how many."""
        if not self._intervals or self._intervals[0].end > before:
            return 0
        cut = bisect.bisect_right(self._intervals, before, key=lambda i: i.end)
        del self._intervals[:cut]
        self._dropped += cut
        return cut

    def open_interval(self, now: float) -> Interval:
        """The current state as an interval ending at ``now``."""
        return Interval(self._open_start, max(now, self._open_start), self._state, self._reason)

    def intervals_between(self, start: float, end: float, now: float) -> list[Interval]:
        """Contiguous intervals covering ``[start, min(end, now))`` exactly.

        Time before the origin is reported as ``LOGGED_OUT``; time after ``now``
        is not reported (it has not happened).
        """
        end = min(end, now)
        if end <= start:
            return []
        pieces: list[Interval] = []
        kept_from = self.kept_from
        if start < kept_from:
            pieces.append(Interval(start, min(kept_from, end), AgentState.LOGGED_OUT))
        # intervals are ordered and contiguous: skip those ending by ``start`` at once
        first = bisect.bisect_right(self._intervals, start, key=lambda i: i.end)
        for interval in (*self._intervals[first:], self.open_interval(now)):
            if interval.end <= start:
                continue
            if interval.start >= end:
                break
            clipped = interval.clip(start, end)
            if clipped is not None:
                pieces.append(clipped)
        return pieces

    def totals(self, start: float, end: float, now: float) -> LedgerTotals:
        """Seconds per ``(state, reason)`` over ``[start, min(end, now))``."""
        parts: dict[StateKey, list[float]] = {}
        for piece in self.intervals_between(start, end, now):
            parts.setdefault(piece.key, []).append(piece.duration)
        seconds = {key: math.fsum(values) for key, values in parts.items()}
        return LedgerTotals(start, max(start, min(end, now)), seconds)

    # -- writing ---------------------------------------------------------

    def transition(
        self, now: float, state: AgentState, reason: NotReadyReason | None = None
    ) -> list[Interval]:
        """Close the open interval at ``now`` and open ``(state, reason)``.

        Returns the intervals closed (for the storage to append): none when the
        state and reason are unchanged or no time has passed in the old state.
        """
        key = check_key(state, reason)
        if now < self._open_start:
            raise ClockWentBackwardsError(f"agent {self.agent_id}", now, self._open_start)
        if key == self.key:
            return []
        closed: list[Interval] = []
        if now > self._open_start:
            closed.append(Interval(self._open_start, now, self._state, self._reason))
            self._intervals.extend(closed)
            self._open_start = now
        self._state, self._reason = key
        return closed

    def reconcile(
        self,
        last_persisted_at: float,
        now: float,
        observed: StateKey | None = None,
        trust_gap_s: float = RECONCILE_TRUST_GAP_S,
    ) -> list[Interval]:
        """Account for the unobserved time ``[last_persisted_at, now)``; see the module doc."""
        if now < self._open_start:
            raise ClockWentBackwardsError(f"agent {self.agent_id}", now, self._open_start)
        seen_until = min(max(last_persisted_at, self._open_start), now)
        resume = self.key
        closed: list[Interval] = []
        gap = now - seen_until
        if gap > trust_gap_s and self._state is not AgentState.LOGGED_OUT:
            closed += self.transition(seen_until, AgentState.UNKNOWN)
            closed += self.transition(now, *resume)
        target = resume if observed is None else observed
        closed += self.transition(now, *target)
        return closed

    # -- storage form ----------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form; ``from_dict`` reads it back."""
        return {
            "version": SNAPSHOT_VERSION,
            "agent_id": self.agent_id,
            "open": {
                "since": self._open_start,
                "state": self._state.value,
                "reason": self._reason.value if self._reason else None,
            },
            "intervals": [i.to_list() for i in self._intervals],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AgentLedger:
        try:
            if raw["version"] != SNAPSHOT_VERSION:
                raise BadSnapshotError(f"unknown ledger snapshot version {raw['version']!r}")
            open_ = raw["open"]
            reason = open_["reason"]
            return cls(
                str(raw["agent_id"]),
                float(open_["since"]),
                AgentState(open_["state"]),
                None if reason is None else NotReadyReason(reason),
                [Interval.from_list(item) for item in raw["intervals"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, BadSnapshotError):
                raise
            raise BadSnapshotError(f"bad ledger snapshot: {exc!r}") from exc


def _interval_end(interval: Interval) -> float:
    return interval.end

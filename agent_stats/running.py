"""Running figures of each agent's day, kept up to date incrementally.

The heartbeat needs, for every agent, today's break allowance, the end of the
last break and of the last rest (for the fair line and the wellbeing signals),
and the handled calls of the day. Recomputing them from the whole day of
intervals and calls each tick costs time proportional to the day; these
classes fold in only what changed since they last looked, so a tick costs
about the same at 08:00 and at 20:00.

* :class:`AgentDay` follows one agent's :class:`~agent_stats.ledger.AgentLedger`:
  ``sync`` consumes the closed intervals added since the last call (the ledger
  only ever appends); a different ledger object (a restore) or a new local day
  triggers a rebuild from the ledger, once. The figures equal
  :func:`agent_stats.breaks.allowance` / ``last_break_end`` and the wellbeing
  module's last reset over the same intervals.
* :class:`CallLog` holds the calls an agent answered in answer order, with
  cumulative hard-call counts and the completed long calls, so every count the
  wellbeing signals need is a pair of binary searches.
"""

from __future__ import annotations

import bisect
import math

from agent_stats.breaks import HOUR_S, Allowance, BreakConfig
from agent_stats.ledger import AgentLedger, Interval
from agent_stats.states import LOGGED_IN_STATES, REST_REASONS, AgentState, NotReadyReason
from agent_stats.wellbeing import WellbeingConfig, WellbeingSignals, ledger_signals


class AgentDay:
    """Today's allowance sums, last break end and last reset of one agent."""

    __slots__ = (
        "_breaks", "_wellbeing", "_ledger", "_seen", "_day", "_logged_in_s", "_taken_s",
        "_exempt_s", "_kinds", "_not_ready", "last_break_end", "last_reset",
    )

    def __init__(self, breaks: BreakConfig, wellbeing: WellbeingConfig) -> None:
        self._breaks = breaks
        self._wellbeing = wellbeing
        self._kinds = breaks.queued_reasons | breaks.counted_reasons
        self._ledger: AgentLedger | None = None
        self._seen = 0
        self._day = -math.inf
        self._logged_in_s = self._taken_s = self._exempt_s = 0.0
        self._not_ready: dict[NotReadyReason | None, float] = {}
        self.last_break_end: float | None = None
        self.last_reset: float | None = None
        """End of the last rest or logout (None: none yet, the ledger's origin counts)."""

    def sync(self, ledger: AgentLedger, day_start: float) -> None:
        """Fold in the intervals closed since the last call (rebuild on a new ledger or day)."""
        count = ledger.interval_count
        if ledger is not self._ledger or count < self._seen:
            self._ledger = ledger
            self._seen = 0
            self.last_break_end = self.last_reset = None
            self._day = -math.inf
        rescanned = day_start != self._day
        if rescanned:
            # a new day (or a rebuild): today's sums from the closed intervals since midnight
            self._day = day_start
            self._logged_in_s = self._taken_s = self._exempt_s = 0.0
            self._not_ready = {}
            for piece in ledger.intervals_between(day_start, ledger.since, ledger.since):
                self._add_today(piece)
        fresh = ledger.intervals_from(self._seen)
        self._seen = count
        for interval in fresh:
            self._note(interval)
            if not rescanned and interval.end > day_start:
                clipped = interval.clip(day_start, interval.end)
                if clipped is not None:
                    self._add_today(clipped)

    def _note(self, interval: Interval) -> None:
        if interval.state is AgentState.NOT_READY and interval.reason in self._kinds:
            end = interval.end
            self.last_break_end = end if self.last_break_end is None else max(
                self.last_break_end, end)
        if interval.state is AgentState.LOGGED_OUT or (
            interval.state is AgentState.NOT_READY
            and interval.reason in REST_REASONS
            and interval.duration >= self._wellbeing.min_rest_s
        ):
            self.last_reset = interval.end

    def _add_today(self, piece: Interval) -> None:
        d = piece.duration
        if piece.state in LOGGED_IN_STATES:
            self._logged_in_s += d
        if piece.state is not AgentState.NOT_READY:
            return
        self._not_ready[piece.reason] = self._not_ready.get(piece.reason, 0.0) + d
        if piece.reason is NotReadyReason.RECOVERY:
            self._exempt_s += d
        elif piece.reason is NotReadyReason.PERSONAL:
            free = min(d, self._breaks.personal_exempt_s)
            self._exempt_s += free
            self._taken_s += d - free
        elif piece.reason in self._breaks.counted_reasons:
            self._taken_s += d

    def allowance(self, ledger: AgentLedger, day_start: float, now: float) -> Allowance:
        """Today's allowance at ``now``: the closed sums plus the open interval (clipped)."""
        self.sync(ledger, day_start)
        logged_in, taken, exempt = self._logged_in_s, self._taken_s, self._exempt_s
        piece = ledger.open_interval(now).clip(day_start, now)
        if piece is not None:
            d = piece.duration
            if piece.state in LOGGED_IN_STATES:
                logged_in += d
            if piece.state is AgentState.NOT_READY:
                if piece.reason is NotReadyReason.RECOVERY:
                    exempt += d
                elif piece.reason is NotReadyReason.PERSONAL:
                    free = min(d, self._breaks.personal_exempt_s)
                    exempt += free
                    taken += d - free
                elif piece.reason in self._breaks.counted_reasons:
                    taken += d
        return Allowance(logged_in * self._breaks.earn_per_hour_s / HOUR_S, taken, exempt)


    def not_ready_today(
        self, ledger: AgentLedger, day_start: float, now: float
    ) -> dict[NotReadyReason | None, float]:
        """Seconds not ready since ``day_start`` by reason (``None``: no reason), the open
        interval included: what ``ledger.totals(day_start, now, now)`` gives, without a day scan."""
        self.sync(ledger, day_start)
        out = dict(self._not_ready)
        piece = ledger.open_interval(now).clip(day_start, now)
        if piece is not None and piece.state is AgentState.NOT_READY:
            out[piece.reason] = out.get(piece.reason, 0.0) + piece.duration
        return out


class CallLog:
    """The calls one agent answered, in answer order, for the wellbeing counts."""

    def __init__(self, long_call_s: float) -> None:
        self._long_call_s = long_call_s
        self._answered: list[float] = []
        self._cum_hard: list[int] = [0]
        """``_cum_hard[i]``: hard calls among the first ``i`` kept calls (plus those pruned)."""
        self._long: list[float] = []
        """Answer times of completed calls that lasted ``long_call_s`` or longer, sorted."""
        self._open: dict[str, tuple[float, bool]] = {}

    def __len__(self) -> int:
        return len(self._answered)

    def answered(self, call_id: str, at: float, hard: bool) -> None:
        if self._answered and at < self._answered[-1]:
            i = bisect.bisect_right(self._answered, at)
            self._answered.insert(i, at)
            self._cum_hard.insert(i + 1, self._cum_hard[i])
            for j in range(i + 1, len(self._cum_hard)):
                self._cum_hard[j] += int(hard)
        else:
            self._answered.append(at)
            self._cum_hard.append(self._cum_hard[-1] + int(hard))
        self._open[call_id] = (at, hard)

    def completed(self, call_id: str, at: float) -> None:
        found = self._open.pop(call_id, None)
        if found is not None and at - found[0] >= self._long_call_s:
            bisect.insort(self._long, found[0])

    def prune(self, before: float) -> None:
        """Forget calls answered before ``before`` (and not still going on)."""
        oldest_open = min((a for a, _ in self._open.values()), default=math.inf)
        cut = bisect.bisect_left(self._answered, min(before, oldest_open))
        if cut:
            del self._answered[:cut]
            del self._cum_hard[:cut]
        cut = bisect.bisect_left(self._long, before)
        if cut:
            del self._long[:cut]

    def _hard_between(self, lo: int, hi: int) -> int:
        return self._cum_hard[hi] - self._cum_hard[lo]

    def count(self, first: float, last: float) -> int:
        """Calls answered in ``[first, last]``."""
        a = self._answered
        return max(0, bisect.bisect_right(a, last) - bisect.bisect_left(a, first))

    def hard(self, first: float, last: float, *, open_first: bool = False) -> int:
        """Hard calls answered in ``[first, last]`` (``(first, last]`` with ``open_first``)."""
        a = self._answered
        lo = bisect.bisect_right(a, first) if open_first else bisect.bisect_left(a, first)
        hi = bisect.bisect_right(a, last)
        return self._hard_between(lo, hi) if hi > lo else 0

    def long_calls(self, first: float, now: float) -> int:
        """Calls answered in ``[first, now]`` lasting ``long_call_s`` or more (open ones too)."""
        done = max(0, bisect.bisect_right(self._long, now) - bisect.bisect_left(self._long, first))
        going = sum(
            1 for a, _ in self._open.values()
            if first <= a <= now and now - a >= self._long_call_s
        )
        return done + going

    def current_call_s(self, now: float) -> float | None:
        return max((now - a for a, _ in self._open.values() if a <= now), default=None)


def running_signals(
    ledger: AgentLedger,
    day: AgentDay,
    calls: CallLog,
    now: float,
    day_start: float,
    config: WellbeingConfig,
) -> WellbeingSignals:
    """:func:`agent_stats.wellbeing.signals` from the running figures (same values)."""
    day.sync(ledger, day_start)
    reset = ledger.origin if day.last_reset is None else day.last_reset
    since_break, resting, occupancy, staffed = ledger_signals(ledger, reset, now, config)
    return WellbeingSignals(
        agent_id=ledger.agent_id,
        now=now,
        since_break_s=since_break,
        resting=resting,
        occupancy=occupancy,
        staffed_in_window_s=staffed,
        consecutive_calls=calls.count(reset, now),
        hard_calls_today=calls.hard(day_start, now),
        hard_calls_recent=calls.hard(now - config.hard_calls_window_s, now, open_first=True),
        long_calls_today=calls.long_calls(day_start, now),
        current_call_s=calls.current_call_s(now),
    )

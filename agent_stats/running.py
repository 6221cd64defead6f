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
import heapq
import math
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from agent_stats.breaks import HOUR_S, Allowance, BreakConfig
from agent_stats.ledger import AgentLedger, Interval
from agent_stats.states import (
    HANDLING_STATES,
    LOGGED_IN_STATES,
    REST_REASONS,
    STAFFED_STATES,
    AgentState,
    NotReadyReason,
)
from agent_stats.wellbeing import (
    ALERT_LOOK_EARLY_S,
    AlertKind,
    WellbeingConfig,
    WellbeingSignals,
    alerts_steady_until,
    ledger_signals,
)


class _DaySums:
    """Closed seconds from one day start on: logged in, taken, exempt, not ready by reason."""

    __slots__ = ("logged_in_s", "taken_s", "exempt_s", "not_ready")

    def __init__(self) -> None:
        self.logged_in_s = self.taken_s = self.exempt_s = 0.0
        self.not_ready: dict[NotReadyReason | None, float] = {}


class AgentDay:
    """Today's allowance sums, last break end and last reset of one agent.

    The sums are kept for the last ``KEPT_DAYS`` day starts asked for (today
    and yesterday: a reader a moment behind midnight still gets yesterday's
    figures without a scan), each folding in every interval closed since, so
    the ledger may drop closed intervals once they are folded in
    (``StatsService.prune_ledgers`` syncs before it prunes): a new day's sums
    are built, once, from the intervals since its midnight, which are the
    most recent ones.
    """

    KEPT_DAYS = 2

    __slots__ = (
        "_breaks", "_wellbeing", "_ledger", "_seen", "_sums", "_kinds",
        "last_break_end", "last_reset",
    )

    def __init__(self, breaks: BreakConfig, wellbeing: WellbeingConfig) -> None:
        self._breaks = breaks
        self._wellbeing = wellbeing
        self._kinds = breaks.queued_reasons | breaks.counted_reasons
        self._ledger: AgentLedger | None = None
        self._seen = 0
        self._sums: dict[float, _DaySums] = {}
        """Per day start asked for (at most ``KEPT_DAYS``): the closed seconds since it."""
        self.last_break_end: float | None = None
        self.last_reset: float | None = None
        """End of the last rest or logout (None: none yet, the ledger's origin counts)."""

    def sync(self, ledger: AgentLedger, day_start: float) -> None:
        """Fold in the intervals closed since the last call (rebuild on a new ledger)."""
        self._sync(ledger, day_start)

    def _sync(self, ledger: AgentLedger, day_start: float) -> _DaySums:
        count = ledger.interval_count
        if count == self._seen and ledger is self._ledger:
            found = self._sums.get(day_start)
            if found is not None:
                return found  # nothing closed since the last call
        if ledger is not self._ledger or count < self._seen:
            self._ledger = ledger
            self._seen = 0
            self.last_break_end = self.last_reset = None
            self._sums = {}
        fresh = ledger.intervals_from(self._seen)
        self._seen = count
        kept = self._sums
        for interval in fresh:
            self._note(interval)
            for start, sums in kept.items():
                if interval.end > start:
                    if interval.start >= start:
                        self._add(sums, interval)  # wholly inside: no clipped copy needed
                        continue
                    clipped = interval.clip(start, interval.end)
                    if clipped is not None:
                        self._add(sums, clipped)
        found = kept.get(day_start)
        if found is not None:
            return found
        # a day start not seen yet (a new day, a rebuild): its sums from the ledger
        made = kept[day_start] = _DaySums()
        for piece in ledger.intervals_between(day_start, ledger.since, ledger.since):
            self._add(made, piece)
        if len(kept) > self.KEPT_DAYS:
            del kept[min(k for k in kept if k != day_start)]
        return made

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

    def _add(self, sums: _DaySums, piece: Interval) -> None:
        d = piece.duration
        if piece.state in LOGGED_IN_STATES:
            sums.logged_in_s += d
        if piece.state is not AgentState.NOT_READY:
            return
        sums.not_ready[piece.reason] = sums.not_ready.get(piece.reason, 0.0) + d
        if piece.reason is NotReadyReason.RECOVERY:
            sums.exempt_s += d
        elif piece.reason is NotReadyReason.PERSONAL:
            free = min(d, self._breaks.personal_exempt_s)
            sums.exempt_s += free
            sums.taken_s += d - free
        elif piece.reason in self._breaks.counted_reasons:
            sums.taken_s += d

    def allowance(self, ledger: AgentLedger, day_start: float, now: float) -> Allowance:
        """Today's allowance at ``now``: the closed sums plus the open interval (clipped)."""
        sums = self._sync(ledger, day_start)
        logged_in, taken, exempt = sums.logged_in_s, sums.taken_s, sums.exempt_s
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
        out = dict(self._sync(ledger, day_start).not_ready)
        piece = ledger.open_interval(now).clip(day_start, now)
        if piece is not None and piece.state is AgentState.NOT_READY:
            out[piece.reason] = out.get(piece.reason, 0.0) + piece.duration
        return out


class CallLog:
    """The calls one agent answered, in answer order, for the wellbeing counts.

    ``prune(before, day_start, reset)`` forgets the calls answered before
    ``before`` (the service passes the start of the hard-call window, which
    needs their times). What the other counts need of them is kept as counts
    per *anchor*: the calls, hard calls and completed long calls forgotten that
    were answered since today's start (and yesterday's) and since the agent's
    last reset, so :meth:`count`, :meth:`hard` and :meth:`long_calls` from an
    anchor stay exact and an agent who never rests holds the last window of
    calls, not the day's. An anchor is registered before anything answered
    after it is forgotten (the prune that registers it cuts no later than it)."""

    KEPT_DAYS = 2

    def __init__(self, long_call_s: float) -> None:
        self._long_call_s = long_call_s
        self._answered: list[float] = []
        self._cum_hard: list[int] = [0]
        """``_cum_hard[i]``: hard calls among the first ``i`` kept calls (plus those pruned)."""
        self._long: list[float] = []
        """Answer times of completed calls that lasted ``long_call_s`` or longer, sorted."""
        self._open: dict[str, tuple[float, bool]] = {}
        self._days: list[float] = []
        """The day starts anchored (at most ``KEPT_DAYS``), oldest first."""
        self._reset: float | None = None
        self._forgotten: dict[float, list[int]] = {}
        """Per anchor: calls, hard calls and completed long calls answered since it, forgotten."""

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

    def _anchor(self, day_start: float | None, reset: float | None) -> float:
        """Register the anchors; the earliest new one (``inf``: none new)."""
        forgotten = self._forgotten
        new = math.inf
        if day_start is not None and day_start not in self._days:
            self._days.append(day_start)
            self._days.sort()
            while len(self._days) > self.KEPT_DAYS:
                gone = self._days.pop(0)
                if gone != self._reset:
                    forgotten.pop(gone, None)
            forgotten.setdefault(day_start, [0, 0, 0])
            new = min(new, day_start)
        if reset is not None and reset != self._reset:
            old, self._reset = self._reset, reset
            if old is not None and old not in self._days:
                forgotten.pop(old, None)
            if reset not in forgotten:
                forgotten[reset] = [0, 0, 0]
                new = min(new, reset)
        return new

    def prune(self, before: float, day_start: float | None = None, reset: float | None = None) -> None:
        """Forget calls answered before ``before`` (and not still going on); see the class doc."""
        before = min(before, self._anchor(day_start, reset))
        if (not self._answered or self._answered[0] >= before) and (
                not self._long or self._long[0] >= before):
            return  # nothing that old
        forgotten = self._forgotten
        oldest_open = min((a for a, _ in self._open.values()), default=math.inf)
        cut = bisect.bisect_left(self._answered, min(before, oldest_open))
        if cut:
            for anchor, counts in forgotten.items():
                lo = bisect.bisect_left(self._answered, anchor, hi=cut)
                counts[0] += cut - lo
                counts[1] += self._cum_hard[cut] - self._cum_hard[lo]
            del self._answered[:cut]
            del self._cum_hard[:cut]
        cut = bisect.bisect_left(self._long, before)
        if cut:
            for anchor, counts in forgotten.items():
                counts[2] += cut - bisect.bisect_left(self._long, anchor, hi=cut)
            del self._long[:cut]

    def _forgotten_since(self, first: float, which: int) -> int:
        counts = self._forgotten.get(first)
        return 0 if counts is None else counts[which]

    def _hard_between(self, lo: int, hi: int) -> int:
        return self._cum_hard[hi] - self._cum_hard[lo]

    def count(self, first: float, last: float) -> int:
        """Calls answered in ``[first, last]``."""
        a = self._answered
        kept = max(0, bisect.bisect_right(a, last) - bisect.bisect_left(a, first))
        return kept + self._forgotten_since(first, 0)

    def hard(self, first: float, last: float, *, open_first: bool = False) -> int:
        """Hard calls answered in ``[first, last]`` (``(first, last]`` with ``open_first``)."""
        a = self._answered
        lo = bisect.bisect_right(a, first) if open_first else bisect.bisect_left(a, first)
        hi = bisect.bisect_right(a, last)
        forgotten = 0 if open_first else self._forgotten_since(first, 1)
        return (self._hard_between(lo, hi) if hi > lo else 0) + forgotten

    def long_calls(self, first: float, now: float) -> int:
        """Calls answered in ``[first, now]`` lasting ``long_call_s`` or more (open ones too)."""
        done = max(0, bisect.bisect_right(self._long, now) - bisect.bisect_left(self._long, first))
        going = sum(
            1 for a, _ in self._open.values()
            if first <= a <= now and now - a >= self._long_call_s
        )
        return done + going + self._forgotten_since(first, 2)

    def first_hard_after(self, t: float) -> float | None:
        """Answer time of the first hard call answered after ``t`` (None: none kept)."""
        a, cum = self._answered, self._cum_hard
        lo = bisect.bisect_right(a, t)
        if lo >= len(a) or cum[-1] == cum[lo]:
            return None
        # the first i >= lo whose call is hard: where the running count first passes cum[lo]
        return a[bisect.bisect_right(cum, cum[lo], lo=lo) - 1]

    def oldest(self) -> float | None:
        """Answer time of the oldest call kept (None: none)."""
        return self._answered[0] if self._answered else None

    def current_call_s(self, now: float) -> float | None:
        open_calls = self._open
        if not open_calls:
            return None
        if len(open_calls) == 1:  # the usual case: one call at a time
            for a, _ in open_calls.values():
                return now - a if a <= now else None
        return max((now - a for a, _ in open_calls.values() if a <= now), default=None)


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


_KINDS = {state: (state in STAFFED_STATES, state in HANDLING_STATES) for state in AgentState}
"""Each state's kind of time: (staffed, handling)."""


class WindowSums:
    """Staffed and handling seconds of one agent over any recent window, in O(log n).

    Prefix sums over the agent's closed intervals (folded in as the ledger
    closes them, like :class:`AgentDay`) and the open interval, so the seconds
    in ``[start, end)`` are two binary searches and a subtraction. The floats
    differ from :meth:`AgentLedger.totals` (which adds clipped pieces with
    ``fsum``) by rounding only, far below a millisecond: the heartbeat uses
    them to see whether an occupancy alert is anywhere near changing, and
    computes the exact figure when it is. Back-to-back intervals of the same
    kind (staffed, handling) are kept as one piece.
    """

    __slots__ = ("_ledger", "_seen", "_starts", "_ends", "_kinds", "_staffed", "_handling")

    def __init__(self) -> None:
        self._ledger: AgentLedger | None = None
        self._seen = 0
        self._starts: list[float] = []
        self._ends: list[float] = []
        self._kinds: list[tuple[bool, bool]] = []
        """Each kept interval: (staffed, handling)."""
        self._staffed: list[float] = [0.0]
        """``_staffed[i]``: staffed seconds in the kept intervals before the ``i``-th."""
        self._handling: list[float] = [0.0]

    def sync(self, ledger: AgentLedger) -> None:
        count = ledger.interval_count
        if count == self._seen and ledger is self._ledger:
            return  # nothing closed since the last call
        if ledger is not self._ledger or count < self._seen:
            self._ledger = ledger
            self._seen = 0
            self._starts, self._ends, self._kinds = [], [], []
            self._staffed, self._handling = [0.0], [0.0]
        fresh = ledger.intervals_from(self._seen)
        self._seen = count
        starts, ends, kinds = self._starts, self._ends, self._kinds
        staffed_sums, handling_sums = self._staffed, self._handling
        for interval in fresh:
            start, end, state = interval.start, interval.end, interval.state
            d = end - start  # Interval.duration
            kind = _KINDS[state]
            if ends and ends[-1] == start and kinds[-1] == kind:
                # the same kind of time as the interval before (ready then ringing, a
                # call then its wrap-up): one piece, so the walks have half as many
                ends[-1] = end
                if kind[0]:
                    staffed_sums[-1] += d
                if kind[1]:
                    handling_sums[-1] += d
                continue
            starts.append(start)
            ends.append(end)
            kinds.append(kind)
            staffed_sums.append(staffed_sums[-1] + (d if kind[0] else 0.0))
            handling_sums.append(handling_sums[-1] + (d if kind[1] else 0.0))

    def forget_before(self, t: float) -> None:
        """Drop intervals that end by ``t`` (no window will reach back that far)."""
        cut = bisect.bisect_right(self._ends, t)
        if cut > 64 and cut * 2 > len(self._ends):
            del self._starts[:cut], self._ends[:cut], self._kinds[:cut]
            base_s, base_h = self._staffed[cut], self._handling[cut]
            self._staffed = [v - base_s for v in self._staffed[cut:]]
            self._handling = [v - base_h for v in self._handling[cut:]]

    def _cumulative(self, ledger: AgentLedger, t: float) -> tuple[float, float]:
        """Staffed and handling seconds from the first kept interval up to ``t``."""
        ends = self._ends
        if ends and t < ends[-1]:
            i = bisect.bisect_right(ends, t)
            s, h = self._staffed[i], self._handling[i]
            start = self._starts[i]
            if t > start:
                # the interval that holds ``t``: its share up to ``t``
                part = t - start
                staffed, handling = self._kinds[i]
                return s + (part if staffed else 0.0), h + (part if handling else 0.0)
            return s, h
        s, h = self._staffed[-1], self._handling[-1]
        part = t - ledger.since
        if part > 0:
            if ledger.state in STAFFED_STATES:
                s += part
            if ledger.state in HANDLING_STATES:
                h += part
        return s, h

    def occupancy_steady_s(
        self, ledger: AgentLedger, now: float, config: WellbeingConfig, horizon_s: float,
        seconds: tuple[float, float] | None = None,
    ) -> float:
        """Seconds (up to ``horizon_s``) the occupancy alert keeps its state at ``now``
        if the agent stays in its current state.

        Exact up to rounding: what enters the window is the current state, what
        leaves it is the ledger of a window ago (known), so ``handling - limit *
        staffed`` and ``staffed`` are straight lines between the boundaries of the
        intervals leaving; each piece is solved for the moment the alert flips.
        ``seconds``: the window's staffed and handling seconds at ``now``, if known."""
        window_s, limit, least = (
            config.occupancy_window_s, config.occupancy_limit, config.occupancy_min_staffed_s)
        start = now - window_s
        s, h = self.seconds(ledger, start, now) if seconds is None else seconds
        m = h - limit * s
        active = s > 0 and m > 0 and s >= least
        sn, hn = ledger.state in STAFFED_STATES, ledger.state in HANDLING_STATES
        enter = (1.0 if hn else 0.0) - (limit if sn else 0.0)
        # first the loose bound: what enters is the current state, what leaves moves
        # ``handling - limit * staffed`` by -limit (ready) to 1 - limit (a call) and
        # ``staffed`` by 0 to 1 a second, so far from both thresholds, or moving away
        # from them whatever leaves (a call while the alert is on, ready while it is off),
        # no walk is needed
        if active:
            fall_m = (1.0 - limit) - enter  # the fastest fall of m, a second
            fall_s = 1.0 - (1.0 if sn else 0.0)
            loose = min(m / fall_m if fall_m > 0 else math.inf,
                        (s - least) / fall_s if fall_s > 0 else math.inf)
        else:
            rise_m = enter + limit
            rise_s = 1.0 if sn else 0.0
            loose = max(-m / rise_m if rise_m > 0 else (0.0 if m > 0 else math.inf),
                        (least - s) / rise_s if rise_s > 0 else (0.0 if s >= least else math.inf))
        if loose >= horizon_s:
            return horizon_s
        starts, ends, kinds = self._starts, self._ends, self._kinds
        i = bisect.bisect_right(ends, start)
        t = 0.0
        while t < horizon_s:
            pos = start + t
            if i < len(ends):
                if pos < starts[i]:  # before the first kept interval: logged out
                    ls = lh = False
                    piece_end = starts[i]
                else:
                    ls, lh = kinds[i]
                    piece_end = ends[i]
            else:  # the open interval itself leaves: what leaves is what enters
                ls, lh = sn, hn
                piece_end = math.inf
            piece = min(piece_end - pos, horizon_s - t)
            rate_m = enter - ((1.0 if lh else 0.0) - (limit if ls else 0.0))
            rate_s = (1.0 if sn else 0.0) - (1.0 if ls else 0.0)
            if active:
                d = min(-m / rate_m if rate_m < 0 else math.inf,
                        (s - least) / -rate_s if rate_s < 0 else math.inf)
            else:
                d_m = 0.0 if m > 0 else (-m / rate_m if rate_m > 0 else math.inf)
                d_s = 0.0 if s >= least else ((least - s) / rate_s if rate_s > 0 else math.inf)
                d = max(d_m, d_s)
            if d <= piece:
                return t + max(0.0, d)
            m += rate_m * piece
            s += rate_s * piece
            t += piece
            if piece_end - pos <= piece:
                i += 1 if i < len(ends) and pos >= starts[i] else 0
        return horizon_s

    def seconds(self, ledger: AgentLedger, start: float, end: float) -> tuple[float, float]:
        """Staffed and handling seconds in ``[start, end)`` (after :meth:`sync`)."""
        s1, h1 = self._cumulative(ledger, end)
        s0, h0 = self._cumulative(ledger, start)
        return s1 - s0, h1 - h0

    def last(self, ledger: AgentLedger, now: float, window_s: float) -> tuple[float, float]:
        """Staffed and handling seconds of the window ending at ``now`` (never below 0):
        :meth:`sync`, :meth:`forget_before` and :meth:`seconds` at once, as a look takes
        them."""
        if ledger.interval_count != self._seen or ledger is not self._ledger:
            self.sync(ledger)
        start = now - window_s
        ends = self._ends
        if ends and ends[0] <= start:
            self.forget_before(start)
        staffed, handling = self.seconds(ledger, start, now)
        return (staffed if staffed > 0.0 else 0.0), (handling if handling > 0.0 else 0.0)


NEAR_S = 1e-6
"""Prefix-sum seconds this close to an occupancy threshold: compute the exact figure."""


class Glance(NamedTuple):
    """What the heartbeat learns of an agent in a look: the alerts' figures, cheaply.

    Exact except ``occupancy``/``staffed_s``/``handling_s`` (prefix sums, see
    :class:`WindowSums`); ``near`` says those are within rounding of an alert's
    threshold, so the alerts must come from :func:`running_signals`."""

    agent_id: str
    now: float
    since_break_s: float | None
    resting: bool
    occupancy: float | None
    staffed_s: float
    handling_s: float
    consecutive_calls: int
    hard_calls_recent: int
    current_call_s: float | None
    near: bool

    def signals(self) -> WellbeingSignals:
        """As :class:`WellbeingSignals` for :func:`agent_stats.wellbeing.alerts`
        (the day's counts, which no alert reads, are left at 0)."""
        return WellbeingSignals(
            agent_id=self.agent_id, now=self.now, since_break_s=self.since_break_s,
            resting=self.resting, occupancy=self.occupancy, staffed_in_window_s=self.staffed_s,
            consecutive_calls=self.consecutive_calls, hard_calls_today=0,
            hard_calls_recent=self.hard_calls_recent, long_calls_today=0,
            current_call_s=self.current_call_s,
        )


def glance(
    ledger: AgentLedger,
    day: AgentDay,
    calls: CallLog,
    window: WindowSums,
    now: float,
    day_start: float,
    config: WellbeingConfig,
) -> Glance:
    """The figures the alerts read, as :func:`running_signals` would find them."""
    day.sync(ledger, day_start)
    staffed, handling = window.last(ledger, now, config.occupancy_window_s)
    reset = ledger.origin if day.last_reset is None else day.last_reset
    state = ledger.state
    resting = state is AgentState.NOT_READY and ledger.reason in REST_REASONS
    if state is AgentState.LOGGED_OUT:
        since_break: float | None = None
    elif resting:
        since_break = 0.0
    else:
        since_break = now - reset
    near = near_threshold(staffed, handling, config)
    return Glance(
        ledger.agent_id, now, since_break, resting,
        handling / staffed if staffed > 0 else None, staffed, handling,
        calls.count(reset, now),
        calls.hard(now - config.hard_calls_window_s, now, open_first=True),
        calls.current_call_s(now), near,
    )


def alert_kinds(g: Glance, config: WellbeingConfig) -> list[AlertKind]:
    """The kinds :func:`agent_stats.wellbeing.alerts` finds, in its order, without objects."""
    kinds = []
    if g.since_break_s is not None and g.since_break_s >= config.max_without_break_s:
        kinds.append(AlertKind.NO_BREAK)
    if (g.occupancy is not None and g.occupancy > config.occupancy_limit
            and g.staffed_s >= config.occupancy_min_staffed_s):
        kinds.append(AlertKind.HIGH_OCCUPANCY)
    if g.hard_calls_recent >= config.hard_calls_limit:
        kinds.append(AlertKind.HARD_CALLS)
    if g.current_call_s is not None and g.current_call_s >= config.long_call_s:
        kinds.append(AlertKind.LONG_CALL)
    limit = config.consecutive_calls_limit
    if limit is not None and g.consecutive_calls >= limit:
        kinds.append(AlertKind.CONSECUTIVE_CALLS)
    return kinds


def steady_until(
    g: Glance, ledger: AgentLedger, window: WindowSums, calls: CallLog,
    config: WellbeingConfig, keep_s: float, horizon_s: float,
) -> float:
    """:func:`agent_stats.wellbeing.alerts_steady_until` with the ledger's and calls' times
    (at most ``horizon_s`` ahead)."""
    return min(steady_parts(g, ledger, window, calls, config, keep_s, horizon_s))


def steady_parts(
    g: Glance, ledger: AgentLedger, window: WindowSums, calls: CallLog,
    config: WellbeingConfig, keep_s: float, horizon_s: float,
) -> tuple[float, float]:
    """:func:`steady_until` in two: until when the occupancy alert keeps its state (at
    most ``horizon_s`` ahead), and until when every other alert does (``inf``: for
    ever, if nothing happens). The smaller is ``steady_until``."""
    now = g.now
    if g.since_break_s is None:
        return now + horizon_s, math.inf
    first_hard = (
        calls.first_hard_after(now - config.hard_calls_window_s)
        if g.hard_calls_recent >= config.hard_calls_limit else None
    )
    oldest = calls.oldest()
    occupancy_at = occupancy_due(window, ledger, now, config, horizon_s,
                                 (g.staffed_s, g.handling_s))
    others = alerts_steady_until(
        g, config, math.inf,
        None if first_hard is None else first_hard + config.hard_calls_window_s,
        None if oldest is None else oldest + keep_s,
    )
    # alerts_steady_until(.., occupancy_s, ..) is the smaller of these two
    return occupancy_at, others


def occupancy_due(
    window: WindowSums, ledger: AgentLedger, now: float, config: WellbeingConfig,
    horizon_s: float, seconds: tuple[float, float],
) -> float:
    """When the occupancy alert must be looked at again if the agent stays as it is: just
    before it could flip, at most ``horizon_s`` ahead; never (``inf``) when the whole
    window is the current state (what enters it is what leaves it: the figures stay)."""
    if ledger.since <= now - config.occupancy_window_s:
        return math.inf
    occupancy_s = window.occupancy_steady_s(ledger, now, config, horizon_s, seconds)
    return min(now + horizon_s, now + occupancy_s - ALERT_LOOK_EARLY_S)


def near_threshold(staffed: float, handling: float, config: WellbeingConfig) -> bool:
    """Whether the window's prefix-sum seconds are within rounding of an occupancy
    threshold (the exact figures must decide: :class:`Glance`)."""
    return (
        0.0 < staffed < NEAR_S
        or abs(staffed - config.occupancy_min_staffed_s) < NEAR_S
        or abs(handling - config.occupancy_limit * staffed) < NEAR_S
    )


class LookSchedule:
    """Which agents the heartbeat looks at: those something happened to, and those due."""

    def __init__(self, agents: Iterable[str] = ()) -> None:
        self._changed: set[str] = set(agents)
        self._due_at: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def changed(self, agent_id: str) -> None:
        self._changed.add(agent_id)

    def plan(self, agent_id: str, at: float) -> None:
        self._due_at[agent_id] = at
        heapq.heappush(self._heap, (at, agent_id))
        if len(self._heap) > 2 * len(self._due_at) + 64:
            self._heap = [(t, a) for a, t in self._due_at.items()]
            heapq.heapify(self._heap)

    def plan_by(self, agent_id: str, at: float) -> None:
        """Look at the agent at ``at`` if that is earlier than planned (and it is not
        already to be looked at at the next tick)."""
        if agent_id not in self._changed and at < self._due_at.get(agent_id, math.inf):
            self.plan(agent_id, at)

    def forget(self, agent_id: str) -> None:
        self._due_at.pop(agent_id, None)

    def take(self, now: float, order: Mapping[str, int]) -> list[str]:
        """Agents to look at now, in ``order``; they are no longer planned."""
        due = self._changed
        self._changed = set()
        heap, due_at = self._heap, self._due_at
        while heap and heap[0][0] <= now:
            at, agent_id = heapq.heappop(heap)
            if due_at.get(agent_id) == at:
                del due_at[agent_id]
                due.add(agent_id)
        for agent_id in due:
            due_at.pop(agent_id, None)
        return sorted(due, key=lambda a: order.get(a, len(order)))

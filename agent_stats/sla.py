"""Service level: explicit definitions, incremental counters and a from-scratch check.

Definitions (DESIGN.md, "Service level"), every part in ``SLAConfig``:

* A call counts for a queue once it has joined that queue's waiting line, and it
  counts once, at its *outcome*: the agent answered (the moment the agent
  answers, not when the call ends), the caller hung up (abandoned), or the caller
  chose voicemail or a callback instead of waiting.
* The wait ``w`` runs from the clock start (``ClockStart.JOIN``, the default:
  joining the line; ``ClockStart.ARRIVAL``: the call's arrival at Shenava) to
  the outcome. "Within T" means ``w <= threshold_s`` (T = 20 s by default),
  inclusive like app_queue.
* Answered: offered, and in SL when within T.
* Abandoned: left out entirely when ``w < short_abandon_s`` (5 s by default),
  otherwise offered and never in SL.
* Voicemail or callback choice, by ``ChoiceCounting``:
  ``IN_TIME_IF_WITHIN_T`` (default) offered, in SL when within T;
  ``ANSWERED`` offered and always in SL; ``ABANDONED`` like an abandon (short
  ones left out, others offered, not in SL); ``EXCLUDED`` left out.
* ``SL = in SL / offered`` (None when nothing was offered).

Asterisk app_queue's figures, computed beside ours so operators can reconcile
(``apps/app_queue.c``: ``record_abandoned`` counts ``callsabandoned`` and
``callsabandonedinsl`` when the hold time is ``<= servicelevel``; the answer
decides ``callcompletedinsl`` the same way, and ``update_queue`` counts
``callscompleted``):

* the clock always starts at the queue join, every abandon counts (no
  short-abandon exclusion), and a voicemail or callback choice (app_queue's
  exit by key or timeout) is neither completed nor abandoned;
* ``ServicelevelPerf = completed in SL / completed`` and
  ``ServicelevelPerf2 = (abandoned in SL + completed in SL) / (abandoned + completed)``,
  as fractions here (app_queue prints percentages, and 0 for 0/0);
* differences to expect: app_queue counts a completed call when it *ends*
  (Shenava at the answer, so 15-minute buckets can differ while totals agree)
  and compares whole seconds; its ``servicelevel`` is ``app_queue_servicelevel_s``
  (default: ``threshold_s``).

Buckets. Each outcome is added to three buckets of its queue, chosen by the
outcome time: a rolling-window slot (``slot_s``), a 15-minute interval
(``interval_s``) and a day (days and intervals are aligned to local time through
``utc_offset_s``). The live rolling figure at ``now`` sums the slots whose index
is within ``window_s // slot_s`` of ``now``'s slot: the current partial slot and
the full ones before it. Counters are integer hash fields (``SLCounts.to_fields``)
so a Redis storage can ``HINCRBY`` each field of ``delta(call)`` into each of
``bucket_keys(call)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum

from agent_stats.errors import BadSnapshotError, InvalidCallRecordError, InvalidConfigError

SL_THRESHOLD_S = 20.0
SHORT_ABANDON_S = 5.0
SL_TARGET = 0.8
ROLLING_WINDOW_S = 1800.0
ROLLING_SLOT_S = 60.0
REPORT_INTERVAL_S = 900.0
DAY_S = 86400.0


class ClockStart(StrEnum):
    JOIN = "join"
    ARRIVAL = "arrival"


class ChoiceCounting(StrEnum):
    IN_TIME_IF_WITHIN_T = "in_time_if_within_t"
    ANSWERED = "answered"
    ABANDONED = "abandoned"
    EXCLUDED = "excluded"


class Outcome(StrEnum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"
    VOICEMAIL = "voicemail"
    CALLBACK = "callback"


CHOICES = frozenset({Outcome.VOICEMAIL, Outcome.CALLBACK})


class BucketKind(StrEnum):
    SLOT = "slot"
    INTERVAL = "interval"
    DAY = "day"


@dataclass(frozen=True)
class SLAConfig:
    threshold_s: float = SL_THRESHOLD_S
    short_abandon_s: float = SHORT_ABANDON_S
    clock_start: ClockStart = ClockStart.JOIN
    choice_counting: ChoiceCounting = ChoiceCounting.IN_TIME_IF_WITHIN_T
    target: float = SL_TARGET
    window_s: float = ROLLING_WINDOW_S
    slot_s: float = ROLLING_SLOT_S
    interval_s: float = REPORT_INTERVAL_S
    utc_offset_s: float = 0.0
    app_queue_servicelevel_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "clock_start", ClockStart(self.clock_start))
        object.__setattr__(self, "choice_counting", ChoiceCounting(self.choice_counting))
        for name in ("threshold_s", "short_abandon_s"):
            if getattr(self, name) < 0:
                raise InvalidConfigError(name, "must be >= 0")
        if not 0.0 <= self.target <= 1.0:
            raise InvalidConfigError("target", "must be a fraction between 0 and 1")
        for name in ("window_s", "slot_s", "interval_s"):
            if getattr(self, name) <= 0:
                raise InvalidConfigError(name, "must be > 0")
        if self.window_s < self.slot_s:
            raise InvalidConfigError("window_s", "must be at least one slot (slot_s)")
        if DAY_S % self.interval_s:
            raise InvalidConfigError("interval_s", "must divide a day")
        if self.app_queue_servicelevel_s is not None and self.app_queue_servicelevel_s < 0:
            raise InvalidConfigError("app_queue_servicelevel_s", "must be >= 0")

    @property
    def window_slots(self) -> int:
        return max(1, int(self.window_s // self.slot_s))

    @property
    def app_queue_threshold_s(self) -> float:
        if self.app_queue_servicelevel_s is None:
            return self.threshold_s
        return self.app_queue_servicelevel_s


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call's passage through a queue's waiting line, once its outcome is known.

    ``outcome_at`` is the answer time (agent answered), the abandon time (caller
    hung up) or the time the caller chose voicemail or a callback.
    """

    queue: str
    arrived_at: float
    joined_at: float
    outcome: Outcome
    outcome_at: float
    call_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        if not self.arrived_at <= self.joined_at <= self.outcome_at:
            raise InvalidCallRecordError(
                f"call {self.call_id or '?'}: needs arrived_at <= joined_at <= outcome_at, got "
                f"{self.arrived_at!r}, {self.joined_at!r}, {self.outcome_at!r}"
            )

    def wait(self, clock_start: ClockStart) -> float:
        start = self.joined_at if clock_start is ClockStart.JOIN else self.arrived_at
        return self.outcome_at - start

    @property
    def hold(self) -> float:
        """app_queue's hold time: from the join."""
        return self.outcome_at - self.joined_at


@dataclass(slots=True)
class SLCounts:
    """Integer counters of one bucket. ``in_sl`` and ``offered`` make our SL."""

    offered: int = 0
    in_sl: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    abandoned_short: int = 0
    voicemail: int = 0
    callback: int = 0
    choices_in_sl: int = 0
    choices_late: int = 0
    choices_excluded: int = 0
    answer_wait_ms: int = 0
    aq_completed: int = 0
    aq_completed_in_sl: int = 0
    aq_abandoned: int = 0
    aq_abandoned_in_sl: int = 0
    extra: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def service_level(self) -> float | None:
        return self.in_sl / self.offered if self.offered else None

    @property
    def servicelevel_perf(self) -> float | None:
        """app_queue's ServicelevelPerf: completed in SL / completed."""
        return self.aq_completed_in_sl / self.aq_completed if self.aq_completed else None

    @property
    def servicelevel_perf2(self) -> float | None:
        """app_queue's ServicelevelPerf2: (abandoned in SL + completed in SL) / (both)."""
        total = self.aq_abandoned + self.aq_completed
        if not total:
            return None
        return (self.aq_abandoned_in_sl + self.aq_completed_in_sl) / total

    @property
    def average_answer_wait_s(self) -> float | None:
        return self.answer_wait_ms / 1000.0 / self.answered if self.answered else None

    def add(self, other: SLCounts) -> None:
        for name in _COUNTER_NAMES:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def __add__(self, other: SLCounts) -> SLCounts:
        total = replace(self, extra={})
        total.add(other)
        return total

    def to_fields(self) -> dict[str, int]:
        """Non-zero counters as hash fields (a missing field reads as 0)."""
        return {n: v for n in _COUNTER_NAMES if (v := getattr(self, n))}

    @classmethod
    def from_fields(cls, raw: Mapping[str, str | int] | Mapping[bytes, bytes]) -> SLCounts:
        """Read Redis hash fields back; unknown fields are kept in ``extra``."""
        counts = cls()
        for key, value in raw.items():
            name = key.decode() if isinstance(key, bytes) else key
            try:
                number = int(value)
            except ValueError as exc:
                raise BadSnapshotError(f"SL counter {name!r} is not an integer: {value!r}") from exc
            if name in _COUNTER_SET:
                setattr(counts, name, number)
            else:
                counts.extra[name] = number
        return counts


_COUNTER_NAMES = tuple(f.name for f in fields(SLCounts) if f.name != "extra")
_COUNTER_SET = frozenset(_COUNTER_NAMES)


def delta(call: CallRecord, config: SLAConfig) -> SLCounts:
    """What one call outcome adds to each of its buckets."""
    d = SLCounts()
    w = call.wait(config.clock_start)
    within = w <= config.threshold_s
    if call.outcome is Outcome.ANSWERED:
        d.offered = d.answered = 1
        d.answered_in_sl = d.in_sl = int(within)
        d.answer_wait_ms = round(w * 1000)
    elif call.outcome is Outcome.ABANDONED:
        if w < config.short_abandon_s:
            d.abandoned_short = 1
        else:
            d.offered = d.abandoned = 1
    else:
        if call.outcome is Outcome.VOICEMAIL:
            d.voicemail = 1
        else:
            d.callback = 1
        mode = config.choice_counting
        if mode is ChoiceCounting.EXCLUDED or (
            mode is ChoiceCounting.ABANDONED and w < config.short_abandon_s
        ):
            d.choices_excluded = 1
        elif mode is ChoiceCounting.ANSWERED or (
            mode is ChoiceCounting.IN_TIME_IF_WITHIN_T and within
        ):
            d.offered = d.choices_in_sl = d.in_sl = 1
        else:
            d.offered = d.choices_late = 1
    aq_within = int(call.hold <= config.app_queue_threshold_s)
    if call.outcome is Outcome.ANSWERED:
        d.aq_completed, d.aq_completed_in_sl = 1, aq_within
    elif call.outcome is Outcome.ABANDONED:
        d.aq_abandoned, d.aq_abandoned_in_sl = 1, aq_within
    return d


@dataclass(frozen=True, slots=True)
class BucketKey:
    """A queue's bucket: its kind and its start (POSIX seconds)."""

    queue: str
    kind: BucketKind
    start: float

    def to_str(self) -> str:
        """Stable text form for a storage key suffix, e.g. ``sales:interval:1700000100``."""
        return f"{self.queue}:{self.kind.value}:{self.start:.0f}"


def _floor_start(t: float, size: float, offset: float) -> float:
    return math.floor((t + offset) / size) * size - offset


def slot_start(t: float, config: SLAConfig) -> float:
    return math.floor(t / config.slot_s) * config.slot_s


def interval_start(t: float, config: SLAConfig) -> float:
    return _floor_start(t, config.interval_s, config.utc_offset_s)


def day_start(t: float, config: SLAConfig) -> float:
    return _floor_start(t, DAY_S, config.utc_offset_s)


def rolling_window_start(now: float, config: SLAConfig) -> float:
    """Earliest outcome time in the live window at ``now`` (slot-aligned)."""
    return slot_start(now, config) - (config.window_slots - 1) * config.slot_s


def bucket_keys(call: CallRecord, config: SLAConfig) -> tuple[BucketKey, BucketKey, BucketKey]:
    t = call.outcome_at
    return (
        BucketKey(call.queue, BucketKind.SLOT, slot_start(t, config)),
        BucketKey(call.queue, BucketKind.INTERVAL, interval_start(t, config)),
        BucketKey(call.queue, BucketKind.DAY, day_start(t, config)),
    )


class SLATally:
    """Incremental SL counters per queue: O(1) per outcome, bounded memory with ``prune``."""

    def __init__(self, config: SLAConfig) -> None:
        self.config = config
        self._buckets: dict[BucketKey, SLCounts] = {}

    def add(self, call: CallRecord) -> tuple[BucketKey, BucketKey, BucketKey]:
        """Count one outcome; returns the buckets it went to."""
        d = delta(call, self.config)
        keys = bucket_keys(call, self.config)
        for key in keys:
            self._buckets.setdefault(key, SLCounts()).add(d)
        return keys

    def bucket(self, key: BucketKey) -> SLCounts:
        return self._buckets.get(key, SLCounts())

    def merge(self, key: BucketKey, counts: SLCounts) -> None:
        """Add counters read back from storage (a restart: the outcomes before it)."""
        self._buckets.setdefault(key, SLCounts()).add(counts)

    def rolling(self, queue: str, now: float) -> SLCounts:
        """The live figure: outcomes from ``rolling_window_start(now)`` to ``now``."""
        total = SLCounts()
        first = rolling_window_start(now, self.config)
        for i in range(self.config.window_slots):
            key = BucketKey(queue, BucketKind.SLOT, first + i * self.config.slot_s)
            total.add(self.bucket(key))
        return total

    def day(self, queue: str, now: float) -> SLCounts:
        return self.bucket(BucketKey(queue, BucketKind.DAY, day_start(now, self.config)))

    def interval(self, queue: str, t: float) -> SLCounts:
        """The 15-minute interval holding ``t``."""
        return self.bucket(BucketKey(queue, BucketKind.INTERVAL, interval_start(t, self.config)))

    def intervals(self, queue: str, day: float) -> list[tuple[float, SLCounts]]:
        """Every interval of the day holding ``day``, empty ones included, in order."""
        first = day_start(day, self.config)
        n = int(DAY_S // self.config.interval_s)
        step = self.config.interval_s
        return [(first + i * step, self.interval(queue, first + i * step)) for i in range(n)]

    def queues(self) -> set[str]:
        return {key.queue for key in self._buckets}

    def prune(self, now: float, keep_days: int = 1) -> None:
        """Drop slots out of the window and days (with their intervals) past ``keep_days``."""
        oldest_slot = rolling_window_start(now, self.config)
        oldest_day = day_start(now, self.config) - (keep_days - 1) * DAY_S
        for key in list(self._buckets):
            limit = oldest_slot if key.kind is BucketKind.SLOT else oldest_day
            if key.start < limit:
                del self._buckets[key]


@dataclass(frozen=True)
class SLReport:
    """From-scratch figures, computed straight from the definitions."""

    offered: int
    in_sl: int
    answered: int
    answered_in_sl: int
    abandoned: int
    abandoned_short: int
    service_level: float | None
    servicelevel_perf: float | None
    servicelevel_perf2: float | None


def compute(
    calls: Iterable[CallRecord], config: SLAConfig, queue: str, start: float, end: float
) -> SLReport:
    """Figures over outcomes in ``[start, end)`` for ``queue``, from the raw records.

    Written independently of ``delta`` (set comprehension over the definitions)
    so that tests can hold the incremental counters to it.
    """
    mine = [c for c in calls if c.queue == queue and start <= c.outcome_at < end]
    t, short = config.threshold_s, config.short_abandon_s
    cs = config.clock_start

    answered = [c for c in mine if c.outcome is Outcome.ANSWERED]
    abandons = [c for c in mine if c.outcome is Outcome.ABANDONED]
    choices = [c for c in mine if c.outcome in CHOICES]
    long_abandons = [c for c in abandons if c.wait(cs) >= short]
    mode = config.choice_counting
    counted_choices: list[CallRecord]
    choices_ok: list[CallRecord]
    if mode is ChoiceCounting.EXCLUDED:
        counted_choices, choices_ok = [], []
    elif mode is ChoiceCounting.ABANDONED:
        counted_choices, choices_ok = [c for c in choices if c.wait(cs) >= short], []
    elif mode is ChoiceCounting.ANSWERED:
        counted_choices, choices_ok = choices, choices
    else:
        counted_choices, choices_ok = choices, [c for c in choices if c.wait(cs) <= t]
    answered_ok = [c for c in answered if c.wait(cs) <= t]
    offered = len(answered) + len(long_abandons) + len(counted_choices)
    in_sl = len(answered_ok) + len(choices_ok)

    aq_t = config.app_queue_threshold_s
    completed_ok = sum(1 for c in answered if c.hold <= aq_t)
    abandoned_ok = sum(1 for c in abandons if c.hold <= aq_t)
    both = len(answered) + len(abandons)
    return SLReport(
        offered=offered,
        in_sl=in_sl,
        answered=len(answered),
        answered_in_sl=len(answered_ok),
        abandoned=len(long_abandons),
        abandoned_short=len(abandons) - len(long_abandons),
        service_level=in_sl / offered if offered else None,
        servicelevel_perf=completed_ok / len(answered) if answered else None,
        servicelevel_perf2=(completed_ok + abandoned_ok) / both if both else None,
    )

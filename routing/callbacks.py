"""Callback flags: one open flag per customer number, its reasons, attempts and outcome.

Pure: no I/O and no clock. Every function that needs the time takes ``now``
(POSIX seconds) and returns a new, frozen :class:`CallbackFlag`; the storage
(:mod:`routing.callback_store`) reads, applies one of these functions and writes
back in one Redis transaction.

The rules
---------

- **Sources.** A flag is raised by an abandon after the short-abandon threshold
  (:func:`abandon_reason`), an IVR callback request that keeps the caller's place
  (:func:`ivr_request_reason`, due when their turn would have come), a voicemail
  (:func:`voicemail_reason`, its transcript attached when the worker has one), an
  agent's follow-up (:func:`follow_up_reason`, with a due time) and a complaint
  left unresolved too long (:func:`unresolved_complaint_reason`).
- **Merging.** One open flag per number: a new reason merges into it
  (:func:`merge_reason`). The flag is due at the earliest due time of its
  reasons. A reason with the same ``(kind, source)`` as one already on the flag
  changes nothing, so a periodic sweep may raise the same reason again safely.
  A reason the *customer* gave (abandon, IVR request, voicemail) starts a fresh
  round of attempts: they have just shown they want to be reached.
- **Attempts.** At most ``max_attempts`` customer attempts per round, spaced by
  ``backoff_s`` after each failed one. An attempt the agent's leg never got
  past (``agent_unavailable``) does not count and sets no backoff.
- **Closing.** A flag closes only on a recorded outcome: ``answered`` (unless
  the agent asks for a follow-up, which keeps it open), ``wrong_number``, the
  attempts of a round exhausted (``unreachable``), or a supervisor's
  cancellation with a note. ``unreachable`` and ``wrong_number`` flags need a
  supervisor's attention until acknowledged: nothing is silently dropped.
- **Calling hours** (:class:`CallingHours`) are per weekday in the site's time
  zone; a window may cross midnight ("22:00-02:00" on Friday runs into Saturday).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from routing.errors import RoutingError

SHORT_ABANDON_S = 5.0
"""Abandons shorter than this are not offered calls (DESIGN.md) and raise no flag."""
DEFAULT_BACKOFF_S = (300.0, 900.0, 3600.0)
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_LEASE_MS = 120_000
MINUTES_PER_DAY = 24 * 60
SYSTEM = "system"
"""``by`` of changes made by Shenava itself rather than a person."""

# -- errors ----------------------------------------------------------------------


class CallbackError(RoutingError):
    """Base of every callback error."""

    code = "callbacks.error"


class InvalidNumberError(CallbackError, ValueError):
    """A number no one can call back (empty, anonymous, not digits)."""

    code = "callbacks.invalid_number"


class FlagClosedError(CallbackError):
    """The flag was closed already; a closed flag never changes again."""

    code = "callbacks.flag_closed"

    def __init__(self, flag_id: str) -> None:
        self.flag_id = flag_id
        super().__init__(f"callback flag {flag_id!r} is closed")


class AttemptInProgressError(CallbackError):
    """An attempt is being dialled; a flag is never dialled twice at once."""

    code = "callbacks.attempt_in_progress"

    def __init__(self, flag_id: str, attempt: int) -> None:
        self.flag_id = flag_id
        self.attempt = attempt
        super().__init__(f"callback flag {flag_id!r} is being dialled (attempt {attempt})")


class AttemptAlreadyEndedError(CallbackError):
    """An outcome for an attempt that already has one (other than ``interrupted``)."""

    code = "callbacks.attempt_already_ended"

    def __init__(self, flag_id: str, attempt: int, outcome: str) -> None:
        self.flag_id = flag_id
        self.attempt = attempt
        super().__init__(f"attempt {attempt} of callback flag {flag_id!r} already ended: {outcome}")


class UnknownAttemptError(CallbackError, KeyError):
    """An outcome names an attempt the flag does not have."""

    code = "callbacks.unknown_attempt"

    def __init__(self, flag_id: str, attempt: int) -> None:
        self.flag_id = flag_id
        self.attempt = attempt
        super().__init__(f"callback flag {flag_id!r} has no attempt {attempt}")

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownFlagError(CallbackError, KeyError):
    """No flag has this id (or no open flag has this number)."""

    code = "callbacks.unknown_flag"

    def __init__(self, what: str) -> None:
        super().__init__(f"no callback flag {what}")

    def __str__(self) -> str:
        return str(self.args[0])


class NoteRequiredError(CallbackError, ValueError):
    """A change that must say why (cancelling a flag) was given no note."""

    code = "callbacks.note_required"


class CallbackConfigError(CallbackError, ValueError):
    """A callback setting is invalid; ``key`` is its path in the config file."""

    code = "callbacks.invalid_config"

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


class LeaseLostError(CallbackError):
    """The dial lease expired or was taken over; the holder must stop dialling."""

    code = "callbacks.lease_lost"

    def __init__(self, flag_id: str) -> None:
        self.flag_id = flag_id
        super().__init__(f"the dial lease of callback flag {flag_id!r} is no longer held")


# -- numbers ---------------------------------------------------------------------

_FORMATTING = str.maketrans("", "", " -.()/")
_NUMBER_RE = re.compile(r"^\+?[0-9]{3,20}$")


def normalize_number(number: str | None) -> str:
    """The customer number a flag is keyed by: formatting removed, digits kept.

    Raises :class:`InvalidNumberError` for anything that cannot be dialled
    (``anonymous``, empty, a SIP URI): such a caller gets no flag.
    """
    text = (number or "").strip().translate(_FORMATTING)
    if not _NUMBER_RE.match(text):
        raise InvalidNumberError("not a number that can be called back")
    return text


# -- values ----------------------------------------------------------------------


class ReasonKind(StrEnum):
    ABANDONED = "abandoned"
    IVR_REQUEST = "ivr_request"
    VOICEMAIL = "voicemail"
    FOLLOW_UP = "follow_up"
    UNRESOLVED_COMPLAINT = "unresolved_complaint"


CUSTOMER_REASONS = frozenset({ReasonKind.ABANDONED, ReasonKind.IVR_REQUEST, ReasonKind.VOICEMAIL})
"""Reasons the customer gave by calling; each starts a fresh round of attempts."""


class AttemptOutcome(StrEnum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    WRONG_NUMBER = "wrong_number"
    FAILED = "failed"  # the network refused the customer leg (congestion, channel unavailable)
    AGENT_UNAVAILABLE = "agent_unavailable"  # the agent's leg failed: not a customer attempt
    INTERRUPTED = "interrupted"  # the dialling daemon went away; its lease expired


UNCOUNTED_OUTCOMES = frozenset({AttemptOutcome.AGENT_UNAVAILABLE})


class FlagStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Resolution(StrEnum):
    ANSWERED = "answered"
    UNREACHABLE = "unreachable"
    WRONG_NUMBER = "wrong_number"
    CANCELLED = "cancelled"


ATTENTION_RESOLUTIONS = frozenset({Resolution.UNREACHABLE, Resolution.WRONG_NUMBER})
"""Closed flags a supervisor must see (and acknowledge)."""


@dataclass(frozen=True, slots=True)
class Reason:
    """Why the customer should be called back.

    ``source`` identifies the event (a call id, a recording id, a complaint
    reference, the agent and time of a follow-up): the same ``(kind, source)``
    merged twice is one reason.
    """

    kind: ReasonKind
    source: str
    raised_at: float
    due_at: float
    raised_by: str = SYSTEM
    note: str = ""
    transcript: str | None = None
    complaint_ref: str | None = None

    @property
    def key(self) -> tuple[ReasonKind, str]:
        return (self.kind, self.source)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One dial of the customer. ``outcome`` is ``None`` while it is being dialled."""

    number: int
    started_at: float
    agent_id: str
    outcome: AttemptOutcome | None = None
    ended_at: float | None = None
    note: str = ""

    @property
    def counted(self) -> bool:
        return self.outcome not in UNCOUNTED_OUTCOMES


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: float
    by: str
    event: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CallbackFlag:
    """One customer's callback: its reasons, its attempts, and every change.

    ``due_at`` is the earliest due time of the reasons; ``round_start`` is the
    index in ``attempts`` where the current round of attempts began.
    """

    flag_id: str
    number: str
    opened_at: float
    due_at: float
    reasons: tuple[Reason, ...]
    attempts: tuple[Attempt, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    round_start: int = 0
    status: FlagStatus = FlagStatus.OPEN
    resolution: Resolution | None = None
    closed_at: float | None = None
    acknowledged_by: str | None = None
    purged_at: float | None = None
    site: str = ""
    """The site whose daemon dials it: where the caller called when it was opened (shenava.sites)."""

    @property
    def is_open(self) -> bool:
        return self.status is FlagStatus.OPEN

    @property
    def attempt_in_progress(self) -> Attempt | None:
        last = self.attempts[-1] if self.attempts else None
        return last if last is not None and last.outcome is None else None

    @property
    def round_attempts(self) -> tuple[Attempt, ...]:
        """Attempts of the current round that count against ``max_attempts``."""
        return tuple(a for a in self.attempts[self.round_start :] if a.counted and a.outcome)

    @property
    def needs_attention(self) -> bool:
        return self.resolution in ATTENTION_RESOLUTIONS and self.acknowledged_by is None

    @property
    def transcripts(self) -> tuple[str, ...]:
        return tuple(r.transcript for r in self.reasons if r.transcript)


# -- policy and calling hours ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DialPolicy:
    """How callbacks are dialled; validated when built (config ``[callbacks]``).

    After the n-th failed attempt of a round the next waits ``backoff_s[n-1]``
    (the last value repeats). Dialling needs at least ``min_free_agents`` free
    agents, no more than ``max_waiting_calls`` inbound calls waiting, and the
    live service level at or above ``min_service_level`` (``None``: nothing
    offered yet, which is headroom).
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_s: tuple[float, ...] = DEFAULT_BACKOFF_S
    short_abandon_s: float = SHORT_ABANDON_S
    abandon_delay_s: float = 0.0
    min_free_agents: int = 1
    max_waiting_calls: int = 0
    min_service_level: float = 0.8
    lease_ms: int = DEFAULT_LEASE_MS

    def __post_init__(self) -> None:
        prefix = "callbacks."
        if self.max_attempts < 1:
            raise CallbackConfigError(prefix + "max_attempts", "must be at least 1")
        if not self.backoff_s or any(not 0 <= s < 7 * 86400 for s in self.backoff_s):
            raise CallbackConfigError(prefix + "backoff_s", "expected 1+ delays from 0 s to a week")
        if self.short_abandon_s < 0 or self.abandon_delay_s < 0:
            raise CallbackConfigError(prefix + "short_abandon_s", "must not be negative")
        if self.min_free_agents < 1:
            raise CallbackConfigError(prefix + "min_free_agents", "must be at least 1")
        if self.max_waiting_calls < 0:
            raise CallbackConfigError(prefix + "max_waiting_calls", "must not be negative")
        if not 0.0 <= self.min_service_level <= 1.0:
            raise CallbackConfigError(prefix + "min_service_level", "expected 0..1")
        if self.lease_ms < 1000:
            raise CallbackConfigError(prefix + "lease_ms", "must be at least 1000")

    def backoff_after(self, failed_in_round: int) -> float:
        return self.backoff_s[min(failed_in_round, len(self.backoff_s)) - 1]


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Config names of the days, in ``date.weekday()`` order."""
_WINDOW_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class Window:
    """Local minutes from midnight; ``end <= start`` means it ends the next day."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str, key: str) -> Window:
        match = _WINDOW_RE.match(text.strip())
        if not match:
            raise CallbackConfigError(key, f"expected HH:MM-HH:MM, got {text!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            raise CallbackConfigError(key, f"not a time of day in {text!r}")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start == end % MINUTES_PER_DAY and end != MINUTES_PER_DAY:
            raise CallbackConfigError(key, f"empty window {text!r} (use 00:00-24:00 for all day)")
        return cls(start, end)

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def on(self, day: date, tz: ZoneInfo) -> tuple[float, float]:
        """The window on local ``day`` as ``[start, end)`` POSIX seconds."""
        midnight = datetime(day.year, day.month, day.day)
        end = self.end + (MINUTES_PER_DAY if self.crosses_midnight else 0)
        return (
            (midnight + timedelta(minutes=self.start)).replace(tzinfo=tz).timestamp(),
            (midnight + timedelta(minutes=end)).replace(tzinfo=tz).timestamp(),
        )


@dataclass(frozen=True, slots=True)
class CallingHours:
    """When customers may be called, per local weekday, in the site's time zone.

    Config: ``{"timezone": "Asia/Tehran", "windows": {"sat": ["09:00-21:00"],
    "fri": ["22:00-02:00"], "daily": ["10:00-18:00"]}}``. ``daily`` applies to
    every day not named. A window that crosses midnight belongs to the day it
    starts on. Local times that a DST change skips are read with the offset in
    force before the change (zoneinfo's ``fold=0``).
    """

    tz: ZoneInfo
    windows: Mapping[int, tuple[Window, ...]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], key: str = "callbacks.calling_hours") -> CallingHours:
        unknown = set(data) - {"timezone", "windows"}
        if unknown:
            raise CallbackConfigError(f"{key}.{sorted(unknown)[0]}", "unknown key")
        tz_name = data.get("timezone", "UTC")
        try:
            tz = ZoneInfo(str(tz_name))
        except (ZoneInfoNotFoundError, ValueError):
            raise CallbackConfigError(f"{key}.timezone", f"unknown time zone {tz_name!r}") from None
        raw = data.get("windows")
        if not isinstance(raw, Mapping) or not raw:
            raise CallbackConfigError(f"{key}.windows", "expected a table of days with windows")
        named: dict[str, tuple[Window, ...]] = {}
        for day, texts in raw.items():
            day_key = f"{key}.windows.{day}"
            if day not in (*WEEKDAYS, "daily"):
                raise CallbackConfigError(day_key, f"expected one of {', '.join(WEEKDAYS)}, daily")
            if isinstance(texts, str) or not isinstance(texts, Iterable):
                raise CallbackConfigError(day_key, "expected an array of HH:MM-HH:MM")
            named[day] = tuple(
                Window.parse(str(t), f"{day_key}[{i}]") for i, t in enumerate(texts)
            )
        daily = named.get("daily", ())
        windows = {i: named.get(name, daily) for i, name in enumerate(WEEKDAYS)}
        if not any(windows.values()):
            raise CallbackConfigError(f"{key}.windows", "no window on any day: no callback could ever be dialled")
        return cls(tz, windows)

    @classmethod
    def always(cls, tz: ZoneInfo | None = None) -> CallingHours:
        all_day = (Window(0, MINUTES_PER_DAY),)
        return cls(tz or ZoneInfo("UTC"), {i: all_day for i in range(7)})

    def _intervals(self, now: float) -> list[tuple[float, float]]:
        today = datetime.fromtimestamp(now, self.tz).date()
        spans: list[tuple[float, float]] = []
        for offset in range(-1, 9):
            day = today + timedelta(days=offset)
            spans.extend(w.on(day, self.tz) for w in self.windows.get(day.weekday(), ()))
        return sorted(spans)

    def is_open(self, now: float) -> bool:
        return any(start <= now < end for start, end in self._intervals(now))

    def next_allowed(self, now: float) -> float:
        """``now`` if customers may be called now, else the start of the next window."""
        starts = []
        for start, end in self._intervals(now):
            if start <= now < end:
                return now
            if start > now:
                starts.append(start)
        if not starts:  # only reachable if built by hand without any window
            raise CallbackConfigError("callbacks.calling_hours.windows", "no window on any day")
        return min(starts)


# -- raising and merging ------------------------------------------------------------


def abandon_reason(
    call_id: str, now: float, waited_s: float, policy: DialPolicy
) -> Reason | None:
    """The reason for an abandon, or ``None`` for a short abandon (no flag)."""
    if waited_s < policy.short_abandon_s:
        return None
    return Reason(
        ReasonKind.ABANDONED, call_id, now, now + policy.abandon_delay_s,
        note=f"hung up after {waited_s:.0f} s waiting",
    )


def ivr_request_reason(call_id: str, now: float, turn_due_at: float) -> Reason:
    """The caller chose a callback instead of waiting: due when their turn would come.

    ``turn_due_at`` is routing's estimate of when the caller would have reached
    an agent from their place in line; it is never before ``now``.
    """
    return Reason(ReasonKind.IVR_REQUEST, call_id, now, max(now, turn_due_at))


def voicemail_reason(recording_id: str, now: float, transcript: str | None = None) -> Reason:
    return Reason(ReasonKind.VOICEMAIL, recording_id, now, now, transcript=transcript)


def follow_up_reason(agent_id: str, now: float, due_at: float, note: str = "") -> Reason:
    """An agent's follow-up; its source is the agent and the moment, so each is kept."""
    return Reason(
        ReasonKind.FOLLOW_UP, f"{agent_id}@{now:.3f}", now, max(now, due_at),
        raised_by=agent_id, note=note,
    )


def unresolved_complaint_reason(reference: str, now: float, age_s: float) -> Reason:
    return Reason(
        ReasonKind.UNRESOLVED_COMPLAINT, reference, now, now,
        complaint_ref=reference, note=f"unresolved for {age_s / 86400:.1f} days",
    )


def new_flag(flag_id: str, number: str, reason: Reason, now: float) -> CallbackFlag:
    return CallbackFlag(
        flag_id=flag_id,
        number=normalize_number(number),
        opened_at=now,
        due_at=reason.due_at,
        reasons=(reason,),
        history=(_raised(reason, now),),
    )


def _raised(reason: Reason, now: float) -> HistoryEntry:
    return HistoryEntry(now, reason.raised_by, "reason", f"{reason.kind}:{reason.source}")


def merge_reason(flag: CallbackFlag, reason: Reason, now: float) -> CallbackFlag:
    """Add ``reason`` to an open flag; the same ``(kind, source)`` twice is a no-op."""
    _require_open(flag)
    if any(r.key == reason.key for r in flag.reasons):
        return flag
    round_start = len(flag.attempts) if reason.kind in CUSTOMER_REASONS else flag.round_start
    history = [_raised(reason, now)]
    if round_start != flag.round_start:
        history.append(HistoryEntry(now, SYSTEM, "new_round", "the customer called again"))
    return replace(
        flag,
        reasons=(*flag.reasons, reason),
        due_at=min(flag.due_at, reason.due_at),
        round_start=round_start,
        history=(*flag.history, *history),
    )


def attach_transcript(flag: CallbackFlag, recording_id: str, transcript: str, now: float) -> CallbackFlag:
    """Put a voicemail's transcript on its reason (the worker finishes after the flag exists)."""
    found = False
    reasons = []
    for r in flag.reasons:
        if r.kind is ReasonKind.VOICEMAIL and r.source == recording_id:
            r = replace(r, transcript=transcript)
            found = True
        reasons.append(r)
    if not found:
        raise UnknownFlagError(f"with voicemail {recording_id!r}")
    entry = HistoryEntry(now, SYSTEM, "transcript", recording_id)
    return replace(flag, reasons=tuple(reasons), history=(*flag.history, entry))


# -- dialling ------------------------------------------------------------------------


def next_attempt_at(flag: CallbackFlag, policy: DialPolicy) -> float | None:
    """When the flag may next be dialled, ignoring calling hours; ``None`` if never."""
    if not flag.is_open or flag.attempt_in_progress is not None:
        return None
    failed = flag.round_attempts
    if not failed:
        return flag.due_at
    last_end = failed[-1].ended_at or failed[-1].started_at
    return max(flag.due_at, last_end + policy.backoff_after(len(failed)))


def next_dial_at(flag: CallbackFlag, policy: DialPolicy, hours: CallingHours) -> float | None:
    """When the flag may next be dialled, within calling hours."""
    at = next_attempt_at(flag, policy)
    return None if at is None else hours.next_allowed(at)


def is_due(flag: CallbackFlag, now: float, policy: DialPolicy, hours: CallingHours) -> bool:
    at = next_attempt_at(flag, policy)
    return at is not None and at <= now and hours.is_open(now)


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Whether the site may dial a callback now, and why (for the wallboard and logs).

    ``gate`` names the test that said no (``calling_hours``, ``free_agents``,
    ``waiting_calls``, ``service_level``); empty when the gate is open.
    """

    open: bool
    reason: str
    gate: str = ""


def dial_gate(
    now: float,
    hours: CallingHours,
    policy: DialPolicy,
    *,
    free_agents: int,
    waiting_calls: int,
    service_level: float | None,
    staffed_service_level: float | None = None,
) -> GateDecision:
    """Callbacks are dialled only in calling hours, with a free agent and SLA headroom.

    ``service_level`` is the one predicted with one agent fewer (the agent the
    callback takes away); ``staffed_service_level`` the one predicted with the
    agents staffed now. With one or two agents the first is 0 or near it
    whatever the traffic (no agent answers no call), so a callback would never
    be dialled; when nobody waits and the agents staffed keep the service level
    on target, the callback goes ahead: an inbound call arriving meanwhile
    waits at most for one callback.
    """
    if not hours.is_open(now):
        return GateDecision(False, "outside calling hours", "calling_hours")
    if free_agents < policy.min_free_agents:
        return GateDecision(
            False, f"{free_agents} free agents, {policy.min_free_agents} needed", "free_agents"
        )
    if waiting_calls > policy.max_waiting_calls:
        return GateDecision(
            False,
            f"{waiting_calls} inbound calls waiting (at most {policy.max_waiting_calls})",
            "waiting_calls",
        )
    target = policy.min_service_level
    if service_level is not None and service_level < target:
        if (
            waiting_calls == 0
            and staffed_service_level is not None
            and staffed_service_level >= target
        ):
            return GateDecision(
                True,
                f"nobody waiting and the agents staffed keep the predicted service level "
                f"{_pct(staffed_service_level)} (one agent fewer: {_pct(service_level)}, "
                f"target {_pct(target)})",
            )
        staffed = (
            f", with the agents staffed {_pct(staffed_service_level)}"
            if staffed_service_level is not None else ""
        )
        return GateDecision(
            False,
            f"predicted service level with one agent fewer {_pct(service_level)}{staffed}, "
            f"below {_pct(target)}",
            "service_level",
        )
    return GateDecision(True, "calling hours, a free agent and service-level headroom")


def _pct(value: float) -> str:
    return f"{value:.0%}"


def start_attempt(flag: CallbackFlag, now: float, agent_id: str) -> CallbackFlag:
    """Record that the customer is being dialled (call it before the Originate)."""
    _require_open(flag)
    busy = flag.attempt_in_progress
    if busy is not None:
        raise AttemptInProgressError(flag.flag_id, busy.number)
    attempt = Attempt(len(flag.attempts) + 1, now, agent_id)
    entry = HistoryEntry(now, agent_id, "attempt", str(attempt.number))
    return replace(flag, attempts=(*flag.attempts, attempt), history=(*flag.history, entry))


def interrupt_stale_attempt(flag: CallbackFlag, now: float, policy: DialPolicy) -> CallbackFlag:
    """The daemon dialling this flag vanished (its lease expired).

    The attempt counts (the customer's phone may have rung), so a daemon that
    crashes again and again cannot pester a customer beyond ``max_attempts``.
    """
    busy = flag.attempt_in_progress
    if busy is None:
        return flag
    return record_outcome(flag, busy.number, AttemptOutcome.INTERRUPTED, now, policy, by=SYSTEM)


def record_outcome(
    flag: CallbackFlag,
    attempt_no: int,
    outcome: AttemptOutcome,
    now: float,
    policy: DialPolicy,
    *,
    by: str,
    note: str = "",
    follow_up_at: float | None = None,
) -> CallbackFlag:
    """Record how an attempt ended, and close the flag when the outcome says so.

    ``answered`` closes the flag unless ``follow_up_at`` is given (the customer
    asked to be called again), which merges a follow-up and starts a new round.
    ``wrong_number`` closes it; a failed attempt that exhausts the round closes it
    as ``unreachable``. A late outcome for an attempt already marked
    ``interrupted`` replaces that mark and is noted in the history.
    """
    index = attempt_no - 1
    if not 0 <= index < len(flag.attempts):
        raise UnknownAttemptError(flag.flag_id, attempt_no)
    attempt = flag.attempts[index]
    late = attempt.outcome is AttemptOutcome.INTERRUPTED
    if attempt.outcome is not None and not late:
        raise AttemptAlreadyEndedError(flag.flag_id, attempt_no, attempt.outcome)
    ended = replace(attempt, outcome=outcome, ended_at=now, note=note)
    attempts = (*flag.attempts[:index], ended, *flag.attempts[index + 1 :])
    event = "late_outcome" if late else "outcome"
    entry = HistoryEntry(now, by, event, f"{attempt_no}:{outcome}" + (f" ({note})" if note else ""))
    flag = replace(flag, attempts=attempts, history=(*flag.history, entry))
    if not flag.is_open or flag.attempt_in_progress is not None:
        return flag
    if outcome is AttemptOutcome.ANSWERED:
        if follow_up_at is not None:
            # the customer was reached and asked for another call: a fresh round
            merged = merge_reason(flag, follow_up_reason(by, now, follow_up_at, note), now)
            return replace(merged, round_start=len(merged.attempts))
        return _close(flag, Resolution.ANSWERED, now, by, note)
    if outcome is AttemptOutcome.WRONG_NUMBER:
        return _close(flag, Resolution.WRONG_NUMBER, now, by, note)
    if len(flag.round_attempts) >= policy.max_attempts:
        return _close(flag, Resolution.UNREACHABLE, now, SYSTEM, f"{policy.max_attempts} attempts")
    return flag


def cancel(flag: CallbackFlag, now: float, *, by: str, note: str) -> CallbackFlag:
    """A supervisor closes a flag by hand (e.g. the customer called in and was served)."""
    _require_open(flag)
    if flag.attempt_in_progress is not None:
        raise AttemptInProgressError(flag.flag_id, flag.attempts[-1].number)
    if not note.strip():
        raise NoteRequiredError("cancelling a callback flag needs a note saying why")
    return _close(flag, Resolution.CANCELLED, now, by, note)


def acknowledge(flag: CallbackFlag, now: float, *, by: str) -> CallbackFlag:
    """A supervisor has seen an unreachable or wrong-number flag."""
    if not flag.needs_attention:
        return flag
    entry = HistoryEntry(now, by, "acknowledged")
    return replace(flag, acknowledged_by=by, history=(*flag.history, entry))


def purge_transcripts(flag: CallbackFlag, now: float) -> CallbackFlag:
    """Retention: a closed flag's voicemail transcripts are removed; the purge is recorded."""
    reasons = tuple(replace(r, transcript=None) for r in flag.reasons)
    entry = HistoryEntry(now, SYSTEM, "purged", f"{len(flag.transcripts)} transcripts")
    return replace(flag, reasons=reasons, purged_at=now, history=(*flag.history, entry))


def _close(flag: CallbackFlag, resolution: Resolution, now: float, by: str, note: str) -> CallbackFlag:
    entry = HistoryEntry(now, by, "closed", str(resolution) + (f" ({note})" if note else ""))
    return replace(
        flag,
        status=FlagStatus.CLOSED,
        resolution=resolution,
        closed_at=now,
        history=(*flag.history, entry),
    )


def _require_open(flag: CallbackFlag) -> None:
    if not flag.is_open:
        raise FlagClosedError(flag.flag_id)


# -- serialisation (for storage and JSON APIs) ---------------------------------------


def flag_to_dict(flag: CallbackFlag) -> dict[str, Any]:
    return {
        "flag_id": flag.flag_id,
        "number": flag.number,
        "opened_at": flag.opened_at,
        "due_at": flag.due_at,
        "round_start": flag.round_start,
        "status": str(flag.status),
        "resolution": str(flag.resolution) if flag.resolution else None,
        "closed_at": flag.closed_at,
        "acknowledged_by": flag.acknowledged_by,
        "purged_at": flag.purged_at,
        "reasons": [
            {
                "kind": str(r.kind), "source": r.source, "raised_at": r.raised_at,
                "due_at": r.due_at, "raised_by": r.raised_by, "note": r.note,
                "transcript": r.transcript, "complaint_ref": r.complaint_ref,
            }
            for r in flag.reasons
        ],
        "attempts": [
            {
                "number": a.number, "started_at": a.started_at, "agent_id": a.agent_id,
                "outcome": str(a.outcome) if a.outcome else None, "ended_at": a.ended_at,
                "note": a.note,
            }
            for a in flag.attempts
        ],
        "history": [
            {"at": h.at, "by": h.by, "event": h.event, "detail": h.detail} for h in flag.history
        ],
        **({"site": flag.site} if flag.site else {}),
    }


def flag_from_dict(data: Mapping[str, Any]) -> CallbackFlag:
    return CallbackFlag(
        flag_id=data["flag_id"],
        number=data["number"],
        opened_at=data["opened_at"],
        due_at=data["due_at"],
        round_start=data["round_start"],
        status=FlagStatus(data["status"]),
        resolution=Resolution(data["resolution"]) if data["resolution"] else None,
        closed_at=data["closed_at"],
        acknowledged_by=data["acknowledged_by"],
        purged_at=data["purged_at"],
        reasons=tuple(
            Reason(
                kind=ReasonKind(r["kind"]), source=r["source"], raised_at=r["raised_at"],
                due_at=r["due_at"], raised_by=r["raised_by"], note=r["note"],
                transcript=r["transcript"], complaint_ref=r["complaint_ref"],
            )
            for r in data["reasons"]
        ),
        attempts=tuple(
            Attempt(
                number=a["number"], started_at=a["started_at"], agent_id=a["agent_id"],
                outcome=AttemptOutcome(a["outcome"]) if a["outcome"] else None,
                ended_at=a["ended_at"], note=a["note"],
            )
            for a in data["attempts"]
        ),
        history=tuple(HistoryEntry(h["at"], h["by"], h["event"], h["detail"]) for h in data["history"]),
        site=data.get("site", ""),
    )


# -- keeping the caller's place ------------------------------------------------------

DEFAULT_SECONDS_PER_TURN_S = 120.0
"""Seconds per place in line when nothing was answered recently (no rate to go by)."""
MAX_TURN_WAIT_S = 4 * 3600.0
"""A place kept is due within this long, however slow the line: the flag is not forgotten."""


def estimate_turn_due(
    now: float,
    position: int,
    answers_in_window: int,
    window_s: float,
    *,
    seconds_per_turn_s: float = DEFAULT_SECONDS_PER_TURN_S,
) -> float:
    """When a caller at ``position`` (1 = next) would have reached an agent.

    The line moves at the recent answer rate (``answers_in_window`` calls
    answered over the last ``window_s``); with no answers to go by, each place
    ahead costs ``seconds_per_turn_s``. The caller at the head is due at once.
    """
    ahead = max(0, position - 1)
    if ahead == 0:
        return now
    if answers_in_window > 0 and window_s > 0:
        per_turn = window_s / answers_in_window
    else:
        per_turn = seconds_per_turn_s
    return now + min(ahead * per_turn, MAX_TURN_WAIT_S)

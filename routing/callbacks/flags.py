"""A callback flag and what it holds: reasons, attempts, history, status."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from routing.callbacks.errors import FlagClosedError

SHORT_ABANDON_S = 5.0
"""Abandons shorter than this are not offered calls (DESIGN.md) and raise no flag."""
DEFAULT_BACKOFF_S = (300.0, 900.0, 3600.0)
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_LEASE_MS = 120_000
MINUTES_PER_DAY = 24 * 60
SYSTEM = "system"
"""``by`` of changes made by Shenava itself rather than a person."""




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
    CUSTOMER_CALLED_IN = "customer_called_in"  # they called us while it was dialled: not an attempt


UNCOUNTED_OUTCOMES = frozenset({AttemptOutcome.AGENT_UNAVAILABLE, AttemptOutcome.CUSTOMER_CALLED_IN})


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
    """The site whose daemon dials it: where the caller called when it was opened (shenava_base.sites)."""

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


def require_open(flag: CallbackFlag) -> None:
    """Refuse a change to a closed flag."""
    if not flag.is_open:
        raise FlagClosedError(flag.flag_id)

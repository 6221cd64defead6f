"""A complaint and every change it may go through. Pure: each change takes ``now`` and ``by``.

Statuses and the changes allowed between them (:data:`ALLOWED_TRANSITIONS`):

========================  ====================================================
from                      to
========================  ====================================================
``open``                  in_progress, waiting_for_customer, resolved, closed*
``in_progress``           open (handed back), waiting_for_customer, resolved
``waiting_for_customer``  in_progress, resolved, closed*
``resolved``              closed, in_progress (reopened: the customer disagrees)
``closed``                nothing
========================  ====================================================

``closed`` is final: a customer who complains again gets a new complaint linked
to the old one (a repeat). A close that does not come from ``resolved``
(marked *: withdrawn, duplicate, no reply) must carry a note saying why.

Every change appends a :class:`Change` to the history with who made it and
when; nothing is ever edited in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from complaints.errors import InvalidComplaintError, InvalidStatusChangeError, NoteRequiredError

SYSTEM = "system"
DEFAULT_REPEAT_WINDOW_S = 30 * 86400.0
"""A complaint within this long of the customer's previous one is a repeat."""


class ComplaintStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING_FOR_CUSTOMER = "waiting_for_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


S = ComplaintStatus
ALLOWED_TRANSITIONS: Mapping[ComplaintStatus, frozenset[ComplaintStatus]] = {
    S.OPEN: frozenset({S.IN_PROGRESS, S.WAITING_FOR_CUSTOMER, S.RESOLVED, S.CLOSED}),
    S.IN_PROGRESS: frozenset({S.OPEN, S.WAITING_FOR_CUSTOMER, S.RESOLVED}),
    S.WAITING_FOR_CUSTOMER: frozenset({S.IN_PROGRESS, S.RESOLVED, S.CLOSED}),
    S.RESOLVED: frozenset({S.CLOSED, S.IN_PROGRESS}),
    S.CLOSED: frozenset(),
}
UNRESOLVED = frozenset({S.OPEN, S.IN_PROGRESS, S.WAITING_FOR_CUSTOMER})


class Channel(StrEnum):
    """How the complaint reached the register."""

    IVR = "ivr"  # opened by the IVR during a call
    AGENT = "agent"  # opened by an agent on a call
    VOICEMAIL = "voicemail"
    CALLBACK = "callback"
    WEB = "web"
    EMAIL = "email"


@dataclass(frozen=True, slots=True)
class Change:
    """One line of history: who changed what, when, and the values involved."""

    at: float
    by: str
    action: str
    detail: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Note:
    at: float
    by: str
    text: str


@dataclass(frozen=True, slots=True)
class Redress:
    """What the customer is given to put things right. ``amount`` in minor units."""

    description: str
    decided_by: str
    decided_at: float
    amount: int | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class Escalation:
    to: str
    reason: str
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class Complaint:
    """One complaint. ``number`` is the caller's number (``None``: withheld)."""

    reference: str
    category: str
    channel: Channel
    opened_at: float
    updated_at: float
    number: str | None = None
    language: str = ""
    account: str | None = None
    call_id: str | None = None
    ivr: Mapping[str, str] = field(default_factory=dict)
    status: ComplaintStatus = ComplaintStatus.OPEN
    transcript: str | None = None
    recordings: tuple[str, ...] = ()
    notes: tuple[Note, ...] = ()
    redress: Redress | None = None
    escalation: Escalation | None = None
    repeat_of: str | None = None
    repeats: tuple[str, ...] = ()
    history: tuple[Change, ...] = ()
    resolved_at: float | None = None
    closed_at: float | None = None
    callback_raised_at: float | None = None
    purged_at: float | None = None

    @property
    def is_unresolved(self) -> bool:
        return self.status in UNRESOLVED


def _changed(c: Complaint, now: float, by: str, action: str, **detail: str) -> tuple[Change, ...]:
    return (*c.history, Change(now, by, action, detail))


def open_complaint(
    reference: str,
    now: float,
    *,
    category: str,
    channel: Channel,
    number: str | None = None,
    by: str = SYSTEM,
    language: str = "",
    account: str | None = None,
    call_id: str | None = None,
    ivr: Mapping[str, str] | None = None,
    transcript: str | None = None,
    recordings: tuple[str, ...] = (),
    previous: Complaint | None = None,
    repeat_window_s: float = DEFAULT_REPEAT_WINDOW_S,
) -> Complaint:
    """A new complaint; linked as a repeat when ``previous`` (the customer's last) is recent."""
    if not category.strip():
        raise InvalidComplaintError("category", "must not be empty")
    repeat_of = None
    if previous is not None and now - previous.opened_at <= repeat_window_s:
        repeat_of = previous.reference
    detail = {"category": category, "channel": str(channel)}
    if repeat_of:
        detail["repeat_of"] = repeat_of
    return Complaint(
        reference=reference,
        category=category,
        channel=channel,
        opened_at=now,
        updated_at=now,
        number=number or None,
        language=language,
        account=account,
        call_id=call_id,
        ivr=dict(ivr or {}),
        transcript=transcript,
        recordings=recordings,
        repeat_of=repeat_of,
        history=(Change(now, by, "opened", detail),),
    )


def link_repeat(previous: Complaint, repeat: Complaint, now: float) -> Complaint:
    """Record on the earlier complaint that ``repeat`` followed it."""
    if repeat.reference in previous.repeats:
        return previous
    return replace(
        previous,
        repeats=(*previous.repeats, repeat.reference),
        updated_at=now,
        history=_changed(previous, now, SYSTEM, "repeated", by_complaint=repeat.reference),
    )


def change_status(
    c: Complaint, new: ComplaintStatus, now: float, *, by: str, note: str = ""
) -> Complaint:
    if new is c.status:
        return c
    if new not in ALLOWED_TRANSITIONS[c.status]:
        raise InvalidStatusChangeError(c.reference, c.status, new)
    if new is S.CLOSED and c.status is not S.RESOLVED and not note.strip():
        raise NoteRequiredError(f"closing complaint {c.reference} unresolved needs a note saying why")
    detail = {"from": str(c.status), "to": str(new)}
    if note:
        detail["note"] = note
    return replace(
        c,
        status=new,
        updated_at=now,
        resolved_at=now if new is S.RESOLVED else c.resolved_at,
        closed_at=now if new is S.CLOSED else None,
        history=_changed(c, now, by, "status", **detail),
    )


def add_note(c: Complaint, text: str, now: float, *, by: str) -> Complaint:
    if not text.strip():
        raise InvalidComplaintError("note", "must not be empty")
    return replace(
        c,
        notes=(*c.notes, Note(now, by, text)),
        updated_at=now,
        history=_changed(c, now, by, "note"),
    )


def set_category(c: Complaint, category: str, now: float, *, by: str) -> Complaint:
    if not category.strip():
        raise InvalidComplaintError("category", "must not be empty")
    if category == c.category:
        return c
    return replace(
        c,
        category=category,
        updated_at=now,
        history=_changed(c, now, by, "category", **{"from": c.category, "to": category}),
    )


def set_redress(
    c: Complaint,
    description: str,
    now: float,
    *,
    by: str,
    amount: int | None = None,
    currency: str | None = None,
) -> Complaint:
    if not description.strip():
        raise NoteRequiredError("a redress needs a description")
    if amount is not None and (amount < 0 or not currency):
        raise InvalidComplaintError("redress.amount", "a non-negative amount needs a currency")
    detail = {"description": description}
    if amount is not None:
        detail["amount"] = f"{amount} {currency}"
    return replace(
        c,
        redress=Redress(description, by, now, amount, currency),
        updated_at=now,
        history=_changed(c, now, by, "redress", **detail),
    )


def escalate(c: Complaint, to: str, reason: str, now: float, *, by: str) -> Complaint:
    if not to.strip() or not reason.strip():
        raise NoteRequiredError("an escalation names where it goes and why")
    return replace(
        c,
        escalation=Escalation(to, reason, by, now),
        updated_at=now,
        history=_changed(c, now, by, "escalated", to=to, reason=reason),
    )


def attach_transcript(
    c: Complaint, transcript: str, now: float, *, recording_id: str | None = None
) -> Complaint:
    """The transcription worker's text for the complaint's voicemail."""
    recordings = c.recordings
    if recording_id and recording_id not in recordings:
        recordings = (*recordings, recording_id)
    return replace(
        c,
        transcript=transcript,
        recordings=recordings,
        updated_at=now,
        history=_changed(c, now, SYSTEM, "transcript", recording=recording_id or ""),
    )


def mark_callback_raised(c: Complaint, now: float) -> Complaint:
    return replace(c, callback_raised_at=now, history=_changed(c, now, SYSTEM, "callback_raised"))


def needs_unresolved_callback(c: Complaint, now: float, max_age_s: float) -> bool:
    """Unresolved for ``max_age_s`` since it opened, or since the last callback it raised."""
    if not c.is_unresolved or c.number is None:
        return False
    since = c.callback_raised_at if c.callback_raised_at is not None else c.opened_at
    return now - since >= max_age_s


# -- retention ------------------------------------------------------------------


def purge_due(c: Complaint, now: float, retention_s: float) -> bool:
    """Closed ``retention_s`` ago or more, with a recording or transcript still kept."""
    return (
        c.status is S.CLOSED
        and c.closed_at is not None
        and now - c.closed_at >= retention_s
        and c.purged_at is None
        and (c.transcript is not None or bool(c.recordings))
    )


def purge(c: Complaint, now: float, *, by: str = "retention") -> Complaint:
    """Drop the transcript and the recording ids; the record and its history stay."""
    return replace(
        c,
        transcript=None,
        recordings=(),
        purged_at=now,
        history=_changed(
            c, now, by, "purged",
            recordings=str(len(c.recordings)),
            transcript="yes" if c.transcript is not None else "no",
        ),
    )


# -- serialisation ------------------------------------------------------------------


def complaint_to_dict(c: Complaint) -> dict[str, Any]:
    return {
        "reference": c.reference,
        "category": c.category,
        "channel": str(c.channel),
        "opened_at": c.opened_at,
        "updated_at": c.updated_at,
        "number": c.number,
        "language": c.language,
        "account": c.account,
        "call_id": c.call_id,
        "ivr": dict(c.ivr),
        "status": str(c.status),
        "transcript": c.transcript,
        "recordings": list(c.recordings),
        "notes": [{"at": n.at, "by": n.by, "text": n.text} for n in c.notes],
        "redress": None if c.redress is None else {
            "description": c.redress.description, "decided_by": c.redress.decided_by,
            "decided_at": c.redress.decided_at, "amount": c.redress.amount,
            "currency": c.redress.currency,
        },
        "escalation": None if c.escalation is None else {
            "to": c.escalation.to, "reason": c.escalation.reason,
            "by": c.escalation.by, "at": c.escalation.at,
        },
        "repeat_of": c.repeat_of,
        "repeats": list(c.repeats),
        "history": [
            {"at": h.at, "by": h.by, "action": h.action, "detail": dict(h.detail)}
            for h in c.history
        ],
        "resolved_at": c.resolved_at,
        "closed_at": c.closed_at,
        "callback_raised_at": c.callback_raised_at,
        "purged_at": c.purged_at,
    }


def complaint_from_dict(d: Mapping[str, Any]) -> Complaint:
    redress = d["redress"]
    escalation = d["escalation"]
    return Complaint(
        reference=d["reference"],
        category=d["category"],
        channel=Channel(d["channel"]),
        opened_at=d["opened_at"],
        updated_at=d["updated_at"],
        number=d["number"],
        language=d["language"],
        account=d["account"],
        call_id=d["call_id"],
        ivr=dict(d["ivr"]),
        status=ComplaintStatus(d["status"]),
        transcript=d["transcript"],
        recordings=tuple(d["recordings"]),
        notes=tuple(Note(n["at"], n["by"], n["text"]) for n in d["notes"]),
        redress=None if redress is None else Redress(
            redress["description"], redress["decided_by"], redress["decided_at"],
            redress["amount"], redress["currency"],
        ),
        escalation=None if escalation is None else Escalation(
            escalation["to"], escalation["reason"], escalation["by"], escalation["at"]
        ),
        repeat_of=d["repeat_of"],
        repeats=tuple(d["repeats"]),
        history=tuple(Change(h["at"], h["by"], h["action"], dict(h["detail"])) for h in d["history"]),
        resolved_at=d["resolved_at"],
        closed_at=d["closed_at"],
        callback_raised_at=d["callback_raised_at"],
        purged_at=d["purged_at"],
    )

"""Raising a flag: each source's reason, a new flag, merging a reason into an open one."""

from __future__ import annotations

from dataclasses import replace

from routing.callbacks.errors import UnknownFlagError
from routing.callbacks.flags import (
    CUSTOMER_REASONS,
    SYSTEM,
    CallbackFlag,
    HistoryEntry,
    Reason,
    ReasonKind,
    require_open,
)
from routing.callbacks.numbers import normalize_number
from routing.callbacks.policy import DialPolicy


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
    require_open(flag)
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

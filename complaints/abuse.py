"""Agents' reports of abusive callers. Pure: each change takes ``now``.

A report never bans anyone. It goes to a supervisor (``pending_review``), who
upholds or dismisses it with a note; the report, the review and the outcome are
kept. Meanwhile, and after it is upheld, the caller's calls go to an
experienced agent (:func:`needs_experienced_agent`); a dismissed report stops
counting. The reporting agent gets recovery time at once
(:class:`RecoveryGrant`, handed to the hook the composition root wires to
``agent_stats``), which is never counted against any allowance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from complaints.errors import (
    InvalidComplaintError,
    NoteRequiredError,
    ReportAlreadyReviewedError,
)

DEFAULT_RECOVERY_S = 300.0
DEFAULT_FLAG_WINDOW_S = 90 * 86400.0


class AbuseCategory(StrEnum):
    VERBAL_ABUSE = "verbal_abuse"
    THREAT = "threat"
    HARASSMENT = "harassment"
    DISCRIMINATION = "discrimination"
    SEXUAL = "sexual"
    OTHER = "other"


class ReportStatus(StrEnum):
    PENDING_REVIEW = "pending_review"
    UPHELD = "upheld"
    DISMISSED = "dismissed"


@dataclass(frozen=True, slots=True)
class AbusePolicy:
    """Config ``[abuse]``.

    ``route_to_experienced``: a reported caller's calls prefer experienced
    agents. ``flag_window_s``: how long after a report (pending or upheld) that
    lasts; ``None`` is for ever. ``recovery_s``: the recovery time granted.
    """

    route_to_experienced: bool = True
    flag_window_s: float | None = DEFAULT_FLAG_WINDOW_S
    recovery_s: float = DEFAULT_RECOVERY_S

    def __post_init__(self) -> None:
        if self.flag_window_s is not None and self.flag_window_s <= 0:
            raise InvalidComplaintError("abuse.flag_window_s", "must be positive (or absent: for ever)")
        if self.recovery_s <= 0:
            raise InvalidComplaintError("abuse.recovery_s", "must be positive")


@dataclass(frozen=True, slots=True)
class AbuseReport:
    report_id: str
    number: str | None
    agent_id: str
    category: AbuseCategory
    note: str
    reported_at: float
    call_id: str | None = None
    complaint_ref: str | None = None
    status: ReportStatus = ReportStatus.PENDING_REVIEW
    reviewer: str | None = None
    review_note: str = ""
    reviewed_at: float | None = None


@dataclass(frozen=True, slots=True)
class RecoveryGrant:
    """Recovery time for ``agent_id`` from ``at``, because of ``report_id``.

    The hook puts the agent in not-ready with reason ``recovery`` (agent_stats),
    which is never counted against the break allowance; ``duration_s`` is the
    time offered, not a limit the agent is held to.
    """

    agent_id: str
    report_id: str
    at: float
    duration_s: float


def new_report(
    report_id: str,
    now: float,
    *,
    agent_id: str,
    number: str | None,
    category: AbuseCategory | str,
    note: str,
    call_id: str | None = None,
    complaint_ref: str | None = None,
) -> AbuseReport:
    try:
        category = AbuseCategory(category)
    except ValueError:
        raise InvalidComplaintError("category", f"unknown abuse category {category!r}") from None
    if not agent_id:
        raise InvalidComplaintError("agent_id", "must not be empty")
    return AbuseReport(
        report_id=report_id,
        number=number or None,
        agent_id=agent_id,
        category=category,
        note=note.strip(),
        reported_at=now,
        call_id=call_id,
        complaint_ref=complaint_ref,
    )


def review(report: AbuseReport, *, upheld: bool, reviewer: str, note: str, now: float) -> AbuseReport:
    """A supervisor's decision; final, with a note (the outcome, e.g. a warning letter)."""
    if report.status is not ReportStatus.PENDING_REVIEW:
        raise ReportAlreadyReviewedError(report.report_id, report.status)
    if not note.strip():
        raise NoteRequiredError("a review needs a note with its outcome")
    return replace(
        report,
        status=ReportStatus.UPHELD if upheld else ReportStatus.DISMISSED,
        reviewer=reviewer,
        review_note=note.strip(),
        reviewed_at=now,
    )


def recovery_for(report: AbuseReport, policy: AbusePolicy) -> RecoveryGrant:
    return RecoveryGrant(report.agent_id, report.report_id, report.reported_at, policy.recovery_s)


def counts_against_caller(report: AbuseReport, now: float, policy: AbusePolicy) -> bool:
    if report.status is ReportStatus.DISMISSED:
        return False
    return policy.flag_window_s is None or now - report.reported_at <= policy.flag_window_s


def needs_experienced_agent(
    reports: Iterable[AbuseReport], now: float, policy: AbusePolicy
) -> bool:
    """For ``WaitingCall.abusive_caller``: a pending or upheld report within the window."""
    return policy.route_to_experienced and any(
        counts_against_caller(r, now, policy) for r in reports
    )


def report_to_dict(r: AbuseReport) -> dict[str, Any]:
    return {
        "report_id": r.report_id, "number": r.number, "agent_id": r.agent_id,
        "category": str(r.category), "note": r.note, "reported_at": r.reported_at,
        "call_id": r.call_id, "complaint_ref": r.complaint_ref, "status": str(r.status),
        "reviewer": r.reviewer, "review_note": r.review_note, "reviewed_at": r.reviewed_at,
    }


def report_from_dict(d: Mapping[str, Any]) -> AbuseReport:
    return AbuseReport(
        report_id=d["report_id"], number=d["number"], agent_id=d["agent_id"],
        category=AbuseCategory(d["category"]), note=d["note"], reported_at=d["reported_at"],
        call_id=d["call_id"], complaint_ref=d["complaint_ref"], status=ReportStatus(d["status"]),
        reviewer=d["reviewer"], review_note=d["review_note"], reviewed_at=d["reviewed_at"],
    )

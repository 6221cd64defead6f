"""A flag as a dict, for Redis and the JSON APIs, and back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routing.callbacks.flags import (
    Attempt,
    AttemptOutcome,
    CallbackFlag,
    FlagStatus,
    HistoryEntry,
    Reason,
    ReasonKind,
    Resolution,
)


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

"""Who may do what in the register, and what each role sees of a caller.

=============  =====================================================================
role           may
=============  =====================================================================
``agent``      list and search; add notes; change status among open, in_progress,
               waiting_for_customer and resolved; escalate; recategorise; report
               abuse. Sees numbers **masked** (``0912***4567``) and transcripts.
``supervisor`` everything an agent may, plus close, redress, export, review abuse
               reports. Sees **full** numbers: supervisors call customers back,
               handle escalations and review abuse reports.
``admin``      everything a supervisor may, plus run the retention purge. Sees full
               numbers: whoever administers Shenava can read its Redis anyway, so
               masking them would only hide the data from the audit trail.
=============  =====================================================================

Logs never carry a full number, whatever the role (``shenava_base.privacy``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Any

from complaints.abuse import AbuseReport, report_to_dict
from complaints.complaint import Complaint, complaint_to_dict
from complaints.errors import PermissionDeniedError
from shenava_base.privacy import mask_number

PERSON_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
"""A person id (user name, agent id, who a proxy vouches for), the same everywhere:
1-64 letters, digits or ``. _ @ -`` (no spaces, no markup)."""


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Permission(StrEnum):
    LIST = "list complaints"
    ADD_NOTE = "add notes"
    CHANGE_STATUS = "change a complaint's status"
    CLOSE = "close complaints"
    RECATEGORISE = "change a complaint's category"
    ESCALATE = "escalate complaints"
    SET_REDRESS = "set a redress"
    EXPORT = "export complaints"
    REPORT_ABUSE = "report an abusive caller"
    REVIEW_ABUSE = "review abuse reports"
    SEE_FULL_NUMBERS = "see full caller numbers"
    SEE_TRANSCRIPTS = "see transcripts"
    PURGE = "purge recordings and transcripts"
    MANAGE_CALLBACKS = "cancel and acknowledge callback flags"
    LISTEN_RECORDINGS = "listen to recordings"


_AGENT = frozenset(
    {
        Permission.LIST, Permission.ADD_NOTE, Permission.CHANGE_STATUS, Permission.RECATEGORISE,
        Permission.ESCALATE, Permission.REPORT_ABUSE, Permission.SEE_TRANSCRIPTS,
    }
)
_SUPERVISOR = _AGENT | {
    Permission.CLOSE, Permission.SET_REDRESS, Permission.EXPORT, Permission.REVIEW_ABUSE,
    Permission.SEE_FULL_NUMBERS, Permission.MANAGE_CALLBACKS, Permission.LISTEN_RECORDINGS,
}
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.AGENT: _AGENT,
    Role.SUPERVISOR: _SUPERVISOR,
    Role.ADMIN: _SUPERVISOR | {Permission.PURGE},
}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking: the id recorded in history, and the role that decides what they may do."""

    actor_id: str
    role: Role


def may(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def require(actor: Actor, permission: Permission) -> None:
    if not may(actor.role, permission):
        raise PermissionDeniedError(actor.role, permission.value)


def shown_number(number: str | None, role: Role) -> str | None:
    if number is None:
        return None
    return number if may(role, Permission.SEE_FULL_NUMBERS) else mask_number(number)


def complaint_view(c: Complaint, role: Role) -> dict[str, Any]:
    """The complaint as ``role`` may see it (JSON-ready)."""
    view = complaint_to_dict(c)
    view["number"] = shown_number(c.number, role)
    # Download URLs (relative to the API root), checked against the role when used;
    # the server's paths of the files are nobody's business over HTTP.
    view["recordings"] = [
        f"api/complaints/{c.reference}/recordings/{n}" for n in range(len(c.recordings))
    ]
    if not may(role, Permission.SEE_TRANSCRIPTS):
        view["transcript"] = None if c.transcript is None else "(hidden)"
    return view


def report_view(r: AbuseReport, role: Role) -> dict[str, Any]:
    view = report_to_dict(r)
    view["number"] = shown_number(r.number, role)
    return view


# -- export ------------------------------------------------------------------------

CSV_COLUMNS = (
    "reference", "status", "category", "channel", "number", "language", "account",
    "opened_at", "updated_at", "resolved_at", "closed_at", "repeat_of", "repeats",
    "redress", "escalated_to", "notes", "last_note",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_json(complaints: Iterable[Complaint], role: Role) -> str:
    """A JSON array of complaint views (times as POSIX seconds, like the API)."""
    return json.dumps([complaint_view(c, role) for c in complaints], ensure_ascii=False, indent=1)


def export_csv(complaints: Iterable[Complaint], role: Role, tz: tzinfo = UTC) -> str:
    """One row per complaint, times in ISO 8601 in ``tz``.

    A cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``)
    is prefixed with ``'``, so ``+98912...`` reads ``'+98912...``.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for c in complaints:
        row = _csv_row(c, role, tz)
        writer.writerow([_cell(row[col]) for col in CSV_COLUMNS])
    return out.getvalue()


def _csv_row(c: Complaint, role: Role, tz: tzinfo) -> dict[str, object]:
    redress = ""
    if c.redress is not None:
        redress = c.redress.description
        if c.redress.amount is not None:
            redress += f" ({c.redress.amount} {c.redress.currency})"
    return {
        "reference": c.reference, "status": c.status, "category": c.category,
        "channel": c.channel, "number": shown_number(c.number, role) or "",
        "language": c.language, "account": c.account or "",
        "opened_at": _iso(c.opened_at, tz), "updated_at": _iso(c.updated_at, tz),
        "resolved_at": _iso(c.resolved_at, tz), "closed_at": _iso(c.closed_at, tz),
        "repeat_of": c.repeat_of or "", "repeats": " ".join(c.repeats), "redress": redress,
        "escalated_to": c.escalation.to if c.escalation else "", "notes": len(c.notes),
        "last_note": c.notes[-1].text if c.notes else "",
    }


def _iso(at: float | None, tz: tzinfo) -> str:
    return "" if at is None else datetime.fromtimestamp(at, tz).isoformat(timespec="seconds")


def _cell(value: object) -> str:
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text

"""The register's service functions: what the HTTP API, the CLI, the IVR and routing call.

Every method takes ``now`` from its caller (the composition root reads the
clock) and, where a person acts, an :class:`~complaints.roles.Actor` whose role
decides what they may do and see. Views come back as JSON-ready dicts with
numbers masked for roles that need not see them.

Hooks, given by the composition root:

- ``on_recovery(grant)``: an agent reported an abusive caller; put them in
  recovery now (``agent_stats``: not ready, reason ``recovery``).
- ``delete_recording(recording_id)``: retention; delete the voicemail file
  (``recordings``). Called *before* the complaint is marked purged, so a crash
  in between leaves the complaint to be purged again (deleting is idempotent),
  never a record that claims a purge that did not happen.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

from twisted.logger import Logger

from complaints import complaint as cp
from complaints.abuse import (
    AbuseCategory,
    AbusePolicy,
    AbuseReport,
    RecoveryGrant,
    counts_against_caller,
    needs_experienced_agent,
    new_report,
    recovery_for,
    review,
)
from complaints.complaint import UNRESOLVED, Channel, Complaint, ComplaintStatus
from complaints.errors import InvalidComplaintError, InvalidReferenceError
from complaints.reference import parse_reference
from complaints.roles import (
    Actor,
    Permission,
    Role,
    complaint_view,
    export_csv,
    export_json,
    report_view,
    require,
)
from complaints.store import REPORT_ID_PREFIX, ComplaintQuery, ComplaintStore
from shenava_base.privacy import mask_number

RecoveryHook = Callable[[RecoveryGrant], None]
DeleteRecording = Callable[[str], Awaitable[None]]
DEFAULT_RETENTION_S = 365 * 86400.0
ABUSE_KIND = "abuse.report"
"""The journal kind of an abuse report (``shenava.journal``)."""
DEFAULT_UNRESOLVED_CALLBACK_S = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class RegisterPolicy:
    """Config ``[complaints]`` (and ``[abuse]`` as ``abuse``)."""

    repeat_window_s: float = cp.DEFAULT_REPEAT_WINDOW_S
    unresolved_callback_s: float = DEFAULT_UNRESOLVED_CALLBACK_S
    retention_s: float = DEFAULT_RETENTION_S
    abuse: AbusePolicy = AbusePolicy()

    def __post_init__(self) -> None:
        for name in ("repeat_window_s", "unresolved_callback_s", "retention_s"):
            if getattr(self, name) <= 0:
                raise InvalidComplaintError(f"complaints.{name}", "must be positive")


@dataclass(frozen=True, slots=True)
class IvrStatus:
    """What the IVR's status option says. ``found`` False: valid but unknown reference."""

    reference: str
    valid: bool
    found: bool
    status: ComplaintStatus | None = None
    updated_at: float | None = None


@dataclass(frozen=True, slots=True)
class CallerContext:
    """What routing and the agent desktop need to know about a caller, before answering.

    Routing sets ``WaitingCall(open_complaint=..., abusive_caller=...)`` from it;
    ``repeat_complainant`` is the customer's second complaint within the repeat
    window, which should raise the priority of their next call (see
    docs/complaints.md for the scoring factor this asks of routing).
    """

    open_complaint: bool
    repeat_complainant: bool
    abusive_caller: bool
    open_references: tuple[str, ...]
    reports: tuple[AbuseReport, ...]


@dataclass(frozen=True, slots=True)
class ComplaintUpdate:
    """One update from a person; every field given is applied, in this order."""

    status: ComplaintStatus | None = None
    note: str | None = None
    category: str | None = None
    escalate_to: str | None = None
    escalation_reason: str = ""
    redress: str | None = None
    redress_amount: int | None = None
    redress_currency: str | None = None


class ComplaintRegister:
    """The register's operations, with roles, hooks and the store."""

    log = Logger()

    def __init__(
        self,
        store: ComplaintStore,
        policy: RegisterPolicy | None = None,
        *,
        on_recovery: RecoveryHook | None = None,
        delete_recording: DeleteRecording | None = None,
        tz: tzinfo = UTC,
    ) -> None:
        self._store = store
        self._policy = policy or RegisterPolicy()
        self._on_recovery = on_recovery
        self._delete_recording = delete_recording
        self._tz = tz
        self.journal: Any = None
        """A :class:`shenava.journal.Journal` (the daemon's): reports are kept there first."""

    def use_journal(self, journal: Any) -> None:
        self.journal = journal
        store = self._store
        journal.register(
            ABUSE_KIND,
            lambda e: store.add_report(e["now"], report_id=e["report_id"], **e["fields"]),
        )

    @property
    def store(self) -> ComplaintStore:
        return self._store

    def set_delete_recording(self, hook: DeleteRecording | None) -> None:
        """The recordings package gives its delete hook after the register exists (wiring order)."""
        self._delete_recording = hook

    # -- the IVR and the daemon ------------------------------------------------

    async def open_complaint(
        self, now: float, *, category: str, channel: Channel, number: str | None = None, **fields: Any
    ) -> Complaint:
        """Open a complaint (from the IVR or an agent); its reference goes back to the caller."""
        c = await self._store.open(
            now, category=category, channel=channel, number=number,
            repeat_window_s=self._policy.repeat_window_s, **fields,
        )
        self.log.info(
            "complaint {reference} opened ({category}) for {caller}{repeat}",
            reference=c.reference, category=c.category, caller=mask_number(c.number),
            repeat=f", repeat of {c.repeat_of}" if c.repeat_of else "",
        )
        return c

    async def ivr_status(self, digits: str) -> IvrStatus:
        """The IVR's status option: a mistyped reference is told apart from an unknown one."""
        try:
            reference = parse_reference(digits)
        except InvalidReferenceError:
            return IvrStatus(digits, valid=False, found=False)
        c = await self._store.find(reference)
        if c is None:
            return IvrStatus(reference, valid=True, found=False)
        return IvrStatus(reference, True, True, c.status, c.updated_at)

    async def attach_transcript(
        self, reference: str, transcript: str, now: float, *, recording_id: str | None = None
    ) -> Complaint:
        return await self._store.update(
            reference, lambda c: cp.attach_transcript(c, transcript, now, recording_id=recording_id)
        )

    async def caller_context(self, number: str | None, now: float) -> CallerContext:
        if not number:
            return CallerContext(False, False, False, (), ())
        complaints, reports = await self._store.caller_records_for(number)
        return self.context_of(complaints, reports, now)

    def context_of(
        self, complaints: Sequence[Complaint], reports: Sequence[AbuseReport], now: float
    ) -> CallerContext:
        """The context from the caller's complaints (oldest first) and abuse reports."""
        window = self._policy.repeat_window_s
        open_refs = tuple(c.reference for c in complaints if c.status in UNRESOLVED)
        repeat = any(c.repeat_of and now - c.opened_at <= window for c in complaints)
        return CallerContext(
            open_complaint=bool(open_refs),
            repeat_complainant=repeat,
            abusive_caller=needs_experienced_agent(reports, now, self._policy.abuse),
            open_references=open_refs,
            reports=tuple(reports),
        )

    async def stale_for_callback(self, now: float) -> list[Complaint]:
        """Complaints unresolved too long: raise a callback flag for each, then mark them."""
        return await self._store.stale_unresolved(now, self._policy.unresolved_callback_s)

    async def mark_callback_raised(self, reference: str, now: float) -> Complaint:
        return await self._store.update(reference, lambda c: cp.mark_callback_raised(c, now))

    # -- people (HTTP API, CLI) ------------------------------------------------

    async def get(self, actor: Actor, reference: str) -> dict[str, Any]:
        require(actor, Permission.LIST)
        return complaint_view(await self._store.get(reference), actor.role)

    async def search(self, actor: Actor, query: ComplaintQuery) -> list[dict[str, Any]]:
        require(actor, Permission.LIST)
        if query.number and actor.role is Role.AGENT:
            # searching by number would reveal a masked number; agents search by reference
            require(actor, Permission.SEE_FULL_NUMBERS)
        return [complaint_view(c, actor.role) for c in await self._store.search(query)]

    async def update(
        self, actor: Actor, reference: str, change: ComplaintUpdate, now: float
    ) -> dict[str, Any]:
        """Apply a person's update atomically, after checking every permission it needs."""
        self._check_update(actor, change)
        by = actor.actor_id

        def apply(c: Complaint) -> Complaint:
            if change.category is not None:
                c = cp.set_category(c, change.category, now, by=by)
            if change.note is not None:
                c = cp.add_note(c, change.note, now, by=by)
            if change.escalate_to is not None:
                c = cp.escalate(c, change.escalate_to, change.escalation_reason, now, by=by)
            if change.redress is not None:
                c = cp.set_redress(
                    c, change.redress, now, by=by,
                    amount=change.redress_amount, currency=change.redress_currency,
                )
            if change.status is not None:
                c = cp.change_status(c, change.status, now, by=by, note=change.note or "")
            return c

        updated = await self._store.update(reference, apply)
        self.log.info(
            "complaint {reference} updated by {actor} ({role}): {status}",
            reference=updated.reference, actor=by, role=actor.role, status=updated.status,
        )
        return complaint_view(updated, actor.role)

    def _check_update(self, actor: Actor, change: ComplaintUpdate) -> None:
        if change.status is ComplaintStatus.CLOSED:
            require(actor, Permission.CLOSE)
        elif change.status is not None:
            require(actor, Permission.CHANGE_STATUS)
        if change.note is not None:
            require(actor, Permission.ADD_NOTE)
        if change.category is not None:
            require(actor, Permission.RECATEGORISE)
        if change.escalate_to is not None:
            require(actor, Permission.ESCALATE)
        if change.redress is not None:
            require(actor, Permission.SET_REDRESS)

    async def export(self, actor: Actor, query: ComplaintQuery, fmt: str = "json") -> str:
        """Every complaint matching ``query`` (ignoring its paging), as JSON or CSV."""
        require(actor, Permission.EXPORT)
        everything = ComplaintQuery(
            statuses=query.statuses, category=query.category, number=query.number,
            text=query.text, handled_by=query.handled_by, since=query.since, until=query.until,
            offset=0, limit=10**9,
        )
        complaints = await self._store.search(everything)
        if fmt == "json":
            return export_json(complaints, actor.role)
        if fmt == "csv":
            return export_csv(complaints, actor.role, self._tz)
        raise InvalidComplaintError("format", f"expected json or csv, got {fmt!r}")

    # -- abuse reports -----------------------------------------------------------

    async def report_abuse(
        self,
        now: float,
        *,
        agent_id: str,
        number: str | None,
        category: AbuseCategory | str,
        note: str = "",
        call_id: str | None = None,
        complaint_ref: str | None = None,
    ) -> AbuseReport:
        """Keep the report, then grant the agent recovery at once.

        The report is stored first so it is never lost; a failing recovery hook is
        logged (with the report id) and does not undo the report.
        """
        fields: dict[str, Any] = {
            "agent_id": agent_id, "number": number, "category": str(category), "note": note,
            "call_id": call_id, "complaint_ref": complaint_ref,
        }
        if self.journal is not None:
            # kept on this host until Redis has it: an agent's report is never lost.
            # Its id is the usual short one while Redis answers, a random one if not.
            from redis.exceptions import RedisError

            try:
                report_id = await self._store.next_report_id()
            except RedisError:
                report_id = f"{REPORT_ID_PREFIX}{secrets.token_hex(6)}"
            report = new_report(report_id, now, **fields)
            entry = {"report_id": report.report_id, "now": now, "fields": fields}
            await self.journal.submit(ABUSE_KIND, entry).asFuture(asyncio.get_running_loop())
        else:
            report = await self._store.add_report(now, **fields)
        self.log.info(
            "abuse report {report_id} by {agent_id} about {caller}: {category}",
            report_id=report.report_id, agent_id=agent_id, caller=mask_number(number),
            category=report.category,
        )
        if self._on_recovery is not None:
            try:
                self._on_recovery(recovery_for(report, self._policy.abuse))
            except Exception:
                self.log.failure(
                    "recovery hook failed for abuse report {report_id} (agent {agent_id})",
                    report_id=report.report_id, agent_id=agent_id,
                )
        return report

    async def review_abuse(
        self, actor: Actor, report_id: str, *, upheld: bool, note: str, now: float
    ) -> dict[str, Any]:
        require(actor, Permission.REVIEW_ABUSE)
        report = await self._store.update_report(
            report_id, lambda r: review(r, upheld=upheld, reviewer=actor.actor_id, note=note, now=now)
        )
        return report_view(report, actor.role)

    async def pending_abuse_reports(self, actor: Actor) -> list[dict[str, Any]]:
        require(actor, Permission.REVIEW_ABUSE)
        return [report_view(r, actor.role) for r in await self._store.pending_reports()]

    async def reports_for_next_agent(self, number: str, now: float) -> list[dict[str, Any]]:
        """The reports the agent taking this caller's call sees (not dismissed, in the window)."""
        reports = await self._store.reports_for(number)
        policy = self._policy.abuse
        return [report_view(r, Role.AGENT) for r in reports if counts_against_caller(r, now, policy)]

    # -- retention ---------------------------------------------------------------

    async def purge_expired(self, now: float) -> list[str]:
        """Purge recordings and transcripts of complaints closed longer than the retention."""
        purged = []
        retention = self._policy.retention_s
        for c in await self._store.closed_before(now - retention):
            if not cp.purge_due(c, now, retention):
                continue
            if self._delete_recording is not None:
                for recording_id in c.recordings:
                    await self._delete_recording(recording_id)
            await self._store.record_purge(
                c.reference, lambda x: cp.purge(x, now) if cp.purge_due(x, now, retention) else x, now
            )
            purged.append(c.reference)
            self.log.info(
                "complaint {reference}: {n} recordings and transcript purged after retention",
                reference=c.reference, n=len(c.recordings),
            )
        return purged

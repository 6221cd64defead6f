"""The desk's actions on a call: report the caller as abusive, flag a follow-up.

An agent sees the caller's number masked, so these take the call's id and the
daemon finds the number itself (the screen-pop memory of the call):

=======  ===============================================  =================================
method   path                                             body
=======  ===============================================  =================================
POST     ``/api/agents/{id}/calls/{call_id}/abuse``       ``category``, ``note``,
                                                          ``complaint_ref`` (optional): the
                                                          register's abuse report; recovery
                                                          follows as for
                                                          ``POST /api/complaints/abuse``
POST     ``/api/agents/{id}/calls/{call_id}/follow-up``   ``due_at`` (POSIX seconds),
                                                          ``note``: a ``follow_up`` reason on
                                                          the number's callback flag
=======  ===============================================  =================================

The agent themself (only the call ringing or connected at their desk) or a supervisor;
only a call the daemon remembers, or a callback being dialled (``callback:<flag id>``:
the flag's number).
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.web.server import Request

from complaints.roles import Actor, Role
from routing.callbacks import follow_up_reason
from shenava.http.auth import require_self_or_supervisor
from shenava.http.errors import BadFieldError, ForbiddenError, NotFoundError, UnavailableError
from shenava.http.jsonapi import Route, read_json, resolve, route
from shenava.http.screenpop import (
    CALLBACK_CALL_PREFIX,
    CallMemory,
    callback_facts,
    complaint_register,
)
from shenava_base.privacy import mask_number

log = Logger()

MAX_NOTE = 2000
MAX_FOLLOW_UP_S = 30 * 86400.0


class DeskApi:
    def __init__(self, app: Any, memory: CallMemory) -> None:
        self._app = app
        self._memory = memory

    def routes(self) -> list[Route]:
        return [
            route("POST", "/agents/{agent_id}/calls/{call_id}/abuse", self.report_abuse),
            route("POST", "/agents/{agent_id}/calls/{call_id}/follow-up", self.follow_up),
        ]

    def _now(self) -> float:
        return float(self._app.reactor.seconds())

    def _require_own_call(self, actor: Actor, agent_id: str, call_id: str) -> None:
        """An agent acts on their own call only, not one waiting or at another desk."""
        require_self_or_supervisor(actor, agent_id)
        if actor.role is not Role.AGENT:
            return
        waiting = self._app.dispatcher.call_of_agent(agent_id)
        if call_id not in (waiting.call_id if waiting is not None else None,
                           self._app.roster.get(agent_id).current_call):
            raise ForbiddenError(f"call {call_id} is not at the desk of agent {agent_id}")

    async def _number(self, call_id: str) -> str:
        outcome = self._memory.get(call_id)
        number = (outcome.callback_number or outcome.caller_number) if outcome else None
        if not number and call_id.startswith(CALLBACK_CALL_PREFIX):
            # a callback being dialled: the customer's number is the flag's
            number, _facts, _transcripts = await callback_facts(
                self._app, call_id[len(CALLBACK_CALL_PREFIX):])
        if not number:
            raise NotFoundError(f"no caller number known for call {call_id}")
        return str(number)

    async def report_abuse(
        self, request: Request, actor: Actor, agent_id: str, call_id: str
    ) -> dict[str, Any]:
        self._require_own_call(actor, agent_id, call_id)
        register = complaint_register(self._app)
        if register is None:
            raise UnavailableError("abuse reports need the complaint register (Redis)",
                                   code="http.complaints_unavailable")
        body = read_json(request)
        category = _text(body, "category", required=True)
        ref = _text(body, "complaint_ref") or None
        number = await self._number(call_id)
        report = await resolve(register.report_abuse(
            self._now(), agent_id=agent_id, number=number, category=category,
            note=_text(body, "note"), call_id=call_id, complaint_ref=ref,
        ))
        return {"now": self._now(), "report_id": report.report_id, "status": str(report.status)}

    async def follow_up(
        self, request: Request, actor: Actor, agent_id: str, call_id: str
    ) -> dict[str, Any]:
        self._require_own_call(actor, agent_id, call_id)
        store = getattr(self._app.complaints, "callbacks", None)
        if store is None:
            raise UnavailableError("follow-ups need the callback flags store (Redis)",
                                   code="http.callbacks_unavailable")
        body = read_json(request)
        now = self._now()
        due = body.get("due_at")
        if isinstance(due, bool) or not isinstance(due, (int, float)) or not (
                now - 60 <= due <= now + MAX_FOLLOW_UP_S):
            raise BadFieldError("due_at", "POSIX seconds, from now to 30 days ahead")
        number = await self._number(call_id)
        flag = await resolve(store.raise_reason(
            number, follow_up_reason(agent_id, now, float(due), _text(body, "note")), now))
        log.info("follow-up for {caller} due {due:.0f} flagged by {agent}",
                 caller=mask_number(number), due=float(due), agent=agent_id)
        return {"now": now, "flag_id": flag.flag_id, "due_at": flag.due_at,
                "reasons": [str(r.kind) for r in flag.reasons]}


def _text(body: dict[str, Any], field: str, *, required: bool = False) -> str:
    value = body.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadFieldError(field, f"{'required, ' if required else ''}a string")
    if len(value) > MAX_NOTE:
        raise BadFieldError(field, f"at most {MAX_NOTE} characters")
    return value.strip()

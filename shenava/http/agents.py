"""``/api/agents``: agents' states, state changes by hand, break requests, the screen pop."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from enum import Enum
from typing import Any

from twisted.logger import Logger
from twisted.web.server import Request

from agent_stats.roster import AgentChange, AgentStatus
from agent_stats.states import NotReadyReason
from complaints.roles import Actor
from shenava.http.auth import require_self_or_supervisor
from shenava.http.errors import BadFieldError, ForbiddenError, MissingFieldError, UnavailableError
from shenava.http.jsonapi import Route, read_json, resolve, route
from shenava.http.screenpop import CallMemory, screen_pop

log = Logger()

SYSTEM_REASONS = frozenset({NotReadyReason.MISSED})
"""Set by Shenava after a ring-no-answer; nobody chooses it."""
SUPERVISOR_REASONS = frozenset({NotReadyReason.RECOVERY})
"""Recovery follows an abuse report (granted at once); by hand only a supervisor sets it."""
CHOSEN_REASONS = tuple(r.value for r in NotReadyReason if r not in SYSTEM_REASONS)
BREAK_REASONS = (NotReadyReason.BREAK.value, NotReadyReason.LUNCH.value)


def agent_view(status: AgentStatus) -> dict[str, Any]:
    profile = status.profile
    return {
        "id": profile.agent_id,
        "name": profile.name,
        "state": status.state.value,
        "reason": status.reason.value if status.reason is not None else None,
        "since": status.ledger.since,
        "idle_since": status.idle_since,
        "languages": list(profile.languages),
        "skills": list(profile.skills),
        "experienced": profile.experienced,
        "calls_taken": status.calls_taken,
        "current_call": status.current_call,
    }


def jsonable(value: Any) -> Any:
    """A stats service's answer made JSON-ready (dataclasses, enums, tuples)."""
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return value


def _reason(body: dict[str, Any], field: str, allowed: tuple[str, ...]) -> NotReadyReason:
    if field not in body:
        raise MissingFieldError(field, f"{field}: required, one of {', '.join(allowed)}")
    raw = body[field]
    if not isinstance(raw, str) or raw not in allowed:
        raise BadFieldError(field, f"{raw!r} is not one of {', '.join(allowed)}")
    return NotReadyReason(raw)


class AgentsApi:
    def __init__(self, app: Any, memory: CallMemory) -> None:
        self._app = app
        self._memory = memory

    def routes(self) -> list[Route]:
        return [
            route("GET", "/agents", self.list_agents),
            route("GET", "/agents/{agent_id}", self.get_agent),
            route("POST", "/agents/{agent_id}/login", self.login),
            route("POST", "/agents/{agent_id}/logout", self.logout),
            route("POST", "/agents/{agent_id}/ready", self.ready),
            route("POST", "/agents/{agent_id}/not-ready", self.not_ready),
            route("POST", "/agents/{agent_id}/break", self.request_break),
            route("GET", "/agents/{agent_id}/call", self.call),
        ]

    def _now(self) -> float:
        return float(self._app.reactor.seconds())

    # -- reading ----------------------------------------------------------------

    def list_agents(self, request: Request, actor: Actor) -> dict[str, Any]:
        return {"now": self._now(), "agents": [agent_view(s) for s in self._app.roster]}

    def get_agent(self, request: Request, actor: Actor, agent_id: str) -> dict[str, Any]:
        return {"now": self._now(), "agent": agent_view(self._app.roster.get(agent_id))}

    # -- changing state ---------------------------------------------------------

    def _changed(self, agent_id: str, change: AgentChange | None, actor: Actor) -> dict[str, Any]:
        if change is not None:
            log.info(
                "agent {agent} {old} -> {new}{reason} by {actor} ({role}) over HTTP",
                agent=agent_id, old=change.old.value, new=change.new.value,
                reason=f" ({change.new_reason.value})" if change.new_reason else "",
                actor=actor.actor_id, role=actor.role.value,
            )
        status = self._app.roster.get(agent_id)
        return {"now": self._now(), "changed": change is not None, "agent": agent_view(status)}

    def login(self, request: Request, actor: Actor, agent_id: str) -> dict[str, Any]:
        require_self_or_supervisor(actor, agent_id)
        change = self._app.roster.log_in(agent_id, self._now())
        return self._changed(agent_id, change, actor)

    def logout(self, request: Request, actor: Actor, agent_id: str) -> dict[str, Any]:
        require_self_or_supervisor(actor, agent_id)
        change = self._app.roster.log_out(agent_id, self._now())
        return self._changed(agent_id, change, actor)

    def ready(self, request: Request, actor: Actor, agent_id: str) -> dict[str, Any]:
        require_self_or_supervisor(actor, agent_id)
        change = self._app.roster.set_ready(agent_id, self._now())
        return self._changed(agent_id, change, actor)

    def not_ready(self, request: Request, actor: Actor, agent_id: str) -> dict[str, Any]:
        require_self_or_supervisor(actor, agent_id)
        self._app.roster.get(agent_id)  # 404 before 400: the agent is the first fact
        reason = _reason(read_json(request), "reason", CHOSEN_REASONS)
        if reason in SUPERVISOR_REASONS and actor.role.value == "agent":
            raise ForbiddenError(
                "recovery is granted by reporting the abusive caller "
                "(POST /api/complaints/abuse) or by a supervisor"
            )
        change = self._app.roster.set_not_ready(agent_id, reason, self._now())
        return self._changed(agent_id, change, actor)

    async def request_break(self, request: Request, actor: Actor, agent_id: str) -> dict[str, Any]:
        """A break through the fair break line of the statistics service."""
        require_self_or_supervisor(actor, agent_id)
        self._app.roster.get(agent_id)
        body = read_json(request)
        reason = _reason(body, "reason", BREAK_REASONS) if "reason" in body else NotReadyReason.BREAK
        service = self._app.agent_stats
        ask = getattr(service, "request_break", None)
        if ask is None:
            raise UnavailableError(
                "break requests need the agent statistics service, which is not running in "
                "this daemon; use POST /api/agents/{id}/not-ready with a reason instead",
                code="http.breaks_unavailable",
            )
        answer = await resolve(ask(agent_id, reason, self._now()))
        log.info(
            "break ({reason}) requested for agent {agent} by {actor} over HTTP",
            reason=reason.value, agent=agent_id, actor=actor.actor_id,
        )
        if answer is None:
            result: Any = {"status": "waiting"}
        elif hasattr(answer, "granted_at"):
            result = {"status": "granted", **jsonable(answer)}
        else:
            result = jsonable(answer)
        status = self._app.roster.get(agent_id)
        return {"now": self._now(), "break": result, "agent": agent_view(status)}

    # -- the screen pop ------------------------------------------------------------

    async def call(self, request: Request, actor: Actor, agent_id: str) -> dict[str, Any]:
        require_self_or_supervisor(actor, agent_id)
        status = self._app.roster.get(agent_id)
        waiting = self._app.dispatcher.call_of_agent(agent_id)
        call_id = waiting.call_id if waiting is not None else status.current_call
        now = self._now()
        body: dict[str, Any] = {"now": now, "agent": agent_view(status), "call": None}
        if call_id is not None:
            body["call"] = await screen_pop(
                self._app, self._memory, call_id, actor, now, waiting=waiting
            )
        return body

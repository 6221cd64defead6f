"""``/api/calls``: the waiting line with places and scores, one call, and why it stands there."""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.web.server import Request

from complaints.roles import Actor
from routing.calls import WaitingCall
from routing.errors import UnknownCallError
from shenava.http.auth import require_supervisor
from shenava.http.jsonapi import Route, route
from shenava.http.screenpop import CallMemory, screen_pop


class CallsApi:
    def __init__(self, app: Any, memory: CallMemory) -> None:
        self._app = app
        self._memory = memory

    def routes(self) -> list[Route]:
        return [
            route("GET", "/calls", self.list_calls),
            route("GET", "/calls/{call_id}", self.get_call),
            route("GET", "/calls/{call_id}/explain", self.explain),
        ]

    def _now(self) -> float:
        return float(self._app.reactor.seconds())

    def list_calls(self, request: Request, actor: Actor) -> dict[str, Any]:
        """Waiting calls, best first. ``position`` is the place among calls for the same
        agents (what the caller's wait depends on), ``overall`` the place in the whole line."""
        line = self._app.router.line
        now = self._now()
        calls = sorted(line, key=lambda c: line.rank(c.call_id))
        sizes = Counter((c.language, c.skill) for c in calls)
        places: Counter[tuple[str, str]] = Counter()
        out = []
        for overall, call in enumerate(calls, start=1):
            bucket = (call.language, call.skill)
            places[bucket] += 1
            score = line.score(call.call_id, now)
            out.append(
                {
                    **_call_facts(call, now),
                    "position": places[bucket],
                    "of": sizes[bucket],
                    "overall": overall,
                    "score": round(score.total, 1),
                    "score_parts": [
                        {"reason": p.reason, "points": round(p.points, 1), "factor": str(p.factor)}
                        for p in score.parts
                    ],
                }
            )
        return {"now": now, "waiting": len(out), "calls": out}

    async def get_call(self, request: Request, actor: Actor, call_id: str) -> dict[str, Any]:
        """The screen pop of any call, for supervisors."""
        require_supervisor(actor, "looking at another agent's call")
        waiting = self._app.router.line.get(call_id)
        agent_id = None
        for status in self._app.roster:
            if status.current_call == call_id:
                agent_id = status.profile.agent_id
                waiting = self._app.dispatcher.call_of_agent(agent_id) or waiting
        if waiting is None and agent_id is None and call_id not in self._memory:
            raise UnknownCallError(call_id)
        now = self._now()
        view = await screen_pop(self._app, self._memory, call_id, actor, now, waiting=waiting)
        return {"now": now, "agent_id": agent_id, "call": view}

    def explain(self, request: Request, actor: Actor, call_id: str) -> dict[str, Any]:
        text = self._app.dispatcher.explain(call_id)
        return {"now": self._now(), "call_id": call_id, "explanation": text}


def _call_facts(call: WaitingCall, now: float) -> dict[str, Any]:
    return {
        "call_id": call.call_id,
        "language": call.language,
        "skill": call.skill,
        "category": call.category,
        "urgency": str(call.urgency),
        "vulnerable": call.vulnerable,
        "hard": call.hard,
        "joined_at": call.joined_at,
        "waited_s": round(now - call.joined_at, 1),
    }

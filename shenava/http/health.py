"""``GET /api/health``: is this daemon up, linked to Asterisk, and which role it has.

No sign-in needed (a load balancer or a service manager asks it); it says
nothing about callers. ``role`` is ``leader`` or ``standby`` (see
:mod:`shenava.leader`); a standby does not serve HTTP, so a pair behind one
address answers from its leader.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request

from shenava.http.jsonapi import Route, route


class HealthApi:
    def __init__(self, app: Any) -> None:
        self._app = app

    def routes(self) -> list[Route]:
        return [route("GET", "/health", self.health, needs_actor=False)]

    def health(self, request: Request) -> dict[str, Any]:
        app = self._app
        role = app.role() if callable(getattr(app, "role", None)) else "leader"
        return {
            "status": "ok",
            "role": role,
            "ami_connected": app.connection.protocol is not None,
            "calls_in_progress": app.counts.in_progress,
        }


ROLE_METRIC = (
    "# HELP shenava_leader 1 if this daemon holds the leader lease (serves the calls), else 0.\n"
    "# TYPE shenava_leader gauge\n"
    "shenava_leader {value}\n"
)


class WithRole(Resource):
    """``/metrics`` plus ``shenava_leader`` (the role), whatever renders the rest."""

    isLeaf = True

    def __init__(self, inner: Resource, app: Any) -> None:
        super().__init__()
        self._inner = inner
        self._app = app

    def render(self, request: Request) -> bytes:
        body = self._inner.render(request)
        if not isinstance(body, bytes) or request.code != 200:
            return body
        role = self._app.role() if callable(getattr(self._app, "role", None)) else "leader"
        return body + ROLE_METRIC.format(value=1 if role == "leader" else 0).encode("ascii")

"""``GET /api/health``: is the daemon whole, and which role it has? AMI link, Redis,
the journal of records not yet in Redis (its depth and the age of its oldest
entry), and ``role``: ``leader`` or ``standby`` (see :mod:`shenava.leader`).

No sign-in needed (a load balancer or a monitoring check polls it) and nothing
personal in it. ``status`` is ``ok``, or ``degraded`` while records wait in the
journal or Redis is away: the daemon still takes calls then, so the HTTP
status stays 200 and the body says why. A standby serves no HTTP, so a pair
behind one address answers from its leader.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request

from complaints.roles import Actor
from shenava.http.jsonapi import Route, route


def journal_health(app: Any) -> dict[str, Any] | None:
    journal = getattr(app, "journal", None)
    return journal.health() if journal is not None else None


def role_of(app: Any) -> str:
    return str(app.role()) if callable(getattr(app, "role", None)) else "leader"


class HealthApi:
    def __init__(self, app: Any) -> None:
        self._app = app

    def routes(self) -> list[Route]:
        return [route("GET", "/health", self.health, needs_actor=False)]

    def health(self, request: Request, actor: Actor | None = None) -> dict[str, Any]:
        app = self._app
        journal = journal_health(app)
        complaints = app.extensions.get("complaints")
        references = getattr(complaints, "references", None)
        degraded = journal is not None and (journal["depth"] > 0 or journal["redis_away_since"] is not None)
        return {
            "status": "degraded" if degraded else "ok",
            "role": role_of(app),
            "ami": "connected" if getattr(app.connection, "protocol", None) is not None else "disconnected",
            "redis": "away" if journal is not None and journal["redis_away_since"] is not None else "ok",
            "journal": journal,
            "references_in_hand": references.in_hand if references is not None else None,
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
        value = 1 if role_of(self._app) == "leader" else 0
        return body + ROLE_METRIC.format(value=value).encode("ascii")

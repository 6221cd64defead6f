"""``GET /api/health``: is the daemon whole? AMI link, Redis, and the journal of records
not yet in Redis (its depth and the age of its oldest entry).

No sign-in needed (a load balancer or a monitoring check polls it) and nothing
personal in it. ``status`` is ``ok``, or ``degraded`` while records wait in the
journal or Redis is away: the daemon still takes calls then, so the HTTP
status stays 200 and the body says why.
"""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request

from complaints.roles import Actor
from shenava.http.jsonapi import Route, route


def journal_health(app: Any) -> dict[str, Any] | None:
    journal = getattr(app, "journal", None)
    return journal.health() if journal is not None else None


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
            "ami": "connected" if getattr(app.connection, "protocol", None) is not None else "disconnected",
            "redis": "away" if journal is not None and journal["redis_away_since"] is not None else "ok",
            "journal": journal,
            "references_in_hand": references.in_hand if references is not None else None,
        }

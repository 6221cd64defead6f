"""``GET /api/health``: is the daemon whole, and which role it has? AMI link, Redis,
the journal of records not yet in Redis (its depth and the age of its oldest
entry), ``role``: ``leader`` or ``standby`` (see :mod:`shenava.leader`), and
``voicemails_parked``: voicemails whose transcription was given up (kept, with
their complaint and flag; ``shenava voicemail retry`` queues them again).

No sign-in needed for what a load balancer or a liveness check needs: ``status``,
``role``, ``ami`` and ``redis``. The rest (the journal's figures, references in
hand, calls in progress, parked voicemails) is the business's own and goes only to
a signed-in supervisor or admin, or to whoever sends ``/metrics``' bearer token (a
monitoring check), as on the wallboard and in ``/metrics``. ``status`` is ``ok``,
or ``degraded`` while records wait in the journal or Redis is away: the daemon
still takes calls then, so the HTTP status stays 200 and the body says why. A
standby serves no HTTP, so a pair behind one address answers from its leader.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.web.server import Request

from complaints.roles import Actor, Role
from shenava.http.jsonapi import Route, route
from shenava.http.metrics_gate import bearer_ok

LIVENESS = ("status", "role", "ami", "redis")
"""What anyone who can reach the listener is told: enough to route to the leader."""


def journal_health(app: Any) -> dict[str, Any] | None:
    journal = getattr(app, "journal", None)
    return journal.health() if journal is not None else None


def parked_voicemails(app: Any) -> int | None:
    """Voicemails whose transcription was given up (``recordings.follower``'s last count;
    None without recordings or before the first count)."""
    recordings = getattr(app, "recordings", None)
    follower = getattr(recordings, "follower", None)
    parked = getattr(follower, "parked", None)
    return parked if isinstance(parked, int) else None


def role_of(app: Any) -> str:
    return str(app.role()) if callable(getattr(app, "role", None)) else "leader"


class HealthApi:
    def __init__(self, app: Any) -> None:
        self._app = app

    def routes(self) -> list[Route]:
        return [route("GET", "/health", self.health, needs_actor=False)]

    def health(self, request: Request, actor: Actor | None = None) -> dict[str, Any]:
        found = self.figures()
        if self._sees_figures(request):
            return found
        return {key: found[key] for key in LIVENESS}

    def figures(self) -> dict[str, Any]:
        """The whole answer, as a supervisor or the metrics token gets it."""
        app = self._app
        journal = journal_health(app)
        complaints = app.complaints
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
            "voicemails_parked": parked_voicemails(app),
        }

    def _sees_figures(self, request: Request) -> bool:
        """A supervisor's or admin's sign-in, or the metrics token (a monitoring check)."""
        who = getattr(request, "actor", None)
        if isinstance(who, Actor) and who.role is not Role.AGENT:
            return True
        return bearer_ok(request, getattr(self._app.config.http, "metrics_token", ""))


class RoleCollector:
    """``shenava_leader`` in the daemon's prometheus_client registry: 1 while this
    daemon holds the leader lease (serves the calls), else 0. A collector, read at
    each scrape, because the registry renders off the reactor thread."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        gauge = GaugeMetricFamily(
            "shenava_leader", "1 if this daemon holds the leader lease (serves the calls), else 0."
        )
        gauge.add_metric([], 1 if role_of(self._app) == "leader" else 0)
        return [gauge]


def register_role(registry: Any, app: Any) -> None:
    """Add ``shenava_leader`` to ``registry`` once, however often the site is built."""
    if getattr(registry, "_shenava_role", False):
        return
    registry.register(RoleCollector(app))
    registry._shenava_role = True


class ParkedCollector:
    """``shenava_voicemails_parked``: voicemails whose transcription was given up after
    ``recordings.max_attempts`` (read at each scrape from the follower's last count)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        parked = parked_voicemails(self._app)
        if parked is None:
            return []
        gauge = GaugeMetricFamily(
            "shenava_voicemails_parked",
            "Voicemails whose transcription was given up (recording, complaint and flag kept; "
            "'shenava voicemail retry' queues them again).")
        gauge.add_metric([], parked)
        return [gauge]


def register_parked(registry: Any, app: Any) -> None:
    """Add ``shenava_voicemails_parked`` to ``registry`` once."""
    if getattr(registry, "_shenava_parked", False):
        return
    registry.register(ParkedCollector(app))
    registry._shenava_parked = True

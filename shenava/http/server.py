"""The HTTP listener: the JSON API, /metrics and /api/complaints on ``[http] bind:port``.

Wiring (see docs/api.md): :func:`install` at construction, so the screen-pop
memory hears every IVR outcome from the first call, and :func:`start_http`
when the daemon starts; it returns the ``IListeningPort`` to stop on shutdown.

Tree::

    /metrics            agent_stats.metrics.MetricsResource behind a bearer token or a
                        supervisor's session (shenava.http.metrics_gate)
    /api/session        sign in, who is signed in, sign out (shenava.http.signin)
    /api/complaints...  complaints.http.ComplaintsResource (503 if not running)
    /api/agents...      shenava.http.agents
    /api/calls...       shenava.http.calls
    /api/wallboard      shenava.http.wallboard (the pages' live figures, for one request)
    /api/events         shenava.http.push (the same figures pushed over Server-Sent Events)
    /api/report         shenava.http.report (``shenava report`` for the browser, JSON or CSV)
    /api/health         shenava.http.health (AMI, Redis, the journal's depth and age)
    /wallboard, /desk   shenava.http.pages (browser pages; /static/... their assets)
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from shenava.http.agents import AgentsApi
from shenava.http.auth import is_loopback
from shenava.http.calls import CallsApi
from shenava.http.desk import DeskApi
from shenava.http.edge import EdgeSite, Gate, Limits
from shenava.http.health import HealthApi, register_parked, register_role
from shenava.http.jsonapi import JsonNotFound, JsonRouter, JsonUnavailable
from shenava.http.metrics_gate import MetricsGate
from shenava.http.pages import mount_pages
from shenava.http.push import EventsResource, PushHub
from shenava.http.report import ReportResource
from shenava.http.screenpop import CallMemory
from shenava.http.session_keep import RedisSessionKeeper
from shenava.http.signin import SessionApi
from shenava.http.wallboard import LiveBoard, WallboardApi
from shenava.users import store_for

log = Logger()


class HttpApi:
    """This package's handle, ``app.http``."""

    def __init__(self, app: Any, memory: CallMemory) -> None:
        self.app = app
        self.memory = memory
        self.agents = AgentsApi(app, memory)
        self.calls = CallsApi(app, memory)
        self.desk = DeskApi(app, memory)
        self.board = LiveBoard(app)
        centre = getattr(app, "centre", None)
        if centre is not None:
            centre.site_now = self.board.site_now  # this site's row on every site's wallboard
        self.wallboard = WallboardApi(app, self.board)
        self.push = PushHub(self.board, app.reactor)
        self.health = HealthApi(app)
        self.gate: Gate | None = None
        """The listener's gate (sessions, audit log), once the site is built."""

    def stop(self) -> None:
        """At shutdown: finish every pushed stream, so pages reconnect (to the
        standby, once it leads) instead of waiting on a silent connection."""
        self.push.close()
        if self.gate is not None and self.gate.keeper is not None:
            self.gate.keeper.stop()

    def router(self, sessions: SessionApi) -> JsonRouter:
        return JsonRouter(
            [*self.agents.routes(), *self.calls.routes(), *self.desk.routes(),
             *self.wallboard.routes(), *sessions.routes(), *self.health.routes()]
        )


def install(app: Any) -> HttpApi:
    """Subscribe the screen-pop memory to the call flow; idempotent. Returns the handle."""
    existing = getattr(app, "http", None)
    if isinstance(existing, HttpApi):
        return existing
    memory = CallMemory()
    memory.attach(app.callflow, app.dispatcher, app.tracker)
    api = HttpApi(app, memory)
    app.http = api
    return api


class _Root(Resource):
    def getChild(self, path: bytes, request: Request) -> Resource:
        return JsonNotFound()


class _ApiRoot(Resource):
    """``/api``: complaints to their package's resource, the rest to the JSON router."""

    def __init__(
        self, router: JsonRouter, complaints: Resource, events: Resource, report: Resource
    ) -> None:
        super().__init__()
        self._router = router
        self._complaints = complaints
        self._events = events
        self._report = report

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"complaints":
            return self._complaints
        if path == b"events" and not request.postpath:
            return self._events
        if path == b"report" and not request.postpath:
            return self._report
        # The router matches the whole path below /api: give it this segment back.
        if request.postpath is not None and request.prepath:
            request.postpath.insert(0, path)
            request.prepath.pop()
        return self._router

    def render(self, request: Request) -> int:
        return JsonNotFound().render(request)


class ShenavaSite(EdgeSite):
    """The edge's Site (limits, sign-in, CSRF: :mod:`shenava.http.edge`) whose access log
    shows no query string (it may carry a number) and no traceback ever reaches a client."""

    displayTracebacks = False

    def log(self, request: http.Request) -> None:
        log.debug(
            "HTTP {method} {path} {code} {size}",
            method=request.method.decode("ascii", "replace"),
            path=request.path.decode("utf-8", "replace"),
            code=request.code,
            size=request.sentLength,
        )


def metrics_resource(app: Any) -> Resource:
    service = app.agent_stats
    if service is None:
        return JsonUnavailable(
            "http.metrics_unavailable",
            "metrics need the agent statistics service, which is not running in this daemon",
        )
    try:
        from agent_stats.metrics import MetricsResource

        resource = MetricsResource(service)
        register_role(resource.metrics.registry, app)
        register_parked(resource.metrics.registry, app)
        return cast(Resource, resource)
    except ImportError as exc:
        log.warn("no /metrics in this build: {error}", error=str(exc))
        return JsonUnavailable("http.metrics_unavailable", "metrics are not available in this build")
    except Exception:
        log.failure("the /metrics resource could not be built")
        return JsonUnavailable("http.metrics_unavailable", "metrics are not available in this build")


def complaints_resource(app: Any) -> Resource:
    ext = app.complaints
    if ext is None:
        return JsonUnavailable(
            "http.complaints_unavailable",
            "the complaint register is not running in this daemon (it needs Redis)",
        )
    try:
        from complaints.http import ComplaintsResource

        register = getattr(ext, "register", ext)
        callbacks = getattr(ext, "callbacks", None)
        if callbacks is None:
            return JsonUnavailable(
                "http.complaints_unavailable", "the complaints API needs the callback flags store"
            )
        recordings = app.recordings
        return cast(Resource, ComplaintsResource(
            register, callbacks, app.reactor, getattr(recordings, "recording_file", None)))
    except ImportError as exc:
        log.warn("no /api/complaints in this build: {error}", error=str(exc))
        return JsonUnavailable(
            "http.complaints_unavailable", "the complaints API is not available in this build"
        )
    except Exception:
        log.failure("the /api/complaints resource could not be built")
        return JsonUnavailable(
            "http.complaints_unavailable", "the complaints API is not available in this build"
        )


def build_site(app: Any) -> ShenavaSite:
    api = install(app)
    config = app.config.http
    keeper = None
    if app.redis is not None:
        keeper = RedisSessionKeeper(app.redis, app.config.redis.key_prefix, site=app.config.site.id,
                                    clock=app.reactor)
    gate = Gate(config, app.reactor, keeper)
    sessions = SessionApi(gate, store_for(app.config))
    root = _Root()
    api_root = _ApiRoot(api.router(sessions), complaints_resource(app),
                        EventsResource(api.push), ReportResource(app))
    root.putChild(b"api", cast(IResource, api_root))
    root.putChild(b"metrics", cast(IResource, MetricsGate(
        metrics_resource(app), config.metrics_token, supervisors=config.metrics_supervisors)))
    mount_pages(root, app.config)
    site = ShenavaSite(root, reactor=app.reactor, limits=Limits.of(config), gate=gate)
    api.gate = gate
    api.push.session_ended = gate.session_ended
    return site


def start_http(
    app: Any, *, port: int | None = None, interface: str | None = None
) -> IListeningPort:
    """Listen on ``[http] bind:port`` (``port=0`` picks a free one, for tests).

    Raises ``twisted.internet.error.CannotListenError`` if the port is taken.
    """
    bind = app.config.http.bind if interface is None else interface
    number = app.config.http.port if port is None else port
    if not is_loopback(bind):
        log.warn(
            "HTTP API bound to {bind} without TLS: passwords and session cookies cross the "
            "network in clear unless a TLS proxy is in front (docs/security.md)",
            bind=bind,
        )
    if not is_loopback(bind) and not app.config.http.allowed_hosts:
        log.warn(
            "HTTP API bound to {bind} with http.allowed_hosts empty: only IP addresses and "
            "localhost are answered; pages opened by a name need it listed (docs/security.md)",
            bind=bind,
        )
    listening: Any = app.reactor.listenTCP(number, build_site(app), interface=bind)
    host = listening.getHost()
    log.info("HTTP API listening on http://{host}:{port}/api", host=host.host, port=host.port)
    return cast(IListeningPort, listening)

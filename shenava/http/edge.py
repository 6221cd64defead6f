"""The HTTP edge: what every connection and request passes before any resource sees it.

Limits, before anything is read into memory or a file (docs/security.md):

- connections: at most ``max_connections`` in all (more are answered 503 and closed);
  ``max_connections_per_address`` from one address (the listed proxies excepted) for
  connections that have not shown a sign-in yet (503); once a request on a connection
  is let in with a session, the connection counts against that session instead, at
  most ``max_connections_per_session`` (429, closed). So a room of wallboards and
  desks behind one NAT address is bound by its people's sign-ins, not by the address,
  while anyone without a sign-in still gets only a few connections;
- the request line and headers: at most ``max_header_bytes`` and ``max_headers``
  (431); the whole request (line, headers, body) within ``request_timeout_s`` of
  its first byte (408), and ``idle_timeout_s`` between requests;
- the body: a ``Content-Length`` over ``max_body_bytes`` is refused (413) before one
  byte of it is read; a chunked body is counted as it comes and refused the same
  way. Bodies are kept in memory (never a temporary file).

Then, per request (:meth:`Gate.admit`):

- the name asked for: the ``Host`` header (and a listed proxy's
  ``X-Forwarded-Host``) must be an IP address, ``localhost`` or a name in
  ``allowed_hosts`` (421 ``http.host_not_allowed``). A page on another site whose
  name its owner points at this address (DNS rebinding) is the same origin to the
  browser as far as the cookie and ``Origin`` go; its requests carry its own name;
- who is asking: the session cookie of a sign-in, or, in proxy mode only, the
  role and person headers of a listed proxy address that also sent the shared
  secret. Every ``X-Shenava-*`` header is removed afterwards, whoever sent it.
  A listed proxy's ``X-Forwarded-For``/``-Proto``/``-Host`` count (in proxy mode
  only with the secret): the lock-out and the audit log see the client;
- state-changing methods (anything but GET, HEAD, OPTIONS): ``Content-Type:
  application/json`` (415), a browser's ``Origin`` the same as the host (403), and
  the session's ``X-CSRF-Token`` (403), except the sign-in itself, which has no
  session yet;
- the audit log hears every change and supervisors' reads of full numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server

from complaints.roles import Actor, Role
from shenava.http.audit import AuditEntry, AuditLog
from shenava.http.errors import (
    ApiError,
    BadRoleError,
    CrossSiteError,
    CsrfError,
    HostNotAllowedError,
    NotSignedInError,
    TooManyConnectionsError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from shenava.http.session_keep import RedisSessionKeeper, SessionsUnavailableError
from shenava.http.sessions import LockOut, Session, SessionStore, address_group, same_token
from shenava.users import PERSON_RE

log = Logger()

COOKIE = b"shenava_session"
MAX_COOKIE_CHARS = 100
"""A session id is 43 characters: a longer cookie is not looked up in Redis."""
PROXY_SECRET_HEADER = b"x-shenava-proxy-secret"
ROLE_HEADER = b"x-shenava-role"
PERSON_HEADER = b"x-shenava-person"
CSRF_HEADER = b"x-csrf-token"
SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})
SIGN_IN_PATH = b"/api/session"
REFUSALS_EVERY_S = 60.0
"""Anonymous refusals audited at most this often per address and status."""
MAX_REFUSAL_KEYS = 10_000
FULL_NUMBER_READS = (b"/api/complaints", b"/api/calls/", b"/api/audit", b"/api/users")
"""GETs a supervisor or admin makes here are audited (they show full numbers or the log);
so is ``/api/agents/{id}/call``, an agent's screen pop."""


EDGE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
"""On every answer, set before any resource runs (JSON, the event stream, CSV, recordings,
/metrics, errors, redirects, the edge's own refusals): the browser takes a body for what
its Content-Type says, nothing is framed by another site, kept by a cache or told this URL.
The pages and their static files replace the last two (their own policy, ``no-cache``:
they carry no personal data)."""

LOCAL_NAMES = ("localhost",)
"""Host names always answered (besides IP addresses): the browser resolves them itself."""
ANY_HOST = "*"
SERVER_NAME = b"Shenava"


def host_names(allowed: tuple[str, ...]) -> frozenset[str] | None:
    """The names a request's ``Host`` may carry (lower case; ``.example.org`` also stands
    for every name under it); None when ``allowed`` lists ``*`` (no check)."""
    if ANY_HOST in allowed:
        return None
    return frozenset(name.lower().rstrip(".") for name in (*LOCAL_NAMES, *allowed))


def host_name(value: str) -> str:
    """The name in a ``Host`` header: without its port, brackets, trailing dot or case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    name, colon, port = value.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        value = name
    return value.rstrip(".")


def host_allowed(value: str, names: frozenset[str] | None) -> bool:
    """Whether a request naming ``value`` (a ``Host`` header) is for this daemon.

    An IP address always is: a page can only be *from* an address by being served by it,
    while a DNS rebinding page is on a name its owner points here. A name must be listed."""
    if names is None:
        return True
    name = host_name(value)
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if name in names:
        return True
    return any(allowed.startswith(".") and (name.endswith(allowed) or name == allowed[1:])
               for allowed in names)


def _shown(value: str, limit: int = 100) -> str:
    """An untrusted value for a message or a log line: no control characters (a terminal's
    escape sequences, a line break starting a forged line), cut short."""
    return "".join(c if c.isprintable() else "?" for c in value[:limit])


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int
    max_header_bytes: int
    max_headers: int
    idle_timeout_s: float
    request_timeout_s: float
    max_connections: int
    max_connections_per_address: int
    max_connections_per_session: int = 16

    @classmethod
    def of(cls, config: Any) -> Limits:
        return cls(
            config.max_body_bytes, config.max_header_bytes, config.max_headers,
            config.idle_timeout_s, config.request_timeout_s, config.max_connections,
            config.max_connections_per_address, config.max_connections_per_session,
        )


def error_bytes(status: int, code: str, message: str, extra: dict[bytes, bytes] | None = None) -> bytes:
    """A whole HTTP/1.1 error answer that closes the connection (for the channel's refusals)."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    phrase = HTTPStatus(status).phrase.encode()
    head = [
        b"HTTP/1.1 %d %s" % (status, phrase),
        b"Content-Type: application/json; charset=utf-8",
        b"Content-Length: %d" % len(body),
        b"Connection: close",
    ]
    head += [name + b": " + value for name, value in EDGE_HEADERS]
    head += [name + b": " + value for name, value in (extra or {}).items()]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class Gate:
    """Who is asking, and whether their request may go on; one per listener."""

    def __init__(self, config: Any, reactor: Any, keeper: RedisSessionKeeper | None = None) -> None:
        self.config = config
        self.reactor = reactor
        self.keeper = keeper
        """Where sessions outlive a restart (None: memory only, as in unit tests)."""
        self.sessions = SessionStore(config.session_idle_s, config.session_max_s, keeper=keeper)
        self.lockout = LockOut(config.lockout_failures, config.lockout_address_failures, config.lockout_s)
        self.audit = AuditLog(config.audit_file)
        self.proxy_mode = config.auth == "proxy"
        self.proxies = frozenset(config.proxy_addresses)
        self.host_names = host_names(tuple(getattr(config, "allowed_hosts", ())))
        self._secret = config.proxy_secret.encode()
        self._links: dict[str, tuple[Actor, float, str]] = {}
        self._refusals: dict[tuple[str, int], tuple[float, int]] = {}
        self.on_session_use: Callable[[Session], None] = lambda session: None
        """Told of each use of a session (signin compares it with the user's record)."""

    def sign_in_link(self, actor: Actor, page: str, valid_s: float = 3600.0) -> str:
        """A one-use token that signs ``actor`` in and opens ``page`` (the demo's links)."""
        token = secrets.token_urlsafe(24)
        self._links[token] = (actor, self.now() + valid_s, page)
        return token

    def use_link(self, token: str) -> tuple[Actor, str] | None:
        found = self._links.pop(token, None)
        if found is None or found[1] <= self.now():
            return None
        return found[0], found[2]

    def now(self) -> float:
        return float(self.reactor.seconds())

    # -- who is asking -----------------------------------------------------------

    def _from_proxy(self, request: server.Request) -> bool:
        """A listed proxy (in proxy mode: with the secret); its ``X-Forwarded-*`` count."""
        if _peer_host(request) not in self.proxies:
            return False
        if not self.proxy_mode:
            return True  # a TLS proxy in front of sign-in: its client's address, no roles
        given = request.requestHeaders.getRawHeaders(PROXY_SECRET_HEADER) or []
        return len(given) == 1 and hmac.compare_digest(given[0], self._secret)

    def _proxy_actor(self, request: server.Request) -> Actor | None:
        headers = request.requestHeaders
        raw_role = (headers.getRawHeaders(ROLE_HEADER) or [b""])[-1].decode("latin-1").strip()
        person = (headers.getRawHeaders(PERSON_HEADER) or [b""])[-1].decode("latin-1").strip()
        if not raw_role and not person:
            return None  # the proxy let an anonymous request through (its sign-in page...)
        try:
            role = Role(raw_role.lower())
        except ValueError:
            raise BadRoleError(
                "the proxy's X-Shenava-Role must be agent, supervisor or admin", field="X-Shenava-Role"
            ) from None
        if not PERSON_RE.match(person):
            raise BadRoleError(
                "the proxy's X-Shenava-Person must be 1-64 letters, digits or . _ @ -",
                field="X-Shenava-Person",
            )
        return Actor(person, role)

    def proxy_csrf(self, actor: Actor) -> str:
        """Proxy mode has no daemon session: the token is a keyed hash of the person."""
        message = f"csrf|{actor.role.value}|{actor.actor_id}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def recall(self, request: EdgeRequest) -> Deferred[None] | None:
        """When the request's cookie names a session this daemon does not hold (it was
        signed in before a restart, or at the other daemon of a pair), a Deferred that
        fires once the keeper's copy is back in memory (or known to be none); else None.
        Nothing is looked up for a name the daemon does not answer to."""
        keeper = self.keeper
        cookie = request.getCookie(COOKIE)
        if keeper is None or not cookie:
            return None
        session_id = cookie.decode("latin-1")
        if session_id in self.sessions or len(session_id) > MAX_COOKIE_CHARS:
            return None
        try:
            self._check_host(request, self._from_proxy(request))
        except ApiError:
            return None  # admit() refuses it

        def adopt(session: Session | None) -> None:
            if session is not None:
                self.sessions.adopt(session, self.now())

        return keeper.load(session_id).addCallback(adopt)

    def admit(self, request: EdgeRequest) -> None:
        """Set ``request.actor`` (and session, address); raise an ApiError to refuse it."""
        trusted = self._from_proxy(request)
        request.trusted_proxy = trusted
        request.address = _peer_host(request)
        request.behind_tls = request.isSecure()
        proxy_actor = None
        self._check_host(request, trusted)
        if trusted:
            headers = request.requestHeaders
            forwarded = headers.getRawHeaders(b"x-forwarded-for") or []
            if forwarded:
                request.address = _shown(forwarded[-1].decode("latin-1").split(",")[-1].strip(), 64)
            proto = headers.getRawHeaders(b"x-forwarded-proto") or []
            request.behind_tls = request.behind_tls or (proto[-1:] == [b"https"])
            if self.proxy_mode:
                proxy_actor = self._proxy_actor(request)
        _strip_own_headers(request)
        cookie = request.getCookie(COOKIE)
        session = self.sessions.find(cookie.decode("latin-1"), self.now()) if cookie else None
        request.session = session
        if session is not None:
            request.actor, request.csrf = session.actor, session.csrf
            self.on_session_use(session)
        elif proxy_actor is not None:
            request.actor, request.csrf = proxy_actor, self.proxy_csrf(proxy_actor)
        if request.method not in SAFE_METHODS:
            self._check_change(request)

    def _check_host(self, request: EdgeRequest, trusted: bool) -> None:
        """Refuse a request for a name this daemon does not answer to (DNS rebinding). A
        request without ``Host`` (an HTTP/1.0 tool) passes: browsers always send one."""
        headers = request.requestHeaders
        names = list(headers.getRawHeaders(b"host") or [])
        if trusted:
            names += headers.getRawHeaders(b"x-forwarded-host") or []
        for raw in names:
            value = raw.decode("latin-1")
            if not host_allowed(value, self.host_names):
                raise HostNotAllowedError(
                    f"this server does not answer to the name {_shown(host_name(value))!r}; if it is "
                    "this server's name, its operator adds it to [http] allowed_hosts "
                    "(docs/security.md)", host=_shown(value))

    def _check_change(self, request: EdgeRequest) -> None:
        kind = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise UnsupportedMediaTypeError(
                "a request that changes something must send Content-Type: application/json"
            )
        origin = request.getHeader("origin")
        if origin is not None and not _same_origin(origin, request):
            raise CrossSiteError(f"a request from another site ({origin[:100]}) is refused")
        if request.path == SIGN_IN_PATH and request.method == b"POST":
            return  # signing in: no session yet; JSON and the origin check stand in
        if request.actor is None:
            raise NotSignedInError("sign in first (POST api/session)")
        if not same_token(request.getHeader(CSRF_HEADER.decode()), request.csrf or ""):
            raise CsrfError(
                "missing or wrong X-CSRF-Token header: the page gets it from GET api/session"
            )

    # -- sessions ----------------------------------------------------------------------

    def session_ended(self, request: server.Request) -> bool:
        """Whether the session a long answer (an event stream) was let in with has ended:
        signed out, closed by a check of the user's record, or past ``session_max_s``.
        A stream counts as use: it moves the idle deadline (a desk or a TV wallboard may do
        nothing else for hours; the kept copy is told once a minute) and looks at the
        user's record as a request would."""
        session = getattr(request, "session", None)
        if session is None:
            return False  # proxy mode: the proxy's sign-in, not a daemon session
        current = self.sessions.find(session.session_id, self.now())
        if current is None:
            return True
        self.on_session_use(current)
        return False

    def cookie_secure(self, request: EdgeRequest) -> bool:
        mode = self.config.cookie_secure
        return mode == "always" or (mode == "auto" and request.behind_tls)

    def set_cookie(self, request: EdgeRequest, session: Session | None) -> None:
        value = b"" if session is None else session.session_id.encode()
        parts = [COOKIE + b"=" + value, b"Path=/", b"HttpOnly", b"SameSite=Strict"]
        if self.cookie_secure(request):
            parts.append(b"Secure")
        if session is None:
            parts.append(b"Max-Age=0")
        request.responseHeaders.addRawHeader(b"set-cookie", b"; ".join(parts))

    # -- the audit log -----------------------------------------------------------------

    def record(self, request: EdgeRequest, what: str, status: int | None, *,
               who: str | None = None, role: str | None = None, detail: str = "") -> None:
        actor = request.actor
        self.audit.record(AuditEntry(
            at=self.now(), who=who or (actor.actor_id if actor else "-"),
            role=role or (actor.role.value if actor else "-"), what=what,
            address=request.address, status=status, detail=detail,
        ))

    def record_refusal(self, request: EdgeRequest, what: str, status: int, *,
                       who: str | None = None, detail: str = "") -> None:
        """A refusal: audited always for a signed-in person; for anyone else at most one
        entry per address and status each :data:`REFUSALS_EVERY_S`, with the number left
        out since (anyone could otherwise grow the audit file at their request rate)."""
        if request.actor is None:
            key = (request.address, status)
            now = self.now()
            last, left_out = self._refusals.get(key, (-REFUSALS_EVERY_S, 0))
            if now < last + REFUSALS_EVERY_S:
                self._refusals[key] = (last, left_out + 1)
                return
            self._refusals.pop(key, None)
            self._refusals[key] = (now, 0)
            while len(self._refusals) > MAX_REFUSAL_KEYS:
                del self._refusals[next(iter(self._refusals))]
            if left_out:
                detail = f"{detail} (+{left_out} like it not logged)".strip()
        self.record(request, what, status, who=who, role="-" if who else None, detail=detail)

    def audited(self, request: EdgeRequest) -> bool:
        if request.path == SIGN_IN_PATH:
            return False  # the sign-in resource records its own, with more detail
        if request.method not in SAFE_METHODS:
            return True
        actor = request.actor
        path = request.path.rstrip(b"/")
        return (actor is not None and actor.role is not Role.AGENT
                and (path.startswith(FULL_NUMBER_READS) or _is_screen_pop(path)))


def _is_screen_pop(path: bytes) -> bool:
    """``/api/agents/{id}/call``: the caller's full number, for a supervisor."""
    parts = path.split(b"/")
    return len(parts) == 5 and parts[:3] == [b"", b"api", b"agents"] and parts[4] == b"call"


def _needs_session(request: server.Request) -> bool:
    """Whether a request is worth a 503 when its session cannot be looked up: the API's
    answers that depend on who asks, not the pages and their files, ``/metrics`` (its
    token), the health check, or signing in (the way out of a session nobody can find)."""
    path = request.path
    if not path.startswith(b"/api/") or path.rstrip(b"/") == b"/api/health":
        return False
    if path.startswith(SIGN_IN_PATH + b"/link/"):
        return False
    return not (path.rstrip(b"/") == SIGN_IN_PATH and request.method == b"POST")


def _peer_host(request: server.Request) -> str:
    peer = request.getClientAddress()
    return str(getattr(peer, "host", "-"))


def _strip_own_headers(request: server.Request) -> None:
    headers = request.requestHeaders
    for name, _ in list(headers.getAllRawHeaders()):
        if name.lower().startswith(b"x-shenava-"):
            headers.removeHeader(name)


def _same_origin(origin: str, request: EdgeRequest) -> bool:
    host = request.getHeader("host")
    forwarded = request.getHeader("x-forwarded-host") if request.trusted_proxy else None
    netloc = urlsplit(origin).netloc.lower()
    return bool(netloc) and netloc in {(h or "").lower() for h in (host, forwarded) if h}


class EdgeRequest(server.Request):
    """A request whose body is kept in memory and bounded, and which knows who sent it."""

    actor: Actor | None = None
    session: Session | None = None
    csrf: str | None = None
    address: str = "-"
    behind_tls: bool = False
    trusted_proxy: bool = False
    _body_seen = 0

    def setHeader(self, name: bytes | str, value: bytes | str) -> None:
        if (name.encode() if isinstance(name, str) else name).lower() == b"server":
            value = SERVER_NAME  # not TwistedWeb/x.y.z: nobody is told what to look up
        super().setHeader(name, value)

    def gotLength(self, length: int | None) -> None:
        from io import BytesIO

        self.content = BytesIO()  # type: ignore[assignment]  # never a temporary file

    def handleContentChunk(self, data: bytes) -> None:
        self._body_seen += len(data)
        channel: Any = self.channel
        limit = channel.site.limits.max_body_bytes
        if self._body_seen > limit:
            channel.refuse(413, "http.body_too_large", f"the body is larger than {limit} bytes")
            return
        content: Any = self.content
        content.write(data)

    def process(self) -> None:
        channel: Any = self.channel
        gate: Gate = channel.site.gate
        for name, value in EDGE_HEADERS:
            self.responseHeaders.setRawHeaders(name, [value])
        recalled = gate.recall(self)
        if recalled is None:
            self._process(gate)
            return
        recalled.addCallbacks(lambda _: self._recalled(gate), self._not_recalled, errbackArgs=(gate,))
        recalled.addErrback(self._broken)

    def _broken(self, failure: Failure) -> None:
        """A bug after a kept session was looked up: logged, answered 500 (never left hanging)."""
        log.failure("HTTP {path}: the request failed after its session was looked up", failure,
                    path=_shown(self.path.decode("utf-8", "replace"), 200))
        if not self._disconnected and not self.finished:
            self.processingFailed(failure)

    def _recalled(self, gate: Gate) -> None:
        if not self._disconnected:
            self._process(gate)

    def _not_recalled(self, failure: Failure, gate: Gate) -> None:
        if self._disconnected:
            return
        if not _needs_session(self):
            self._process(gate)  # the sign-in page, signing in, health: as a stranger
            return
        from shenava.http.jsonapi import write_error

        channel: Any = self.channel
        self.site = channel.site
        self.address = _peer_host(self)
        reason = failure.value if isinstance(failure.value, SessionsUnavailableError) else None
        if reason is None:
            log.failure("a kept session could not be looked up", failure)
        self.setHeader(b"retry-after", b"5")
        write_error(self, UnavailableError(
            "sign-ins cannot be checked right now (the daemon's Redis is away); the page "
            "tries again by itself", code=SessionsUnavailableError.code))

    def _process(self, gate: Gate) -> None:
        channel: Any = self.channel
        try:
            gate.admit(self)
        except ApiError as error:
            from shenava.http.jsonapi import write_error

            self.site = channel.site
            self.address = self.address if self.address != "-" else _peer_host(self)
            write_error(self, error)
            if error.status in (HTTPStatus.FORBIDDEN, HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                                HTTPStatus.MISDIRECTED_REQUEST):
                host = getattr(error, "host", "")
                gate.record_refusal(self, f"{self.method.decode('ascii', 'replace')} "
                                    f"{_shown(self.path.decode('utf-8', 'replace'), 200)}",
                                    int(error.status),
                                    detail=f"{error.code} {host}" if host else error.code)
            return
        session = self.session
        if session is not None and not channel.site.signed_in(channel, session.session_id):
            from shenava.http.jsonapi import write_error

            self.site = channel.site
            limit = channel.site.limits.max_connections_per_session
            self.setHeader(b"connection", b"close")
            self.setHeader(b"retry-after", b"5")
            write_error(self, TooManyConnectionsError(
                f"this sign-in already has {limit} connections open (pages, live figures); "
                "close some pages and try again"))
            if channel.transport is not None:
                channel.transport.loseConnection()  # after the answer is written
            return
        if gate.audited(self):
            self.notifyFinish().addBoth(self._audit, gate)
        super().process()

    def _audit(self, result: object, gate: Gate) -> object:
        gate.record(self, f"{self.method.decode('ascii', 'replace')} "
                    f"{_shown(self.path.decode('utf-8', 'replace'), 200)}", self.code)
        return None if isinstance(result, Failure) else result


class EdgeChannel(http.HTTPChannel):
    """An HTTP/1.1 channel that refuses, with a status, what is over the limits."""

    site: Any
    _refused = False
    _deadline: IDelayedCall | None = None
    host = "-"
    session_id: str | None = None
    """The sign-in this connection counts against (None: its address)."""

    def connectionMade(self) -> None:
        limits: Limits = self.site.limits
        self.maxHeaders = limits.max_headers
        self.totalHeadersSize = limits.max_header_bytes
        super().connectionMade()

    def refuse(self, status: int, code: str, message: str) -> None:
        if self._refused:
            return
        self._refused = True
        self._cancel_deadline()
        if self.transport is not None:
            self.transport.write(error_bytes(status, code, message))
        self.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if data and self._deadline is None and not self._handlingRequest:
            self._deadline = self.callLater(self.site.limits.request_timeout_s, self._too_slow)
        super().dataReceived(data)

    def rawDataReceived(self, data: bytes) -> None:
        if not self._refused:
            super().rawDataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self.refuse(431, "http.headers_too_large",
                        f"the request line and headers are over {self.totalHeadersSize} bytes")
            return
        super().lineReceived(line)

    def headerReceived(self, line: bytes) -> bool:
        if self._receivedHeaderCount >= self.maxHeaders:
            self.refuse(431, "http.too_many_headers", f"more than {self.maxHeaders} headers")
            return False
        return bool(super().headerReceived(line))

    def allHeadersReceived(self) -> None:
        limit = self.site.limits.max_body_bytes
        if self.length is not None and self.length > limit:
            self.refuse(413, "http.body_too_large",
                        f"Content-Length {self.length} is over the limit of {limit} bytes")
            return
        super().allHeadersReceived()

    def allContentReceived(self) -> None:
        self._cancel_deadline()
        if not self._refused:
            super().allContentReceived()

    def _respondToBadRequestAndDisconnect(self) -> None:
        """Twisted's bare 400 (a malformed request line or header), with our JSON and headers."""
        if self._refused:
            return
        self._refused = True
        self._cancel_deadline()
        if self.transport is not None:
            self.transport.write(error_bytes(400, "http.bad_request", "the request is not valid HTTP/1.1"))
        self.loseConnection()

    def _too_slow(self) -> None:
        self._deadline = None
        if not self._handlingRequest:
            self.refuse(408, "http.request_timeout",
                        f"the request did not arrive within {self.site.limits.request_timeout_s:g} s")

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._cancel_deadline()
        super().connectionLost(reason)
        self.site.connection_closed(self)


class _Busy(Protocol):
    """Answers 503 at once and hangs up: over the connection caps."""

    def __init__(self, message: str) -> None:
        self._message = message

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(error_bytes(503, "http.too_many_connections", self._message,
                                         {b"Retry-After": b"5"}))
        self.transport.loseConnection()


class EdgeSite(server.Site):
    """A Site that counts its connections and refuses those over the caps: by address
    until a connection shows a sign-in, then by that sign-in."""

    requestFactory = EdgeRequest

    def __init__(self, resource: Any, *, reactor: Any, limits: Limits, gate: Gate) -> None:
        super().__init__(resource, reactor=reactor, timeout=limits.idle_timeout_s)
        self.limits = limits
        self.gate = gate
        self.open_by_host: Counter[str] = Counter()
        """Open connections of each address that have not shown a sign-in."""
        self.open_by_session: Counter[str] = Counter()
        """Open connections let in with each sign-in (by its session id)."""
        self.open_total = 0

    def protocol(self) -> EdgeChannel:  # type: ignore[override]
        return EdgeChannel()

    def buildProtocol(self, addr: IAddress | None) -> Any:
        host = str(getattr(addr, "host", "-"))
        limits = self.limits
        if self.open_total >= limits.max_connections:
            log.warn("HTTP: {n} connections open, the cap: refusing one from {host}",
                     n=self.open_total, host=host)
            return _Busy("the server has too many connections open; try again shortly")
        group = address_group(host)  # an IPv6 address's /64: one client's share
        if host not in self.gate.proxies and self.open_by_host[group] >= limits.max_connections_per_address:
            return _Busy(f"{limits.max_connections_per_address} connections from your address have "
                         "not signed in yet; try again shortly (signed-in pages count per sign-in)")
        channel = super().buildProtocol(addr)
        if channel is None:
            return None
        channel.host = group
        self.open_by_host[group] += 1
        self.open_total += 1
        return channel

    def signed_in(self, channel: EdgeChannel, session_id: str) -> bool:
        """Count ``channel`` against the sign-in ``session_id`` from now on (not its address);
        False when that sign-in holds ``max_connections_per_session`` already."""
        if channel.session_id == session_id:
            return True
        if self.open_by_session[session_id] >= self.limits.max_connections_per_session:
            return False
        self._release(channel)
        channel.session_id = session_id
        self.open_by_session[session_id] += 1
        return True

    def connection_closed(self, channel: EdgeChannel) -> None:
        self.open_total -= 1
        self._release(channel)

    def _release(self, channel: EdgeChannel) -> None:
        counter, key = ((self.open_by_host, channel.host) if channel.session_id is None
                        else (self.open_by_session, channel.session_id))
        counter[key] -= 1
        if counter[key] <= 0:
            del counter[key]

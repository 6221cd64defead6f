"""Every answer carries the edge's headers: nosniff, no referrer, no framing, no caching.

The test walks every route the JSON router serves (from its own table, so a new
route is walked without editing this file), the complaints API's routes, the
event stream, the report, ``/metrics``, the pages and their files, unknown
paths, a refused change, a sign-in, and the edge's own refusals (a malformed
request, one over the limits), signed in and not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from shenava.http.edge import EDGE_HEADERS
from shenava.http.pages import ASSETS, PAGES
from shenava.http.signin import SessionApi
from tests.http_helpers import Running
from tests.test_http_security import _on_clock

PARAMS = {"agent_id": "a1", "call_id": "c1", "token": "not-a-token", "reference": "X-1"}
COMPLAINTS = [
    ("GET", "/api/complaints"), ("GET", "/api/complaints/export"), ("GET", "/api/complaints/abuse"),
    ("POST", "/api/complaints/abuse"), ("POST", "/api/complaints/abuse/r1/accept"),
    ("GET", "/api/complaints/callbacks"), ("POST", "/api/complaints/callbacks/f1/cancel"),
    ("GET", "/api/complaints/X-1"), ("PATCH", "/api/complaints/X-1"),
    ("GET", "/api/complaints/X-1/recordings/0"), ("GET", "/api/complaints/no/such/thing"),
]
OTHERS = [
    ("GET", "/api/report"), ("GET", "/api/report?format=csv"), ("GET", "/metrics"),
    ("GET", "/nowhere"), ("GET", "/api/nowhere"), ("POST", "/wallboard"), ("GET", "/wallboard/"),
    ("HEAD", "/api/agents"),
]
PAGE_PATHS = [f"/{page}" for page in PAGES] + [f"/static/{name}" for name in ASSETS]


@pytest_twisted.async_yield_fixture()
async def daemon(redis_client: Redis) -> AsyncIterator[tuple[Running, Clock]]:
    async for pair in _on_clock(redis_client, metrics_token="a-metrics-token-for-prometheus"):
        yield pair


def router_routes(running: Running) -> list[tuple[str, str]]:
    api = running.app.http
    assert api is not None and api.gate is not None
    found = []
    for r in api.router(SessionApi(api.gate, None))._routes:
        path = "/api/" + "/".join(PARAMS.get(s[1:-1], "x") if s.startswith("{") else s for s in r.segments)
        found.append((r.method, path))
    return found


def missing(headers: Any, *, page: bool = False) -> list[str]:
    """The edge headers absent or wrong in ``headers`` (pages: their own CSP and caching)."""
    wrong = []
    for name, value in EDGE_HEADERS:
        got = headers.getRawHeaders(name) or []
        if page and name in (b"content-security-policy", b"cache-control"):
            ok = len(got) == 1 and (b"frame-ancestors 'none'" in got[0] or got[0] == b"no-cache")
        else:
            ok = got == [value]
        if not ok:
            wrong.append(f"{name.decode()}: {got!r}")
    return wrong


@pytest_twisted.ensureDeferred
async def test_every_route_answers_with_the_edge_headers(daemon: tuple[Running, Clock]) -> None:
    running, _clock = daemon
    walked = [*router_routes(running), *COMPLAINTS, *OTHERS]
    assert len(walked) >= 40
    problems: dict[str, list[str]] = {}
    for role in ("supervisor", "agent", None):
        person = "a1" if role == "agent" else None
        for method, path in walked:
            if path == "/api/session" and method == "DELETE":
                continue  # would sign this client out for the rest of the walk
            body = {} if method not in ("GET", "HEAD") else None
            code, _, headers = await running.call(method, path, role=role, person=person, body=body)
            wrong = missing(headers)
            if wrong:
                problems[f"{role} {method} {path} -> {code}"] = wrong
        for path in PAGE_PATHS:
            code, _, headers = await running.call("GET", path, role=role, person=person)
            assert code == 200, path
            wrong = missing(headers, page=True)
            if wrong:
                problems[f"{role} GET {path} -> {code}"] = wrong
    code, _, headers = await running.call("POST", "/api/agents/a1/ready", role="supervisor", csrf=False,
                                          body={})
    assert code == 403
    if missing(headers):
        problems["csrf refusal"] = missing(headers)
    code, _, headers = await running.call("POST", "/api/session", role=None,
                                          body={"name": "nobody", "password": "wrong-password"})
    assert code == 401
    if missing(headers):
        problems["bad sign-in"] = missing(headers)
    assert problems == {}


@pytest_twisted.ensureDeferred
async def test_the_event_stream_carries_the_edge_headers(daemon: tuple[Running, Clock]) -> None:
    running, _clock = daemon
    cookie, _csrf = await running.sign_in("supervisor", None)
    head = await _head_of(running, b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: shenava_session="
                          + cookie.encode() + b"\r\nAccept: text/event-stream\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"text/event-stream" in head.lower()
    assert _missing_raw(head) == []


@pytest_twisted.ensureDeferred
async def test_the_edge_s_own_refusals_carry_them(daemon: tuple[Running, Clock]) -> None:
    running, _clock = daemon
    bad = await _head_of(running, b"GET /api/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n")
    assert bad.startswith(b"HTTP/1.1 400"), bad
    assert b"http.bad_request" in bad
    assert _missing_raw(bad) == []
    big = await _head_of(running, b"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n")
    assert big.startswith(b"HTTP/1.1 413"), big
    assert _missing_raw(big) == []


def _missing_raw(answer: bytes) -> list[str]:
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    lines = head.split(b"\r\n")
    return [name.decode() for name, value in EDGE_HEADERS if name + b": " + value.lower() not in lines]


class _Head(Protocol):
    """Sends a request as given and fires with what came back once the head is whole
    (an event stream never ends by itself) or the connection closed."""

    def __init__(self, payload: bytes, done: Deferred[bytes]) -> None:
        self.payload, self.done, self.received = payload, done, b""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.payload)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if b"\r\n\r\n" in self.received and b"event-stream" in self.received and not self.done.called:
            self.done.callback(self.received)
            assert self.transport is not None
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:  # type: ignore[override]
        if not self.done.called:
            self.done.callback(self.received)


async def _head_of(running: Running, payload: bytes) -> bytes:
    done: Deferred[bytes] = Deferred()

    class Factory(ClientFactory):
        def buildProtocol(self, addr: Any) -> _Head:
            return _Head(payload, done)

        def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
            done.errback(reason)

    cast(Any, running.reactor).connectTCP("127.0.0.1", running.port.getHost().port, Factory())
    return await done

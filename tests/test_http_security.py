"""Each finding of issue 13, refused by a running daemon's HTTP listener (real sockets).

Impersonation through ``X-Shenava-*`` headers, cross-site changes, a forged
admin header, bodies read before any check, slow and many connections, an open
``/metrics``, recordings' server paths, and the lock-out, sessions and audit log
that built-in sign-in brings. Proxy mode only from a listed address with the
shared secret.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from complaints.complaint import Channel
from shenava.app import Shenava
from shenava.http import build_site
from shenava_base.aio import as_deferred
from tests.http_helpers import PASSWORD, Running, config_with_users, running_app, session_cookie
from tests.stats_helpers import T0

PROXY_SECRET = "a-proxy-secret-of-32-characters!"
NUMBER = "09121234567"


# -- fixtures and a raw client ------------------------------------------------------------


@pytest_twisted.async_yield_fixture()
async def api() -> AsyncIterator[Running]:
    from twisted.internet import reactor

    async for running in running_app(reactor):
        yield running


@implementer(IStreamClientEndpoint)
class _NoEndpoint:
    def connect(self, factory: Any) -> Any:
        raise AssertionError("not connected in this test")


async def _on_clock(redis_client: Redis, **http: Any) -> AsyncIterator[tuple[Running, Clock]]:
    """The real object graph with Redis (register, statistics) on a ``Clock``; real sockets."""
    from twisted.internet import reactor

    clock = Clock()
    clock.advance(T0)
    app = Shenava(config_with_users(**http), reactor=clock, redis=redis_client, endpoint=_NoEndpoint())
    app.connection.agi = lambda *a, **k: Deferred()  # type: ignore[method-assign]
    app.connection.send_action = lambda *a, **k: Deferred()  # type: ignore[method-assign]
    service, complaints, recordings = app.agent_stats, app.complaints, app.recordings
    assert service is not None and complaints is not None and recordings is not None
    assert service.started is not None
    await service.started
    port: Any = cast(Any, reactor).listenTCP(0, build_site(app), interface="127.0.0.1")
    running = Running(reactor, app, port)
    try:
        yield running, clock
    finally:
        await running.pool.closeCachedConnections()
        await port.stopListening()
        await service.stop()
        complaints.stop()
        recordings.stop()


@pytest_twisted.async_yield_fixture()
async def daemon(redis_client: Redis) -> AsyncIterator[tuple[Running, Clock]]:
    async for pair in _on_clock(redis_client, metrics_token="a-metrics-token-for-prometheus"):
        yield pair


class _Raw(Protocol):
    def __init__(self, payload: bytes, done: Deferred[bytes]) -> None:
        self.payload = payload
        self.done = done
        self.received = b""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.payload)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.done.called:
            self.done.callback(self.received)


class _RawFactory(ClientFactory):
    def __init__(self, payload: bytes) -> None:
        self.done: Deferred[bytes] = Deferred()
        self.connected: Deferred[_Raw] = Deferred()
        self.payload = payload

    def buildProtocol(self, addr: Any) -> _Raw:
        protocol = _Raw(self.payload, self.done)
        self.connected.callback(protocol)
        return protocol

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.done.errback(reason)


def raw(api: Running, payload: bytes) -> _RawFactory:
    """Open a connection, send ``payload``; ``.done`` fires with all the server sent."""
    from twisted.internet import reactor

    factory = _RawFactory(payload)
    cast(Any, reactor).connectTCP("127.0.0.1", api.port.getHost().port, factory)
    return factory


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def body_of(answer: bytes) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    return parsed


# -- impersonation: no header names a person or a role -----------------------------------


@pytest_twisted.ensureDeferred
async def test_headers_from_outside_name_nobody(api: Running) -> None:
    forged = {"X-Shenava-Role": "admin", "X-Shenava-Agent": "a2", "X-Shenava-Actor": "a2",
              "X-Shenava-Person": "boss"}
    code, body, _ = await api.call("GET", "/api/calls/c1", role=None, headers=forged)
    assert (code, body["error"]["code"]) == (401, "http.not_signed_in")
    code, body, _ = await api.call("GET", "/api/wallboard", role="agent", person="a1", headers=forged)
    assert code == 200 and body["you"] == {"id": "a1", "role": "agent"}
    code, body, _ = await api.call("POST", "/api/agents/a2/login", role="agent", person="a1",
                                   headers=forged)
    assert (code, body["error"]["code"]) == (403, "http.forbidden")


@pytest_twisted.ensureDeferred
async def test_an_agent_cannot_report_abuse_or_write_notes_as_another(
    daemon: tuple[Running, Clock],
) -> None:
    api, clock = daemon
    assert api.app.complaints is not None
    register = api.app.complaints.register
    c = await as_deferred(register.open_complaint(T0, category="billing", channel=Channel.IVR,
                                                  number=NUMBER))
    forged = {"X-Shenava-Actor": "a2", "X-Shenava-Agent": "a2", "X-Shenava-Role": "admin"}
    code, made, _ = await api.call("POST", "/api/complaints/abuse", role="agent", person="a1",
                                   headers=forged, body={"number": NUMBER, "category": "threat"})
    assert code == 201
    code, pending, _ = await api.call("GET", "/api/complaints/abuse", person="sara")
    assert [r["agent_id"] for r in pending] == ["a1"]
    code, updated, _ = await api.call("PATCH", f"/api/complaints/{c.reference}", role="agent",
                                      person="a1", headers=forged, body={"note": "called back"})
    assert code == 200 and updated["notes"][-1]["by"] == "a1"
    # a person named by a trusted proxy is checked as a user name is: no markup, 64 at most
    code, err, _ = await api.call("PATCH", f"/api/complaints/{c.reference}", person="sara",
                                  body={"escalate_to": "<b>" + "x" * 3000})
    assert code == 400


# -- CSRF: changes are JSON with the session's token ---------------------------------------


@pytest.mark.parametrize("kind", ["application/x-www-form-urlencoded", "text/plain"])
@pytest_twisted.ensureDeferred
async def test_cross_site_form_posts_are_refused(api: Running, kind: str) -> None:
    cookie, token = await api.sign_in("agent", "a1")
    for path, data in (("/api/agents/a1/login", b""), ("/api/agents/a1/not-ready", b"reason=break"),
                       ("/api/agents/a1/logout", b""), ("/api/complaints/12345678", b"note=x")):
        code, body, _ = await api.call("POST", path, role=None, cookie=cookie, raw=data,
                                       headers={"Content-Type": kind})
        assert (code, body["error"]["code"]) == (415, "http.unsupported_media_type"), path
    # and a form cannot reach the sign-in either (login CSRF)
    code, _, _ = await api.call("POST", "/api/session", role=None, raw=b"name=a1&password=x",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert code == 415
    assert api.app.roster.get("a1").state.value == "logged_out"


@pytest_twisted.ensureDeferred
async def test_changes_need_the_sessions_csrf_token(api: Running) -> None:
    cookie, token = await api.sign_in("agent", "a1")
    code, body, _ = await api.call("POST", "/api/agents/a1/login", role=None, cookie=cookie)
    assert (code, body["error"]["code"]) == (403, "http.csrf")
    code, body, _ = await api.call("POST", "/api/agents/a1/login", role=None, cookie=cookie,
                                   headers={"X-CSRF-Token": "guessed"})
    assert (code, body["error"]["code"]) == (403, "http.csrf")
    code, body, _ = await api.call("POST", "/api/agents/a1/login", role="agent", person="a1",
                                   headers={"Origin": "https://evil.example"})
    assert (code, body["error"]["code"]) == (403, "http.cross_site")
    assert api.app.roster.get("a1").state.value == "logged_out"
    code, body, _ = await api.call("POST", "/api/agents/a1/login", role=None, cookie=cookie,
                                   headers={"X-CSRF-Token": token})
    assert code == 200 and body["changed"] is True
    # the token is the session's: another person's is refused
    _, other = await api.sign_in("agent", "a2")
    code, body, _ = await api.call("POST", "/api/agents/a1/logout", role=None, cookie=cookie,
                                   headers={"X-CSRF-Token": other})
    assert code == 403


# -- sign-in, sessions, sign-out, lock-out, the audit log -------------------------------------


@pytest_twisted.ensureDeferred
async def test_session_cookie_and_who_is_signed_in(api: Running) -> None:
    api.add_user("sara", "supervisor")
    code, body, headers = await api.call("POST", "/api/session", role=None,
                                         body={"name": "sara", "password": PASSWORD})
    assert code == 200 and (body["person"], body["role"], body["via"]) == ("sara", "supervisor", "session")
    line = next(c.decode() for c in headers.getRawHeaders(b"set-cookie"))
    flags = {part.strip() for part in line.split(";")[1:]}
    assert flags == {"Path=/", "HttpOnly", "SameSite=Strict"}  # no TLS here: no Secure
    first = session_cookie(headers)
    code, me, _ = await api.call("GET", "/api/session", role=None, cookie=first)
    assert code == 200 and me["csrf"] == body["csrf"] and me["person"] == "sara"
    # signing in again, even with the old cookie, gives a new id; the old one is gone
    code, again, headers = await api.call("POST", "/api/session", role=None, cookie=first,
                                          body={"name": "sara", "password": PASSWORD})
    second = session_cookie(headers)
    assert code == 200 and second != first and again["csrf"] != body["csrf"]
    code, _, _ = await api.call("GET", "/api/session", role=None, cookie=first)
    assert code == 401
    code, _, headers = await api.call("DELETE", "/api/session", role=None, cookie=second,
                                      headers={"X-CSRF-Token": again["csrf"]})
    assert code == 200 and "Max-Age=0" in headers.getRawHeaders(b"set-cookie")[0].decode()
    code, body, _ = await api.call("GET", "/api/wallboard", role=None, cookie=second)
    assert (code, body["error"]["code"]) == (401, "http.not_signed_in")


@pytest_twisted.ensureDeferred
async def test_secure_cookie_when_configured() -> None:
    from twisted.internet import reactor

    async for api in running_app(reactor, config_with_users(cookie_secure="always")):
        _, _, headers = await api.call("POST", "/api/session", role=None, body={"name": "x", "password": "y"})
        api.add_user("sara", "supervisor")
        _, _, headers = await api.call("POST", "/api/session", role=None,
                                       body={"name": "sara", "password": PASSWORD})
        assert "; Secure" in headers.getRawHeaders(b"set-cookie")[0].decode()


@pytest_twisted.ensureDeferred
async def test_sessions_expire_idle_and_absolute(daemon: tuple[Running, Clock]) -> None:
    api, clock = daemon
    cookie, _ = await api.sign_in("supervisor", "sara")
    for _ in range(3):  # used every 20 min: idle never reached...
        clock.advance(1200)
        code, _, _ = await api.call("GET", "/api/session", role=None, cookie=cookie)
        assert code == 200
    clock.advance(1801)  # ...then 30 min idle
    code, _, _ = await api.call("GET", "/api/session", role=None, cookie=cookie)
    assert code == 401
    api.signed_in.clear()
    cookie, _ = await api.sign_in("supervisor", "sara")
    for _ in range(12 * 3 + 1):  # busy all day: the 12 h cap still ends it
        clock.advance(1200)
        code, _, _ = await api.call("GET", "/api/session", role=None, cookie=cookie)
    assert code == 401


@pytest_twisted.ensureDeferred
async def test_lock_out_after_repeated_failures(api: Running) -> None:
    api.add_user("sara", "supervisor")
    for _ in range(5):
        code, body, _ = await api.call("POST", "/api/session", role=None,
                                       body={"name": "sara", "password": "not-her-password"})
        assert (code, body["error"]["code"]) == (401, "http.bad_credentials")
    code, body, headers = await api.call("POST", "/api/session", role=None,
                                         body={"name": "sara", "password": PASSWORD})
    assert (code, body["error"]["code"]) == (429, "http.locked_out")
    assert "try again in 15 minutes" in body["error"]["message"]
    assert body["error"]["retry_after_min"] == 15  # the pages say it in their language from this
    assert 890 <= int(headers.getRawHeaders(b"retry-after")[0]) <= 901
    # another name is still open from here (the address limit is higher)...
    api.add_user("omid", "admin")
    code, _, _ = await api.call("POST", "/api/session", role=None,
                                body={"name": "omid", "password": PASSWORD})
    assert code == 200
    # ...until the address has failed too often, whatever the names
    for n in range(15):
        await api.call("POST", "/api/session", role=None,
                       body={"name": f"guess{n}", "password": "not-a-password"})
    code, body, _ = await api.call("POST", "/api/session", role=None,
                                   body={"name": "omid", "password": PASSWORD})
    assert code == 429 and "your address" in body["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_audit_log_is_for_admins(api: Running) -> None:
    await api.call("POST", "/api/session", role=None, body={"name": "mallory", "password": "guess-guess"})
    await api.call("POST", "/api/agents/a1/login", person="sara")
    code, body, _ = await api.call("GET", "/api/audit", person="sara")
    assert (code, body["error"]["code"]) == (403, "http.forbidden")
    code, body, _ = await api.call("GET", "/api/audit?limit=50", role="admin", person="omid")
    assert code == 200
    seen = [(e["who"], e["what"], e["status"]) for e in body["entries"]]
    assert ("mallory", "sign-in failed", 401) in seen
    assert ("sara", "signed in", 200) in seen
    assert ("sara", "POST /api/agents/a1/login", 200) in seen
    assert all(e["address"] == "127.0.0.1" and e["at"] > 0 for e in body["entries"])


# -- a forged admin header, /metrics, recordings ---------------------------------------------


@pytest_twisted.ensureDeferred
async def test_forged_admin_header_gets_no_numbers_or_export(daemon: tuple[Running, Clock]) -> None:
    api, _ = daemon
    for path in ("/api/complaints/export?format=csv", "/api/complaints", "/api/calls/c1", "/metrics"):
        code, body, _ = await api.call("GET", path, role=None,
                                       headers={"X-Shenava-Role": "admin", "X-Shenava-Agent": "root"})
        assert code == 401, path


@pytest_twisted.ensureDeferred
async def test_metrics_need_a_token_or_a_supervisor(daemon: tuple[Running, Clock]) -> None:
    api, _ = daemon
    code, body, headers = await api.call("GET", "/metrics", role=None)
    assert code == 401 and headers.getRawHeaders(b"www-authenticate") == [b'Bearer realm="shenava"']
    code, body, _ = await api.call("GET", "/metrics", role=None, headers={"Authorization": "Bearer wrong"})
    assert code == 401
    code, body, _ = await api.call("GET", "/metrics", role="agent", person="a1")
    assert (code, body["error"]["code"]) == (403, "http.forbidden")
    code, body, _ = await api.call("GET", "/metrics", role=None,
                                   headers={"Authorization": "Bearer a-metrics-token-for-prometheus"})
    assert code == 200 and "shenava_" in body["raw"]
    code, body, _ = await api.call("GET", "/metrics", person="sara")
    assert code == 200


@pytest_twisted.ensureDeferred
async def test_recordings_are_urls_checked_against_the_role(
    daemon: tuple[Running, Clock], tmp_path: Path,
) -> None:
    api, _ = daemon
    wav = tmp_path / "spool" / "vm-1700000000-c1"
    wav.parent.mkdir()
    wav.with_suffix(".wav").write_bytes(b"RIFF....WAVE")
    assert api.app.complaints is not None
    register = api.app.complaints.register
    c = await as_deferred(register.open_complaint(T0, category="billing", channel=Channel.VOICEMAIL,
                                                  number=NUMBER, recordings=(str(wav),)))
    for role, person in (("agent", "a1"), ("supervisor", "sara")):
        code, view, _ = await api.call("GET", f"/api/complaints/{c.reference}", role=role, person=person)
        assert code == 200 and str(tmp_path) not in json.dumps(view)
        assert view["recordings"] == [f"api/complaints/{c.reference}/recordings/0"]
    code, body, _ = await api.call("GET", f"/api/complaints/{c.reference}/recordings/0",
                                   role="agent", person="a1")
    assert code == 403
    code, body, headers = await api.call("GET", f"/api/complaints/{c.reference}/recordings/0", person="sara")
    assert code == 200 and headers.getRawHeaders(b"content-type") == [b"audio/wav"]
    code, _, _ = await api.call("GET", f"/api/complaints/{c.reference}/recordings/1", person="sara")
    assert code == 404


# -- limits before reading --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_huge_declared_body_is_refused_before_it_is_read(api: Running) -> None:
    cookie, token = await api.sign_in("agent", "a1")
    head = (b"POST /api/agents/a1/not-ready HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Cookie: shenava_session=" + cookie.encode() + b"\r\nX-CSRF-Token: " + token.encode()
            + b"\r\nContent-Length: 20000000000\r\n\r\n")
    answer = await raw(api, head + b"{").done  # the server answers and hangs up at once
    assert status_of(answer) == 413 and body_of(answer)["error"]["code"] == "http.body_too_large"


@pytest_twisted.ensureDeferred
async def test_a_chunked_body_over_the_limit_is_cut_off(api: Running) -> None:
    chunk = b"%x\r\n%s\r\n" % (32 * 1024, b"x" * 32 * 1024)
    head = (b"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    answer = await raw(api, head + chunk * 3).done
    assert status_of(answer) == 413


@pytest_twisted.ensureDeferred
async def test_too_many_or_too_large_headers_are_refused(api: Running) -> None:
    many = b"".join(b"X-Filler-%d: 1\r\n" % n for n in range(100))
    answer = await raw(api, b"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n").done
    assert status_of(answer) == 431 and body_of(answer)["error"]["code"] == "http.too_many_headers"
    big = b"X-Big: " + b"y" * 8000 + b"\r\n"
    answer = await raw(api, b"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n" + big * 3 + b"\r\n").done
    assert status_of(answer) == 431


@pytest_twisted.ensureDeferred
async def test_slow_requests_time_out_and_connections_are_capped(redis_client: Redis) -> None:
    async for api, clock in _on_clock(redis_client, max_connections_per_address=4, request_timeout_s=10.0):
        slow = [raw(api, b"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(4)]
        for factory in slow:
            await factory.connected
        site = api.port.factory
        while site.open_total < 4:  # the server side of the four is accepted
            await _tick()
        over = await raw(api, b"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").done
        assert status_of(over) == 503 and body_of(over)["error"]["code"] == "http.too_many_connections"
        clock.advance(10.0)  # no more bytes: each slow request is cut off
        for factory in slow:
            answer = await factory.done
            assert status_of(answer) == 408 and body_of(answer)["error"]["code"] == "http.request_timeout"
        while site.open_total:
            await _tick()
        code, _, _ = await api.call("GET", "/api/session", role=None)
        assert code == 401  # room again


@pytest_twisted.ensureDeferred
async def test_a_room_behind_one_address_is_capped_per_sign_in_not_per_address() -> None:
    # Wallboards and desks behind one NAT address: signed-in connections count against
    # their sign-in, so the address's cap (connections not signed in) does not bind them.
    from twisted.internet import reactor

    config = config_with_users(max_connections_per_address=3, max_connections_per_session=5)
    async for api in running_app(reactor, config):
        cookies = [(await api.sign_in("supervisor", name))[0] for name in ("wall", "room")]
        await api.pool.closeCachedConnections()
        site = api.port.factory
        while site.open_total:
            await _tick()

        def signed(cookie: str) -> bytes:
            return (b"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: shenava_session="
                    + cookie.encode() + b"\r\n\r\n")

        held = []
        for cookie in cookies:
            for _ in range(5):
                factory = raw(api, signed(cookie))
                protocol = await factory.connected
                while b"\r\n\r\n" not in protocol.received:
                    await _tick()
                assert status_of(protocol.received) == 200, protocol.received
                held.append((factory, protocol))
        assert site.open_total == 10  # all from 127.0.0.1, over its cap of 3, still open
        assert sorted(site.open_by_session.values()) == [5, 5] and not site.open_by_host
        assert not any(factory.done.called for factory, _ in held)
        # one sign-in's sixth connection: 429, with what to do, and closed
        over = await raw(api, signed(cookies[0])).done
        assert status_of(over) == 429
        error = body_of(over)["error"]
        assert error["code"] == "http.too_many_connections" and "close some pages" in error["message"]
        # connections that have not signed in are still capped by address
        slow = [raw(api, b"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(3)]
        for factory in slow:
            held.append((factory, await factory.connected))
        while site.open_total < 13:
            await _tick()
        busy = await raw(api, b"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").done
        assert status_of(busy) == 503 and "not signed in" in body_of(busy)["error"]["message"]
        for _, protocol in held:
            assert protocol.transport is not None
            protocol.transport.loseConnection()
        while site.open_total:
            await _tick()
        assert not site.open_by_session and not site.open_by_host


async def _tick() -> None:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    await deferLater(cast(Any, reactor), 0.01, lambda: None)


# -- proxy mode: only configured, only listed addresses, only with the secret -----------------


@pytest_twisted.ensureDeferred
async def test_proxy_mode_needs_a_listed_address_and_the_secret() -> None:
    from twisted.internet import reactor

    proxied = {"X-Shenava-Role": "supervisor", "X-Shenava-Person": "sara"}
    # sign-in mode (the default): the proxy's headers are ignored, secret or not
    async for api in running_app(reactor):
        code, _, _ = await api.call("GET", "/api/session", role=None,
                                    headers={**proxied, "X-Shenava-Proxy-Secret": PROXY_SECRET})
        assert code == 401
    config = config_with_users(auth="proxy", proxy_addresses=("127.0.0.1",), proxy_secret=PROXY_SECRET)
    async for api in running_app(reactor, config):
        code, _, _ = await api.call("GET", "/api/session", role=None, headers=proxied)
        assert code == 401
        code, _, _ = await api.call("GET", "/api/session", role=None,
                                    headers={**proxied, "X-Shenava-Proxy-Secret": "wrong"})
        assert code == 401
        code, me, _ = await api.call("GET", "/api/session", role=None,
                                     headers={**proxied, "X-Shenava-Proxy-Secret": PROXY_SECRET})
        assert code == 200 and (me["person"], me["role"], me["via"]) == ("sara", "supervisor", "proxy")
        code, body, _ = await api.call(
            "GET", "/api/wallboard", role=None,
            headers={"X-Shenava-Role": "agent", "X-Shenava-Person": "<b>" + "x" * 3000,
                     "X-Shenava-Proxy-Secret": PROXY_SECRET})
        assert (code, body["error"]["field"]) == (400, "X-Shenava-Person")
        # changes through the proxy carry the CSRF token too
        code, body, _ = await api.call("POST", "/api/agents/a1/login", role=None,
                                       headers={**proxied, "X-Shenava-Proxy-Secret": PROXY_SECRET})
        assert (code, body["error"]["code"]) == (403, "http.csrf")
        code, body, _ = await api.call(
            "POST", "/api/agents/a1/login", role=None,
            headers={**proxied, "X-Shenava-Proxy-Secret": PROXY_SECRET, "X-CSRF-Token": me["csrf"]})
        assert code == 200
    elsewhere = replace(config, http=replace(config.http, proxy_addresses=("127.0.0.2",)))
    async for api in running_app(reactor, elsewhere):
        code, _, _ = await api.call("GET", "/api/session", role=None,
                                    headers={**proxied, "X-Shenava-Proxy-Secret": PROXY_SECRET})
        assert code == 401


def test_proxy_mode_must_be_configured_whole(tmp_path: Path) -> None:
    from shenava.config import DEMO_CONFIG_TOML, ConfigError, load_config

    path = tmp_path / "shenava.toml"
    path.write_text(DEMO_CONFIG_TOML.replace("[http]\n", '[http]\nauth = "proxy"\n', 1))
    with pytest.raises(ConfigError, match="proxy_addresses"):
        load_config(path)
    (tmp_path / "secret").write_text("short\n")
    path.write_text(DEMO_CONFIG_TOML.replace(
        "[http]\n", '[http]\nauth = "proxy"\nproxy_addresses = ["127.0.0.1"]\nproxy_secret_file = "secret"\n', 1))
    with pytest.raises(ConfigError, match="16 characters"):
        load_config(path)


@pytest_twisted.ensureDeferred
async def test_a_removed_or_changed_user_is_signed_out(daemon: tuple[Running, Clock]) -> None:
    from shenava.users import FileUserStore

    api, clock = daemon
    store = FileUserStore(Path(api.app.config.http.users_file))
    sara, _ = await api.sign_in("supervisor", "sara")
    a1, _ = await api.sign_in("agent", "a1")
    store.remove("sara")
    api.add_user("a1", "agent", "a new password!", changed_at=T0)  # `shenava users passwd a1`
    clock.advance(31)
    for cookie in (sara, a1):
        code, _, _ = await api.call("GET", "/api/session", role=None, cookie=cookie)
        assert code == 200  # this request was let in; its session is looked at now
        code, _, _ = await api.call("GET", "/api/session", role=None, cookie=cookie)
        assert code == 401, cookie == sara

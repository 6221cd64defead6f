"""Sign-in sessions outlive the daemon: kept in Redis under a hash of the cookie.

In-process: two gates (two daemons' lives, one after the other) on one real
Redis; the session signed in at the first is let in at the second, a sign-out
at either ends it at both. Then real ``shenava run`` processes restarted on
one port (kill -9 and a clean stop), against a real Redis and the test PBX.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from redis.asyncio import Redis
from twisted.web.client import Agent, HTTPConnectionPool

from complaints.roles import Role
from shenava.config import default_config
from shenava.http.demo_door import DEMO_HASHER
from shenava.http.edge import EdgeSite, Gate, Limits
from shenava.http.jsonapi import JsonRouter
from shenava.http.session_keep import RedisSessionKeeper
from shenava.http.sessions import csrf_of, kept_name
from shenava.http.signin import SessionApi
from shenava.users import FileUserStore, make_user
from shenava_base.aio import as_deferred
from tests.http_helpers import PASSWORD, session_cookie

PREFIX = "sesstest"


class Life:
    """One daemon's life: a gate with its keeper, and the sign-in API on a loopback port."""

    def __init__(self, redis: Redis, users: Path) -> None:
        from twisted.internet import reactor
        from twisted.web.resource import Resource

        self.reactor: Any = reactor

        config = default_config().http
        self.keeper = RedisSessionKeeper(redis, PREFIX, clock=reactor)
        self.gate = Gate(config, reactor, self.keeper)
        root = Resource()
        api = JsonRouter(SessionApi(self.gate, FileUserStore(users)).routes())
        root.putChild(b"api", api)
        self.port: Any = self.reactor.listenTCP(
            0, EdgeSite(root, reactor=reactor, limits=Limits.of(config), gate=self.gate),
            interface="127.0.0.1")
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    async def call(self, method: str, path: str, *, cookie: str | None = None,
                   body: Any = None, csrf: str | None = None) -> tuple[int, dict[str, Any], Any]:
        from io import BytesIO

        from twisted.web.client import FileBodyProducer, readBody
        from twisted.web.http_headers import Headers

        headers = Headers({b"content-type": [b"application/json"]})
        if cookie:
            headers.setRawHeaders(b"cookie", [b"shenava_session=" + cookie.encode()])
        if csrf:
            headers.setRawHeaders(b"x-csrf-token", [csrf.encode()])
        producer = FileBodyProducer(BytesIO(json.dumps(body).encode())) if body is not None else None
        response = await Agent(self.reactor, pool=self.pool).request(
            method.encode(), (self.base + path).encode(), headers, producer)
        with warnings.catch_warnings():  # the asyncio reactor's transports lack abortConnection
            warnings.simplefilter("ignore", DeprecationWarning)
            body_read = readBody(response)
        raw = await body_read
        return response.code, json.loads(raw) if raw else {}, response.headers

    async def settled(self) -> None:
        """Every write the keeper queued has been sent."""
        for _ in range(200):
            if not self.keeper._queue and not self.keeper._writing:
                return
            await as_deferred(_sleep(0.01))

    async def end(self) -> None:
        self.keeper.stop()
        await self.pool.closeCachedConnections()
        await self.port.stopListening()


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users.json"
    FileUserStore(path).put(make_user("sara", Role.SUPERVISOR, PASSWORD, 0.0, DEMO_HASHER))
    return path


@pytest_twisted.async_yield_fixture()
async def clean(redis_client: Redis) -> AsyncIterator[Redis]:
    keys = await as_deferred(redis_client.keys(f"{PREFIX}:*"))
    if keys:
        await as_deferred(redis_client.delete(*keys))
    yield redis_client


async def _sign_in(life: Life) -> tuple[str, str]:
    code, body, headers = await life.call("POST", "/api/session",
                                          body={"name": "sara", "password": PASSWORD})
    assert code == 200, body
    return session_cookie(headers), body["csrf"]


@pytest_twisted.ensureDeferred
async def test_a_session_outlives_its_daemon_and_redis_never_holds_the_cookie(
    clean: Redis, users: Path
) -> None:
    first = Life(clean, users)
    try:
        cookie, csrf = await _sign_in(first)
        await first.settled()
    finally:
        await first.end()
    keys = list(await as_deferred(clean.keys(f"{PREFIX}:*")))
    assert keys == [f"{PREFIX}:session:{kept_name(cookie)}"]
    stored = await as_deferred(clean.get(keys[0]))
    assert cookie not in stored and csrf not in stored and cookie not in keys[0]
    assert csrf == csrf_of(cookie) != hashlib.sha256(b"shenava-session|" + cookie.encode()).hexdigest()
    ttl = await as_deferred(clean.pttl(keys[0]))
    assert 0 < ttl <= default_config().http.session_idle_s * 1000

    second = Life(clean, users)  # the daemon restarted: nothing in its memory
    try:
        code, body, _ = await second.call("GET", "/api/session", cookie=cookie)
        assert code == 200, body
        assert (body["person"], body["role"], body["csrf"]) == ("sara", "supervisor", csrf)
        # a change still needs the token, which the page gets again from GET api/session
        code, body, _ = await second.call("DELETE", "/api/session", cookie=cookie)
        assert code == 403 and body["error"]["code"] == "http.csrf"
        code, body, _ = await second.call("DELETE", "/api/session", cookie=cookie, csrf=csrf)
        assert code == 200 and body["signed_in"] is False
        code, body, _ = await second.call("GET", "/api/session", cookie=cookie)
        assert code == 401
        await second.settled()
    finally:
        await second.end()
    assert await as_deferred(clean.keys(f"{PREFIX}:*")) == []

    third = Life(clean, users)  # signed out before the restart: still signed out
    try:
        code, body, _ = await third.call("GET", "/api/session", cookie=cookie)
        assert code == 401 and body["error"]["code"] == "http.not_signed_in"
    finally:
        await third.end()


@pytest_twisted.ensureDeferred
async def test_a_sign_out_not_yet_written_to_redis_is_still_refused(clean: Redis, users: Path) -> None:
    life = Life(clean, users)
    try:
        cookie, csrf = await _sign_in(life)
        await life.settled()
        # Redis fails the sign-out's DEL: the record stays, but this daemon refuses it.
        life.keeper._client = _Broken()
        code, _, _ = await life.call("DELETE", "/api/session", cookie=cookie, csrf=csrf)
        assert code == 200
        assert await as_deferred(clean.exists(f"{PREFIX}:session:{kept_name(cookie)}")) == 1
        life.keeper._client = clean  # still failing reads would answer 503; it reads fine
        code, _, _ = await life.call("GET", "/api/session", cookie=cookie)
        assert code == 401
        life.keeper._retry_now()  # the retry sends the DEL
        await life.settled()
        assert await as_deferred(clean.exists(f"{PREFIX}:session:{kept_name(cookie)}")) == 0
    finally:
        await life.end()


@pytest_twisted.ensureDeferred
async def test_redis_away_answers_503_not_sign_in_again(clean: Redis, users: Path) -> None:
    life = Life(clean, users)
    try:
        life.keeper._client = _Broken()
        code, body, headers = await life.call("GET", "/api/session", cookie="x" * 43)
        assert code == 503 and body["error"]["code"] == "http.sessions_unavailable"
        assert headers.getRawHeaders(b"retry-after") == [b"5"]
        # a stale cookie never keeps anyone from signing in again
        code, body, headers = await life.call("POST", "/api/session", cookie="x" * 43,
                                              body={"name": "sara", "password": PASSWORD})
        assert code == 200, body
        fresh = session_cookie(headers)
        code, body, _ = await life.call("GET", "/api/session", cookie=fresh)
        assert code == 200 and body["person"] == "sara"  # from memory, Redis still away
        code, body, _ = await life.call("GET", "/api/nowhere", cookie="y" * 43)
        assert code == 503
    finally:
        await life.end()


class _Broken:
    """A Redis client whose every command fails as an unreachable server's does."""

    async def get(self, key: str) -> Any:
        from redis.exceptions import ConnectionError as RedisConnectionError

        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    def pipeline(self, transaction: bool = False) -> Any:
        return _BrokenPipe()


class _BrokenPipe:
    def set(self, *a: Any, **k: Any) -> None:
        pass

    def delete(self, *a: Any) -> None:
        pass

    async def execute(self) -> Any:
        from redis.exceptions import ConnectionError as RedisConnectionError

        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")


# -- real daemons, restarted ------------------------------------------------------------


def _http(port: int, method: str, path: str, *, cookie: str | None = None,
          body: Any = None, csrf: str | None = None) -> tuple[int, dict[str, Any], Any]:
    headers = {"Content-Type": "application/json"}
    if cookie:
        headers["Cookie"] = f"shenava_session={cookie}"
    if csrf:
        headers["X-CSRF-Token"] = csrf
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}"), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), e.headers


def _wait_listening(rig: Any, daemon: Any) -> None:
    rig.wait_for(daemon, "HTTP API listening")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            _http(daemon.http_port, "GET", "/api/health")
            return
        except OSError:
            time.sleep(0.05)


@pytest.mark.slow
def test_agents_stay_signed_in_across_a_real_daemon_restart(redis_url: str, tmp_path: Path) -> None:
    import redis as sync_redis

    from benchmarks._takeover_rig import Rig, free_port
    from shenava.users import RedisUserStore

    prefix = f"sessrig{int(time.time() * 1000) % 100000}"
    client = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    RedisUserStore(client, prefix).put(make_user("a1", Role.AGENT, "4321", 0.0, DEMO_HASHER))
    rig = Rig(tmp_path, redis_url, {"phones": {}}, prefix=prefix)
    port = free_port()
    try:
        rig.start_pbx()
        first = rig.start_daemon("first", http_port=port)
        _wait_listening(rig, first)
        code, me, headers = _http(port, "POST", "/api/session", body={"name": "a1", "password": "4321"})
        assert code == 200, me
        cookie = next(c.split(";")[0].split("=", 1)[1] for c in headers.get_all("Set-Cookie")
                      if c.startswith("shenava_session="))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not client.keys(f"{prefix}:session:*"):
            time.sleep(0.05)
        assert client.keys(f"{prefix}:session:*") == [f"{prefix}:session:{kept_name(cookie)}"]

        rig.kill(first)  # kill -9: the agent's desk keeps its session
        second = rig.start_daemon("second", http_port=port)
        _wait_listening(rig, second)
        code, again, _ = _http(port, "GET", "/api/session", cookie=cookie)
        assert code == 200, again
        assert (again["person"], again["role"], again["csrf"]) == ("a1", "agent", me["csrf"])
        code, desk, _ = _http(port, "GET", "/api/agents/a1", cookie=cookie)
        assert code == 200, desk

        code, out, _ = _http(port, "DELETE", "/api/session", cookie=cookie, csrf=me["csrf"])
        assert code == 200 and out["signed_in"] is False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and client.keys(f"{prefix}:session:*"):
            time.sleep(0.05)
        assert client.keys(f"{prefix}:session:*") == []
        second.process.terminate()  # a clean stop this time
        second.process.wait(timeout=30)
        third = rig.start_daemon("third", http_port=port)
        _wait_listening(rig, third)
        code, body, _ = _http(port, "GET", "/api/session", cookie=cookie)
        assert code == 401 and body["error"]["code"] == "http.not_signed_in"
    finally:
        rig.close()
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


@pytest_twisted.ensureDeferred
async def test_sessions_are_kept_the_same_way_on_a_redis_cluster(cluster_client: Any) -> None:
    """One key per session (no cross-slot command), written through the cluster's pipeline."""
    from twisted.internet import reactor

    from complaints.roles import Actor
    from shenava.http.sessions import SessionStore

    keeper = RedisSessionKeeper(cluster_client, PREFIX, site="north", clock=reactor)
    store = SessionStore(1800.0, 43200.0, keeper=keeper)
    now = reactor.seconds()
    sessions = [store.open(Actor(f"a{i}", Role.AGENT), now, 1.0) for i in range(6)]
    for _ in range(200):
        if not keeper._queue and not keeper._writing:
            break
        await as_deferred(_sleep(0.01))
    keys = {keeper.key(s.session_id) for s in sessions}
    assert all(k.startswith(f"{PREFIX}:session:north:") for k in keys)
    back = await keeper.load(sessions[3].session_id)
    assert back is not None and back.actor == sessions[3].actor and back.csrf == sessions[3].csrf
    store.close(sessions[3].session_id)
    for _ in range(200):
        if not keeper._queue and not keeper._writing:
            break
        await as_deferred(_sleep(0.01))
    assert await as_deferred(cluster_client.exists(keeper.key(sessions[3].session_id))) == 0
    assert await as_deferred(cluster_client.exists(keeper.key(sessions[2].session_id))) == 1
    keeper2 = RedisSessionKeeper(cluster_client, PREFIX, site="north", clock=reactor)
    assert await keeper2.load(sessions[3].session_id) is None
    assert (await keeper2.load(sessions[2].session_id)) is not None
    await as_deferred(cluster_client.delete(*keys))


def test_an_open_event_stream_keeps_its_session_from_going_idle() -> None:
    """A desk or a TV wallboard may do nothing but follow api/events for hours: the
    stream is use, so neither the session nor its kept copy ends at session_idle_s."""
    from dataclasses import replace as with_

    from twisted.internet.task import Clock

    from complaints.roles import Actor
    from shenava.http.sessions import TOUCH_EVERY_S

    clock = Clock()
    kept: list[float] = []

    class Keeper:
        def keep(self, session: Any, expires_at: float) -> None:
            kept.append(expires_at)

        def forget(self, session_id: str) -> None:
            pass

    config = with_(default_config().http, session_idle_s=60.0)
    gate = Gate(config, clock)
    gate.sessions.keeper = Keeper()
    session = gate.sessions.open(Actor("a1", Role.AGENT), clock.seconds(), None)
    stream = type("Stream", (), {"session": session})()
    for _ in range(300):  # five minutes of a stream and nothing else
        clock.advance(1.0)
        assert not gate.session_ended(stream)
    assert gate.sessions.find(session.session_id, clock.seconds()) is not None
    assert kept[-1] >= clock.seconds() + 60.0 - min(TOUCH_EVERY_S, 15.0) - 1.0
    gate.sessions.close(session.session_id)
    assert gate.session_ended(stream)

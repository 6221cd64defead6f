"""GET /api/health over HTTP: no sign-in for liveness, the journal's figures for a supervisor,
degraded while Redis is away (tests/test_http_exposure.py: who sees what)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from shenava.app import Shenava
from shenava.config import RedisConfig
from shenava.http import build_site
from shenava.redis_client import make_redis_client
from shenava.redis_server import start_redis_server
from shenava_base.aio import as_deferred
from tests.http_helpers import Running, config_with_users
from tests.stats_helpers import T0


class _NoEndpoint:
    def connect(self, factory: Any) -> Any:
        raise AssertionError("not connected in this test")


@pytest_twisted.ensureDeferred
async def test_health_shows_the_journal_and_says_degraded_while_redis_is_away(tmp_path: Path) -> None:
    from twisted.internet import reactor

    server = start_redis_server(tmp_path / "redis")
    client = make_redis_client(RedisConfig(url=server.url, connect_timeout_s=0.5, socket_timeout_s=1.0),
                               decode_responses=True)
    clock = Clock()
    clock.advance(T0)
    app = Shenava(config_with_users(), reactor=clock, redis=client, endpoint=_NoEndpoint())
    app.connection.agi = lambda *a, **k: Deferred()  # type: ignore[method-assign]
    port: Any = cast(Any, reactor).listenTCP(0, build_site(app), interface="127.0.0.1")
    running = Running(reactor, app, port)
    try:
        code, body, _ = await running.call("GET", "/api/health", role=None)
        assert code == 200 and body["status"] == "ok" and body["redis"] == "ok"
        assert body["ami"] == "disconnected" and "journal" not in body  # liveness only
        code, body, _ = await running.call("GET", "/api/health", role="supervisor")
        assert body["journal"]["depth"] == 0
        server.stop()
        # a record arrives while Redis is away: kept, and the health answer says so
        register = app.complaints.register
        reported = as_deferred(register.report_abuse(
            T0, agent_id="a1", number="09121234567", category="threat", note=""))
        while app.journal.redis_away_since is None:
            await as_deferred(asyncio.sleep(0.05))
        clock.advance(5.0)  # the agent is not kept waiting longer than ANSWER_WITHIN_S
        for _ in range(100):
            if reported.called:
                break
            await as_deferred(asyncio.sleep(0.01))
        assert reported.called
        code, body, _ = await running.call("GET", "/api/health", role=None)
        assert code == 200 and body["status"] == "degraded" and body["redis"] == "away"
        code, body, _ = await running.call("GET", "/api/health", role="supervisor")
        assert body["journal"]["depth"] == 1
    finally:
        await running.pool.closeCachedConnections()
        await port.stopListening()
        for name in ("agent_stats", "complaints", "recordings"):
            stop = getattr(getattr(app, name), "stop", None)
            if stop is not None:
                stop()
        await as_deferred(client.aclose())
        server.stop()

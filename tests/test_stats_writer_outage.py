"""The statistics writer while a real Redis is stopped and started again.

Writes are retried every second; the log says the outage once when it starts
and once when it ends (how long, how many batches failed, how many operations
were held), not an error at every retry. Nothing held is lost.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.logger import LogLevel, globalLogPublisher

from agent_stats.store import HeartbeatWrite, StatsStore
from agent_stats.writer import WRITE_RETRY_S, StoreWriter
from shenava.aio import as_deferred
from shenava.config import RedisConfig
from shenava.redis_client import make_redis_client
from shenava.redis_server import start_redis_server
from tests.stats_helpers import SLA, T0

BOUND_S = 30.0
"""A bound on waiting for a reply from the real Redis (or its absence), not a timing claim."""
RETRIES = 8


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


async def settle(writer: StoreWriter) -> None:
    """Until the batch in flight (if any) has its answer from the real Redis."""
    deadline = time.monotonic() + BOUND_S
    while writer._busy:
        assert time.monotonic() < deadline, "no answer from Redis"
        await sleep(0.02)


def writer_events(logged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logged if e.get("log_namespace") == "agent_stats.writer"]


@pytest_twisted.ensureDeferred
async def test_an_outage_is_logged_when_it_starts_and_when_it_ends_not_at_every_retry(
    tmp_path: Path,
) -> None:
    server = start_redis_server(tmp_path / "redis")
    port = server.port
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    client = make_redis_client(RedisConfig(
        url=server.url, max_connections=4, pool_timeout_s=1.0, connect_timeout_s=0.5,
        socket_timeout_s=1.0, health_check_interval_s=1.0,
    ), decode_responses=True)
    try:
        clock = Clock()
        clock.advance(T0)
        writer = StoreWriter(StatsStore(client, SLA), clock)
        writer.submit(HeartbeatWrite(T0, None))
        await settle(writer)
        assert writer.pending == 0 and writer.failures == 0

        server.stop()
        for i in range(1, RETRIES + 1):
            writer.submit(HeartbeatWrite(T0 + i, None))
            await settle(writer)
            clock.advance(WRITE_RETRY_S)  # the retry
        await settle(writer)
        assert writer.failures >= RETRIES
        events = writer_events(logged)
        assert [e["log_level"] for e in events] == [LogLevel.warn]  # once, not per retry
        assert "does not take writes" in events[0]["log_format"]
        assert writer.away_since == T0  # virtual: the first failed batch, before any retry

        server = start_redis_server(tmp_path / "redis", port=port)
        deadline = time.monotonic() + BOUND_S
        while writer.pending:
            assert time.monotonic() < deadline, "the held writes never went through"
            clock.advance(WRITE_RETRY_S)
            await sleep(0.05)
            await settle(writer)
        await settle(writer)
        events = writer_events(logged)
        assert [e["log_level"] for e in events] == [LogLevel.warn, LogLevel.info]
        back = events[1]
        assert "takes writes again" in back["log_format"]
        assert back["failed"] == writer.failures
        assert back["held"] == RETRIES  # every heartbeat submitted while away
        assert back["away"] >= RETRIES * WRITE_RETRY_S
        assert writer.away_since is None
        stored = await as_deferred(client.hgetall("shenava:{stats}:heartbeat"))
        assert float(stored["at"]) == T0 + RETRIES  # the last one written
    finally:
        globalLogPublisher.removeObserver(logged.append)
        await as_deferred(client.aclose())
        server.stop()

"""The daemon's Redis client: a small blocking pool absorbs a burst; timeouts are set."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest_twisted
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError as RedisConnectionError
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher
from zope.interface import implementer

from routing.callback_store import CallbackStore
from routing.callbacks import DialPolicy, abandon_reason
from shenava.config import RedisConfig
from shenava.redis_client import (
    PoolExhaustedError,
    SayingBlockingPool,
    client_options,
    make_redis_client,
)
from shenava.redis_server import free_port
from shenava_base.aio import as_deferred

BURST = 500
POLICY = DialPolicy(lease_ms=60_000)


def test_options_carry_the_configured_timeouts() -> None:
    config = RedisConfig(url="redis://127.0.0.1:1/0", connect_timeout_s=1.5, socket_timeout_s=3.0,
                         health_check_interval_s=7.0, max_connections=9, pool_timeout_s=4.0)
    assert client_options(config)["socket_connect_timeout"] == 1.5
    client = make_redis_client(config)
    pool = client.connection_pool
    assert isinstance(pool, BlockingConnectionPool)
    assert pool.max_connections == 9 and pool.timeout == 4.0
    kwargs = pool.connection_kwargs
    assert kwargs["socket_timeout"] == 3.0 and kwargs["health_check_interval"] == 7.0


@pytest_twisted.ensureDeferred
async def test_a_burst_of_500_abandons_through_a_pool_of_4_loses_nothing(redis_url: str) -> None:
    # 500 hang-ups at once, each raising a callback flag (a WATCH transaction
    # holding a connection): the pool of 4 makes them queue, none fails.
    client = make_redis_client(RedisConfig(url=redis_url, max_connections=4, pool_timeout_s=30.0))
    try:
        store = CallbackStore(client, "shenava", POLICY)
        t0 = 1_740_000_000.0

        async def hang_up(i: int) -> object:
            reason = abandon_reason(f"call-{i}", t0, 60, POLICY)
            assert reason is not None
            return await store.raise_reason(f"0912{i:07d}", reason, t0 + 60)

        results = await as_deferred(
            asyncio.gather(*(hang_up(i) for i in range(BURST)), return_exceptions=True)
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == []
        check = AsyncRedis.from_url(redis_url, decode_responses=True)
        try:
            assert await as_deferred(check.hlen("shenava:{callbacks}:open")) == BURST
        finally:
            await as_deferred(check.aclose())
    finally:
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_a_unix_socket_url_works(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if sock.exists():
                break
            await as_deferred(asyncio.sleep(0.02))
        client = make_redis_client(RedisConfig(url=f"unix://{sock}"))
        assert await as_deferred(client.ping())
        await as_deferred(client.aclose())
    finally:
        server.terminate()
        server.wait(timeout=10)


@implementer(ILogObserver)
class _Events:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "shenava.redis_client":
            self.events.append(event)

    def at(self, level: LogLevel) -> list[dict[str, Any]]:
        return [e for e in self.events if e["log_level"] is level]


@pytest_twisted.ensureDeferred
async def test_a_full_pool_is_said_once_per_outage_with_a_clear_error(redis_url: str) -> None:
    now = [50.0]
    pool = SayingBlockingPool.from_url(redis_url, max_connections=2, timeout=0.2, now=lambda: now[0])
    client = AsyncRedis.from_pool(pool)
    events = _Events()
    globalLogPublisher.addObserver(events)
    try:
        held = [await as_deferred(pool.get_connection()) for _ in range(2)]  # Redis "slow": both busy
        results = await as_deferred(asyncio.gather(*(client.get(f"k{i}") for i in range(6)),
                                                   return_exceptions=True))
        assert all(isinstance(r, PoolExhaustedError) for r in results)
        assert all(isinstance(r, RedisConnectionError) for r in results)  # the journal keeps the write
        assert "no free Redis connection within 0.2 s (all 2 in use" in str(results[0])
        [warning] = events.at(LogLevel.warn)  # one warning for six failures, no traceback
        assert "Redis connections unavailable" in formatEvent(warning)
        assert not any("log_failure" in e for e in events.events)
        for connection in held:
            await as_deferred(pool.release(connection))
        now[0] += 3.5
        assert await as_deferred(client.set("k", "v")) is True
        [back] = events.at(LogLevel.info)
        assert back["count"] == 6 and back["seconds"] == 3.5
    finally:
        globalLogPublisher.removeObserver(events)
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_redis_refusing_connections_is_not_called_a_full_pool() -> None:
    client = make_redis_client(RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0", connect_timeout_s=0.5))
    events = _Events()
    globalLogPublisher.addObserver(events)
    try:
        try:
            await as_deferred(client.get("k"))
        except RedisConnectionError as exc:
            assert not isinstance(exc, PoolExhaustedError)
        else:
            raise AssertionError("Redis answered on a closed port")
        assert events.events == []  # said by whoever called (the journal), not as a pool outage
    finally:
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_a_pooled_connection_the_server_closed_is_made_again_at_checkout(redis_url: str) -> None:
    # A connection taken from the pool is used as is only if it is up with nothing unread.
    client = make_redis_client(RedisConfig(url=redis_url, max_connections=2))
    other = AsyncRedis.from_url(redis_url)
    try:
        assert await as_deferred(client.set("k", "v")) is True
        assert await as_deferred(other.client_kill_filter(_type="normal", skipme=True)) >= 1
        await as_deferred(asyncio.sleep(0.05))  # the close reaches the pooled connection
        connection = await as_deferred(client.connection_pool.get_connection())
        # connected again at checkout (not handed out closed, to fail the next command)
        assert connection.is_connected and not connection._reader.at_eof()
        await as_deferred(client.connection_pool.release(connection))
        assert await as_deferred(client.get("k")) == b"v"
    finally:
        await as_deferred(other.aclose())
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_a_write_that_must_wait_keeps_redis_pys_timeout(redis_url: str) -> None:
    # The socket's buffer full (the stream paused for writing): the command is not
    # written past it but waits under the socket timeout, as redis-py does.
    from redis.exceptions import TimeoutError as RedisTimeoutError

    client = make_redis_client(RedisConfig(url=redis_url, socket_timeout_s=0.2, max_connections=2))
    try:
        assert await as_deferred(client.set("k", "v")) is True
        connection = await as_deferred(client.connection_pool.get_connection())
        protocol = connection._writer.transport.get_protocol()
        protocol._paused = True  # what pause_writing() does when the buffer is full
        try:
            await as_deferred(connection.send_command("GET", "k"))
        except RedisTimeoutError as exc:
            assert "writing" in str(exc)
        else:
            raise AssertionError("written past a full buffer")
        await as_deferred(client.connection_pool.release(connection))
        assert await as_deferred(client.get("k")) == b"v"  # that connection was dropped, a new one made
    finally:
        await as_deferred(client.aclose())

"""Shared fixtures: one real redis-server for the session, a clean database per test.

Async tests run on Twisted's asyncio reactor (``--reactor=asyncio``)::

    @pytest_twisted.ensureDeferred
    async def test_x(redis_client: Redis) -> None:
        await as_deferred(redis_client.set("k", "v"))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_twisted
import redis
from hypothesis import settings
from redis.asyncio import Redis

from shenava.redis_server import RedisServer, start_redis_server
from shenava_base.aio import as_deferred

pytest_plugins = ["tests.cluster_fixtures"]  # redis_cluster, cluster_url, cluster_client

# Property tests judge properties, never speed: Hypothesis' default 200-ms
# deadline per example fails them on a loaded CI machine (it did:
# test_callbacks.py under load). Speed is measured in benchmarks/.
settings.register_profile("shenava", deadline=None)
settings.load_profile("shenava")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server (AOF on) for the whole test session."""
    server = start_redis_server(tmp_path_factory.mktemp("redis-session"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, with every database flushed before the test."""
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as client:
        client.flushall()
    return redis_server.url


@pytest_twisted.async_yield_fixture()
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """A ``redis.asyncio`` client on a clean database (responses decoded to str)."""
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await as_deferred(client.aclose())


@pytest.fixture
def shipped_etc() -> Path:
    """The repository's ``etc/`` folder (example config, Asterisk snippets)."""
    return Path(__file__).resolve().parent.parent / "etc"

"""A real 3-master Redis Cluster on loopback for the session, flushed before each test.

Loaded from ``tests/conftest.py`` (``pytest_plugins``). Tests that use it are
skipped when ``redis-server``/``redis-cli`` are missing, like the Sentinel tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_twisted
import redis
from redis.asyncio.cluster import RedisCluster

from shenava.config import RedisConfig
from shenava.redis_client import make_redis_client
from shenava.redis_cluster_server import RedisClusterServers, cluster_available, start_redis_cluster
from shenava_base.aio import as_deferred


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """Three cluster-enabled redis-servers sharing the 16,384 slots (no replicas)."""
    if not cluster_available():
        pytest.skip("redis-server and redis-cli are needed for a cluster")
    cluster = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: RedisClusterServers) -> str:
    """The cluster's ``redis+cluster://`` URL, every master flushed before the test."""
    for host, port in redis_cluster.addresses:
        with redis.Redis(host=host, port=port, socket_timeout=5) as node:
            node.flushall()
    return redis_cluster.url


@pytest_twisted.async_yield_fixture()
async def cluster_client(cluster_url: str) -> AsyncIterator[RedisCluster]:
    """The daemon's own cluster client (``shenava.redis_client``) on the clean cluster."""
    client = make_redis_client(RedisConfig(url=cluster_url))
    try:
        yield client
    finally:
        await as_deferred(client.aclose())

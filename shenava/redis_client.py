"""The one place a ``redis.asyncio`` client for the daemon is built.

Every client has a bounded *blocking* pool (``BlockingConnectionPool``): when
all ``redis.max_connections`` are busy, a caller waits up to
``redis.pool_timeout_s`` for one to come back instead of failing at once (a
burst of hang-ups queues for a moment, it does not lose records). Sockets have
a connect and a read timeout and idle connections are checked
(``health_check_interval``) before use, so a Redis that went away is noticed
on the next command instead of after a long TCP timeout. Whatever still
fails is a ``RedisError`` that :mod:`shenava.journal` catches.

With Redis Sentinel (``redis+sentinel://`` URLs or ``redis.sentinels``) the
pool asks the sentinels for the current master before each new connection
(redis-py's ``SentinelConnectionPool``, made blocking the same way), so a
failover costs the commands in flight, which the journal keeps, and nothing
else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from shenava.config import SENTINEL_SCHEME, RedisConfig, parse_sentinel_url

__all__ = ["BlockingSentinelPool", "client_options", "make_redis_client"]


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel-managed pool that waits for a free connection like ``BlockingConnectionPool``."""


def client_options(config: RedisConfig) -> dict[str, Any]:
    """The socket and pool settings every connection gets."""
    return {
        "socket_connect_timeout": config.connect_timeout_s,
        "socket_timeout": config.socket_timeout_s,
        "socket_keepalive": True,
        "health_check_interval": config.health_check_interval_s,
        "retry_on_timeout": False,
    }


def make_redis_client(config: RedisConfig, *, decode_responses: bool = False, url: str | None = None) -> Redis:
    """A client for ``config`` (``url`` overrides ``config.url``: the demo's embedded server)."""
    target = config.url if url is None else url
    options = client_options(config)
    if target.startswith(SENTINEL_SCHEME) or config.sentinels:
        return _sentinel_client(config, target, options, decode_responses)
    pool = BlockingConnectionPool.from_url(
        target,
        max_connections=config.max_connections,
        timeout=config.pool_timeout_s,
        decode_responses=decode_responses,
        **options,
    )
    return Redis.from_pool(pool)


def _sentinel_client(config: RedisConfig, url: str, options: dict[str, Any], decode: bool) -> Redis:
    if url.startswith(SENTINEL_SCHEME):
        sentinels, service, db, password = parse_sentinel_url(url)
    else:
        sentinels, service = config.sentinels, config.sentinel_service
        parsed = urlparse(url) if url else None
        password = parsed.password if parsed is not None else None
        path = (parsed.path if parsed is not None else "").strip("/")
        db = int(path) if path.isdigit() else 0
    sentinel_options: dict[str, Any] = {
        "socket_connect_timeout": config.connect_timeout_s,
        "socket_timeout": config.socket_timeout_s,
    }
    sentinel = Sentinel(list(sentinels), sentinel_kwargs=sentinel_options, **sentinel_options)
    client: Redis = sentinel.master_for(
        service,
        redis_class=Redis,
        connection_pool_class=BlockingSentinelPool,
        max_connections=config.max_connections,
        timeout=config.pool_timeout_s,
        db=db,
        password=password,
        decode_responses=decode,
        **options,
    )
    return client

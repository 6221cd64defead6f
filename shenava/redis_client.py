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

With Redis Cluster (``redis+cluster://`` URLs or ``redis.cluster_nodes``) the
client is redis-py's ``redis.asyncio.RedisCluster``: it learns the slot map
from the seed nodes and sends each command to the master of its key's slot.
Every key family's hash tag (:mod:`shenava_base.sites`) keeps each transaction and
script inside one slot. Its pools are per node and not blocking: a node whose
``max_connections`` are all busy fails the command, which the journal keeps.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from shenava.config import (
    CLUSTER_SCHEME,
    SENTINEL_SCHEME,
    RedisConfig,
    parse_cluster_url,
    parse_sentinel_url,
)

__all__ = ["BlockingSentinelPool", "client_options", "describe", "make_redis_client", "wait_for_redis"]

log = Logger()


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel-managed pool that waits for a free connection like ``BlockingConnectionPool``."""


def client_options(config: RedisConfig, *, tcp: bool = True) -> dict[str, Any]:
    """The socket and pool settings every connection gets (keepalive only over TCP)."""
    options: dict[str, Any] = {
        "socket_connect_timeout": config.connect_timeout_s,
        "socket_timeout": config.socket_timeout_s,
        "health_check_interval": config.health_check_interval_s,
        "retry_on_timeout": False,
    }
    if tcp:
        options["socket_keepalive"] = True
    return options


def make_redis_client(config: RedisConfig, *, decode_responses: bool = False, url: str | None = None) -> Redis:
    """A client for ``config`` (``url`` overrides ``config.url``: the demo's embedded server)."""
    target = config.url if url is None else url
    options = client_options(config, tcp=not target.startswith("unix://"))
    if target.startswith(SENTINEL_SCHEME) or config.sentinels:
        return _sentinel_client(config, target, options, decode_responses)
    if target.startswith(CLUSTER_SCHEME) or config.cluster_nodes:
        return _cluster_client(config, target, options, decode_responses)
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


def _cluster_client(config: RedisConfig, url: str, options: dict[str, Any], decode: bool) -> Redis:
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    if url.startswith(CLUSTER_SCHEME):
        nodes, password = parse_cluster_url(url)
    else:
        nodes = config.cluster_nodes
        parsed = urlparse(url) if url else None
        password = parsed.password if parsed is not None else None
    options = {k: v for k, v in options.items() if k != "retry_on_timeout"}
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        password=password,
        max_connections=config.max_connections,
        decode_responses=decode,
        **options,
    )
    # The daemon types its client as ``Redis``: the commands it uses are the same.
    return client  # type: ignore[return-value]


def describe(config: RedisConfig) -> str:
    """Where Redis is, for logs (never the password)."""
    if config.url.startswith(SENTINEL_SCHEME):
        sentinels, service, _db, _pw = parse_sentinel_url(config.url)
    elif config.sentinels:
        sentinels, service = config.sentinels, config.sentinel_service
    elif config.cluster:
        nodes = parse_cluster_url(config.url)[0] if config.url.startswith(CLUSTER_SCHEME) else config.cluster_nodes
        return "cluster via " + ",".join(f"{h}:{p}" for h, p in nodes)
    else:
        parsed = urlparse(config.url)
        if parsed.scheme == "unix":
            return f"unix:{parsed.path}"
        return f"{parsed.hostname or '?'}:{parsed.port or 6379}"
    return f"sentinel service {service} via " + ",".join(f"{h}:{p}" for h, p in sentinels)


def wait_for_redis(
    client: Redis, clock: Any, *, where: str, max_delay_s: float = 30.0, initial_delay_s: float = 0.5
) -> Deferred[None]:
    """PING until Redis answers, saying in the log that the daemon waits (and why it is safe).

    Fires once Redis answered; meanwhile every package retries on its own and
    records go to the journal, so nothing stored is discarded.
    """
    from shenava_base.aio import as_deferred

    done: Deferred[None] = Deferred()

    def attempt(delay: float, tries: int) -> None:
        d = as_deferred(client.ping())

        def ok(_: object) -> None:
            if tries:
                log.info("Redis at {where} answers after {tries} tries", where=where, tries=tries + 1)
            as_deferred(_log_durability(client, where)).addErrback(lambda f: None)
            done.callback(None)

        def failed(failure: Any) -> None:
            log.warn(
                "Redis at {where} is not reachable ({error}); waiting for it, next try in "
                "{delay:.1f} s. Stored state is kept; records are kept in the journal meanwhile",
                where=where, error=failure.getErrorMessage(), delay=delay,
            )
            clock.callLater(delay, attempt, min(max_delay_s, delay * 2), tries + 1)

        d.addCallbacks(ok, failed)

    attempt(initial_delay_s, 0)
    return done


async def _log_durability(client: Redis, where: str) -> None:
    """Say plainly, once at start, if the server's settings can lose what Shenava stores."""
    from shenava.redis_durability import SETTINGS, durability_notes

    settings: dict[str, str] = {}
    for name in SETTINGS:
        reply = await client.config_get(name)
        settings.update({_s(k): _s(v) for k, v in reply.items()})
    for note in durability_notes(settings):
        if not note.ok:
            log.warn("Redis at {where}: {message}", where=where, message=note.message)


def _s(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")

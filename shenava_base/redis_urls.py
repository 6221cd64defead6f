"""Redis URLs Shenava reads, and clients made from a URL alone (the command-line tools, the
transcription workers): the bottom floor, so every package may use them.

``redis://``, ``rediss://`` and ``unix://`` go to ``Redis.from_url``;
``redis+sentinel://[:password@]h1:p1,h2:p2/service[/db]`` gives a client of the
current master; ``redis+cluster://[:password@]h1:p1,h2:p2`` a cluster client.
The daemon's own client (bounded blocking pool, timeouts) is
:mod:`shenava.redis_client`'s; ``[redis]`` settings are parsed in :mod:`shenava.config`.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "CLUSTER_SCHEME",
    "SENTINEL_SCHEME",
    "async_client_from_url",
    "host_port",
    "parse_cluster_url",
    "parse_sentinel_url",
    "sync_client_from_url",
]

SENTINEL_SCHEME = "redis+sentinel://"
CLUSTER_SCHEME = "redis+cluster://"
HOST_RE = re.compile(r"^[A-Za-z0-9_.:%-]+$")
"""A host name or an IP address, as the config accepts them."""


def parse_sentinel_url(url: str) -> tuple[tuple[tuple[str, int], ...], str, int, str | None]:
    """``redis+sentinel://[:password@]h1:p1,h2:p2/service[/db]`` -> (sentinels, service, db, password).

    Raises ``ValueError`` with a reason an operator can act on.
    """
    rest = url[len(SENTINEL_SCHEME):]
    password: str | None = None
    if "@" in rest:
        auth, _, rest = rest.rpartition("@")
        password = auth.partition(":")[2] or None
    hosts, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise ValueError("a redis+sentinel:// URL needs the service name: redis+sentinel://host:port/mymaster")
    service = parts[0]
    db = 0
    if len(parts) > 1:
        if not parts[1].isdigit():
            raise ValueError("the database after the service name must be a number")
        db = int(parts[1])
    return tuple(host_port(h, 26379) for h in hosts.split(",")), service, db, password


def parse_cluster_url(url: str) -> tuple[tuple[tuple[str, int], ...], str | None]:
    """``redis+cluster://[:password@]h1:p1,h2:p2[/]`` -> (seed nodes, password)."""
    rest = url[len(CLUSTER_SCHEME):]
    password: str | None = None
    if "@" in rest:
        auth, _, rest = rest.rpartition("@")
        password = auth.partition(":")[2] or None
    hosts, _, path = rest.partition("/")
    if path.strip("/") not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0: redis+cluster://host:port,host:port")
    if not hosts:
        raise ValueError("a redis+cluster:// URL needs at least one node: redis+cluster://host:port")
    return tuple(host_port(h, 6379) for h in hosts.split(",")), password


def host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = text.strip(), str(default_port)
    if not host or not HOST_RE.match(host):
        raise ValueError(f"expected host:port, got {text!r}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected a port from 1 to 65535 in {text!r}")
    return host, int(port)


def sync_client_from_url(url: str, **options: Any) -> Any:
    """A blocking client for ``url`` (a cluster, a Sentinel-watched master, or one server)."""
    import redis

    if url.startswith(CLUSTER_SCHEME):
        from redis.cluster import ClusterNode, RedisCluster

        nodes, password = parse_cluster_url(url)
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in nodes],  # type: ignore[no-untyped-call]
            password=password, **options,
        )
    if url.startswith(SENTINEL_SCHEME):
        return sentinel_master(*parse_sentinel_url(url), **options)
    return redis.Redis.from_url(url, **options)


def sentinel_master(
    sentinels: tuple[tuple[str, int], ...], service: str, db: int, password: str | None, **options: Any
) -> Any:
    """A blocking client of ``service``'s current master, as the sentinels name it."""
    from redis.sentinel import Sentinel

    timeouts = {k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")}
    return Sentinel(list(sentinels), sentinel_kwargs=timeouts, **timeouts).master_for(
        service, db=db, password=password, **options
    )


def async_client_from_url(url: str, **options: Any) -> Any:
    """A ``redis.asyncio`` client for ``url`` (the command-line tools)."""
    if url.startswith(CLUSTER_SCHEME):
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        nodes, password = parse_cluster_url(url)
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes], password=password, **options)
    from redis.asyncio import Redis

    return Redis.from_url(url, **options)

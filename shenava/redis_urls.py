"""Clients for the tools and side stores that take a Redis URL (or the ``[redis]`` section).

``redis+cluster://`` and ``redis.cluster_nodes`` give a cluster client, Sentinel
settings a client of the current master (blocking clients), anything else what
``Redis.from_url`` gives. The daemon's own client is :mod:`shenava.redis_client`'s.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from shenava.config import RedisConfig
from shenava_base.redis_urls import (
    SENTINEL_SCHEME,
    async_client_from_url,
    parse_sentinel_url,
    sentinel_master,
    sync_client_from_url,
)

__all__ = ["LazyClient", "async_client_from_url", "sync_client", "sync_client_from_url"]


class LazyClient:
    """A blocking client made on its first use: a cluster client connects when it is made,
    and a store built while Redis is away must not fail the daemon's start."""

    def __init__(self, config: RedisConfig, **options: Any) -> None:
        self._config = config
        self._options = options
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = sync_client(self._config, **self._options)
        return getattr(self._client, name)


def _nodes(config: RedisConfig) -> tuple[list[tuple[str, int]], str | None]:
    from shenava.check_sites import cluster_seed

    return cluster_seed(config)


def sync_client(config: RedisConfig, **options: Any) -> Any:
    """A blocking client for ``config`` (users, the transcription worker)."""
    import redis

    if config.cluster:
        from redis.cluster import ClusterNode, RedisCluster

        nodes, password = _nodes(config)
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes], password=password, **options)
    if config.url.startswith(SENTINEL_SCHEME) or config.sentinels:
        if config.url.startswith(SENTINEL_SCHEME):
            sentinels, service, db, password = parse_sentinel_url(config.url)
        else:
            parsed = urlparse(config.url) if config.url else None
            sentinels, service = config.sentinels, config.sentinel_service
            password = parsed.password if parsed is not None else None
            path = (parsed.path if parsed is not None else "").strip("/")
            db = int(path) if path.isdigit() else 0
        return sentinel_master(tuple(sentinels), service, db, password, **options)
    return redis.Redis.from_url(config.url, **options)

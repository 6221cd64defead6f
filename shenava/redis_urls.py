"""Clients for the tools and side stores that take a Redis URL (or the ``[redis]`` section):
``redis+cluster://`` and ``redis.cluster_nodes`` give a cluster client, anything else what
``Redis.from_url`` gives. The daemon's own client is :mod:`shenava.redis_client`'s."""

from __future__ import annotations

from typing import Any

from shenava.config import CLUSTER_SCHEME, RedisConfig

__all__ = ["async_client_from_url", "sync_client", "sync_client_from_url"]


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
    return redis.Redis.from_url(config.url, **options)


def sync_client_from_url(url: str, **options: Any) -> Any:
    return sync_client(RedisConfig(url=url), **options)


def async_client_from_url(url: str, **options: Any) -> Any:
    """A ``redis.asyncio`` client for ``url`` (the command-line tools)."""
    if url.startswith(CLUSTER_SCHEME):
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        nodes, password = _nodes(RedisConfig(url=url))
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes], password=password, **options)
    from redis.asyncio import Redis

    return Redis.from_url(url, **options)

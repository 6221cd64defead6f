"""``[redis]``: its typed section and its parser."""

from __future__ import annotations

from dataclasses import dataclass, field

from shenava.config.checks import _PREFIX_RE, _name
from shenava_base.config_table import Table
from shenava_base.redis_urls import (
    CLUSTER_SCHEME,
    SENTINEL_SCHEME,
    parse_cluster_url,
    parse_sentinel_url,
)
from shenava_base.redis_urls import host_port as _host_port


@dataclass(frozen=True)
class RedisConfig:
    """Where state lives. An empty ``url`` means "start an embedded redis-server" (demo only).

    The client (``shenava.redis_client.make_redis_client``) has a bounded
    *blocking* pool: a caller waits up to ``pool_timeout_s`` for a free
    connection instead of failing at once, and every socket has a connect and
    a read timeout, so a slow or absent Redis turns into an error the durable
    journal catches, never into a hang.
    """

    url: str = field(default="", repr=False)  # may carry a password
    key_prefix: str = "shenava"
    sentinels: tuple[tuple[str, int], ...] = ()
    """Redis Sentinel addresses (``redis+sentinel://`` URLs fill this too)."""
    sentinel_service: str = "mymaster"
    cluster_nodes: tuple[tuple[str, int], ...] = ()
    """Redis Cluster seed nodes (``redis+cluster://`` URLs fill this too): a cluster client."""
    max_connections: int = 64
    pool_timeout_s: float = 5.0
    connect_timeout_s: float = 2.0
    socket_timeout_s: float = 5.0
    health_check_interval_s: float = 15.0
    startup_retry_max_s: float = 30.0
    """Longest pause between tries while the daemon waits for Redis at start-up."""
    batch_turns: bool = True
    """Commands issued in one turn of the event loop go to Redis as one pipeline."""
    wait_replicas: int = 0
    """A journal entry leaves the journal only once this many replicas have it (``WAIT``)."""

    @property
    def embedded(self) -> bool:
        return not self.url and not self.sentinels and not self.cluster_nodes

    @property
    def cluster(self) -> bool:
        return bool(self.cluster_nodes) or self.url.startswith(CLUSTER_SCHEME)




def _redis_url(value: str) -> str | None:
    if value == "" or value.startswith(("redis://", "rediss://", "unix://")):
        return None
    if value.startswith(SENTINEL_SCHEME):
        try:
            parse_sentinel_url(value)
        except ValueError as exc:
            return str(exc)
        return None
    if value.startswith(CLUSTER_SCHEME):
        try:
            parse_cluster_url(value)
        except ValueError as exc:
            return str(exc)
        return None
    return (
        "expected a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL, "
        "or \"\" for an embedded server (demo only)"
    )


def _sentinel_address(value: str) -> str | None:
    try:
        _host_port(value, 26379)
    except ValueError as exc:
        return str(exc)
    return None


def _key_prefix(value: str) -> str | None:
    if _PREFIX_RE.match(value):
        return None
    return "expected letters, digits and _ . : - (no braces: the key's hash tag comes after the prefix)"


def _cluster_node(value: str) -> str | None:
    try:
        _host_port(value, 6379)
    except ValueError as exc:
        return str(exc)
    return None


def _check_cluster(
    t: Table, url: str, sentinels: tuple[tuple[str, int], ...], cluster: tuple[tuple[str, int], ...]
) -> None:
    """A cluster is named once (URL or list), and never together with Sentinel."""
    if cluster and url.startswith(CLUSTER_SCHEME):
        raise t.error("cluster_nodes", f"give the cluster nodes either here or in {t.key_path('url')}, not both")
    if (cluster or url.startswith(CLUSTER_SCHEME)) and (sentinels or url.startswith(SENTINEL_SCHEME)):
        raise t.error("cluster_nodes", "Redis Cluster and Redis Sentinel exclude each other: name one")
    if cluster and url and not url.startswith(("redis://", "rediss://")):
        raise t.error("url", "with redis.cluster_nodes, url may only carry the password (redis://:pw@/)")
    if (cluster or url.startswith(CLUSTER_SCHEME)) and t.get_int("wait_replicas", 0, minimum=0, maximum=16):
        # WAIT covers its own connection's writes; a cluster spreads the journal's over masters
        raise t.error("wait_replicas", "not available with Redis Cluster (WAIT confirms one master's writes only)")


def parse_redis(t: Table) -> RedisConfig:
    d = RedisConfig()
    url = t.get_str("url", d.url, non_empty=False, check=_redis_url)
    sentinels = tuple(
        _host_port(s, 26379) for s in t.get_str_list("sentinels", (), check=_sentinel_address)
    )
    if sentinels and url.startswith(SENTINEL_SCHEME):
        raise t.error("sentinels", f"give the sentinels either here or in {t.key_path('url')}, not both")
    service = t.get_str("sentinel_service", d.sentinel_service, check=_name)
    cluster = tuple(_host_port(s, 6379) for s in t.get_str_list("cluster_nodes", (), check=_cluster_node))
    _check_cluster(t, url, sentinels, cluster)
    if sentinels and url and not url.startswith(("redis://", "rediss://")):
        raise t.error("url", "with redis.sentinels, url may only carry the password and database (redis://:pw@/0)")
    connect = t.get_float("connect_timeout_s", d.connect_timeout_s, positive=True, maximum=300)
    return RedisConfig(
        url=url,
        key_prefix=t.get_str("key_prefix", d.key_prefix, check=_key_prefix),
        sentinels=sentinels,
        sentinel_service=service,
        cluster_nodes=cluster,
        max_connections=t.get_int("max_connections", d.max_connections, minimum=2, maximum=10_000),
        pool_timeout_s=t.get_float("pool_timeout_s", d.pool_timeout_s, positive=True, maximum=300),
        connect_timeout_s=connect,
        socket_timeout_s=t.get_float("socket_timeout_s", d.socket_timeout_s, positive=True, maximum=300),
        health_check_interval_s=t.get_float(
            "health_check_interval_s", d.health_check_interval_s, minimum=0, maximum=3600
        ),
        startup_retry_max_s=t.get_float("startup_retry_max_s", d.startup_retry_max_s, positive=True, maximum=3600),
        wait_replicas=t.get_int("wait_replicas", d.wait_replicas, minimum=0, maximum=16),
        batch_turns=t.get_bool("batch_turns", d.batch_turns),
    )

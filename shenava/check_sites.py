"""``shenava check-config`` on sites and Redis Cluster (docs/scaling.md, "Sites and Redis Cluster").

Without Redis: which site this daemon is. With ``--redis`` on a cluster:
the cluster's state, every master's durability settings, and the sites
already registered in Redis.
"""

from __future__ import annotations

import json
from typing import Any

from shenava.config import CLUSTER_SCHEME, Config, RedisConfig, parse_cluster_url
from shenava_base.sites import site_label, sites_key

__all__ = ["check_sites", "cluster_seed", "check_cluster"]


def check_sites(config: Config, *, redis: bool = False) -> list[Any]:
    from shenava.check_config.findings import _ok

    site = config.site.id
    if not site and not config.redis.cluster:
        return []  # a single-site install: nothing to say
    findings = [_ok("site.id", (
        f"site {site!r}: its statistics, live figures, call state and leader lease are its own "
        "keys; complaints, callback flags and abuse reports are shared with the other sites"
    ) if site else "the default site (site.id \"\"): the keys of a single-daemon install")]
    if redis and config.redis.cluster:
        findings.extend(check_cluster(config))
    return findings


def cluster_seed(config: RedisConfig) -> tuple[list[tuple[str, int]], str | None]:
    """The seed nodes and password of a cluster config."""
    if config.url.startswith(CLUSTER_SCHEME):
        nodes, password = parse_cluster_url(config.url)
        return list(nodes), password
    from urllib.parse import urlparse

    password = urlparse(config.url).password if config.url else None
    return list(config.cluster_nodes), password


def check_cluster(config: Config, timeout_s: float = 2.0) -> list[Any]:
    """``cluster_state``, each master's replicas, and the register of sites (blocking)."""
    from redis.cluster import ClusterNode, RedisCluster
    from redis.exceptions import RedisError

    from shenava.check_config.findings import _error, _ok, _warn

    nodes, password = cluster_seed(config.redis)
    where = "cluster via " + ",".join(f"{h}:{p}" for h, p in nodes)
    try:
        client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes], password=password,
                              socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True)
    except (RedisError, OSError) as exc:
        return [_error("redis.cluster_unreachable", f"cannot reach the cluster: {exc}", where)]
    try:
        info = client.cluster_info()
        state = info.get("cluster_state") if isinstance(info, dict) else None
        findings = [(_ok if state == "ok" else _error)("redis.cluster_state", f"cluster_state {state}", where)]
        masters = client.get_primaries()
        replicas = client.get_replicas()
        findings.append((_ok if replicas else _warn)("redis.cluster_replicas", (
            f"{len(masters)} masters, {len(replicas)} replicas" + (
                "" if replicas else ": a master that fails takes its slots' keys with it; give each a replica")
        ), where))
        raw = client.hgetall(sites_key(config.redis.key_prefix))
        known = {str(k): json.loads(v) for k, v in raw.items()}
        names = ", ".join(f"{site_label(s)} ({e.get('name', '')})" for s, e in sorted(known.items())) or "none yet"
        findings.append(_ok("site.registered", f"sites registered in Redis: {names}", where))
        return findings
    except (RedisError, OSError) as exc:
        return [_error("redis.cluster_unreachable", f"cannot read the cluster: {exc}", where)]
    finally:
        client.close()

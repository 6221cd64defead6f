"""Sites and Redis Cluster in the checks (docs/scaling.md, "Sites and Redis Cluster").

``shenava check-config``: without Redis, which site this daemon is; with
``--redis`` on a cluster, the cluster's state, every master's replicas, and the
sites already registered in Redis (:func:`check_sites`).

``shenava check-sites CONFIG...``: whether the sites of one centre agree
(:func:`check_centre`). The centre's service level is summed over the sites'
counters, read with each reader's ``[sla]``: sites with another threshold,
window or way of counting would be summed into a figure that means nothing,
so every ``[sla]`` setting must be the same (``utc_offset_s`` aside: it is each
site's time zone). An agent id must belong to one site: two sites' ledgers for
one id would count one person twice in the centre's figures, and each daemon
would take the other's agent for its own. With ``--redis`` the same is checked
against what the running daemons registered (their ``[sla]``, in the register
of sites) and stored (each site's agents). Stable codes:

=========================  ========  ===================================================
code                       severity  what
=========================  ========  ===================================================
``sites.sla_differs``      error     a ``[sla]`` setting differs between two sites
``sites.agent_id_shared``  error     one agent id at two sites (configs, or in Redis)
``sites.same_id``          error     two configs are one site but differ (not a pair)
``sites.redis_differs``    warning   the configs do not name one Redis and key prefix
``sites.timezone_differs`` warning   sites in different time zones ("today" differs)
``sites.sla_unknown``      warning   a registered site did not say its ``[sla]`` (older)
``sites.agree``            ok        what was compared
=========================  ========  ===================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shenava.config import CLUSTER_SCHEME, Config, RedisConfig, parse_cluster_url
from shenava_base.sites import site_label, sites_key

__all__ = ["CentreSite", "check_centre", "check_sites", "check_cluster", "cluster_seed", "compare_sites"]


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


# -- shenava check-sites ---------------------------------------------------------------


@dataclass(frozen=True)
class CentreSite:
    """One site as a check sees it: from a config file, or from the register in Redis."""

    site: str
    where: str
    sla: dict[str, Any] | None
    timezone: str
    agents: frozenset[str]
    registered: bool = False
    """From the register in Redis (what a running daemon said), not from a config file."""


def _site_of(config: Config, where: str) -> CentreSite:
    from agent_stats.centre import sla_settings

    return CentreSite(config.site.id, where, sla_settings(config.sla), config.site.timezone,
                      frozenset(a.id for a in config.agents))


def _redis_identity(config: RedisConfig) -> tuple[Any, ...]:
    return (config.url, tuple(config.cluster_nodes), tuple(config.sentinels), config.key_prefix)


def compare_sites(sites: Sequence[CentreSite]) -> list[Any]:
    """Errors and warnings about sites that cannot be one centre (pure; the checks' core).

    Entries of one site id are one site: two configs of it (an active/standby pair)
    must agree; its agents are all its entries' (the configs' and those stored)."""
    from shenava.check_config.findings import _error, _ok, _warn

    findings: list[Any] = []
    configs: dict[str, CentreSite] = {}
    agents: dict[str, set[str]] = {}
    where: dict[str, list[str]] = {}
    zones: dict[str, str] = {}
    for entry in sites:
        agents.setdefault(entry.site, set()).update(entry.agents)
        where.setdefault(entry.site, []).append(entry.where)
        if entry.timezone:
            zones.setdefault(entry.site, entry.timezone)
        if entry.registered:
            if entry.sla is None:
                findings.append(_warn("sites.sla_unknown", (
                    f"site {site_label(entry.site)!r} did not register its [sla] settings (a daemon of "
                    "an earlier version): restart it to have them compared"), entry.where))
            continue
        first = configs.setdefault(entry.site, entry)
        if first is not entry and (first.sla != entry.sla or first.agents != entry.agents):
            findings.append(_error("sites.same_id", (
                f"{first.where} and {entry.where} are both site {site_label(entry.site)!r} but their "
                "[sla] or [[agents]] differ: an active/standby pair shares one site's settings; "
                "different sites need different [site] id"), entry.where))
    known = [s for s in sites if s.sla is not None]
    if known:
        reference = known[0]
        for entry in known[1:]:
            assert entry.sla is not None and reference.sla is not None
            for key in sorted(set(reference.sla) | set(entry.sla)):
                mine, theirs = reference.sla.get(key), entry.sla.get(key)
                if mine != theirs:
                    findings.append(_error("sites.sla_differs", (
                        f"sla.{key} is {mine!r} at site {site_label(reference.site)!r} ({reference.where}) "
                        f"but {theirs!r} at site {site_label(entry.site)!r} ({entry.where}): the centre's "
                        "service level sums every site's calls, so every site must count them alike"),
                        entry.where))
    if len(set(zones.values())) > 1:
        findings.append(_warn("sites.timezone_differs", (
            "the sites are in different time zones (" + ", ".join(
                f"{site_label(s)}: {z}" for s, z in sorted(zones.items())) + "): each daemon reads "
            "the centre's \"today\" by its own midnight")))
    owners: dict[str, list[str]] = {}
    for site, ids in agents.items():
        for agent in ids:
            owners.setdefault(agent, []).append(site)
    for agent, at in sorted(owners.items()):
        if len(at) > 1:
            findings.append(_error("sites.agent_id_shared", (
                f"agent id {agent!r} is at " + " and ".join(
                    f"site {site_label(s)!r} ({', '.join(dict.fromkeys(where[s]))})" for s in sorted(at))
                + ": an agent id must be unique across the centre (one person, one ledger, one "
                "site's daemon)")))
    if not any(f.severity.value == "error" for f in findings):
        findings.append(_ok("sites.agree", (
            f"{len(agents)} site(s) ({', '.join(site_label(s) for s in sorted(agents))}): the same "
            f"[sla] settings, {len(owners)} agent id(s), none at two sites")))
    return findings


def check_centre(paths: Sequence[Path], *,
                 registered: Callable[[Config], list[CentreSite]] | None = None) -> list[Any]:
    """``shenava check-sites``: the configs of a centre's sites (and, given ``registered``,
    what the running daemons registered and stored in their shared Redis, as it reads it
    with the first config: :func:`shenava.check_config.run.read_registered`) agree."""
    from shenava.check_config.findings import CONFIG_INVALID, _error, _warn
    from shenava.config import ConfigError, load_config

    configs: list[tuple[Path, Config]] = []
    findings: list[Any] = []
    for path in paths:
        try:
            configs.append((path, load_config(path)))
        except ConfigError as exc:
            findings.append(_error(CONFIG_INVALID, str(exc), path))
    if findings or not configs:
        return findings
    first_path, first = configs[0]
    for path, config in configs[1:]:
        if _redis_identity(config.redis) != _redis_identity(first.redis):
            findings.append(_warn("sites.redis_differs", (
                f"{path} names another Redis or key prefix than {first_path} (or the same one "
                "written differently): the sites of one centre share one Redis (or cluster) and "
                "redis.key_prefix"), path))
    sites = [_site_of(config, str(path)) for path, config in configs]
    if registered is not None:
        sites.extend(registered(first))
    return findings + compare_sites(sites)

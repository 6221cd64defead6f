"""Is the operator's Redis set up to keep what Shenava stores? (``check-config --redis``, and
the daemon's log once Redis answers.)

The complaint register, the callback flags and the voicemail queue live in
Redis, so its own durability settings decide what survives a crash of the
Redis host:

- ``appendonly yes``: without the AOF only the last RDB snapshot survives a
  restart (minutes of records);
- ``appendfsync always`` loses nothing Redis acknowledged; ``everysec`` (Redis'
  default) can lose up to a second of acknowledged writes on a power loss or a
  ``kill -9``, which Shenava's journal no longer holds; ``no`` leaves it to the
  kernel (up to ~30 s);
- ``maxmemory-policy noeviction``: any other policy lets Redis *delete*
  complaints to make room; with ``noeviction`` a full Redis refuses writes,
  and the journal keeps them until there is room again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shenava.config import SENTINEL_SCHEME, RedisConfig, parse_sentinel_url

__all__ = ["DurabilityNote", "durability_notes", "read_settings", "replica_note"]

SETTINGS = ("appendonly", "appendfsync", "maxmemory-policy")


@dataclass(frozen=True, slots=True)
class DurabilityNote:
    ok: bool
    code: str
    message: str


REPLICAS = "connected_replicas"
"""The key ``read_settings`` adds for the replicas attached to the master (``INFO replication``)."""


def durability_notes(settings: Mapping[str, str], wait_replicas: int = 0) -> list[DurabilityNote]:
    """What to say about the server's settings (pure: the values of ``CONFIG GET``, and the
    replicas attached when ``redis.wait_replicas`` asks for some)."""
    notes: list[DurabilityNote] = []
    if wait_replicas:
        notes.append(replica_note(settings.get(REPLICAS), wait_replicas))
    aof = settings.get("appendonly", "")
    if aof != "yes":
        notes.append(DurabilityNote(False, "redis.appendonly", (
            f"appendonly is {aof or 'unknown'!r}: a Redis restart keeps only its last snapshot, and "
            "complaints, flags and voicemails stored since are lost; set `appendonly yes`")))
    else:
        notes.append(DurabilityNote(True, "redis.appendonly", "appendonly yes"))
    fsync = settings.get("appendfsync", "")
    if fsync == "always":
        notes.append(DurabilityNote(True, "redis.appendfsync", "appendfsync always"))
    elif fsync == "everysec":
        notes.append(DurabilityNote(False, "redis.appendfsync", (
            "appendfsync is 'everysec': a power loss or kill -9 of the Redis host can lose up to "
            "1 s of records Redis already confirmed; set `appendfsync always` to lose none")))
    else:
        notes.append(DurabilityNote(False, "redis.appendfsync", (
            f"appendfsync is {fsync or 'unknown'!r}: the kernel decides when records reach the disk "
            "(up to ~30 s lost on a crash); set `appendfsync always`")))
    policy = settings.get("maxmemory-policy", "")
    if policy == "noeviction":
        notes.append(DurabilityNote(True, "redis.maxmemory_policy", "maxmemory-policy noeviction"))
    else:
        notes.append(DurabilityNote(False, "redis.maxmemory_policy", (
            f"maxmemory-policy is {policy or 'unknown'!r}: when memory is full Redis deletes keys, "
            "complaints included; set `maxmemory-policy noeviction` (a full Redis then refuses "
            "writes and Shenava keeps them in its journal)")))
    return notes


def replica_note(attached: str | None, wait_replicas: int) -> DurabilityNote:
    if attached is not None and attached.isdigit() and int(attached) >= wait_replicas:
        return DurabilityNote(True, "redis.wait_replicas", (
            f"{attached} replica(s) attached (redis.wait_replicas = {wait_replicas})"))
    return DurabilityNote(False, "redis.wait_replicas", (
        f"redis.wait_replicas = {wait_replicas} but the master has {attached or 'unknown'} "
        "replica(s) attached: until enough attach, records are stored on the master only "
        "(counted in shenava_journal_unreplicated, an error in the log) and a failover can "
        "lose them; attach a replica, or set wait_replicas to the replicas you run"))


def read_settings(config: RedisConfig, timeout_s: float = 2.0) -> dict[str, str]:
    """``CONFIG GET`` of the durability settings on the master (blocking; raises ``RedisError``)."""
    import redis
    from redis.sentinel import Sentinel

    client: Any
    if config.url.startswith(SENTINEL_SCHEME) or config.sentinels:
        if config.url.startswith(SENTINEL_SCHEME):
            sentinels, service, db, password = parse_sentinel_url(config.url)
        else:
            sentinels, service, db, password = config.sentinels, config.sentinel_service, 0, None
        sentinel = Sentinel(list(sentinels), socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        client = sentinel.master_for(service, db=db, password=password, socket_timeout=timeout_s,
                                     decode_responses=True)
    elif config.cluster:
        # One master's settings stand for the cluster's (check-config also checks the cluster).
        from shenava.check_sites import cluster_seed

        nodes, password = cluster_seed(config)
        host, port = nodes[0]
        client = redis.Redis(host=host, port=port, password=password, socket_timeout=timeout_s,
                             socket_connect_timeout=timeout_s, decode_responses=True)
    else:
        client = redis.Redis.from_url(config.url, socket_timeout=timeout_s,
                                      socket_connect_timeout=timeout_s, decode_responses=True)
    try:
        found: dict[str, str] = {}
        for name in SETTINGS:
            found.update(client.config_get(name))
        if config.wait_replicas:
            from shenava.replicas import attached_replicas

            found[REPLICAS] = str(attached_replicas(client.info("replication")))
        return found
    finally:
        client.close()

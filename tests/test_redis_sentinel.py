"""Redis Sentinel: a master, a replica and three sentinels on loopback; the master is
killed (SIGKILL) under traffic and a replica takes over; nothing is lost or doubled.

Callback reasons are raised through the journal (as the daemon does) at a steady
pace while the master dies; the client finds the new master through the
sentinels, the journal keeps what could not be written meanwhile and, with
``redis.wait_replicas = 1``, also what the old master took but never passed on.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import redis as sync_redis
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from complaints.callback_sources import AnswerRate, CallbackSources
from routing.callback_store import CallbackStore
from routing.callbacks import DialPolicy, abandon_reason
from shenava.aio import as_deferred
from shenava.config import Config, RedisConfig, parse_toml
from shenava.journal import Journal
from shenava.redis_client import make_redis_client
from shenava.redis_server import RedisServer, start_redis_sentinel, start_redis_server
from shenava.replicas import ReplicaConfirm

pytestmark = pytest.mark.skipif(shutil.which("redis-sentinel") is None, reason="redis-sentinel missing")

RAISES = 60
POLICY = DialPolicy(lease_ms=60_000)
FAILOVER_LIMIT_S = 30.0


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


def master_port(sentinel: RedisServer) -> int:
    with sync_redis.Redis(port=sentinel.port, socket_timeout=2) as s:
        return int(s.sentinel_get_master_addr_by_name("mymaster")[1])


@pytest_twisted.ensureDeferred
async def test_a_master_killed_under_traffic_fails_over_with_nothing_lost(tmp_path: Path) -> None:
    master = start_redis_server(tmp_path / "master")
    replica = start_redis_server(tmp_path / "replica", extra_args=("--replicaof", "127.0.0.1", str(master.port)))
    sentinels = [start_redis_sentinel(tmp_path / f"s{i}", master.port) for i in range(3)]
    servers = [master, replica, *sentinels]
    try:
        # the replica is in sync and every sentinel knows it
        deadline = time.monotonic() + FAILOVER_LIMIT_S
        while True:
            with sync_redis.Redis(port=sentinels[0].port, socket_timeout=2) as s:
                known = s.sentinel_slaves("mymaster")
            if known and all(r.get("master-link-status") == "ok" for r in known):
                break
            assert time.monotonic() < deadline, "the replica never came up"
            await sleep(0.2)
        url = "redis+sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in sentinels) + "/mymaster/0"
        config = RedisConfig(url=url, max_connections=8, pool_timeout_s=2.0, connect_timeout_s=0.5,
                             socket_timeout_s=1.0, health_check_interval_s=1.0, wait_replicas=1)
        client = make_redis_client(config, decode_responses=True)
        journal = Journal(reactor, tmp_path / "state",
                          confirm=ReplicaConfirm(client, "shenava:{journal}:ack", 1, reactor, timeout_ms=500))
        store = CallbackStore(client, "shenava", POLICY)
        sources = CallbackSources(store, reactor, waiting_calls=lambda: 0, rate=AnswerRate(), journal=journal)
        journal.load()
        journal.start()
        answers: list[Deferred[Any]] = []
        t0 = 1_740_000_000.0
        for i in range(RAISES):
            if i == RAISES // 3:
                master.process.kill()  # kill -9 of the master mid-traffic
                master.process.wait()
            reason = abandon_reason(f"call-{i}", t0, 60, POLICY)
            assert reason is not None
            answers.append(sources.raise_reason(f"0912{i:07d}", reason))
            await sleep(0.05)
        # sentinels elect the replica
        deadline = time.monotonic() + FAILOVER_LIMIT_S
        while master_port(sentinels[0]) == master.port:
            assert time.monotonic() < deadline, "no failover"
            await sleep(0.2)
        # with no replica left, WAIT cannot confirm: records stay in the journal until
        # the old master is back (the sentinels make it a replica of the new one)
        assert journal.depth > 0
        servers.append(start_redis_server(tmp_path / "master", port=master.port))
        deadline = time.monotonic() + FAILOVER_LIMIT_S
        while journal.depth:
            assert time.monotonic() < deadline, f"still {journal.depth} records in the journal"
            await sleep(0.2)
        assert all(a.called for a in answers) and journal.rejected_count == 0
        assert master_port(sentinels[0]) == replica.port
        with sync_redis.Redis(port=replica.port, decode_responses=True, socket_timeout=2) as new_master:
            flags = new_master.hgetall("shenava:{callbacks}:open")
            assert len(flags) == RAISES
            for flag_id in flags.values():
                raw = new_master.get(f"shenava:{{callbacks}}:flag:{flag_id}")
                assert raw is not None and raw.count('"kind": "abandoned"') == 1
        await journal.stop()
        await as_deferred(client.aclose())
    finally:
        for server in servers:
            server.stop()


def test_sentinel_settings_from_a_url_or_a_list() -> None:
    base = '[ami]\nsecret = "x"\n'
    one = Config.from_mapping(parse_toml(base + '[redis]\nurl = "redis+sentinel://:pw@h1:26379,h2/mymaster/2"\n'))
    client = make_redis_client(one.redis)
    pool: Any = client.connection_pool
    assert pool.service_name == "mymaster" and pool.connection_kwargs["db"] == 2
    assert pool.sentinel_manager.sentinels[1].connection_pool.connection_kwargs["port"] == 26379
    two = Config.from_mapping(parse_toml(
        base + '[redis]\nurl = "redis://:pw@/1"\nsentinels = ["h1:26379", "h2:26380"]\nsentinel_service = "main"\n'
    ))
    pool = make_redis_client(two.redis).connection_pool
    assert pool.service_name == "main" and pool.connection_kwargs["db"] == 1
    assert pool.connection_kwargs["password"] == "pw" and pool.max_connections == 64

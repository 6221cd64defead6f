"""``redis.wait_replicas = 1`` against a real master with no replica attached, then one.

With no replica, ``WAIT`` never reaches 1: the journal used to keep every record
(and to re-apply the first few forever, so later records never reached Redis
at all) until the journal file was full. Now a record is stored on the master,
leaves the journal and is counted as unreplicated, with one error in the log;
once a replica attaches, records wait for it again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest_twisted
import redis as sync_redis
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, globalLogPublisher

from agent_stats.metrics import journal_families
from shenava.config import RedisConfig
from shenava.journal import Journal
from shenava.redis_client import make_redis_client
from shenava.redis_server import start_redis_server
from shenava.replicas import ReplicaConfirm, attached_replicas

BOUND_S = 30.0
"""A bound on waiting for the journal, not a timing claim: the old code never drained."""


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


async def drained(journal: Journal) -> None:
    deadline = time.monotonic() + BOUND_S
    while journal.depth:
        assert time.monotonic() < deadline, f"the journal still holds {journal.depth} records"
        await sleep(0.05)


def test_attached_replicas_reads_a_masters_info() -> None:
    assert attached_replicas({"role": "master", "connected_slaves": 0}) == 0
    assert attached_replicas({"role": "master", "connected_slaves": 2}) == 2
    assert attached_replicas({"role": "slave", "connected_slaves": 1}) == 0
    assert attached_replicas(None) == 0


@pytest_twisted.ensureDeferred
async def test_wait_replicas_with_no_replica_stores_every_record_counts_and_says_so(
    tmp_path: Path,
) -> None:
    master = start_redis_server(tmp_path / "master")
    replica = None
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        client = make_redis_client(RedisConfig(
            url=master.url, max_connections=40, pool_timeout_s=2.0, connect_timeout_s=0.5,
            socket_timeout_s=2.0, health_check_interval_s=1.0, wait_replicas=1,
        ), decode_responses=True)
        confirm = ReplicaConfirm(client, "shenava:{journal}:ack", 1, reactor,
                                 timeout_ms=200, recheck_s=0.2)
        journal = Journal(reactor, tmp_path / "state", confirm=confirm)
        journal.register("put", lambda p: client.set(p["k"], p["v"]))
        journal.load()
        journal.start()
        for i in range(80):  # more than the journal applies at once
            journal.submit("put", {"k": f"t:{i}", "v": str(i)})
        await drained(journal)
        with sync_redis.Redis(port=master.port, decode_responses=True) as r:
            assert r.mget([f"t:{i}" for i in range(80)]) == [str(i) for i in range(80)]
        health = journal.health()
        assert health["replication"]["unreplicated"] == 80
        assert health["replication"]["replicas_missing_since"] is not None
        assert health["replication"]["replicas_attached"] == 0
        metrics = {f.name: f.samples[0].value for f in journal_families(health)}
        assert metrics["shenava_journal_unreplicated"] == 80
        assert metrics["shenava_redis_replicas_missing"] == 1
        assert metrics["shenava_journal_depth"] == 0
        errors = [e for e in logged if e.get("log_level") is LogLevel.error
                  and "wait_replicas" in e.get("log_format", "")]
        assert len(errors) == 1  # once, not once a record
        assert not [e for e in logged if "Redis is away" in e.get("log_format", "")]

        # a replica attaches: records wait for it again, none is counted unreplicated
        replica = start_redis_server(
            tmp_path / "replica", extra_args=("--replicaof", "127.0.0.1", str(master.port)))
        deadline = time.monotonic() + BOUND_S
        with sync_redis.Redis(port=replica.port, decode_responses=True) as r:
            while r.info("replication").get("master_link_status") != "up":
                assert time.monotonic() < deadline, "the replica never synced"
                await sleep(0.1)
        await sleep(0.3)  # past the recheck
        for i in range(80, 90):
            journal.submit("put", {"k": f"t:{i}", "v": str(i)})
        await drained(journal)
        health = journal.health()
        assert health["replication"]["unreplicated"] == 80
        assert health["replication"]["replicas_missing_since"] is None
        with sync_redis.Redis(port=replica.port, decode_responses=True) as r:
            assert r.get("t:89") == "89"  # confirmed by WAIT: on the replica already
        assert any("attached again" in e.get("log_format", "") for e in logged)
        await as_closed(client)
    finally:
        globalLogPublisher.removeObserver(logged.append)
        if replica is not None:
            replica.stop()
        master.stop()


async def as_closed(client: Any) -> None:
    from shenava.aio import as_deferred

    await as_deferred(client.aclose())


def test_check_config_says_when_wait_replicas_has_no_replica_to_wait_for(tmp_path: Path) -> None:
    from shenava.check_config import Severity, check_config

    master = start_redis_server(tmp_path / "master", extra_args=("--appendfsync", "always"))
    replica = None
    path = tmp_path / "shenava.toml"
    path.write_text(
        f'[ami]\nsecret = "not-the-placeholder"\n[redis]\nurl = "{master.url}"\n'
        f'wait_replicas = 1\n[state]\nfolder = "{tmp_path / "state"}"\n', encoding="utf-8")
    try:
        found = {f.code: f for f in check_config(path, redis=True) if f.code.startswith("redis.")}
        note = found["redis.wait_replicas"]
        assert note.severity is Severity.WARNING
        assert "0 replica(s) attached" in note.message
        assert "shenava_journal_unreplicated" in note.message
        replica = start_redis_server(
            tmp_path / "replica", extra_args=("--replicaof", "127.0.0.1", str(master.port)))
        deadline = time.monotonic() + BOUND_S
        with sync_redis.Redis(port=master.port) as r:
            while not r.info("replication").get("connected_slaves"):
                assert time.monotonic() < deadline, "the replica never attached"
                time.sleep(0.1)
        found = {f.code: f for f in check_config(path, redis=True) if f.code.startswith("redis.")}
        assert found["redis.wait_replicas"].severity is Severity.OK
    finally:
        if replica is not None:
            replica.stop()
        master.stop()

"""The statistics batch's scripts go as EVALSHA, and a server without them (restarted,
failed over, flushed: a cluster node that never ran them) still applies each command once.

Before: every batch sent ``LEDGER`` and ``COUNT_OUTCOMES`` whole as ``EVAL`` (their
text, about 1.5 KiB, parsed and hashed by Redis each time). Counted by every
server's own ``INFO commandstats``, on one Redis and on a 3-master cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import redis

from agent_stats.ledger import Interval
from agent_stats.sla import CallRecord, Outcome, SLAConfig
from agent_stats.states import AgentState
from agent_stats.store import (
    AlertRaised,
    AlertRecord,
    HeartbeatWrite,
    LedgerWrite,
    OutcomeWrite,
    StatsStore,
)
from shenava.config import RedisConfig
from shenava.redis_client import make_redis_client
from shenava_base.aio import as_deferred

T0 = 1_741_000_000.0
SLA = SLAConfig()


def _answered(call_id: str, at: float) -> OutcomeWrite:
    call = CallRecord(queue="support", arrived_at=at, joined_at=at, outcome=Outcome.ANSWERED,
                      outcome_at=at + 5.0, call_id=call_id)
    return OutcomeWrite(call, agent_id="a1")


def _batch(n: int, at: float) -> list[Any]:
    """Agents' transitions (the LEDGER script), an outcome (COUNT_OUTCOMES and its
    keys' EXPIREs), a heartbeat and an alert (an RPUSH: twice would be a duplicate)."""
    ops: list[Any] = [
        LedgerWrite(f"a{i}", (Interval(at - 10 * (n + 1), at - 10 * n, AgentState.READY),), at,
                    AgentState.ON_CALL if n % 2 else AgentState.READY, None)
        for i in range(1, 4)
    ]
    ops += [_answered(f"c{n}", at), HeartbeatWrite(at + 6),
            AlertRaised(AlertRecord(f"a{n}", "long_call", 1.0, 0.5, at))]
    return ops


@pytest.fixture(params=["server", "cluster"])
def nodes(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[str, list[redis.Redis]]]:
    """The daemon's Redis URL and a plain client per server (every master of the cluster)."""
    if request.param == "server":
        url = request.getfixturevalue("redis_url")
        clients = [redis.Redis.from_url(url)]
    else:
        cluster = request.getfixturevalue("redis_cluster")
        url = request.getfixturevalue("cluster_url")
        clients = [redis.Redis(host=h, port=p) for h, p in cluster.addresses]
    for c in clients:
        c.flushall()
        c.script_flush()
    try:
        yield url, clients
    finally:
        for c in clients:
            c.close()


def _calls(clients: list[redis.Redis]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in clients:
        for name, v in c.info("commandstats").items():
            key = name.removeprefix("cmdstat_")
            out[key] = out.get(key, 0) + int(v["calls"])
    return out


def _spent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


@pytest_twisted.ensureDeferred
async def test_statistics_scripts_go_as_evalsha_and_survive_a_lost_script_cache(
    nodes: tuple[str, list[redis.Redis]],
) -> None:
    url, clients = nodes
    client = make_redis_client(RedisConfig(url=url))
    try:
        store = StatsStore(client, SLA, site="north")
        await as_deferred(store.apply(_batch(1, T0)))  # SCRIPT LOAD once per process, then EVALSHA
        before = _calls(clients)
        await as_deferred(store.apply(_batch(2, T0 + 30)))
        spent = _spent(before, _calls(clients))
        assert spent.get("evalsha", 0) >= 1 and "eval" not in spent, spent

        for c in clients:  # a restart or failover: the servers' script caches are empty
            c.script_flush()
        before = _calls(clients)
        await as_deferred(store.apply(_batch(3, T0 + 600)))  # a new minute: new SL keys to expire
        spent = _spent(before, _calls(clients))
        assert spent.get("eval", 0) >= 1, spent
        before = _calls(clients)
        await as_deferred(store.apply(_batch(4, T0 + 630)))
        assert "eval" not in _spent(before, _calls(clients))

        # every command of each batch landed once
        day = store.day_of(T0)
        counts = await as_deferred(store.day_counts("support", day))
        assert counts.offered == 4 and counts.answered == 4
        alerts = await as_deferred(store.alerts(day, day))
        assert sorted(a.agent_id for a in alerts) == ["a1", "a2", "a3", "a4"]
        for agent in ("a1", "a2", "a3"):  # one RPUSH of one interval per batch
            assert await as_deferred(client.llen(store._intervals_key(agent, day))) == 4
        for c in clients:  # the keys a script made after a lost cache have their TTL too
            for key in c.scan_iter(match="shenava:{stats:north}:sl:*"):
                assert c.ttl(key) > 0, key
    finally:
        await as_deferred(client.aclose())

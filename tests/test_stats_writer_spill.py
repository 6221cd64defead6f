"""The statistics writer past its cap while a real Redis is stopped: nothing dropped.

The writer holds at most ``max_pending`` operations in memory while Redis is
away; past that it dropped the oldest, and the agent's stored day got an
``UNKNOWN`` hole. With a journal (a durable state folder) the oldest go to the
journal instead (``agent_stats.spill``), are stored first when Redis is back,
and the writer's newer operations after them: the ledger is whole. The cap is
made small here (10) so a short outage passes it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from agent_stats.ledger import Interval
from agent_stats.spill import JournalSpill, op_from_dict, op_to_dict
from agent_stats.states import AgentState, NotReadyReason
from agent_stats.store import HeartbeatWrite, LedgerWrite, StatsStore
from agent_stats.writer import WRITE_RETRY_S, StoreWriter
from shenava.config import RedisConfig
from shenava.journal import RETRY_MAX_S, Journal
from shenava.redis_client import make_redis_client
from shenava.redis_server import start_redis_server
from tests.stats_helpers import SLA, T0
from tests.test_stats_writer_outage import BOUND_S, settle, sleep

CAP = 10
CHANGES = 60  # an agent's state changes while Redis is away: six times the cap


def _inline(f: Any) -> Deferred[Any]:
    return succeed(f())


def _change(i: int) -> LedgerWrite:
    """The agent's i-th state change: one second in the previous state closed."""
    state = AgentState.READY if i % 2 else AgentState.NOT_READY
    reason = None if i % 2 else NotReadyReason.LUNCH
    previous = AgentState.NOT_READY if i % 2 else AgentState.READY
    prev_reason = NotReadyReason.LUNCH if i % 2 else None
    return LedgerWrite("a1", (Interval(T0 + i - 1, T0 + i, previous, prev_reason),), T0 + i, state, reason)


def test_every_operation_survives_the_journal_as_json() -> None:
    ops = [_change(1), _change(2), HeartbeatWrite(T0, None), HeartbeatWrite(T0 + 1, T0)]
    assert [op_from_dict(op_to_dict(op)) for op in ops] == ops


@pytest_twisted.ensureDeferred
async def test_past_the_cap_the_oldest_go_to_the_journal_and_the_ledger_has_no_hole(
    tmp_path: Path,
) -> None:
    server = start_redis_server(tmp_path / "redis")
    port = server.port
    client = make_redis_client(RedisConfig(
        url=server.url, max_connections=4, pool_timeout_s=1.0, connect_timeout_s=0.5,
        socket_timeout_s=1.0, health_check_interval_s=1.0,
    ), decode_responses=True)
    try:
        clock = Clock()
        clock.advance(T0)
        store = StatsStore(client, SLA)
        journal = Journal(clock, tmp_path / "state", run_in_thread=_inline)
        journal.load()
        writer = StoreWriter(store, clock, max_pending=CAP)
        spill = JournalSpill(journal, store, writer.kick)
        writer.spill = spill
        journal.start()
        writer.submit(LedgerWrite("a1", (), T0, AgentState.READY, None))
        await settle(writer)
        assert writer.pending == 0 and writer.failures == 0

        server.stop()
        for i in range(1, CHANGES + 1):
            clock.advance(1.0)
            writer.submit(_change(i))
            await settle(writer)
        assert writer.failures >= 1
        assert writer.dropped == 0  # before: CHANGES - CAP dropped, a hole in the day
        assert writer.pending <= CAP + 1
        assert spill.spilled >= CHANGES - CAP - 1
        assert journal.depth >= 1  # on this host's disk while Redis is away

        server = start_redis_server(tmp_path / "redis", port=port)
        deadline = time.monotonic() + BOUND_S
        while writer.pending or journal.depth or spill.holding:
            assert time.monotonic() < deadline, "the held and spilled writes never went through"
            clock.advance(max(WRITE_RETRY_S, RETRY_MAX_S))
            await sleep(0.05)
            await settle(writer)
        await settle(writer)
        assert writer.dropped == 0

        stored = (await _ledgers(store, T0 + CHANGES))["a1"]
        kinds = [(i.start - T0, i.end - T0, i.state) for i in stored.ledger.intervals
                 if T0 <= i.start < T0 + CHANGES]
        assert [k for k in kinds if k[2] is AgentState.UNKNOWN] == []
        assert len(kinds) == CHANGES  # one second each, in order, none missing
    finally:
        await _close(client)
        server.stop()


async def _ledgers(store: StatsStore, now: float) -> Any:
    from shenava_base.aio import as_deferred

    return await as_deferred(store.load_ledgers(["a1"], now))


async def _close(client: Any) -> None:
    from shenava_base.aio import as_deferred

    await as_deferred(client.aclose())

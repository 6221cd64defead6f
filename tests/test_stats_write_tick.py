"""The daemon's statistics writes per tick: one batch per tick, the journal's outcomes together."""

from __future__ import annotations

import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.task import Clock

from agent_stats.ledger import Interval
from agent_stats.sla import CallRecord, Outcome
from agent_stats.states import AgentState
from agent_stats.store import HeartbeatWrite, LedgerWrite, OutcomeWrite, StatsStore
from agent_stats.writer import StoreWriter
from shenava.aio import as_deferred
from shenava.journal import Journal
from tests.stats_helpers import SLA, T0

QUEUE = "complaints"


def ledger(agent: str, n: int) -> LedgerWrite:
    start = T0 + 10 * n
    closed = (Interval(start, start + 10, AgentState.READY, None),)
    return LedgerWrite(agent, closed, start + 10, AgentState.ON_CALL, None)


def answered(call_id: str) -> OutcomeWrite:
    return OutcomeWrite(CallRecord(QUEUE, T0, T0, Outcome.ANSWERED, T0 + 3, call_id), "a1")


@pytest_twisted.ensureDeferred
async def test_changes_within_a_tick_share_one_batch(redis_client: Redis) -> None:
    clock = Clock()
    clock.advance(T0)
    store = StatsStore(redis_client, SLA)
    writer = StoreWriter(store, clock)
    writer.tick_s = 0.2
    writer.submit(ledger("a1", 0))  # the first after a quiet spell goes at once
    await writer.flushed()
    assert writer.batches == 1
    for n in range(1, 6):
        clock.advance(0.02)
        writer.submit(ledger("a1", n))
        writer.submit(HeartbeatWrite(clock.seconds()))
    assert writer.pending == 10  # waiting for the tick, not written one by one
    clock.advance(0.2)
    await writer.flushed()
    assert writer.batches == 2 and store.round_trips == 2
    intervals = await as_deferred(store.intervals("a1", store.day_of(T0), store.day_of(T0)))
    assert [i.start for i in intervals][:6] == [T0 + 10 * n for n in range(6)]  # in order
    # flushed() never waits for the tick
    writer.submit(ledger("a1", 6))
    await writer.flushed()
    assert writer.batches == 3 and writer.pending == 0
    writer.stop()


@pytest_twisted.ensureDeferred
async def test_the_journals_outcomes_are_written_together_and_counted_once(
    redis_client: Redis,
) -> None:
    clock = Clock()
    clock.advance(T0)
    store = StatsStore(redis_client, SLA)
    writer = StoreWriter(store, clock)
    journal = Journal(clock, None)
    writer.use_journal(journal, batch_s=0.1)
    journal.start()
    for n in range(8):
        writer.submit(answered(f"c{n}"))
    writer.submit(answered("c3"))  # submitted twice: counted once
    clock.advance(0)
    assert store.round_trips == 0  # gathered for 0.1 s
    clock.advance(0.1)
    await journal.drained()
    assert store.round_trips == 1 and journal.applied_count == 9
    counts = await as_deferred(store.day_counts(QUEUE, store.day_of(T0)))
    assert (counts.offered, counts.answered) == (8, 8)
    writer.stop()
    await journal.stop()

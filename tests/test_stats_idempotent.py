"""An outcome is counted once, even when a batch Redis applied is sent again."""

from __future__ import annotations

import pytest_twisted
from redis.asyncio import Redis

from agent_stats.sla import CallRecord, Outcome
from agent_stats.store import Operation, OutcomeWrite, StatsStore
from shenava_base.aio import as_deferred
from tests.stats_helpers import SLA, T0

QUEUE = "complaints"


def answered(call_id: str, wait: float = 3.0) -> OutcomeWrite:
    call = CallRecord(QUEUE, T0, T0, Outcome.ANSWERED, T0 + wait, call_id)
    return OutcomeWrite(call, "a1", hard=True)


@pytest_twisted.ensureDeferred
async def test_the_same_outcome_applied_twice_is_counted_once(redis_client: Redis) -> None:
    store = StatsStore(redis_client, SLA)
    batch: list[Operation] = [answered("c1"), answered("c2", 30.0)]
    await as_deferred(store.apply(batch))
    await as_deferred(StatsStore(redis_client, SLA).apply(batch))  # another process, too
    await as_deferred(store.apply([answered("c1")]))
    day = store.day_of(T0)
    counts = await as_deferred(store.day_counts(QUEUE, day))
    assert (counts.offered, counts.answered, counts.answered_in_sl) == (2, 2, 1)
    rolling = await as_deferred(store.rolling(QUEUE, T0 + 60))
    assert rolling.offered == 2
    assert await as_deferred(store.agent_days(day, day)) == {"a1": {"answered": 2, "hard": 2}}
    # a different outcome of another call still counts
    await as_deferred(store.apply([answered("c3")]))
    assert (await as_deferred(store.day_counts(QUEUE, day))).offered == 3

"""A call's SL outcome is counted once even when a new daemon counts it again
with another time: the take-over's "ended while nobody watched" after a
``kill -9`` that fell between journalling the outcome and dropping the call's
record (the record still says "waiting", so the next daemon counts the abandon
at its own clock)."""

from __future__ import annotations

import pytest_twisted
from redis.asyncio import Redis

from agent_stats.sla import CallRecord, Outcome
from agent_stats.store import OutcomeWrite, StatsStore
from shenava.aio import as_deferred
from tests.stats_helpers import SLA, T0

QUEUE = "complaints"


def abandoned(call_id: str, at: float) -> OutcomeWrite:
    return OutcomeWrite(CallRecord(QUEUE, T0, T0, Outcome.ABANDONED, at, call_id), None, hard=False)


@pytest_twisted.ensureDeferred
async def test_an_abandon_counted_again_after_a_restart_at_another_time_counts_once(
    redis_client: Redis,
) -> None:
    store = StatsStore(redis_client, SLA)
    await as_deferred(store.apply([abandoned("c1", T0 + 12.0)]))  # the daemon that was killed
    await as_deferred(StatsStore(redis_client, SLA).apply([abandoned("c1", T0 + 19.5)]))  # the next
    counts = await as_deferred(store.day_counts(QUEUE, store.day_of(T0)))
    assert (counts.offered, counts.abandoned) == (1, 1)
    await as_deferred(store.apply([abandoned("c2", T0 + 30.0)]))  # another call still counts
    assert (await as_deferred(store.day_counts(QUEUE, store.day_of(T0)))).abandoned == 2

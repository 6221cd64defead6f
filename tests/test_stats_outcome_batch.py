"""Outcomes counted in one script per batch store what one script per outcome stored."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from redis.asyncio import Redis

from agent_stats.sla import CallRecord, Outcome
from agent_stats.store import Operation, OutcomeWrite, StatsStore
from shenava.aio import as_deferred
from tests.stats_helpers import SLA, T0

QUEUE = "complaints"


def outcome(call_id: str, kind: Outcome, wait: float, agent: str | None = None,
            hard: bool = False, queue: str = QUEUE) -> OutcomeWrite:
    call = CallRecord(queue, T0, T0, kind, T0 + wait, call_id)
    return OutcomeWrite(call, agent, hard)


BATCH: list[Operation] = [
    outcome("c1", Outcome.ANSWERED, 3.0, "a1", hard=True),
    outcome("c2", Outcome.ANSWERED, 40.0, "a2"),
    outcome("c3", Outcome.ABANDONED, 2.0),
    outcome("c4", Outcome.ABANDONED, 50.0),
    outcome("c5", Outcome.CALLBACK, 9.0),
    outcome("c6", Outcome.ANSWERED, 5.0, "a1", queue="sales"),
    outcome("", Outcome.ABANDONED, 70.0),  # no id: never deduplicated
]


async def stored(client: Redis, prefix: str) -> dict[str, Any]:
    """Every hash under ``prefix`` (the counters), by key without the prefix."""
    out: dict[str, Any] = {}
    async for key in client.scan_iter(f"{prefix}:*", _type="hash"):
        name = key.decode() if isinstance(key, bytes) else key
        out[name.removeprefix(prefix)] = await client.hgetall(key)
    return out


async def hincrby_calls(client: Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_hincrby", {}).get("calls", 0))


@pytest_twisted.ensureDeferred
async def test_a_batch_of_outcomes_counts_what_one_apply_each_counts(redis_client: Redis) -> None:
    one_each = StatsStore(redis_client, SLA, prefix="each")
    increments_each = await as_deferred(hincrby_calls(redis_client))
    for op in BATCH:
        await as_deferred(one_each.apply([op]))
    increments_each = await as_deferred(hincrby_calls(redis_client)) - increments_each
    batched = StatsStore(redis_client, SLA, prefix="batch")
    before = one_each.commands_sent
    increments = await as_deferred(hincrby_calls(redis_client))
    await as_deferred(batched.apply(BATCH))
    # one HINCRBY per distinct counter, not one per outcome and counter
    increments = await as_deferred(hincrby_calls(redis_client)) - increments
    assert increments < increments_each
    each = await as_deferred(stored(redis_client, "each"))
    assert await as_deferred(stored(redis_client, "batch")) == each and len(each) >= 8
    assert batched.commands_sent < before
    day = batched.day_of(T0)
    counts = await as_deferred(batched.day_counts(QUEUE, day))
    assert (counts.offered, counts.answered, counts.answered_in_sl) == (5, 2, 1)
    assert await as_deferred(batched.agent_days(day, day)) == {
        "a1": {"answered": 2, "hard": 1}, "a2": {"answered": 1},
    }
    ttl = await as_deferred(redis_client.ttl(f"batch:{{stats}}:sl:{QUEUE}:day:{int(day_start_of(batched))}"))
    assert ttl > 0


def day_start_of(store: StatsStore) -> float:
    from agent_stats.sla import day_start

    return day_start(T0, store.sla)


@pytest_twisted.ensureDeferred
async def test_an_outcome_seen_before_or_twice_in_a_batch_counts_once(redis_client: Redis) -> None:
    store = StatsStore(redis_client, SLA)
    await as_deferred(store.apply([BATCH[0]]))
    await as_deferred(store.apply([BATCH[0], BATCH[1], BATCH[1], BATCH[6], BATCH[6]]))
    day = store.day_of(T0)
    counts = await as_deferred(store.day_counts(QUEUE, day))
    # c1 once, c2 once, the outcome without an id twice
    assert (counts.offered, counts.answered, counts.abandoned) == (4, 2, 2)
    assert await as_deferred(store.agent_days(day, day)) == {
        "a1": {"answered": 1, "hard": 1}, "a2": {"answered": 1},
    }

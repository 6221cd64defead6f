"""The agent time ledger in Redis: a whole shift to the second, through a restart and an AMI outage."""

from __future__ import annotations

import json
import math

import pytest_twisted
from redis.asyncio import Redis

from agent_stats.ledger import AgentLedger, Interval
from agent_stats.states import AgentState, NotReadyReason
from agent_stats.store import StatsStore, chain
from ami_bridge.connection import ConnectionState
from shenava_base.aio import as_deferred
from tests.stats_helpers import SLA, T0, clock_at, make_service, step_to

R, RG, OC, WU, NR, UN, LO = (
    AgentState.READY, AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP,
    AgentState.NOT_READY, AgentState.UNKNOWN, AgentState.LOGGED_OUT,
)


def shape(intervals: list[Interval]) -> list[tuple[float, float, str, str | None]]:
    return [
        (i.start - T0, i.end - T0, i.state.value, i.reason.value if i.reason else None)
        for i in intervals
    ]


async def stored(client: Redis, agent_id: str) -> list[Interval]:
    store = StatsStore(client, SLA)
    day = store.day_of(T0)
    return (await as_deferred(store.intervals_of([agent_id], day, day)))[agent_id]


@pytest_twisted.ensureDeferred
async def test_a_whole_shift_to_the_second_through_a_restart_mid_break_and_an_ami_outage(
    redis_client: Redis,
) -> None:
    clock = clock_at(T0)
    roster, service = make_service(redis_client, clock)
    await service.start()

    def at(dt: float) -> float:
        step_to(clock, T0 + dt)
        return clock.seconds()

    roster.log_in("a1", at(0))
    roster.ringing("a1", "c1", at(60))
    roster.answered("a1", False, at(70))
    roster.call_ended("a1", at(370))
    roster.set_ready("a1", at(380))
    roster.set_not_ready("a1", NotReadyReason.BREAK, at(1800))
    roster.set_not_ready("a1", NotReadyReason.PERSONAL, at(2100))  # a reason change splits
    at(2110)
    await service.flushed()
    await service.stop(graceful=False)  # the daemon dies in the middle of the break

    at(2140)  # and is back 30 s later: a new roster, a new service, the same Redis
    roster, service = make_service(redis_client, clock)
    await service.start()
    a1 = roster.get("a1")
    assert (a1.state, a1.reason, a1.ledger.since) == (NR, NotReadyReason.PERSONAL, T0 + 2100)

    roster.set_ready("a1", at(2400))
    at(2450)
    service.on_link_state(ConnectionState.DISCONNECTED)
    at(2750)
    service.on_link_state(ConnectionState.CONNECTED)  # 300 s unobserved: UNKNOWN
    roster.ringing("a1", "c2", at(3000))
    roster.answered("a1", True, at(3005))
    service.on_link_state(ConnectionState.DISCONNECTED)
    at(3030)
    service.on_link_state(ConnectionState.CONNECTED)  # 25 s: within the trusted gap
    roster.call_ended("a1", at(3300))
    roster.set_ready("a1", at(3310))
    roster.log_out("a1", at(3600))
    at(3700)
    await service.stop()

    expected = [
        (0, 60, "ready", None), (60, 70, "ringing", None), (70, 370, "on_call", None),
        (370, 380, "wrap_up", None), (380, 1800, "ready", None),
        (1800, 2100, "not_ready", "break"),
        (2100, 2400, "not_ready", "personal"),  # one interval across the restart
        (2400, 2450, "ready", None),
        (2450, 2750, "unknown", None),  # the long AMI outage
        (2750, 3000, "ready", None), (3000, 3005, "ringing", None),
        (3005, 3300, "on_call", None),  # the short outage does not split the call
        (3300, 3310, "wrap_up", None), (3310, 3600, "ready", None),
    ]
    redis_intervals = await stored(redis_client, "a1")
    ledger = roster.get("a1").ledger
    assert shape(redis_intervals[:-1]) == expected
    # in memory, the intervals the occupancy window reads (the day's figures are running
    # sums): the tail of the same list
    kept = shape(list(ledger.intervals))
    assert kept and kept == expected[len(expected) - len(kept):]
    last = redis_intervals[-1]
    assert (last.start, last.state) == (T0 + 3600, LO)
    # every second of the shift in exactly one state, to the second
    assert math.fsum(i.duration for i in redis_intervals[:-1]) == 3600.0
    assert all(a.end == b.start for a, b in zip(redis_intervals, redis_intervals[1:], strict=False))
    whole = AgentLedger("a1", last.end, LO, None, redis_intervals)
    totals = whole.totals(T0, T0 + 3600, T0 + 3700)
    assert totals.total == 3600.0 and totals.logged_in == 3600.0
    assert totals.state(UN) == 300.0 and totals.reason(NotReadyReason.PERSONAL) == 300.0


@pytest_twisted.ensureDeferred
async def test_a_long_restart_gap_is_unknown_and_early_changes_are_not_counted_twice(
    redis_client: Redis,
) -> None:
    clock = clock_at(T0)
    roster, service = make_service(redis_client, clock)
    await service.start()
    roster.log_in("a1", clock.seconds())
    roster.log_in("a2", clock.seconds())
    step_to(clock, T0 + 300)
    roster.log_out("a2", clock.seconds())
    step_to(clock, T0 + 600)
    roster.set_not_ready("a1", NotReadyReason.BREAK, clock.seconds())
    step_to(clock, T0 + 700)
    await service.flushed()
    await service.stop(graceful=False)

    step_to(clock, T0 + 1000)  # down for five minutes
    roster, service = make_service(redis_client, clock)
    roster.log_in("a2", clock.seconds())  # before the service is back: replayed after it
    step_to(clock, T0 + 1001)
    roster.set_not_ready("a2", NotReadyReason.MEETING, clock.seconds())
    await service.start()
    a1 = roster.get("a1")
    assert (a1.state, a1.reason) == (NR, NotReadyReason.BREAK)
    step_to(clock, T0 + 1200)
    roster.set_ready("a1", clock.seconds())
    roster.set_ready("a2", clock.seconds())
    step_to(clock, T0 + 1300)
    await service.stop()

    a1_stored = shape((await stored(redis_client, "a1"))[:-1])
    # the break was watched until the last heartbeat (<= 700); the rest of the outage is unknown
    (b_start, b_end, _, _), (u_start, u_end, u_state, _) = a1_stored[1], a1_stored[2]
    assert a1_stored[0] == (0, 600, "ready", None)
    # ... until the statistics were back (1001 s): the new daemon's own early changes aside
    assert b_start == 600 and 685 <= b_end <= 700
    assert (u_start, u_end, u_state) == (b_end, 1001, "unknown")
    assert a1_stored[3] == (1001, 1200, "not_ready", "break")
    assert shape((await stored(redis_client, "a2"))[:-1]) == [
        (0, 300, "ready", None), (300, 1000, "logged_out", None), (1000, 1001, "ready", None),
        (1001, 1200, "not_ready", "meeting"),
    ]
    assert shape(list(roster.get("a1").ledger.intervals)) == a1_stored


def test_chain_drops_a_replayed_interval_and_fills_a_lost_one() -> None:
    a = Interval(0, 10, R)
    b = Interval(10, 20, OC)
    c = Interval(30, 40, WU)
    out, repairs = chain([a, b, b, c], 40)
    assert out == [a, b, Interval(20, 30, UN), c] and repairs == 2
    assert chain([a, Interval(5, 15, RG)], 15) == ([a, Interval(10, 15, RG)], 1)


async def _executed(client: Redis) -> dict[str, int]:
    raw = await client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in raw.items()}


@pytest_twisted.ensureDeferred
async def test_a_batch_of_transitions_is_one_script_and_reads_back_whole(redis_client: Redis) -> None:
    """Most statistics batches are one agent's transition (one per 0.2-s tick at
    low rates): they were MULTI, RPUSH, HSET, EXEC; now one script, as atomic."""
    from agent_stats.store import LedgerWrite

    store = StatsStore(redis_client, SLA)
    first = [LedgerWrite("a1", (), T0, R, None), LedgerWrite("a2", (), T0, R, None)]
    await as_deferred(store.apply(first))  # the agents set and the heads
    ring = Interval(T0, T0 + 10, R)
    talk = Interval(T0 + 10, T0 + 70, RG)
    before = await as_deferred(_executed(redis_client))
    await as_deferred(store.apply([
        LedgerWrite("a1", (ring,), T0 + 10, RG, None),
        LedgerWrite("a1", (talk,), T0 + 70, OC, None),
        LedgerWrite("a2", (Interval(T0, T0 + 30, R),), T0 + 30, NR, NotReadyReason.BREAK),
    ]))
    after = await as_deferred(_executed(redis_client))
    spent = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    spent["info"] = spent.get("info", 0) - 1
    # one EVALSHA (and an EVAL on a server that had not got the script: it loads it);
    # in it an RPUSH per agent-day and the lists' EXPIRE once, and one HSET of the
    # batch's heads (before: an HSET per transition, of each agent's own key)
    assert (spent.pop("evalsha", 0), spent.pop("eval", 0)) in ((1, 0), (1, 1))
    assert {k: n for k, n in spent.items() if n} == {"rpush": 3, "expire": 2, "hset": 1}
    assert await as_deferred(redis_client.keys("shenava:{stats}:ledger:*")) == []
    loaded = await as_deferred(store.load_ledgers(["a1", "a2"], T0 + 100))
    a1, a2 = loaded["a1"].ledger, loaded["a2"].ledger
    assert (a1.since, a1.state) == (T0 + 70, OC) and shape(list(a1.intervals))[-2:] == [
        (0, 10, "ready", None), (10, 70, "ringing", None)]
    assert (a2.since, a2.state, a2.reason) == (T0 + 30, NR, NotReadyReason.BREAK)


@pytest_twisted.ensureDeferred
async def test_heads_of_earlier_versions_are_read_and_moved_to_the_heads_hash(redis_client: Redis) -> None:
    """Earlier versions kept each agent's head in its own key: a restore reads it
    and moves it into the site's ``heads`` hash, where a newer head wins."""
    from agent_stats.store import LedgerWrite

    store = StatsStore(redis_client, SLA)
    old = {"since": repr(T0 + 30), "state": NR.value, "reason": NotReadyReason.BREAK.value}
    await as_deferred(redis_client.hset("shenava:{stats}:ledger:a1", mapping=old))
    await as_deferred(redis_client.hset("shenava:{stats}:ledger:a2", mapping=old))
    await as_deferred(redis_client.rpush(
        f"shenava:{{stats}}:intervals:a1:{store.day_of(T0).isoformat()}",
        json.dumps(Interval(T0, T0 + 30, R).to_list()),
    ))
    await as_deferred(store.apply([LedgerWrite("a2", (), T0 + 50, RG, None)]))  # newer than a2's old

    reports = await as_deferred(store.intervals_of(["a1"], store.day_of(T0), store.day_of(T0)))
    assert shape(reports["a1"])[-1][2:] == ("not_ready", "break")  # read-only: the old key is read
    loaded = await as_deferred(store.load_ledgers(["a1", "a2"], T0 + 100))
    a1, a2 = loaded["a1"].ledger, loaded["a2"].ledger
    assert (a1.since, a1.state, a1.reason) == (T0 + 30, NR, NotReadyReason.BREAK)
    assert shape(list(a1.intervals)) == [(0, 30, "ready", None)]
    assert (a2.since, a2.state) == (T0 + 50, RG)
    assert await as_deferred(redis_client.keys("shenava:{stats}:ledger:*")) == []
    again = await as_deferred(store.load_ledgers(["a1", "a2"], T0 + 100))
    assert {a: (s.ledger.since, s.ledger.state) for a, s in again.items()} == {
        "a1": (T0 + 30, NR), "a2": (T0 + 50, RG)}

"""The statistics service against a real Redis: SL counters, the fair break line, recovery, alerts."""

from __future__ import annotations

import random
from dataclasses import asdict

import pytest_twisted
from redis.asyncio import Redis

from agent_stats.breaks import BreakConfig
from agent_stats.sla import (
    CallRecord,
    Outcome,
    SLCounts,
    compute,
    rolling_window_start,
)
from agent_stats.states import AgentState, NotReadyReason
from agent_stats.store import StatsStore
from agent_stats.wellbeing import WellbeingConfig
from routing.events import CallAbandoned, CallAnswered, CallLeftForChoice, CallQueued
from shenava_base.aio import as_deferred
from tests.stats_helpers import SLA, T0, clock_at, make_service, step_to

QUEUE = "complaints"


def simulated_day(rng: random.Random, n: int) -> list[CallRecord]:
    """Calls from 08:00 to 20:00, every outcome kind, waits around the thresholds."""
    calls = []
    for i in range(n):
        arrived = T0 + rng.uniform(0, 12 * 3600)
        joined = arrived + rng.uniform(0, 40)
        outcome = rng.choices(list(Outcome), [60, 25, 8, 7])[0]
        wait = rng.choice([0, 4.999, 5, 19.5, 20, 20.001, rng.uniform(0, 90)])
        calls.append(CallRecord(QUEUE, arrived, joined, outcome, joined + wait, f"c{i}"))
    return calls


def events_of(call: CallRecord) -> list[object]:
    queued = CallQueued(call.call_id, call.joined_at, call.arrived_at, "fa", "billing", "0912")
    at = call.outcome_at
    if call.outcome is Outcome.ANSWERED:
        out: object = CallAnswered(call.call_id, at, "a1", call.joined_at, False)
    elif call.outcome is Outcome.ABANDONED:
        out = CallAbandoned(call.call_id, at, call.joined_at, "0912", None)
    else:
        out = CallLeftForChoice(call.call_id, at, call.joined_at, call.outcome.value, "0912",
                                3, "PJSIP/x", "fa")
    return [queued, out]


def same(counts: SLCounts, report: object) -> None:
    r = asdict(report)  # type: ignore[call-overload]
    assert (counts.offered, counts.in_sl, counts.answered, counts.answered_in_sl,
            counts.abandoned, counts.abandoned_short) == (
        r["offered"], r["in_sl"], r["answered"], r["answered_in_sl"], r["abandoned"],
        r["abandoned_short"])
    assert (counts.service_level, counts.servicelevel_perf, counts.servicelevel_perf2) == (
        r["service_level"], r["servicelevel_perf"], r["servicelevel_perf2"])


@pytest_twisted.ensureDeferred
async def test_sl_in_redis_equals_compute_from_raw_events_over_a_day_and_survives_a_restart(
    redis_client: Redis,
) -> None:
    calls = simulated_day(random.Random(7), 300)
    timeline = sorted(
        ((e.at, n, e) for n, c in enumerate(calls) for e in events_of(c)),  # type: ignore[attr-defined]
        key=lambda x: (x[0], x[1]),
    )
    clock = clock_at(T0)
    _, service = make_service(redis_client, clock)
    await service.start()
    for at, _, event in timeline:
        clock.advance(at - clock.seconds())
        service.on_routing_event(event)
    now = clock.seconds()
    await service.stop()

    store = StatsStore(redis_client, SLA)
    day = store.day_of(T0)
    d0, d1 = store.day_bounds(day)
    same(await as_deferred(store.day_counts(QUEUE, day)), compute(calls, SLA, QUEUE, d0, d1))
    intervals = await as_deferred(store.interval_counts(QUEUE, day, day))
    assert len(intervals) == 96
    for start, counts in intervals:
        same(counts, compute(calls, SLA, QUEUE, start, start + SLA.interval_s))
    rolling = await as_deferred(store.rolling(QUEUE, now))
    same(rolling, compute(calls, SLA, QUEUE, rolling_window_start(now, SLA), now + 1))

    # a new daemon reads the day back: the live figures carry on from there
    _, again = make_service(redis_client, clock)
    await again.start()
    live = again.snapshot()["queues"][QUEUE]
    expected = compute(calls, SLA, QUEUE, d0, d1)
    assert (live["day"]["offered"], live["day"]["sl"], live["day"]["sl2"]) == (
        expected.offered, expected.service_level, expected.servicelevel_perf2)
    assert live["rolling"]["offered"] == rolling.offered
    await again.stop()
    # nothing is published to Redis for the pages (they get the figures pushed: shenava.http.push)
    assert await as_deferred(redis_client.exists("shenava:{stats}:live")) == 0


@pytest_twisted.ensureDeferred
async def test_break_requests_under_short_headroom_are_granted_in_fair_order_within_the_max(
    redis_client: Redis,
) -> None:
    clock = clock_at(T0)
    spare_now = {"value": 2}

    def headroom(staffed: int, now: float) -> int:
        if now >= T0 + 1200:
            return max(0, staffed - 3)  # one agent may go once four take calls
        return spare_now["value"]

    roster, service = make_service(
        redis_client, clock, breaks=BreakConfig(max_wait_s=600), headroom=headroom
    )
    await service.start()

    def at(dt: float) -> float:
        step_to(clock, T0 + dt)
        return clock.seconds()

    for agent in ("a1", "a2", "a3", "a4"):
        roster.log_in(agent, T0)
    # earlier breaks: a1 took 300 s, a2 100 s; a3 and a4 none
    at(100)
    assert service.request_break("a2", NotReadyReason.BREAK).status == "granted"
    roster.set_ready("a2", at(200))
    assert service.request_break("a1", NotReadyReason.BREAK).status == "granted"
    roster.set_ready("a1", at(500))

    spare_now["value"] = 0  # no headroom now
    at(1000)
    answers = [service.request_break("a1", NotReadyReason.BREAK)]
    at(1010)
    answers.append(service.request_break("a2", NotReadyReason.BREAK))
    roster.ringing("a3", "c1", at(1015))
    roster.answered("a3", False, at(1016))
    at(1020)
    answers.append(service.request_break("a3", NotReadyReason.BREAK))
    at(1030)
    answers.append(service.request_break("a4", NotReadyReason.BREAK))
    assert [a.status for a in answers] == ["waiting"] * 4
    assert [r.agent_id for r in service.line.waiting()] == ["a3", "a4", "a2", "a1"]
    # a personal break never waits
    assert service.request_break("a4", NotReadyReason.PERSONAL).status == "granted"
    roster.set_ready("a4", at(1040))
    service.request_break("a4", NotReadyReason.BREAK)  # asks again: keeps the place
    assert service.line.position("a4") == 2

    at(1200)  # headroom for one: a3 first, but on a call: after it
    assert "a3" in service.pending_grants and roster.get("a3").state is AgentState.ON_CALL
    roster.call_ended("a3", at(1300))
    clock.advance(0)  # the reactor's next turn
    a3 = roster.get("a3")
    assert (a3.state, a3.reason, a3.ledger.since) == (
        AgentState.NOT_READY, NotReadyReason.BREAK, T0 + 1300)
    roster.set_ready("a3", at(1500))  # back: headroom again, a4 next
    clock.advance(0)
    assert roster.get("a4").reason is NotReadyReason.BREAK
    at(1700)  # a1 and a2 reached the maximum wait: granted without headroom
    await service.stop()

    queued = [g for g in service.grants if g.requested_at >= T0 + 1000 and g.reason.value == "break"]
    assert [g.agent_id for g in queued] == ["a3", "a4", "a1", "a2"]
    waits = {g.agent_id: g.waited_s for g in queued}
    assert waits["a3"] == 180 and waits["a4"] == 470
    assert waits["a1"] == 600 and waits["a2"] == 600  # none waits past the maximum
    assert all(g.forced for g in queued if g.agent_id in ("a1", "a2"))
    stored = await as_deferred(StatsStore(redis_client, SLA).breaks(
        StatsStore(redis_client, SLA).day_of(T0), StatsStore(redis_client, SLA).day_of(T0)))
    assert [(r.agent_id, r.waited_s) for r in stored][-4:] == [
        ("a3", 180), ("a4", 470), ("a1", 600), ("a2", 600)]
    assert await as_deferred(redis_client.hgetall("shenava:{stats}:breakline")) == {}


@pytest_twisted.ensureDeferred
async def test_the_break_line_survives_a_restart_with_its_request_times(redis_client: Redis) -> None:
    clock = clock_at(T0)
    roster, service = make_service(
        redis_client, clock, breaks=BreakConfig(max_wait_s=600), headroom=lambda n, now: 0
    )
    await service.start()
    roster.log_in("a1", T0)
    step_to(clock, T0 + 100)
    assert service.request_break("a1", NotReadyReason.LUNCH).status == "waiting"
    await service.flushed()
    await service.stop(graceful=False)
    step_to(clock, T0 + 130)
    roster, service = make_service(
        redis_client, clock, breaks=BreakConfig(max_wait_s=600), headroom=lambda n, now: 0
    )
    await service.start()
    assert service.line.position("a1") == 1
    step_to(clock, T0 + 700)
    assert (roster.get("a1").reason, service.grants[-1].waited_s) == (NotReadyReason.LUNCH, 600)
    await service.stop()


@pytest_twisted.ensureDeferred
async def test_erlang_headroom_from_recent_traffic_and_recovery_after_the_call(
    redis_client: Redis,
) -> None:
    clock = clock_at(T0)
    roster, service = make_service(redis_client, clock)
    await service.start()
    for agent in ("a1", "a2", "a3", "a4"):
        roster.log_in(agent, T0)
    step_to(clock, T0 + 10)
    # quiet: with no traffic every agent above min_staffed is spare
    assert service.request_break("a1", NotReadyReason.BREAK).status == "granted"
    roster.set_ready("a1", clock.seconds())
    # busy: 300 calls in the last half hour at 5 minutes each is 50 Erlangs for 4 agents
    for i in range(300):
        service.on_routing_event(CallQueued(f"q{i}", T0 + 10, T0, "fa", "billing", "0912"))
    assert service.spare(clock.seconds()) == 0
    assert service.request_break("a2", NotReadyReason.BREAK).status == "waiting"
    # recovery is never queued: at once, or right after the call
    roster.ringing("a3", "c1", clock.seconds())
    roster.answered("a3", True, clock.seconds())
    assert service.grant_recovery("a3").status == "after_call"
    step_to(clock, T0 + 60)
    roster.call_ended("a3", clock.seconds())
    clock.advance(0)
    assert roster.get("a3").reason is NotReadyReason.RECOVERY
    await service.stop()


@pytest_twisted.ensureDeferred
async def test_wellbeing_alerts_are_raised_once_and_stored(redis_client: Redis) -> None:
    clock = clock_at(T0)
    roster, service = make_service(
        redis_client, clock, wellbeing=WellbeingConfig(max_without_break_s=1800)
    )
    await service.start()
    roster.log_in("a1", T0)
    step_to(clock, T0 + 2000)
    kinds = [a.kind for a in service.alerts_raised]
    assert kinds == ["no_break"]
    assert service.snapshot()["alerts"][0]["agent_id"] == "a1"
    await service.stop()
    store = StatsStore(redis_client, SLA)
    stored = await as_deferred(store.alerts(store.day_of(T0), store.day_of(T0)))
    assert [(a.agent_id, a.kind) for a in stored] == [("a1", "no_break")]


@pytest_twisted.ensureDeferred
async def test_a_grant_waiting_for_the_call_to_end_survives_a_restart(redis_client: Redis) -> None:
    clock = clock_at(T0)
    roster, service = make_service(redis_client, clock)
    await service.start()
    for agent in ("a1", "a2", "a3"):
        roster.log_in(agent, T0)
    step_to(clock, T0 + 10)
    roster.ringing("a1", "c1", clock.seconds())
    roster.answered("a1", False, clock.seconds())
    roster.ringing("a2", "c2", clock.seconds())
    roster.answered("a2", True, clock.seconds())
    roster.ringing("a3", "c3", clock.seconds())
    assert service.request_break("a1", NotReadyReason.BREAK).status == "after_call"
    assert service.grant_recovery("a2").status == "after_call"
    assert service.request_break("a3", NotReadyReason.PERSONAL).status == "after_call"
    await service.flushed()
    await service.stop(graceful=False)

    step_to(clock, T0 + 40)
    roster, service = make_service(redis_client, clock)
    # a1's call is seen again before the statistics are back; a2's is not (resumes as
    # technical, presses ready when done); a3 was only ringing (resumes ready: free)
    roster.ringing("a1", "c1", clock.seconds())
    roster.answered("a1", False, clock.seconds())
    await service.start()
    clock.advance(0)
    assert set(service.pending_grants) == {"a1", "a2"}
    assert service.snapshot()["agents"][0]["break_after_call"] is True
    assert (roster.get("a3").state, roster.get("a3").reason) == (
        AgentState.NOT_READY, NotReadyReason.PERSONAL)
    a2 = roster.get("a2")
    assert (a2.state, a2.reason) == (AgentState.NOT_READY, NotReadyReason.TECHNICAL)
    step_to(clock, T0 + 100)
    roster.call_ended("a1", clock.seconds())
    roster.set_ready("a2", clock.seconds())
    clock.advance(0)
    assert roster.get("a1").reason is NotReadyReason.BREAK
    assert roster.get("a2").reason is NotReadyReason.RECOVERY
    assert service.pending_grants == {}
    await service.stop()
    assert await as_deferred(redis_client.hgetall("shenava:{stats}:breakpending")) == {}

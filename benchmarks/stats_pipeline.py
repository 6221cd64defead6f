"""Call and agent events through the live statistics, Redis writes included.

    .venv/bin/python benchmarks/stats_pipeline.py [--calls 10000] [--agents 50] [--burst 50]

A real ``redis-server`` (AOF on) is started on a free loopback port. A simulated
day drives the :class:`~agent_stats.service.StatsService` the way the daemon
does: each call joins (``CallQueued``), then is answered (the agent rings,
answers, talks, wraps up and is ready again: four roster changes and
``CallAnswered``/``CallCompleted``), abandoned, or leaves for a callback or a
voicemail; now and then an agent asks for a break (the fair line, Erlang C
headroom) or a personal one, and comes back. Time is a ``task.Clock`` (the
statistics' clock), Redis is real: after every ``--burst`` events the asyncio
loop gets a turn, as the reactor would, so writes go out in ordered
``MULTI``/``EXEC`` batches while events keep coming; the run ends when every
write is in Redis.

The heartbeat tick (every 15 s of the statistics' clock: wellbeing signals
of every agent, the break line, the day's fairness every 5 minutes) runs in
simulated time too, so a whole day's ticks fall into a few seconds of wall
time: they are timed apart (``tick_ms_mean``, ``events_per_s_without_ticks``)
besides the all-in ``events_per_s``.

Counted: ``events`` (routing events plus roster changes), wall time from the
first event to the last write, Redis commands from ``INFO stats``
sent by the daemon (``redis_commands_per_event``: what the round trips carry,
``MULTI``/``EXEC`` included) and as Redis counts them (``INFO stats``
``total_commands_processed``, less the benchmark's own: it counts the
``HINCRBY`` calls inside the counters' script one by one), and round trips
(batches). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
from redis.asyncio import Redis  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

from agent_stats.breaks import BreakConfig  # noqa: E402
from agent_stats.errors import AgentStatsError  # noqa: E402
from agent_stats.roster import AgentProfile, AgentRoster  # noqa: E402
from agent_stats.service import StatsService  # noqa: E402
from agent_stats.sla import SLAConfig  # noqa: E402
from agent_stats.states import AgentState, NotReadyReason  # noqa: E402
from agent_stats.store import StatsStore  # noqa: E402
from agent_stats.wellbeing import WellbeingConfig  # noqa: E402
from routing.dispatch import (  # noqa: E402
    CallAbandoned,
    CallAnswered,
    CallCompleted,
    CallLeftForChoice,
    CallQueued,
)
from shenava.redis_server import start_redis_server  # noqa: E402

T0 = 1_793_590_200.0  # 2026-11-02 08:00 in Tehran
OUTCOMES = ("answered", "abandoned", "callback", "voicemail")
OUTCOME_WEIGHTS = (80, 12, 5, 3)


def commands(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.info("stats")["total_commands_processed"])


def advance_to(clock: Clock, t: float) -> None:
    """Like the reactor: every timer fires at its own time, not at the end of a jump."""
    while True:
        due = [c.getTime() for c in clock.getDelayedCalls() if c.getTime() <= t]
        if not due:
            break
        clock.advance(max(0.0, min(due) - clock.seconds()))
    clock.advance(t - clock.seconds())


async def wait(d: Deferred[None]) -> None:
    await d.asFuture(asyncio.get_running_loop())


async def run(url: str, calls: int, agents: int, burst: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    clock = Clock()
    clock.advance(T0)
    client = Redis.from_url(url)
    profiles = [AgentProfile(f"a{i}", f"Agent {i}", f"PJSIP/{1000 + i}", ("fa",))
                for i in range(agents)]
    roster = AgentRoster(profiles, T0)
    sla = SLAConfig(utc_offset_s=12600.0)
    store = StatsStore(client, sla)
    service = StatsService(
        store=store, roster=roster, clock=clock, sla=sla, breaks=BreakConfig(max_wait_s=600),
        wellbeing=WellbeingConfig(),
    )
    tick_s: list[float] = []
    real_tick = service.tick

    def timed_tick() -> None:
        t0 = time.perf_counter()
        real_tick()
        tick_s.append(time.perf_counter() - t0)

    service.tick = timed_tick  # type: ignore[method-assign]
    await wait(service.start())
    for p in profiles:
        roster.log_in(p.agent_id, T0)

    events = 0
    pending = 0
    busy: list[tuple[float, str, str, float]] = []  # (ends at, agent, call, answered at)
    t = T0
    gap = 3.0  # a call every 3 s on average: about 1200 an hour
    started = time.perf_counter()
    before = commands(url)

    async def turn() -> None:
        nonlocal pending
        pending = 0
        await asyncio.sleep(0)

    def emit(event: object) -> None:
        nonlocal events, pending
        service.on_routing_event(event)
        events += 1
        pending += 1

    def change(fn: object, *args: object) -> None:
        nonlocal events, pending
        try:
            if fn(*args) is not None:  # type: ignore[operator]
                events += 1
                pending += 1
        except AgentStatsError:
            pass

    for n in range(calls):
        t += rng.expovariate(1 / gap)
        advance_to(clock, t)
        now = clock.seconds()
        # calls ending by now: wrap-up, then ready
        still = []
        for ends, agent, call_id, answered in busy:
            if ends <= now:
                emit(CallCompleted(call_id, now, agent, answered))
                change(roster.call_ended, agent, now)
                change(roster.set_ready, agent, now)
            else:
                still.append((ends, agent, call_id, answered))
        busy = still
        call_id = f"c{n}"
        joined = now
        emit(CallQueued(call_id, now, now - rng.uniform(5, 40), "fa", "billing", "0912"))
        outcome = rng.choices(OUTCOMES, OUTCOME_WEIGHTS)[0]
        wait_s = rng.expovariate(1 / 15)
        at = now + wait_s
        if outcome == "answered":
            ready = [s.profile.agent_id for s in roster if s.state is AgentState.READY]
            if ready:
                agent = rng.choice(ready)
                change(roster.ringing, agent, call_id, at)
                change(roster.answered, agent, False, at)
                emit(CallAnswered(call_id, at, agent, joined, rng.random() < 0.05))
                busy.append((at + rng.uniform(60, 400), agent, call_id, at))
            else:
                emit(CallAbandoned(call_id, at, joined, "0912", None))
        elif outcome == "abandoned":
            emit(CallAbandoned(call_id, at, joined, "0912", None))
        else:
            emit(CallLeftForChoice(call_id, at, joined, outcome, "0912", 1, "PJSIP/x", "fa"))
        if rng.random() < 0.02:
            agent = rng.choice(profiles).agent_id
            reason = NotReadyReason.PERSONAL if rng.random() < 0.5 else NotReadyReason.BREAK
            try:
                service.request_break(agent, reason, now)
                events += 1
            except AgentStatsError:
                pass
        for status in roster:
            if status.state is AgentState.NOT_READY and now - status.ledger.since > 300:
                change(roster.set_ready, status.profile.agent_id, now)
        if pending >= burst:
            await turn()
    await wait(service.stop())
    elapsed = time.perf_counter() - started
    after = commands(url)
    await client.aclose()
    used = after - before - 1  # less the second INFO
    return {
        "bench": "stats_pipeline",
        "events": events,
        "calls": calls,
        "agents": agents,
        "burst": burst,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed),
        "events_per_s_without_ticks": round(events / (elapsed - sum(tick_s))),
        "ticks": len(tick_s),
        "tick_ms_mean": round(1000 * sum(tick_s) / max(1, len(tick_s)), 3),
        "tick_ms_max": round(1000 * max(tick_s, default=0.0), 3),
        "redis_commands": store.commands_sent,
        "redis_commands_per_event": round(store.commands_sent / events, 3),
        "redis_server_commands_per_event": round(used / events, 3),
        "round_trips": service.writer.batches,
        "round_trips_per_event": round(service.writer.batches / events, 4),
        "operations_per_round_trip": round(service.writer.operations / max(1, service.writer.batches), 1),
        "breaks_granted": service.grants_made,
        "break_wait_max_s": round(service.break_wait_max_s, 1),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--burst", type=int, default=50,
                        help="events between turns of the event loop (default 50)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shenava-bench-") as tmp:
        server = start_redis_server(Path(tmp))
        try:
            result = asyncio.run(run(server.url, args.calls, args.agents, args.burst, args.seed))
        finally:
            server.stop()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

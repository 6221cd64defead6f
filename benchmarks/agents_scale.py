"""Per-agent work at 500, 2,000 and 10,000 agents: headroom, wellbeing tick, hold position.

    .venv/bin/python benchmarks/agents_scale.py [--agents 500,2000,10000] [--ticks 20]
                                                [--before PATH [--rounds N]]

Each figure is measured for the current code and for the implementation it
replaced, side by side in the same run, on the same data:

* **headroom**: ``erlang.spare_agents`` (O(N)) against the definition it must
  equal, ``erlang.spare_agents_by_size`` (one Erlang C per size, O(N^2)), with
  every agent staffed, 85 % load (300-s handle time), SL target 80 % in 20 s.
  Both answers are printed; they must be equal.
* **wellbeing tick**: ``StatsService.check_wellbeing`` (looks at the agents
  something happened to that can bring an alert sooner than planned, and at
  those whose alerts are due; glances at those not looked at for
  ``SIGNALS_REFRESH_S``, for the pages' figures: docs/statistics.md) against
  the old check, kept here as ``check_every_agent`` (every logged-in agent's
  signals from its ledger and calls on every tick; it uses today's exact
  window sums, ``wellbeing.window_seconds``, so it is about twice as fast as
  the check it stands for: the ratio is the algorithm's alone).
  ``agents_looked_at_per_tick`` counts looks and glances. Two services listen to one roster and the
  same calls: a busy centre in simulated time (every agent rings, talks 3-7
  minutes, wraps up 30 s, waits for the next call, takes a break now and then),
  an hour and a quarter of warm-up (the occupancy window fills), then
  ``--ticks`` 15-s ticks timed for each. Both must raise the same alerts.
* **per call** (``per_call``): what the callback dialler asks for one call, the
  gate (calling hours, free agents, the headroom service levels with the agents
  staffed and with one fewer) and the pick of the agent idle longest, against
  the same done as before: a scan of every agent for the ready and staffed
  counts and for the pick, Erlang B afresh for each level, the calling hours'
  windows afresh (``old_gate_and_pick``). A busy centre (60 % on a call, 15 %
  ready, ...; 70 % load); before each call a call arrives, one ends and an agent
  is freed, and after it the agent picked answers (so the traffic, and Erlang B's input, changes every call). Both sides
  run on the same state for every call and must give the same decision and
  agent; ``new_per_call_us``/``old_per_call_us`` are the median CPU time (the
  garbage collector held off while timing),
  ``*_state_reads_per_call`` the agent states read for one call (the new reads
  none), ``new_again_same_traffic_us`` the gate and pick asked again at the same
  traffic (as the dialler does after its claim): what is left without Erlang B's
  recursion, which the new side still runs once per change of traffic.
* **hold position**: ``WaitingLine.position`` (binary searches in sorted
  entries) against the old count over every waiting call (``count_position``),
  with as many calls waiting as there are agents, in 4 buckets, for 200
  announcements.

Timings are the process's CPU time (``process_time``: the machine is shared, and
wall time would count other processes; CPU time still grows when other
processes share the cores and caches, so ``load_average`` is reported), median
of the ticks (and p99, which includes any garbage-collector pause that falls in
a tick), best of 5 rounds for the headroom and the positions. The last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # ``--code PATH`` (the ``--before`` run's subprocess): that checkout's packages
    _code = sys.argv[sys.argv.index("--code") + 1] if "--code" in sys.argv else None
    sys.path.insert(0, str(Path(_code).resolve() if _code else Path(__file__).resolve().parents[1]))

from twisted.internet.task import Clock  # noqa: E402

from agent_stats.breaks import BreakConfig  # noqa: E402
from agent_stats.erlang import (  # noqa: E402
    Traffic,
    predicted_service_level,
    spare_agents,
    spare_agents_by_size,
)
from agent_stats.roster import AgentProfile, AgentRoster  # noqa: E402
from agent_stats.running import running_signals  # noqa: E402
from agent_stats.service import HANDLED_KEEP_S, StatsService  # noqa: E402
from agent_stats.sla import SLAConfig, day_start  # noqa: E402
from agent_stats.states import STAFFED_STATES, AgentState, NotReadyReason  # noqa: E402
from agent_stats.store import AlertRecord, StatsStore  # noqa: E402
from agent_stats.wellbeing import WellbeingConfig, alerts  # noqa: E402
from routing.callback_dialer import CallbackDialer  # noqa: E402
from routing.callbacks import CallingHours, DialPolicy, GateDecision, dial_gate  # noqa: E402
from routing.calls import WaitingCall  # noqa: E402
from routing.events import CallAnswered, CallCompleted
from routing.scoring import ScoringConfig  # noqa: E402
from routing.waiting_line import Position, WaitingLine  # noqa: E402

T0 = 1_793_590_200.0  # 2026-11-02 07:00 in Tehran
SLA = SLAConfig(utc_offset_s=12600.0)
TICK_S = 15.0
WARM_UP_S = 4500.0


# --- the replaced implementations, kept as references -----------------------


def check_every_agent(service: StatsService, now: float, active: dict[str, Any]) -> list[Any]:
    """The old ``check_wellbeing``: every logged-in agent's signals, every tick."""
    raised = []
    start = day_start(now, service.sla)
    for status in service.roster:
        agent_id = status.profile.agent_id
        calls = service._call_log(agent_id)
        calls.prune(now - HANDLED_KEEP_S)
        if status.state is AgentState.LOGGED_OUT:
            active.pop(agent_id, None)
            continue
        sig = running_signals(
            status.ledger, service._agent_day(agent_id), calls, now, start, service.wellbeing
        )
        found = {a.kind: a for a in alerts(sig, service.wellbeing)}
        before = active.get(agent_id, {})
        for kind, alert in found.items():
            if kind not in before:
                raised.append(AlertRecord(agent_id, kind.value, float(alert.value),
                                          float(alert.limit), now))
        active[agent_id] = found
    return raised


def count_position(line: WaitingLine, call_id: str) -> Position:
    """The old ``WaitingLine.position``: a count over every waiting call."""
    entry, call = line._live[call_id]
    bucket = (call.language, call.skill)
    in_bucket = overall = 1
    for other_entry, other in line._live.values():
        if other_entry < entry:
            overall += 1
            if (other.language, other.skill) == bucket:
                in_bucket += 1
    return Position(in_bucket, line._live_count[bucket], overall, len(line._live))


class _FreshHours:
    """The calling hours as they were: every window of ten days computed on each ask."""

    def __init__(self, hours: CallingHours) -> None:
        self.hours = hours

    def is_open(self, now: float) -> bool:
        return any(start <= now < end for start, end in self.hours._intervals(now))


def old_gate_and_pick(service: StatsService, hours: _FreshHours, now: float
                      ) -> tuple[GateDecision, str | None]:
    """The callback gate and pick as they were: the roster scanned three times (ready for
    the gate, staffed for each level) and once more for the pick, Erlang B from scratch."""
    roster = service.roster
    staffed = sum(1 for s in roster if s.state in STAFFED_STATES)
    traffic, threshold = service.traffic(now), service.sla.threshold_s
    level = predicted_service_level(max(0, staffed - 1), traffic, threshold)
    staffed = sum(1 for s in roster if s.state in STAFFED_STATES)
    staffed_level = predicted_service_level(staffed, service.traffic(now), threshold)
    free = [s for s in roster if s.state is AgentState.READY]
    decision = dial_gate(now, hours, DialPolicy(), free_agents=len(free),  # type: ignore[arg-type]
                         waiting_calls=0, service_level=level, staffed_service_level=staffed_level)
    free = [s for s in roster if s.state is AgentState.READY]
    pick = min(free, key=lambda s: s.idle_since) if free else None
    return decision, None if pick is None else pick.profile.agent_id


class _Store:
    policy = DialPolicy()


class _Tracker:
    def subscribe(self, subscriber: Any) -> None:
        pass


def per_call(agents: int, calls: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    clock = Clock()
    clock.advance(T0)
    roster = AgentRoster([AgentProfile(f"a{i}", f"Agent {i}", f"PJSIP/{1000 + i}", ("fa",))
                          for i in range(agents)], T0)
    service = quiet_service(roster, clock)
    hours = CallingHours.from_mapping({"timezone": "Asia/Tehran",
                                       "windows": {"daily": ["07:00-21:00"]}})
    dialer = CallbackDialer(
        store=_Store(), ami=None, tracker=_Tracker(), roster=roster,  # type: ignore[arg-type]
        waiting_calls=lambda: 0, clock=clock, hours=hours, owner="bench",  # type: ignore[arg-type]
        service_level=service.headroom_service_level,
        staffed_service_level=service.staffed_service_level,
    )
    fresh = _FreshHours(hours)
    # a busy centre: each agent in a state drawn from the mix, at a moment of the last minutes
    mix = [(AgentState.ON_CALL, 0.60), (AgentState.READY, 0.15), (AgentState.WRAP_UP, 0.10),
           (AgentState.RINGING, 0.02), (AgentState.NOT_READY, 0.08), (AgentState.LOGGED_OUT, 0.05)]
    now = T0 + 600.0
    for i, at in sorted(enumerate(T0 + rng.uniform(0, 590) for _ in range(agents)),
                        key=lambda p: p[1]):
        agent, state = f"a{i}", rng.choices([m[0] for m in mix], [m[1] for m in mix])[0]
        if state is AgentState.LOGGED_OUT:
            continue
        roster.log_in(agent, at)
        if state is AgentState.NOT_READY:
            roster.set_not_ready(agent, NotReadyReason.BREAK, at)
        elif state in (AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP):
            roster.ringing(agent, f"c{i}", at)
            if state is not AgentState.RINGING:
                roster.answered(agent, False, at)
            if state is AgentState.WRAP_UP:
                roster.call_ended(agent, at)
    arrivals = int(agents * 0.7 / 300 * 600)  # the last ten minutes at 70 % load
    for k in range(arrivals):
        service.recent.arrived(T0 + k * 600 / max(1, arrivals))
    clock.advance(now - clock.seconds())
    reads = [0]
    status_type: Any = type(roster.get("a0"))
    state_of = status_type.state

    def counted(self: Any) -> AgentState:
        reads[0] += 1
        state: AgentState = state_of.fget(self)
        return state

    def state_reads(ask: Any) -> int:
        """Agent states read by ``ask()`` (the property counted, untimed)."""
        status_type.state = property(counted)
        try:
            reads[0] = 0
            ask()
            return reads[0]
        finally:
            status_type.state = state_of

    new_us: list[float] = []
    old_us: list[float] = []
    again_us: list[float] = []
    same = True
    opened = 0
    gc.collect()
    gc.disable()  # a collection of the whole roster would land on either side at random
    for n in range(calls):
        # the traffic moves: a call arrives, a call ends, an agent is freed; the one
        # picked is rung and answers
        clock.advance(0.02)
        now = clock.seconds()
        service.recent.arrived(now)
        sample = [roster.get(f"a{i}") for i in rng.sample(range(agents), 30)]
        for status, move in ((AgentState.ON_CALL, roster.call_ended),
                             (AgentState.WRAP_UP, roster.set_ready)):
            mover = next((s for s in sample if s.state is status), None)
            if mover is not None:
                move(mover.profile.agent_id, now)
        t0 = time.process_time()
        decision = dialer.gate(now)
        picked = dialer._pick_agent()
        t1 = time.process_time()
        again = dialer.gate(now), dialer._pick_agent()  # the dialler's look after its claim
        t2 = time.process_time()
        old = old_gate_and_pick(service, fresh, now)
        t3 = time.process_time()
        new_us.append((t1 - t0) * 1e6)
        again_us.append((t2 - t1) * 1e6)
        old_us.append((t3 - t2) * 1e6)
        same = same and again == (decision, picked)
        got = (decision, None if picked is None else picked.profile.agent_id)
        same = same and got == old
        opened += decision.open
        if picked is not None:
            roster.ringing(picked.profile.agent_id, f"cb{n}", now)
            roster.answered(picked.profile.agent_id, False, now)
    gc.enable()
    now = clock.seconds()
    return {"calls": calls, "new_per_call_us": round(statistics.median(new_us), 1),
            "old_per_call_us": round(statistics.median(old_us), 1),
            "new_again_same_traffic_us": round(statistics.median(again_us), 1),
            "new_state_reads_per_call": state_reads(
                lambda: (dialer.gate(now), dialer._pick_agent())),
            "old_state_reads_per_call": state_reads(
                lambda: old_gate_and_pick(service, fresh, now)),
            "gate_open_share": round(opened / calls, 2), "same_answers": same}


# --- the measurements ------------------------------------------------------------


def best_ms(fn: Any, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best * 1000


def headroom(agents: int) -> dict[str, Any]:
    traffic = Traffic(agents * 0.85 / 300.0, 300.0)
    new = spare_agents(agents, traffic, 20.0, 0.8)
    old = spare_agents_by_size(agents, traffic, 20.0, 0.8)
    return {
        "spare": new,
        "same_answer": new == old,
        "new_ms": round(best_ms(lambda: spare_agents(agents, traffic, 20.0, 0.8), 5), 3),
        "old_ms": round(best_ms(lambda: spare_agents_by_size(agents, traffic, 20.0, 0.8),
                                1 if agents > 2000 else 3), 3),
    }


def quiet_service(roster: AgentRoster, clock: Clock) -> StatsService:
    service = StatsService(
        store=StatsStore(None, SLA),  # type: ignore[arg-type]
        roster=roster, clock=clock, sla=SLA, breaks=BreakConfig(), wellbeing=WellbeingConfig(),
    )
    # no Redis here: what the writer would send is dropped
    service.writer.submit = lambda op: None  # type: ignore[method-assign]
    service.writer.kick = lambda: None  # type: ignore[method-assign]
    return service


def wellbeing(agents: int, ticks: int, seed: int, reference: bool = True) -> dict[str, Any]:
    rng = random.Random(seed)
    clock = Clock()
    clock.advance(T0)
    profiles = [AgentProfile(f"a{i}", f"Agent {i}", f"PJSIP/{1000 + i}", ("fa",))
                for i in range(agents)]
    roster = AgentRoster(profiles, T0)
    new, old = quiet_service(roster, clock), quiet_service(roster, clock)
    old_active: dict[str, Any] = {}
    # (when, agent, what): each agent's next step; steps follow a call's life
    steps: list[tuple[float, int, str]] = []
    calls: dict[int, tuple[str, float]] = {}
    for i in range(agents):
        roster.log_in(f"a{i}", T0)
        heapq.heappush(steps, (T0 + rng.uniform(0, 60), i, "ring"))
    made = 0

    def run_until(t: float) -> None:
        nonlocal made
        while steps and steps[0][0] < t:
            at, i, what = heapq.heappop(steps)
            agent = f"a{i}"
            if what == "ring":
                made += 1
                calls[i] = (f"c{made}", 0.0)
                roster.ringing(agent, calls[i][0], at)
                heapq.heappush(steps, (at + rng.uniform(2, 8), i, "answer"))
            elif what == "answer":
                hard = rng.random() < 0.03
                roster.answered(agent, hard, at)
                calls[i] = (calls[i][0], at)
                for service in (new, old):
                    service.on_routing_event(CallAnswered(calls[i][0], at, agent, at - 20, hard))
                heapq.heappush(steps, (at + rng.uniform(180, 420), i, "hang up"))
            elif what == "hang up":
                roster.call_ended(agent, at)
                call_id, answered = calls.pop(i)
                for service in (new, old):
                    service.on_routing_event(CallCompleted(call_id, at, agent, answered))
                heapq.heappush(steps, (at + 30, i, "ready"))
            elif what == "ready":
                roster.set_ready(agent, at)
                if rng.random() < 0.04:
                    heapq.heappush(steps, (at + rng.uniform(5, 30), i, "break"))
                else:
                    heapq.heappush(steps, (at + rng.expovariate(1 / 40), i, "ring"))
            elif what == "break":
                roster.set_not_ready(agent, NotReadyReason.BREAK, at)
                heapq.heappush(steps, (at + rng.uniform(300, 900), i, "ready"))

    t = T0
    while t < T0 + WARM_UP_S:  # warm-up, untimed: the day so far
        t += TICK_S
        run_until(t)
        if t > T0 + WARM_UP_S - 4 * TICK_S:
            new.check_wellbeing(t)
            if reference:
                check_every_agent(old, t, old_active)
    new_ms: list[float] = []
    old_ms: list[float] = []
    looked: list[int] = []
    watch = getattr(new, "watch", None)
    counts_before = (getattr(watch, "whole_looks", 0), getattr(watch, "occupancy_looks", 0))
    same = True
    changes = 0
    for _ in range(ticks):
        t += TICK_S
        before = made
        run_until(t)
        changes += made - before
        t0 = time.process_time()
        got = new.check_wellbeing(t)
        t1 = time.process_time()
        if reference:
            want = check_every_agent(old, t, old_active)
        t2 = time.process_time()
        new_ms.append((t1 - t0) * 1000)
        old_ms.append((t2 - t1) * 1000)
        looked.append(sum(1 for s in new._glances.values() if s.now == t))
        if reference:
            same = same and got == want and {
                a: set(k) for a, k in new.active_alerts.items()
            } == {a: set(k) for a, k in old_active.items()}
    result: dict[str, Any] = {
        "new_ms_median": round(statistics.median(new_ms), 3),
        "new_ms_p99": percentile(new_ms, 0.99),
    }
    if reference:
        result["old_ms_median"] = round(statistics.median(old_ms), 3)
        result["old_ms_p99"] = percentile(old_ms, 0.99)
    if watch is not None and hasattr(watch, "whole_looks"):
        result["whole_looks_per_tick"] = round(
            (watch.whole_looks - counts_before[0]) / ticks, 1)
        result["occupancy_looks_per_tick"] = round(
            (watch.occupancy_looks - counts_before[1]) / ticks, 1)
    return result | {
        "agents_looked_at_per_tick": round(statistics.mean(looked), 1),
        "calls_per_tick": round(changes / ticks, 1),
        "active_alerts": sum(len(k) for k in new.active_alerts.values()),
        "same_alerts": same if reference else None,
    }


def idle_tick(agents: int, ticks: int, seed: int) -> dict[str, Any]:
    """Agents logged in and ready that nothing happens to (a quiet night shift): what a
    tick costs once their hour's window holds nothing else and their no-break alerts
    are up (two and a half hours after they logged in, over the first half hour)."""
    rng = random.Random(seed)
    clock = Clock()
    clock.advance(T0)
    roster = AgentRoster([AgentProfile(f"a{i}", f"Agent {i}", f"PJSIP/{1000 + i}", ("fa",))
                          for i in range(agents)], T0)
    service = quiet_service(roster, clock)
    for i, at in sorted(enumerate(T0 + rng.uniform(0, 1800) for _ in range(agents)),
                        key=lambda p: p[1]):
        roster.log_in(f"a{i}", at)
    t = T0
    while t < T0 + 9000:
        t += TICK_S
        service.check_wellbeing(t)
    watch = getattr(service, "watch", None)
    looks_before = (getattr(watch, "whole_looks", 0), getattr(watch, "occupancy_looks", 0))
    ms = []
    for _ in range(ticks):
        t += TICK_S
        t0 = time.process_time()
        service.check_wellbeing(t)
        ms.append((time.process_time() - t0) * 1000)
    result: dict[str, Any] = {"ms_median": round(statistics.median(ms), 3),
                              "ms_p99": percentile(ms, 0.99)}
    if watch is not None and hasattr(watch, "whole_looks"):
        result["looks_per_tick"] = round(
            (watch.whole_looks - looks_before[0] + watch.occupancy_looks - looks_before[1])
            / ticks, 1)
    return result


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile, nearest rank below (of 20 ticks the p99 is the second largest)."""
    return round(sorted(values)[int(q * (len(values) - 1))], 3)


def hold_position(waiting: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    line = WaitingLine(ScoringConfig())
    for n in range(waiting):
        line.join(WaitingCall(
            f"w{n}", T0 + n * 0.5, rng.choice(["fa", "en"]), rng.choice(["general", "billing"]),
            "general", vulnerable=rng.random() < 0.1,
        ))
    ids = [f"w{rng.randrange(waiting)}" for _ in range(200)]
    same = all(line.position(i) == count_position(line, i) for i in ids[:20])
    new = best_ms(lambda: [line.position(i) for i in ids], 5) / len(ids)
    old = best_ms(lambda: [count_position(line, i) for i in ids], 3) / len(ids)
    return {"waiting_calls": waiting, "new_ms": round(new, 5), "old_ms": round(old, 4),
            "same_answer": same}


def before_tick(code: str, agents: int, ticks: int, seed: int) -> dict[str, Any]:
    """The wellbeing tick of another checkout (``--before``), in a subprocess: this
    file's simulation, that checkout's packages."""
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--code", code, "--agents", str(agents),
         "--ticks", str(ticks), "--seed", str(seed), "--wellbeing-only"],
        check=True, capture_output=True, text=True,
    ).stdout
    run: dict[str, Any] = json.loads(out.strip().splitlines()[-1])["runs"][0]
    return run


def _of_rounds(run: dict[str, Any], side: str, field: str, first: dict[str, Any]) -> float:
    """The median over ``--rounds`` (the one round's figure without them)."""
    rounds = run.get("rounds")
    return float(statistics.median(rounds[side][field])) if rounds else float(first[field])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="500,2000,10000",
                        help="comma-separated agent counts (default 500,2000,10000)")
    parser.add_argument("--ticks", type=int, default=20, help="timed 15-s ticks (default 20)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200,
                        help="calls timed for the per-call gate and pick (default 200)")
    parser.add_argument("--before", metavar="PATH",
                        help="another checkout (a worktree of main): its wellbeing tick is "
                             "measured too, on the same simulation, just before this one's")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --before: this many before/after pairs of wellbeing ticks, "
                             "alternating (the machine's load moves; the medians of the rounds "
                             "are reported)")
    parser.add_argument("--code", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--wellbeing-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    for agents in (int(a) for a in args.agents.split(",")):
        if args.wellbeing_only:
            runs.append({"agents": agents, "wellbeing_tick": wellbeing(
                agents, args.ticks, args.seed, reference=False),
                "idle_tick": idle_tick(agents, args.ticks, args.seed)})
            continue
        run: dict[str, Any] = {"agents": agents, "headroom": headroom(agents)}
        if args.before:
            before = before_tick(args.before, agents, args.ticks, args.seed)
            run["wellbeing_tick_before"] = before["wellbeing_tick"]
            run["idle_tick_before"] = before["idle_tick"]
        run["wellbeing_tick"] = wellbeing(agents, args.ticks, args.seed)
        run["idle_tick"] = idle_tick(agents, args.ticks, args.seed)
        if args.before and args.rounds > 1:
            pairs = [(run["wellbeing_tick_before"], run["wellbeing_tick"])]
            for _ in range(args.rounds - 1):
                pairs.append((before_tick(args.before, agents, args.ticks, args.seed)["wellbeing_tick"],
                              wellbeing(agents, args.ticks, args.seed, reference=False)))
            run["rounds"] = {
                side: {f: [p[i][f] for p in pairs] for f in ("new_ms_median", "new_ms_p99")}
                for i, side in enumerate(("before", "after"))
            }
        run["hold_position"] = hold_position(agents, args.seed)
        run["per_call"] = per_call(agents, args.calls, args.seed)
        runs.append(run)
        print(json.dumps(run), flush=True)
    result: dict[str, Any] = {"bench": "agents_scale", "runs": runs}
    if args.wellbeing_only:
        print(json.dumps(result))
        return
    by = {r["agents"]: r for r in runs}
    if 10000 in by:
        result["headroom_ms_at_10000"] = by[10000]["headroom"]["new_ms"]
        result["headroom_target_met"] = by[10000]["headroom"]["new_ms"] < 1.0
    if 2000 in by:
        tick = by[2000]["wellbeing_tick"]
        result["wellbeing_tick_ms_at_2000"] = tick["new_ms_median"]
        result["wellbeing_tick_p99_ms_at_2000"] = tick["new_ms_p99"]
        result["wellbeing_target_met"] = tick["new_ms_median"] < 5.0
        result["wellbeing_target_met_at_p99"] = tick["new_ms_p99"] < 5.0
    if args.before:
        result["wellbeing_ms_before_after"] = {
            r["agents"]: {
                "before_median": _of_rounds(r, "before", "new_ms_median", r["wellbeing_tick_before"]),
                "before_p99": _of_rounds(r, "before", "new_ms_p99", r["wellbeing_tick_before"]),
                "after_median": _of_rounds(r, "after", "new_ms_median", r["wellbeing_tick"]),
                "after_p99": _of_rounds(r, "after", "new_ms_p99", r["wellbeing_tick"]),
                "idle_before_median": r["idle_tick_before"]["ms_median"],
                "idle_after_median": r["idle_tick"]["ms_median"],
            } for r in runs
        }
    result["per_call_us"] = {
        r["agents"]: {"new": r["per_call"]["new_per_call_us"],
                      "old": r["per_call"]["old_per_call_us"]} for r in runs
    }
    result["same_results"] = all(
        r["headroom"]["same_answer"] and r["wellbeing_tick"]["same_alerts"]
        and r["hold_position"]["same_answer"] and r["per_call"]["same_answers"] for r in runs
    )
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["python"] = platform.python_version()
    print(json.dumps(result))


if __name__ == "__main__":
    main()

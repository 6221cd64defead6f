"""The heartbeat looks only at agents something happened to or whose alerts are due: same alerts."""

from __future__ import annotations

import random

import pytest

from agent_stats.breaks import BreakConfig
from agent_stats.errors import AgentStatsError
from agent_stats.roster import AgentProfile, AgentRoster
from agent_stats.service import SIGNALS_REFRESH_S, StatsService
from agent_stats.sla import day_start
from agent_stats.states import AgentState, NotReadyReason
from agent_stats.store import StatsStore
from agent_stats.wellbeing import HandledCall, WellbeingConfig, alerts, signals
from routing.events import CallAnswered, CallCompleted
from tests.stats_helpers import SLA, T0, clock_at

# small limits, so that every alert comes and goes many times in a few hours
CONFIG = WellbeingConfig(
    max_without_break_s=1500.0, min_rest_s=60.0, occupancy_window_s=1200.0,
    occupancy_limit=0.6, occupancy_min_staffed_s=300.0, hard_calls_limit=2,
    hard_calls_window_s=900.0, long_call_s=500.0, consecutive_calls_limit=5,
)
AGENTS = [AgentProfile(f"a{i}", f"Agent {i}", f"PJSIP/{200 + i}", ("fa",)) for i in range(8)]


def step(roster: AgentRoster, service: StatsService, rng: random.Random, agent: str, t: float,
         calls: dict[str, list[HandledCall]], open_calls: dict[str, tuple[str, float, bool]],
         n: int) -> None:
    state = roster.get(agent).state
    try:
        if state is AgentState.LOGGED_OUT:
            roster.log_in(agent, t)
        elif state is AgentState.READY:
            r = rng.random()
            if r < 0.7:
                call_id = f"{agent}-{n}"
                roster.ringing(agent, call_id, t)
                open_calls[agent] = (call_id, -1.0, rng.random() < 0.3)
            elif r < 0.9:
                roster.set_not_ready(agent, rng.choice(list(NotReadyReason)), t)
            else:
                roster.log_out(agent, t)
        elif state is AgentState.RINGING:
            call_id, _, hard = open_calls[agent]
            roster.answered(agent, hard, t)
            open_calls[agent] = (call_id, t, hard)
            service.on_routing_event(CallAnswered(call_id, t, agent, t - 5, hard))
        elif state is AgentState.ON_CALL:
            call_id, answered, hard = open_calls.pop(agent)
            roster.call_ended(agent, t)
            service.on_routing_event(CallCompleted(call_id, t, agent, answered))
            calls[agent].append(HandledCall(answered, t, hard, call_id))
        else:
            roster.set_ready(agent, t)
    except AgentStatsError:
        pass


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_alerts_equal_a_look_at_every_agent_on_every_tick(seed: int) -> None:
    rng = random.Random(seed)
    roster = AgentRoster(AGENTS, T0)
    service = StatsService(
        store=StatsStore(None, SLA),  # type: ignore[arg-type]
        roster=roster, clock=clock_at(T0), sla=SLA, breaks=BreakConfig(), wellbeing=CONFIG,
    )
    calls: dict[str, list[HandledCall]] = {p.agent_id: [] for p in AGENTS}
    open_calls: dict[str, tuple[str, float, bool]] = {}
    expected_active: dict[str, set[str]] = {}
    expected_values: dict[tuple[str, str], float] = {}
    expected_raised: list[tuple[str, str, float, float]] = []
    t = T0
    n = 0
    for _tick in range(1500):  # about six hours of 15-s ticks
        # a few changes between ticks, agents on long calls or breaks left alone
        for wait in sorted(rng.random() for _ in range(rng.choice([0, 0, 1, 2]))):
            n += 1
            agent = rng.choice(AGENTS).agent_id
            step(roster, service, rng, agent, t + wait * 14, calls, open_calls, n)
        t += 15.0
        got = service.check_wellbeing(t)
        # the definition: every logged-in agent's signals from its whole ledger and calls
        d0 = day_start(t, SLA)
        for p in AGENTS:
            status = roster.get(p.agent_id)
            if status.state is AgentState.LOGGED_OUT:
                expected_active.pop(p.agent_id, None)
                continue
            handled = list(calls[p.agent_id])
            if p.agent_id in open_calls and open_calls[p.agent_id][1] >= 0:
                call_id, answered, hard = open_calls[p.agent_id]
                handled.append(HandledCall(answered, None, hard, call_id))
            found = alerts(signals(status.ledger, handled, t, d0, CONFIG), CONFIG)
            expected_values.update({(p.agent_id, a.kind.value): float(a.value) for a in found})
            before = expected_active.get(p.agent_id, set())
            for a in found:
                if a.kind.value not in before:
                    expected_raised.append((p.agent_id, a.kind.value, float(a.value), t))
            expected_active[p.agent_id] = {a.kind.value for a in found}
        assert {a: {k.value for k in kinds} for a, kinds in service.active_alerts.items()
                if roster.get(a).state is not AgentState.LOGGED_OUT} == expected_active
        assert [(r.agent_id, r.kind, r.value, r.at) for r in got] == [
            r for r in expected_raised if r[3] == t]
        if _tick % 10 == 0:
            # what the wallboard shows: the alerts' figures at this tick, occupancy as of the
            # agent's last look (at most SIGNALS_REFRESH_S ago)
            shown = {(a["agent_id"], a["kind"]): a["value"] for a in service.snapshot(t)["alerts"]}
            want = {}
            for agent, kinds in expected_active.items():
                for kind in kinds:
                    want[(agent, kind)] = expected_values[(agent, kind)]
                    if kind == "high_occupancy":
                        looked = service._glances[agent].now
                        assert t - SIGNALS_REFRESH_S <= looked <= t
                        ledger = roster.get(agent).ledger
                        then = signals(ledger, calls[agent], looked, day_start(looked, SLA), CONFIG)
                        want[(agent, kind)] = then.occupancy
            assert shown == pytest.approx(want, rel=1e-9, abs=1e-6)
    assert len(expected_raised) > 100  # every kind came and went, many times
    assert {kind for _, kind, _, _ in expected_raised} == {
        "no_break", "high_occupancy", "hard_calls", "long_call", "consecutive_calls"}

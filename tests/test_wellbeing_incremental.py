"""The heartbeat looks only at agents something happened to or whose alerts are due: same alerts."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_stats.breaks import BreakConfig
from agent_stats.errors import AgentStatsError
from agent_stats.roster import AgentProfile, AgentRoster
from agent_stats.service import SIGNALS_REFRESH_S, StatsService
from agent_stats.sla import day_start
from agent_stats.states import AgentState, NotReadyReason
from agent_stats.store import StatsStore
from agent_stats.wellbeing import HandledCall, WellbeingConfig, alerts, signals
from routing.dispatch import CallAnswered, CallCompleted
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


def run_against_the_definition(
    seed: int, config: WellbeingConfig, agents: list[AgentProfile], ticks: int,
    tick_s: float = 15.0, changes: tuple[int, ...] = (0, 0, 1, 2),
) -> list[tuple[str, str, float, float]]:
    """Random histories; after every tick the incremental check must have raised, and
    hold, exactly the alerts a look at every agent (``wellbeing.signals``) finds."""
    rng = random.Random(seed)
    roster = AgentRoster(agents, T0)
    service = StatsService(
        store=StatsStore(None, SLA),  # type: ignore[arg-type]
        roster=roster, clock=clock_at(T0), sla=SLA, breaks=BreakConfig(), wellbeing=config,
    )
    calls: dict[str, list[HandledCall]] = {p.agent_id: [] for p in agents}
    open_calls: dict[str, tuple[str, float, bool]] = {}
    expected_active: dict[str, set[str]] = {}
    expected_values: dict[tuple[str, str], float] = {}
    expected_raised: list[tuple[str, str, float, float]] = []
    t = T0
    n = 0
    for _tick in range(ticks):
        # a few changes between ticks, agents on long calls or breaks left alone
        for wait in sorted(rng.random() for _ in range(rng.choice(changes))):
            n += 1
            agent = rng.choice(agents).agent_id
            step(roster, service, rng, agent, t + wait * (tick_s - 1), calls, open_calls, n)
            if roster.get(agent).state is AgentState.LOGGED_OUT:
                expected_active.pop(agent, None)  # a logout ends the agent's alerts at once
        t += tick_s
        got = service.check_wellbeing(t)
        # the definition: every logged-in agent's signals from its whole ledger and calls
        d0 = day_start(t, SLA)
        for p in agents:
            status = roster.get(p.agent_id)
            if status.state is AgentState.LOGGED_OUT:
                expected_active.pop(p.agent_id, None)
                continue
            handled = list(calls[p.agent_id])
            if p.agent_id in open_calls and open_calls[p.agent_id][1] >= 0:
                call_id, answered, hard = open_calls[p.agent_id]
                handled.append(HandledCall(answered, None, hard, call_id))
            found = alerts(signals(status.ledger, handled, t, d0, config), config)
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
                        then = signals(ledger, calls[agent], looked, day_start(looked, SLA), config)
                        want[(agent, kind)] = then.occupancy
            assert shown == pytest.approx(want, rel=1e-9, abs=1e-6)
    return expected_raised


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_alerts_equal_a_look_at_every_agent_on_every_tick(seed: int) -> None:
    expected_raised = run_against_the_definition(seed, CONFIG, AGENTS, 1500)  # about six hours
    assert len(expected_raised) > 100  # every kind came and went, many times
    assert {kind for _, kind, _, _ in expected_raised} == {
        "no_break", "high_occupancy", "hard_calls", "long_call", "consecutive_calls"}


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    agents=st.integers(1, 5),
    tick_s=st.sampled_from([5.0, 15.0, 40.0]),
    changes=st.sampled_from([(0, 1), (0, 0, 1, 2), (1, 2, 3)]),
    max_without_break_s=st.floats(200.0, 3000.0),
    min_rest_s=st.floats(0.0, 200.0),
    window_s=st.floats(60.0, 2400.0),
    occupancy_limit=st.floats(0.2, 1.0),
    min_staffed_share=st.floats(0.0, 1.0),
    hard_calls_limit=st.integers(1, 4),
    hard_calls_window_s=st.floats(30.0, 2000.0),
    long_call_s=st.floats(20.0, 1500.0),
    consecutive=st.one_of(st.none(), st.integers(1, 8)),
)
def test_incremental_alerts_equal_the_definition_for_any_config_and_history(
    seed: int, agents: int, tick_s: float, changes: tuple[int, ...],
    max_without_break_s: float, min_rest_s: float, window_s: float, occupancy_limit: float,
    min_staffed_share: float, hard_calls_limit: int, hard_calls_window_s: float,
    long_call_s: float, consecutive: int | None,
) -> None:
    """Windows shorter than the refresh, limits of 100 %, ticks of any length: whatever the
    config and the history, the incremental check and a look at every agent agree."""
    config = WellbeingConfig(
        max_without_break_s=max_without_break_s, min_rest_s=min_rest_s,
        occupancy_window_s=window_s, occupancy_limit=occupancy_limit,
        occupancy_min_staffed_s=window_s * min_staffed_share,
        hard_calls_limit=hard_calls_limit, hard_calls_window_s=hard_calls_window_s,
        long_call_s=long_call_s, consecutive_calls_limit=consecutive,
    )
    run_against_the_definition(seed, config, AGENTS[:agents], 240, tick_s, changes)

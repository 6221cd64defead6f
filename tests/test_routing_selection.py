"""Agent selection: idle longest, the hard-call rule, exclusions, experience."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.agents import AgentState, AgentView
from routing.calls import WaitingCall
from routing.selection import SelectionConfig, choose_agent, choose_ready

NOW = 1_700_000_000.0
CALL = WaitingCall("c1", NOW - 30, language="fa", skill="billing", category="general")
HARD = replace(CALL, high_severity=True)
ABUSIVE = replace(CALL, abusive_caller=True)


def agent(agent_id: str, idle_for_s: float, **facts: object) -> AgentView:
    base = AgentView(
        agent_id,
        languages=frozenset({"fa", "en"}),
        skills=frozenset({"billing"}),
        idle_since=NOW - idle_for_s,
    )
    return replace(base, **facts)  # type: ignore[arg-type]


def chosen(
    call: WaitingCall, *agents: AgentView, config: SelectionConfig | None = None
) -> str | None:
    decision = choose_agent(call, agents, NOW, config or SelectionConfig())
    return decision.agent.agent_id if decision.agent else None


def test_the_agent_idle_longest_gets_the_call() -> None:
    decision = choose_agent(CALL, [agent("a1", 10), agent("a2", 90), agent("a3", 40)], NOW)
    assert decision.agent is not None and decision.agent.agent_id == "a2"
    assert decision.eligible == ("a2", "a3", "a1")
    assert decision.reason.startswith("a2 idle longest (90 s)")


def test_equal_idle_time_is_settled_by_agent_id() -> None:
    assert chosen(CALL, agent("b", 10), agent("a", 10)) == "a"


@pytest.mark.parametrize(
    ("state", "words"),
    [
        (AgentState.RECOVERY, "in recovery"),
        (AgentState.NOT_READY, "not ready"),
        (AgentState.ON_CALL, "on a call"),
        (AgentState.WRAP_UP, "in wrap-up"),
        (AgentState.RINGING, "already ringing"),
        (AgentState.LOGGED_OUT, "logged out"),
    ],
)
def test_agents_not_ready_are_never_chosen_however_long_idle(state: AgentState, words: str) -> None:
    decision = choose_agent(CALL, [agent("resting", 999, state=state), agent("ready", 1)], NOW)
    assert decision.agent is not None and decision.agent.agent_id == "ready"
    assert ("resting", words) in decision.excluded
    alone = choose_agent(CALL, [agent("resting", 999, state=state)], NOW)
    assert alone.agent is None
    assert "no ready agent speaks fa with skill billing" in alone.reason


def test_language_and_skill_must_match() -> None:
    english_only = agent("en", 99, languages=frozenset({"en"}))
    no_skill = agent("tech", 98, skills=frozenset({"technical"}))
    decision = choose_agent(CALL, [english_only, no_skill, agent("ok", 1)], NOW)
    assert decision.agent is not None and decision.agent.agent_id == "ok"
    assert dict(decision.excluded) == {"en": "does not speak fa", "tech": "lacks skill billing"}


def test_a_hard_call_spares_an_agent_whose_last_call_was_hard() -> None:
    decision = choose_agent(HARD, [agent("tired", 90, last_call_hard=True), agent("fresh", 5)], NOW)
    assert decision.agent is not None and decision.agent.agent_id == "fresh"
    assert "spared tired (last call was hard)" in decision.reason


def test_an_abusive_caller_is_a_hard_call_too() -> None:
    assert ABUSIVE.hard
    assert chosen(ABUSIVE, agent("tired", 90, last_call_hard=True), agent("fresh", 5)) == "fresh"


def test_a_hard_call_goes_to_a_tired_agent_when_no_one_else_can_take_it() -> None:
    decision = choose_agent(HARD, [agent("tired", 90, last_call_hard=True)], NOW)
    assert decision.agent is not None and decision.agent.agent_id == "tired"
    assert "every eligible agent's last call was hard" in decision.reason


def test_an_ordinary_call_ignores_the_last_call() -> None:
    assert chosen(CALL, agent("tired", 90, last_call_hard=True), agent("fresh", 5)) == "tired"


def test_the_hard_call_rule_can_be_switched_off() -> None:
    config = SelectionConfig(spare_hard_in_a_row=False)
    assert (
        chosen(HARD, agent("tired", 90, last_call_hard=True), agent("fresh", 5), config=config)
        == "tired"
    )


def test_an_abusive_caller_goes_to_an_experienced_agent_when_one_is_eligible() -> None:
    decision = choose_agent(ABUSIVE, [agent("new", 90), agent("senior", 5, experienced=True)], NOW)
    assert decision.agent is not None and decision.agent.agent_id == "senior"
    assert "experienced agent for a caller reported abusive" in decision.reason


def test_an_abusive_caller_still_gets_an_agent_when_none_is_experienced() -> None:
    decision = choose_agent(ABUSIVE, [agent("new", 90)], NOW)
    assert decision.agent is not None and decision.agent.agent_id == "new"
    assert "no experienced agent eligible" in decision.reason


def test_the_experience_preference_can_be_switched_off() -> None:
    config = SelectionConfig(abusive_caller_prefers_experienced=False)
    assert (
        chosen(ABUSIVE, agent("new", 90), agent("senior", 5, experienced=True), config=config)
        == "new"
    )


def test_sparing_a_tired_agent_comes_before_preferring_experience() -> None:
    tired_senior = agent("tired-senior", 90, experienced=True, last_call_hard=True)
    assert chosen(ABUSIVE, tired_senior, agent("fresh-new", 5)) == "fresh-new"
    fresh_senior = agent("fresh-senior", 1, experienced=True)
    assert chosen(ABUSIVE, tired_senior, agent("fresh-new", 5), fresh_senior) == "fresh-senior"


_ready_agents = st.lists(
    st.builds(
        lambda i, idle, exp, hard: agent(f"a{i}", idle, experienced=exp, last_call_hard=hard),
        st.integers(0, 30),
        st.sampled_from([0.0, 5.0, 10.0, 10.0, 60.0, 300.5]),  # ties settled by agent id
        st.booleans(),
        st.booleans(),
    ),
    max_size=12,
    unique_by=lambda a: a.agent_id,
)


@given(
    _ready_agents,
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_choose_ready_gives_choose_agents_agent_and_reason(
    agents: list[AgentView], high_severity: bool, abusive: bool, spare: bool, prefer: bool
) -> None:
    """The router's fast way (every agent eligible) says what choose_agent says."""
    call = replace(CALL, high_severity=high_severity, abusive_caller=abusive)
    config = SelectionConfig(spare_hard_in_a_row=spare, abusive_caller_prefers_experienced=prefer)
    fast = choose_ready(call, agents, NOW, config)
    if not agents:
        assert fast is None
        return
    decision = choose_agent(call, agents, NOW, config)
    assert fast is not None and decision.agent is not None
    assert fast == (decision.agent, decision.reason)


@pytest.mark.parametrize(
    "odd_one",
    [
        {"state": AgentState.WRAP_UP},
        {"languages": frozenset({"en"})},
        {"skills": frozenset({"sales"})},
    ],
)
def test_choose_ready_declines_when_an_agent_is_not_eligible(odd_one: dict[str, object]) -> None:
    agents = [agent("a1", 10), agent("a2", 90, **odd_one)]
    assert choose_ready(CALL, agents, NOW) is None

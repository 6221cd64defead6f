"""The event-driven router: assignments, reservations, explanations, invariants."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.agents import AgentState, AgentView
from routing.calls import WaitingCall
from routing.errors import AgentNotReadyError, CallAlreadyAssignedError, UnknownCallError
from routing.router import DEFAULT_DECISION_HISTORY, Assignment, Router
from routing.scoring import ScoringConfig

T0 = 1_700_000_000.0


def make_call(call_id: str, joined_at: float = T0, **facts: object) -> WaitingCall:
    base = WaitingCall(call_id, joined_at, language="fa", skill="billing", category="general")
    return replace(base, **facts)  # type: ignore[arg-type]


def make_agent(agent_id: str, idle_since: float = T0, **facts: object) -> AgentView:
    base = AgentView(agent_id, frozenset({"fa"}), frozenset({"billing"}), idle_since=idle_since)
    return replace(base, **facts)  # type: ignore[arg-type]


def pairs(assignments: list[Assignment]) -> list[tuple[str, str]]:
    return [(a.call_id, a.agent_id) for a in assignments]


def test_a_call_waits_until_an_agent_is_ready_then_goes_to_it() -> None:
    router = Router(ScoringConfig())
    assert router.on_call_joined(make_call("c1"), T0) == []
    assert "c1" in router.line

    [assignment] = router.on_agent_ready(make_agent("a1"), T0 + 5)

    assert (assignment.call_id, assignment.agent_id) == ("c1", "a1")
    assert "c1" not in router.line and router.assigned_agent("c1") == "a1"
    assert "call c1 -> agent a1 (agent ready)" in assignment.explanation
    assert "no other call waiting that a1 could take" in assignment.explanation


def test_an_agent_ready_takes_the_best_call_it_can_serve() -> None:
    router = Router(ScoringConfig())
    router.on_call_joined(make_call("old"), T0)
    router.on_call_joined(make_call("vip", T0 + 30, vulnerable=True), T0 + 30)
    router.on_call_joined(make_call("en", T0 + 31, language="en", vulnerable=True), T0 + 31)

    [assignment] = router.on_agent_ready(make_agent("a1"), T0 + 40)

    assert assignment.call_id == "vip"
    assert "first of 2 calls a1 could take" in assignment.explanation
    assert "next best: vip leads old by 120 points (+150 vulnerable caller; -30 waited less)" in (
        assignment.explanation
    )


def test_a_joining_call_goes_to_the_agent_idle_longest() -> None:
    router = Router(ScoringConfig())
    assert router.on_agent_ready(make_agent("a1", T0 + 10), T0 + 10) == []
    assert router.on_agent_ready(make_agent("a2", T0 + 2), T0 + 10) == []
    assert router.on_agent_ready(make_agent("en", T0, languages=frozenset({"en"})), T0 + 10) == []

    [assignment] = router.on_call_joined(make_call("c1", T0 + 20), T0 + 20)

    assert assignment.agent_id == "a2"
    assert "a2 idle longest (18 s)" in assignment.agent_reason
    assert {a.agent_id for a in router.ready_agents()} == {"a1", "en"}


def test_two_agents_ready_at_once_get_two_different_calls() -> None:
    router = Router(ScoringConfig())
    for i in range(3):
        router.on_call_joined(make_call(f"c{i}", T0 + i), T0 + i)

    assignments = router.on_agents_ready([make_agent("a1"), make_agent("a2", T0 - 5)], T0 + 10)

    assert pairs(assignments) == [("c0", "a2"), ("c1", "a1")]
    assert "2 agents ready at once" in assignments[0].explanation
    assert [c.call_id for c in router.line] == ["c2"]


def test_two_agents_ready_one_after_the_other_at_the_same_moment() -> None:
    router = Router(ScoringConfig())
    for i in range(3):
        router.on_call_joined(make_call(f"c{i}", T0 + i), T0 + i)
    first = router.on_agent_ready(make_agent("a1"), T0 + 10)
    second = router.on_agent_ready(make_agent("a2"), T0 + 10)
    assert pairs(first + second) == [("c0", "a1"), ("c1", "a2")]


def test_agents_ready_at_once_spare_the_one_whose_last_call_was_hard() -> None:
    router = Router(ScoringConfig())
    router.on_call_joined(make_call("hard", T0, high_severity=True), T0)
    router.on_call_joined(make_call("easy", T0 + 1), T0 + 1)
    tired = make_agent("tired", T0 - 100, last_call_hard=True)

    assignments = router.on_agents_ready([tired, make_agent("fresh", T0)], T0 + 10)

    assert pairs(assignments) == [("hard", "fresh"), ("easy", "tired")]
    assert assignments[0].call_hard
    assert "spared tired (last call was hard)" in assignments[0].agent_reason


def test_more_agents_than_calls_and_skills_that_do_not_overlap() -> None:
    router = Router(ScoringConfig())
    router.on_call_joined(make_call("fa"), T0)
    router.on_call_joined(make_call("en", language="en"), T0)
    agents = [
        make_agent("a-fa"),
        make_agent("a-en", languages=frozenset({"en"})),
        make_agent("a-both", T0 - 50, languages=frozenset({"fa", "en"})),
    ]
    assignments = router.on_agents_ready(agents, T0 + 1)
    assert sorted(pairs(assignments)) == [("en", "a-en"), ("fa", "a-both")]
    assert [a.agent_id for a in router.ready_agents()] == ["a-fa"]


def test_an_agent_reported_ready_in_another_state_is_an_error() -> None:
    router = Router(ScoringConfig())
    with pytest.raises(AgentNotReadyError) as raised:
        router.on_agent_ready(make_agent("a1", state=AgentState.RECOVERY), T0)
    assert raised.value.code == "routing.agent_not_ready"


def test_an_agent_gone_unavailable_gets_no_call() -> None:
    router = Router(ScoringConfig())
    router.on_agent_ready(make_agent("a1"), T0)
    assert router.on_agent_unavailable("a1", T0 + 1) == []
    assert router.on_call_joined(make_call("c1"), T0 + 2) == []
    assert router.on_agent_unavailable("never-seen", T0 + 3) == []


def test_a_call_is_never_assigned_twice() -> None:
    router = Router(ScoringConfig())
    router.on_agent_ready(make_agent("a1"), T0)
    [assignment] = router.on_call_joined(make_call("c1"), T0)
    with pytest.raises(CallAlreadyAssignedError):
        router.on_call_joined(make_call("c1"), T0 + 1)
    assert router.on_agent_ready(make_agent("a2"), T0 + 1) == []
    router.on_call_answered("c1")
    with pytest.raises(UnknownCallError):
        router.on_call_answered("c1")
    assert assignment.call_id == "c1"


def test_no_answer_returns_the_call_to_its_place_and_to_another_ready_agent() -> None:
    router = Router(ScoringConfig())
    router.on_call_joined(make_call("c1", T0), T0)
    router.on_call_joined(make_call("c2", T0 + 5), T0 + 5)
    router.on_agent_ready(make_agent("a1"), T0 + 10)  # takes c1

    assert router.on_connect_failed("c1", T0 + 25) == []  # a1 stays out; c1 back in front
    assert router.line.position("c1").in_bucket == 1
    [retry] = router.on_agent_ready(make_agent("a2"), T0 + 30)
    assert (retry.call_id, retry.agent_id) == ("c1", "a2")


def test_an_agent_leaving_while_its_call_rings_hands_the_call_on() -> None:
    router = Router(ScoringConfig())
    router.on_agent_ready(make_agent("a1", T0 - 10), T0)
    router.on_agent_ready(make_agent("a2"), T0)
    [first] = router.on_call_joined(make_call("c1"), T0 + 1)
    assert first.agent_id == "a1"

    [second] = router.on_agent_unavailable("a1", T0 + 3)

    assert (second.call_id, second.agent_id) == ("c1", "a2")
    assert "call returned to the line" in second.explanation


def test_a_caller_hanging_up_leaves_the_line_or_the_reservation() -> None:
    router = Router(ScoringConfig())
    router.on_call_joined(make_call("waiting"), T0)
    assert router.on_call_left("waiting", T0 + 1) == []
    assert "waiting" not in router.line
    router.on_agent_ready(make_agent("a1"), T0 + 2)
    router.on_call_joined(make_call("ringing"), T0 + 3)
    router.on_call_left("ringing", T0 + 4)
    assert router.assigned_agent("ringing") is None
    assert router.on_call_left("never-seen", T0 + 5) == []
    # The agent is free again only when the daemon says so.
    router.on_call_joined(make_call("next"), T0 + 6)
    [assignment] = router.on_agent_ready(make_agent("a1", T0 + 7), T0 + 7)
    assert assignment.call_id == "next"


def test_explain_says_why_a_call_is_not_first_and_why_one_was() -> None:
    router = Router(ScoringConfig())
    router.on_call_joined(make_call("me", T0), T0)
    router.on_call_joined(make_call("vip", T0 + 10, vulnerable=True), T0 + 10)

    behind = router.explain("me", T0 + 20)
    assert "position 2 of 2" in behind
    assert (
        "behind vip (score 220): vip leads me by 140 points (+150 vulnerable caller; -10 waited less)"
        in behind
    )

    first = router.explain("vip", T0 + 20)
    assert "first in line" in first
    assert "no ready agent speaks fa with skill billing" in first

    router.on_agent_ready(make_agent("a1", T0 - 60), T0 + 20)
    decided = router.explain("vip", T0 + 30)
    assert "call vip -> agent a1" in decided
    assert "+150 vulnerable caller" in decided
    assert "a1 idle longest (80 s)" in decided
    assert "status: ringing" in decided
    with pytest.raises(UnknownCallError):
        router.explain("nobody", T0)


def test_decision_history_is_bounded() -> None:
    router = Router(ScoringConfig(), decision_history=2)
    for i in range(3):
        router.on_call_joined(make_call(f"c{i}", T0 + i), T0 + i)
        router.on_agent_ready(make_agent(f"a{i}"), T0 + i)
    assert router.decision("c0") is None
    assert router.decision("c2") is not None


def test_decision_history_stays_at_its_cap_over_many_calls() -> None:
    # Each decision holds its explanation and score (about 1.2 KB): the default
    # cap keeps a full history at a few MB, and the count of forgotten ones says
    # when it started dropping.
    assert DEFAULT_DECISION_HISTORY <= 2_000
    router = Router(ScoringConfig(), decision_history=50)
    for i in range(500):
        router.on_call_joined(make_call(f"c{i}", T0 + i), T0 + i)
        [assignment] = router.on_agent_ready(make_agent("a1", T0 + i - 30), T0 + i)
        router.on_call_answered(assignment.call_id)
        assert router.decisions_kept() <= 50
    assert router.decisions_kept() == 50
    assert router.decisions_forgotten == 450
    assert router.decision("c449") is None and router.decision("c450") is not None


# -- property: random events keep every invariant --------------------------------

LANGS = ("fa", "en")
SKILLS = ("billing", "technical")
events = st.lists(
    st.one_of(
        st.tuples(
            st.just("join"),
            st.integers(0, 30),
            st.sampled_from(LANGS),
            st.sampled_from(SKILLS),
            st.booleans(),
        ),
        st.tuples(
            st.just("ready"),
            st.lists(
                st.tuples(
                    st.integers(0, 6),
                    st.sets(st.sampled_from(LANGS), min_size=1),
                    st.sets(st.sampled_from(SKILLS), min_size=1),
                    st.booleans(),
                ),
                min_size=1,
                max_size=3,
            ),
        ),
        st.tuples(st.just("away"), st.integers(0, 6)),
        st.tuples(st.just("left"), st.integers(0, 30)),
        st.tuples(st.just("answered"), st.integers(0, 30)),
        st.tuples(st.just("failed"), st.integers(0, 30)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(events)
def test_random_events_never_double_assign_and_never_leave_a_match_waiting(
    script: list[tuple[Any, ...]],
) -> None:
    router = Router(ScoringConfig())
    ringing: dict[str, str] = {}  # call -> agent, as the daemon would track it
    busy_agents: set[str] = set()
    known_calls: dict[str, WaitingCall] = {}
    now = T0
    for step in script:
        now += 1.0
        kind = step[0]
        made: list[Assignment] = []
        if kind == "join":
            _, n, lang, skill, hard = step
            call_id = f"c{n}"
            if call_id in ringing or call_id in router.line or call_id in known_calls:
                continue
            call = make_call(call_id, now, language=lang, skill=skill, high_severity=hard)
            known_calls[call_id] = call
            made = router.on_call_joined(call, now)
        elif kind == "ready":
            batch = {}
            for n, langs, skills, last_hard in step[1]:
                agent_id = f"a{n}"
                batch[agent_id] = make_agent(
                    agent_id,
                    now,
                    languages=frozenset(langs),
                    skills=frozenset(skills),
                    last_call_hard=last_hard,
                )
            for agent_id in batch:
                for call_id, holder in list(ringing.items()):
                    if holder == agent_id:
                        del ringing[call_id]
                busy_agents.discard(agent_id)
            made = router.on_agents_ready(list(batch.values()), now)
        elif kind == "away":
            agent_id = f"a{step[1]}"
            for call_id, holder in list(ringing.items()):
                if holder == agent_id:
                    del ringing[call_id]
            busy_agents.discard(agent_id)
            made = router.on_agent_unavailable(agent_id, now)
        elif kind == "left":
            call_id = f"c{step[1]}"
            if call_id in ringing:
                busy_agents.add(ringing.pop(call_id))  # its agent must be reset by the daemon
            made = router.on_call_left(call_id, now)
        elif kind == "answered":
            call_id = f"c{step[1]}"
            if call_id not in ringing:
                continue
            router.on_call_answered(call_id)
            busy_agents.add(ringing.pop(call_id))
        elif kind == "failed":
            call_id = f"c{step[1]}"
            if call_id not in ringing:
                continue
            busy_agents.add(ringing.pop(call_id))
            made = router.on_connect_failed(call_id, now)

        for assignment in made:
            assert assignment.call_id not in ringing, "call assigned twice"
            assert assignment.agent_id not in ringing.values(), "agent given two calls"
            call = known_calls[assignment.call_id]
            ready_ids = {a.agent_id for a in router.ready_agents()}
            assert assignment.agent_id not in ready_ids
            ringing[assignment.call_id] = assignment.agent_id
            assert router.assigned_agent(assignment.call_id) == assignment.agent_id
            assert call.call_id not in router.line

        # No ready agent can take any waiting call.
        for agent in router.ready_agents():
            assert router.line.peek_best(agent.languages, agent.skills) is None

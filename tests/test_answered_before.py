"""A take-over counts an earlier daemon's answer again, under the same outcome id.

The answer's SL outcome goes to the journal (a disk write in a thread) and the
call state's ``talking`` to Redis: a ``kill -9`` between the two left Redis
saying "answered" and no outcome anywhere (``tests/test_takeover_process.py``,
6 of 8 counted under load). The take-over cannot tell whether the outcome was
kept, so it counts it again (``CallAnsweredBefore``) as the very same record:
the store's seen set (``agent_stats.store.outcome_id``) counts it once.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from agent_stats.outcomes import CallCounter
from agent_stats.roster import AgentProfile, AgentRoster
from agent_stats.sla import Outcome, SLAConfig, SLATally
from agent_stats.store import Operation, OutcomeWrite, outcome_id
from routing.dispatch import CallDispatcher, DispatchConfig
from routing.events import CallAnswered, CallAnsweredBefore, CallCompleted, RoutingEvent
from routing.router import Router
from routing.scoring import ScoringConfig
from routing.selection import SelectionConfig
from tests.test_callback_dialer import FakeAMI, FakeTracker

T0 = 1_741_000_000.0


def _dispatcher() -> tuple[CallDispatcher, list[RoutingEvent]]:
    clock = Clock()
    clock.advance(T0)
    roster = AgentRoster([AgentProfile("a1", "a1", "PJSIP/101", ("fa",))], T0)
    d = CallDispatcher(
        ami=FakeAMI(), tracker=FakeTracker(), roster=roster,  # type: ignore[arg-type]
        router=Router(ScoringConfig(), SelectionConfig()), clock=clock,  # type: ignore[arg-type]
        config=DispatchConfig(wrap_up_s=5.0),
    )
    events: list[RoutingEvent] = []
    d.subscribe(events.append)
    return d, events


def _talking(call_id: str) -> dict[str, Any]:
    return {"call_id": call_id, "phase": "talking", "arrived_at": T0 - 40, "joined_at": T0 - 30,
            "answered_at": T0 - 12, "agent_id": "a1", "leg_id": "leg1", "language": "fa",
            "caller_number": "0912", "hard": True}


def test_a_conversation_taken_over_counts_its_answer_again_at_its_own_time() -> None:
    d, events = _dispatcher()
    d.adopt_talking(_talking("c1"), "PJSIP/c1")
    assert events == [CallAnsweredBefore("c1", T0 - 12, "a1", T0 - 30, T0 - 40, True)]


def test_a_conversation_that_ended_while_away_counts_its_answer_then_its_end() -> None:
    d, events = _dispatcher()
    d.ended_while_away(_talking("c2"))
    assert [type(e) for e in events] == [CallAnsweredBefore, CallCompleted]
    assert events[0] == CallAnsweredBefore("c2", T0 - 12, "a1", T0 - 30, T0 - 40, True)


def _counter(submitted: list[Operation]) -> tuple[CallCounter, SLATally]:
    tally = SLATally(SLAConfig())
    counter = CallCounter(tally=tally, queue_of=lambda _e: "support", submit=submitted.append,
                          recent=None, call_log=None, watch=None)  # type: ignore[arg-type]
    return counter, tally


def test_the_recount_is_the_same_record_as_the_answer_so_the_store_counts_it_once() -> None:
    first: list[Operation] = []
    counter, _ = _counter(first)
    counter.calls["c3"] = ("support", T0 - 40)  # as CallQueued left it
    # what CallAnswered counts (its handler's other work, the live looks, left out)
    counter._outcome(CallAnswered("c3", T0 - 12, "a1", T0 - 30, True), T0 - 30, Outcome.ANSWERED,
                     "a1", True)
    second: list[Operation] = []
    taker, tally = _counter(second)  # the next daemon's
    CallCounter.HANDLERS[CallAnsweredBefore](
        taker, CallAnsweredBefore("c3", T0 - 12, "a1", T0 - 30, T0 - 40, True))
    [answered], [again] = first, second
    assert isinstance(answered, OutcomeWrite) and again == answered
    assert outcome_id(again.call) == "support|c3"
    assert tally.rolling("support", T0).offered == 0  # the live tally came from Redis at start

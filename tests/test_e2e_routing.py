"""Routing end to end: callers wait, agents' phones ring, answer or not, on the test PBX.

Agents (the demo config): a1 fa+en billing/service, a2 fa billing, a3 fa+en
service/technical, a4 fa technical; their phones are PJSIP/101..104.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_stats.states import AgentState, NotReadyReason
from routing.channel_ids import ChannelIds
from routing.events import CallAbandoned, CallAnswered, CallCompleted, CallOffered
from shenava.check_config import ami_rights
from shenava.demo import luhn_complete
from testpbx.options import BUSY_FAR, BUSY_LEG, BUSY_RESPONSE, PbxOptions
from testpbx.scripts import CallerScript, PhoneMode, PhoneScript
from tests.e2e_harness import E2E, SHIPPED_MANAGER_CONF, e2e_config

ACCOUNT = luhn_complete("123456789") + "#"
ANSWERS = PhoneScript(answer_after_s=2.0, talk_s=None)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[E2E]:
    harness = E2E.build(tmp_path)
    yield harness
    harness.stop()


def wants_agent(number: str, lang: str = "fa", **kw: Any) -> CallerScript:
    """Straight to an agent: language, then 3 (general skill, normal priority)."""
    return CallerScript(number=number, language=lang, answers=("1" if lang == "fa" else "2", "3"), **kw)


def urgent_vulnerable(number: str) -> CallerScript:
    """A new complaint: service quality (general skill), urgent, elderly."""
    return CallerScript(number=number, answers=("1", "1", "1", "1", "1", ACCOUNT, "1"))


def offers(h: E2E) -> list[tuple[str, str]]:
    return [(e.call_id, e.agent_id) for e in h.events(CallOffered)]


# -- the plain case ------------------------------------------------------------------


def test_answered_bridged_completed_wrap_up_then_ready(h: E2E) -> None:
    h.phone("PJSIP/101", PhoneScript(answer_after_s=2.0, talk_s=30.0))
    h.log_in("a1")
    call = h.call(wants_agent("09120000001"))
    h.run_until(lambda: h.events(CallAnswered, call))
    (answered,) = h.events(CallAnswered, call)
    assert answered.agent_id == "a1"
    assert answered.at - answered.joined_at == pytest.approx(2.0, abs=0.5)  # the ring time
    assert h.state("a1") is AgentState.ON_CALL
    (bridge,) = h.actions("Bridge")
    assert bridge["Channel1"] == call.agi_channel.name
    # the agent hangs up after talking: the caller is hung up, the agent wraps up
    h.run_until(lambda: h.events(CallCompleted, call))
    assert h.state("a1") is AgentState.WRAP_UP
    h.advance(0.5)
    assert not h.alive(call)
    h.advance(5.0)  # wrap_up_s
    assert h.state("a1") is AgentState.READY
    assert (h.app.counts.answered, h.app.counts.abandoned, h.app.counts.in_progress) == (1, 0, 0)


def test_caller_hangs_up_during_the_conversation(h: E2E) -> None:
    h.phone("PJSIP/101", ANSWERS)
    h.log_in("a1")
    call = h.call(wants_agent("09120000001", talk_s=12.0))
    h.run_until(lambda: h.events(CallCompleted, call), limit_s=120)
    assert h.state("a1") is AgentState.WRAP_UP
    h.advance(5.0)
    assert h.state("a1") is AgentState.READY
    assert not h.world.channels()  # the agent's leg was hung up too


# -- priority and ageing -------------------------------------------------------------------


def test_urgent_vulnerable_caller_goes_before_an_earlier_normal_one(h: E2E) -> None:
    h.phone("PJSIP/101", PhoneScript(answer_after_s=1.0, talk_s=60.0))
    h.log_in("a1")
    busy = h.call(wants_agent("09120000001"))
    h.run_until(lambda: h.events(CallAnswered, busy))
    normal = h.call(wants_agent("09120000002"))
    h.queued(normal)
    h.advance(10.0)
    urgent = h.call(urgent_vulnerable("09120000003"))
    h.queued(urgent)
    assert h.app.dispatcher.waiting == 2
    # a1 frees up: the urgent, vulnerable caller is offered first though they came later
    h.run_until(lambda: len(h.events(CallOffered)) == 2, limit_s=120)
    assert offers(h)[1] == (urgent.uniqueid, "a1")
    explanation = h.app.dispatcher.explain(urgent.uniqueid)
    assert "vulnerable" in explanation
    h.run_until(lambda: len(h.events(CallOffered)) == 3, limit_s=200)
    assert offers(h)[2] == (normal.uniqueid, "a1")


def test_ageing_a_long_wait_goes_before_a_fresh_urgent_call(h: E2E) -> None:
    h.phone("PJSIP/101", ANSWERS)
    old = h.call(wants_agent("09120000001"))
    h.queued(old)
    h.advance(400.0)  # more than any head start the default weights give
    fresh = h.call(urgent_vulnerable("09120000002"))
    h.queued(fresh)
    h.log_in("a1")
    h.run_until(lambda: h.events(CallOffered))
    assert offers(h) == [(old.uniqueid, "a1")]
    assert h.alive(old)  # 400 s on hold: music and announcements kept them company
    assert any("hold-position" in c for c in h.agi_commands(old))


def test_language_and_skill_english_caller_only_to_an_english_speaker(h: E2E) -> None:
    h.phones({"PJSIP/102": ANSWERS, "PJSIP/103": ANSWERS, "PJSIP/104": ANSWERS})
    h.log_in("a2", "a4")  # Persian only
    english = h.call(wants_agent("09120000001", lang="en"))
    h.queued(english)
    h.advance(20.0)
    assert not h.events(CallOffered)
    assert "no ready agent speaks en" in h.app.dispatcher.explain(english.uniqueid)
    h.log_in("a3")
    h.run_until(lambda: h.events(CallAnswered, english))
    assert offers(h) == [(english.uniqueid, "a3")]


def test_billing_complaint_goes_to_a_billing_agent(h: E2E) -> None:
    h.phones({"PJSIP/102": ANSWERS, "PJSIP/104": ANSWERS})
    h.log_in("a4")  # technical: no billing skill
    call = h.call(CallerScript(number="0912", answers=("1", "1", "3", "2", "3", ACCOUNT, "1")))
    h.queued(call)
    h.advance(10.0)
    assert not h.events(CallOffered)
    h.log_in("a2")
    h.run_until(lambda: h.events(CallAnswered, call))
    assert offers(h) == [(call.uniqueid, "a2")]


# -- agents who do not take the call ---------------------------------------------------------


def test_no_answer_tries_the_next_agent_at_once_and_missed_agent_not_ready(h: E2E) -> None:
    h.phones({"PJSIP/101": PhoneScript(mode=PhoneMode.NO_ANSWER), "PJSIP/102": ANSWERS})
    h.log_in("a1")  # a1 idle longest: offered first
    h.advance(1.0)
    h.log_in("a2")
    call = h.call(wants_agent("09120000001"))
    h.run_until(lambda: h.events(CallAnswered, call), limit_s=120)
    assert offers(h) == [(call.uniqueid, "a1"), (call.uniqueid, "a2")]
    first, second = h.events(CallOffered, call)
    assert second.at - first.at == pytest.approx(20.0, abs=1.0)  # ring_timeout_s, no extra wait
    assert h.state("a1") is AgentState.NOT_READY
    assert h.reason("a1") is NotReadyReason.MISSED
    assert h.state("a2") is AgentState.ON_CALL
    assert h.app.counts.queued == 1  # the caller kept their place; one call, not two


def test_busy_agent_phone(h: E2E) -> None:
    h.phones({"PJSIP/101": PhoneScript(mode=PhoneMode.BUSY), "PJSIP/102": ANSWERS})
    h.log_in("a1")
    h.advance(1.0)
    h.log_in("a2")
    call = h.call(wants_agent("09120000001"))
    h.run_until(lambda: h.events(CallAnswered, call), limit_s=60)
    assert offers(h) == [(call.uniqueid, "a1"), (call.uniqueid, "a2")]
    assert h.state("a1") is AgentState.NOT_READY
    assert h.reason("a1") is NotReadyReason.MISSED


@pytest.mark.parametrize("order", [
    (BUSY_LEG, BUSY_RESPONSE, BUSY_FAR),
    (BUSY_LEG, BUSY_FAR, BUSY_RESPONSE),
    (BUSY_FAR, BUSY_LEG, BUSY_RESPONSE),
    (BUSY_RESPONSE, BUSY_LEG, BUSY_FAR),
])
def test_busy_agent_behind_a_local_channel_is_missed_whatever_comes_first(
    tmp_path: Path, order: tuple[str, str, str]
) -> None:
    """Transcript 46: the leg's own Hangup (Cause 0) may come before the
    OriginateResponse (Reason 5) and the ;2 half's Hangup (Cause 17)."""
    config = e2e_config(
        a1={"endpoint": "Local/101@agent-leg"}, a2={"endpoint": "Local/102@agent-leg"}
    )
    options = PbxOptions(
        users={config.ami.username: config.ami.secret},
        rights={config.ami.username: ami_rights(SHIPPED_MANAGER_CONF, config.ami.username)},
        recordings_root=tmp_path / "recordings",
        support_context=config.site.support_context,
        busy_orders=(order,),
    )
    h = E2E.build(tmp_path, config=config, pbx=options)
    try:
        h.phones({"PJSIP/101": PhoneScript(mode=PhoneMode.BUSY), "PJSIP/102": ANSWERS})
        h.log_in("a1")
        h.advance(1.0)
        h.log_in("a2")
        call = h.call(wants_agent("09120000001"))
        h.run_until(lambda: h.events(CallAnswered, call), limit_s=60)
        assert offers(h) == [(call.uniqueid, "a1"), (call.uniqueid, "a2")]
        assert h.state("a1") is AgentState.NOT_READY
        assert h.reason("a1") is NotReadyReason.MISSED
    finally:
        h.stop()


def test_a_local_leg_failing_for_no_reason_of_the_agent_waits_for_the_response(
    tmp_path: Path,
) -> None:
    """Congestion behind a Local channel: the ;1 hang-up's cause decides nothing
    (only 17/18/19/21 do); the OriginateResponse's Reason 8 says technical."""
    config = e2e_config(a1={"endpoint": "Local/101@agent-leg"})
    h = E2E.build(tmp_path, config=config)
    try:
        h.phones({"PJSIP/101": PhoneScript(mode=PhoneMode.CONGESTION), "PJSIP/102": ANSWERS})
        h.log_in("a1")
        h.advance(1.0)
        h.log_in("a2")
        call = h.call(wants_agent("09120000001"))
        h.run_until(lambda: h.events(CallAnswered, call), limit_s=60)
        assert offers(h) == [(call.uniqueid, "a1"), (call.uniqueid, "a2")]
        assert h.reason("a1") is NotReadyReason.TECHNICAL
    finally:
        h.stop()


def test_unreachable_agent_phone_is_technical(h: E2E) -> None:
    h.phones({"PJSIP/101": PhoneScript(mode=PhoneMode.UNREACHABLE), "PJSIP/102": ANSWERS})
    h.log_in("a1")
    h.advance(1.0)
    h.log_in("a2")
    call = h.call(wants_agent("09120000001"))
    h.run_until(lambda: h.events(CallAnswered, call), limit_s=60)
    assert offers(h) == [(call.uniqueid, "a1"), (call.uniqueid, "a2")]
    assert h.reason("a1") is NotReadyReason.TECHNICAL


def test_no_agent_answers_the_caller_keeps_waiting(h: E2E) -> None:
    h.phone("PJSIP/101", PhoneScript(mode=PhoneMode.NO_ANSWER))
    h.log_in("a1")
    call = h.call(wants_agent("09120000001"))
    h.run_until(lambda: h.state("a1") is AgentState.NOT_READY, limit_s=120)
    h.advance(30.0)
    assert h.alive(call)
    assert h.app.dispatcher.waiting == 1
    # the agent comes back with a working phone and takes the call
    h.phone("PJSIP/101", ANSWERS)
    h.app.roster.set_ready("a1", h.now)
    h.run_until(lambda: h.events(CallAnswered, call))


def test_caller_hangs_up_while_the_agent_phone_rings(h: E2E) -> None:
    h.phone("PJSIP/101", PhoneScript(answer_after_s=10.0))
    h.log_in("a1")
    call = h.call(wants_agent("09120000001"))
    h.run_until(lambda: h.events(CallOffered, call))
    h.advance(3.0)
    assert h.state("a1") is AgentState.RINGING
    leg = next(c for c in h.world.channels() if c.name.startswith("PJSIP/101"))
    call.hang_up()
    h.advance(1.0)
    assert h.world.find(leg.name) is None  # the agent's phone stopped ringing
    assert h.state("a1") is AgentState.READY  # no fault of theirs
    (abandoned,) = h.events(CallAbandoned, call)
    assert abandoned.while_ringing_agent == "a1"
    h.advance(15.0)  # past the moment the phone would have answered
    assert not h.events(CallAnswered)
    assert h.state("a1") is AgentState.READY
    assert not h.world.channels()


def test_caller_abandons_in_the_line(h: E2E) -> None:
    call = h.call(wants_agent("09120000001", patience_s=40.0))
    h.run_until(lambda: h.events(CallAbandoned, call), limit_s=60)
    assert h.app.counts.abandoned == 1
    assert h.app.dispatcher.waiting == 0


def test_two_agents_ready_at_once_take_two_different_calls(h: E2E) -> None:
    h.phones({"PJSIP/101": ANSWERS, "PJSIP/103": ANSWERS})
    calls = [h.call(wants_agent(f"0912000000{i}")) for i in (1, 2, 3)]
    for call in calls:
        h.queued(call)
    h.log_in("a1", "a3")  # the same instant
    h.run_until(lambda: len(h.events(CallAnswered)) == 2)
    answered = {e.call_id: e.agent_id for e in h.events(CallAnswered)}
    assert sorted(answered.values()) == ["a1", "a3"]
    assert set(answered) == {calls[0].uniqueid, calls[1].uniqueid}  # the two longest waits
    assert len({e.call_id for e in h.events(CallOffered)}) == 2
    assert h.app.dispatcher.waiting == 1


def test_agent_going_not_ready_is_skipped(h: E2E) -> None:
    h.phones({"PJSIP/101": ANSWERS, "PJSIP/102": ANSWERS})
    h.log_in("a1", "a2")
    h.app.roster.set_not_ready("a1", NotReadyReason.PERSONAL, h.now)
    call = h.call(wants_agent("09120000001"))
    h.run_until(lambda: h.events(CallAnswered, call))
    assert offers(h) == [(call.uniqueid, "a2")]


def test_hold_callback_choice_leaves_the_line(h: E2E) -> None:
    chosen = []
    h.app.callflow.on_hold_choice = lambda event, recording: chosen.append(event)
    # after the first 30 s of music, the options prompt: 1 = call me back
    call = h.call(CallerScript(number="09120000001", answers=("1", "3", "1")))
    h.run_until(lambda: chosen, limit_s=120)
    assert chosen[0].choice == "callback" and chosen[0].position == 1
    h.advance(5.0)
    assert not h.alive(call)
    assert h.app.dispatcher.waiting == 0
    assert not h.events(CallAbandoned)


# -- the daemon reconnects to the PBX mid-call -------------------------------------------


def _after(h: E2E, t: float, call: object, command: str) -> bool:
    return any(
        at >= t and m.get("Channel") == call.agi_channel.name  # type: ignore[attr-defined]
        and (m.get("Command") or "").startswith(command)
        for at, m in h.endpoint.actions
    )


def test_reconnect_waiting_callers_keep_their_place_and_reach_an_agent(h: E2E) -> None:
    h.phone("PJSIP/101", PhoneScript(answer_after_s=2.0, talk_s=20.0))
    first = h.call(wants_agent("09120000001"))
    h.queued(first)
    second = h.call(wants_agent("09120000002"))
    h.queued(second)
    h.drop_link(refuse=2)  # the PBX is unreachable for a few seconds
    h.advance(3.0)
    h.wait_reconnected()
    back_at = h.now
    assert h.app.connection.connections_made == 2
    # their hold loop starts again after the resync (queued on the PBX behind
    # the music that kept playing while the daemon was away)
    h.run_until(lambda: _after(h, back_at, first, "EXEC MusicOnHold"), limit_s=40)
    h.run_until(lambda: _after(h, back_at, second, "EXEC MusicOnHold"), limit_s=40)
    assert h.app.dispatcher.waiting == 2
    h.log_in("a1")
    h.run_until(lambda: len(h.events(CallCompleted)) == 2, limit_s=200)
    assert [e.call_id for e in h.events(CallAnswered)] == [first.uniqueid, second.uniqueid]
    counts = h.app.counts
    # neither lost nor counted twice
    assert (counts.arrived, counts.adopted, counts.queued, counts.answered) == (2, 0, 2, 2)
    h.advance(2.0)
    assert counts.in_progress == 0


def test_reconnect_caller_in_the_ivr_is_asked_again_and_carries_on(h: E2E) -> None:
    # English; the key pressed while the link is down is lost, the menu asked again
    call = h.call(CallerScript(number="09120000001", answers=("2", "5", "3")))
    h.run_until(lambda: "main-menu" in h.prompts(call))
    h.drop_link()
    h.wait_reconnected()
    outcome = h.wait_outcome(call)
    assert outcome.language == "en"  # what was entered before the drop is kept
    assert outcome.requested.value == "agent"
    assert h.prompts(call).count("main-menu") == 2
    h.queued(call)
    assert h.app.counts.arrived == 1


def test_reconnect_conversation_ended_while_away_is_counted_once(h: E2E) -> None:
    h.phone("PJSIP/101", PhoneScript(answer_after_s=1.0, talk_s=10.0))
    h.log_in("a1")
    call = h.call(wants_agent("09120000001"))
    h.run_until(lambda: h.events(CallAnswered, call))
    h.drop_link(refuse=30)  # down well past the end of the conversation
    h.advance(15.0)
    assert not h.alive(call) and not h.events(CallCompleted)
    h.endpoint.refuse = 0
    h.wait_reconnected()
    (done,) = h.events(CallCompleted, call)
    assert done.agent_id == "a1"
    assert h.state("a1") is AgentState.WRAP_UP
    h.advance(5.0)
    assert h.state("a1") is AgentState.READY
    counts = h.app.counts
    assert (counts.arrived, counts.answered, counts.abandoned, counts.in_progress) == (1, 1, 0, 0)


def test_reconnect_agent_answered_while_the_link_was_down(h: E2E) -> None:
    h.phone("PJSIP/101", PhoneScript(answer_after_s=4.0, talk_s=20.0))
    h.log_in("a1")
    call = h.call(wants_agent("09120000001"))
    h.run_until(lambda: h.events(CallOffered, call))
    h.advance(1.0)
    h.drop_link(refuse=3)  # the phone answers during the outage
    h.wait_reconnected()
    (offered,) = h.events(CallOffered, call)
    assert h.now > offered.at + 4.0  # the phone answered while the link was down
    # the lost OriginateResponse is made up for by the resync: the leg is up
    h.run_until(lambda: h.events(CallAnswered, call), limit_s=5)
    assert h.actions("Bridge")
    assert h.state("a1") is AgentState.ON_CALL
    h.run_until(lambda: h.events(CallCompleted, call), limit_s=60)


def test_agent_ready_while_the_link_is_down_is_not_blamed(h: E2E) -> None:
    h.phone("PJSIP/101", ANSWERS)
    call = h.call(wants_agent("09120000001"))
    h.queued(call)
    h.drop_link(refuse=3)
    h.log_in("a1")  # a call waits and an agent is ready, but nothing can be dialled
    h.advance(1.0)
    assert h.state("a1") is AgentState.READY
    assert not h.actions("Originate")
    h.wait_reconnected()
    h.run_until(lambda: h.events(CallAnswered, call), limit_s=10)
    assert offers(h) == [(call.uniqueid, "a1")]


def test_caller_leaves_the_line_while_the_link_is_down(h: E2E) -> None:
    h.phone("PJSIP/101", ANSWERS)
    call = h.call(wants_agent("09120000001"))
    h.queued(call)
    h.drop_link(refuse=3)
    h.log_in("a1")  # held for the reconnect
    call.hang_up()
    h.wait_reconnected()
    h.advance(1.0)
    (abandoned,) = h.events(CallAbandoned, call)
    assert abandoned.while_ringing_agent is None
    assert h.app.dispatcher.waiting == 0 and h.app.counts.in_progress == 0
    # a1 is free for the next caller
    assert h.state("a1") is AgentState.READY
    nxt = h.call(wants_agent("09120000002"))
    h.run_until(lambda: h.events(CallAnswered, nxt))


def test_caller_hangs_up_in_the_ivr_while_the_link_is_down(h: E2E) -> None:
    call = h.call(CallerScript(number="09120000001", answers=("2", "1", "3")))
    h.run_until(lambda: "category-menu" in h.prompts(call))
    h.drop_link(refuse=3)
    call.hang_up()
    h.wait_reconnected()
    outcome = h.wait_outcome(call, limit_s=10)
    assert outcome.requested.value == "hung_up_in_ivr"
    assert outcome.language == "en"  # what was entered is kept
    assert outcome.path[-1] == "category"
    assert h.app.counts.in_progress == 0 and h.app.callflow.in_ivr == 0


# -- ids across daemon starts ------------------------------------------------------


def test_agent_leg_ids_never_repeat_across_daemon_starts(tmp_path: Path) -> None:
    """Asterisk refuses a ChannelId still in use: a restarted daemon must not count from 1 again."""
    leg_ids: list[str] = []
    for _run in range(2):
        h = E2E.build(tmp_path)
        try:
            h.phone("PJSIP/101", ANSWERS)
            h.log_in("a1")
            call = h.call(wants_agent("09120000001"))
            h.run_until(lambda: h.events(CallAnswered, call), limit_s=120)  # noqa: B023
            leg_ids += [m["ChannelId"] for m in h.actions("Originate")]
        finally:
            h.stop()
    assert len(leg_ids) == 2 and len(set(leg_ids)) == 2, leg_ids


def test_channel_ids_are_unique_within_a_run_and_across_runs() -> None:
    first, second = ChannelIds("shenava-cb-"), ChannelIds("shenava-cb-")
    ids = [first.next("a1"), first.next("a1"), second.next("a1")]
    assert len(set(ids)) == 3
    assert all(first.ours(i) and i.startswith("shenava-cb-") for i in ids)


def test_command_ids_differ_across_connections_and_daemon_starts(tmp_path: Path) -> None:
    """Asterisk sends every session the AsyncAGIExec of any session's command
    (transcript 45): a new connection or a new run must never reuse a CommandID."""
    ids: list[set[str]] = []
    for _run in range(2):
        h = E2E.build(tmp_path)
        try:
            call = h.call(wants_agent("09120000001"))
            h.queued(call)
            h.drop_link()
            h.wait_reconnected()
            h.advance(40.0)
            seen = [m["CommandID"] for m in h.actions("AGI")]
            assert len(seen) == len(set(seen))
            ids.append(set(seen))
        finally:
            h.stop()
    assert not ids[0] & ids[1]

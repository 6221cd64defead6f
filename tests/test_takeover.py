"""A daemon dies (kill -9) with callers everywhere; the next one takes them over.

In process: the daemon runs in virtual time against the test PBX
(``tests.e2e_harness``) with a real Redis; :meth:`E2E.kill` stops it dead
(its timers never fire, its AMI link drops without a Logoff) and
:meth:`E2E.start_again` starts a fresh one (new objects, nothing shared but
Redis and the PBX). The subprocess version (a real ``kill -9`` of ``shenava
run``) is in ``test_takeover_process.py``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest_twisted
from redis.asyncio import Redis

from agent_stats.service import StatsService
from agent_stats.states import AgentState, NotReadyReason
from routing.events import (
    CallAbandoned,
    CallAnswered,
    CallCompleted,
    CallLeftForChoice,
    CallOffered,
    CallQueued,
)
from shenava.takeover import CallStateExtension
from shenava_base.aio import as_deferred
from testpbx.scripts import CallerScript, PhoneScript
from testpbx.world import CallHandle
from tests.e2e_harness import E2E


def wants_agent(number: str, **kw: object) -> CallerScript:
    return CallerScript(number=number, answers=("1", "3"), **kw)  # type: ignore[arg-type]


def outcomes(h: E2E) -> Counter[str]:
    return Counter(
        e.call_id for e in h.routing if isinstance(e, (CallAnswered, CallAbandoned, CallLeftForChoice))
    )


async def flushed(h: E2E) -> None:
    """What the daemon has said so far is in Redis (a kill loses only a write in flight)."""
    service = h.app.agent_stats
    assert isinstance(service, StatsService)
    await service.flushed()


def ledger_is_whole(intervals: list[tuple[float, float]]) -> bool:
    return all(b[0] == a[1] for a, b in zip(intervals, intervals[1:], strict=False))


@pytest_twisted.ensureDeferred
async def test_kill_minus_9_with_callers_everywhere_then_every_caller_is_served(
    redis_client: Redis, tmp_path: Path
) -> None:
    h = E2E.build(tmp_path, redis=redis_client, killable=True)
    h.phones({
        "PJSIP/101": PhoneScript(answer_after_s=2.0, talk_s=40.0),
        "PJSIP/102": PhoneScript(answer_after_s=12.0, talk_s=15.0),
    })
    h.log_in("a1")
    talking = h.call(wants_agent("0935111001"))
    await h.run_until_async(lambda: h.events(CallAnswered, talking), limit_s=60)
    ringing = h.call(wants_agent("0935111002"))
    h.advance(0.5)
    waiting = h.call(wants_agent("0935111003"))
    gone = h.call(wants_agent("0935111004"))
    await h.run_until_async(
        lambda: all(h.events(CallQueued, c) for c in (ringing, waiting, gone)), limit_s=60
    )
    # In the IVR: picks Persian, lets the next menu time out once, then asks for an agent.
    in_ivr = h.call(CallerScript(number="0935111005", answers=("1", "", "3"), answer_delay_s=1.0))
    def menu_of(call: CallHandle) -> str | None:
        ivr = (h.app.callflow.snapshot(call.uniqueid) or {}).get("ivr")
        return ivr["menu"] if ivr else None

    await h.run_until_async(lambda: menu_of(in_ivr) not in (None, "language"), limit_s=60)
    h.log_in("a2")  # takes the first in line; its phone rings for 12 s
    await h.run_until_async(lambda: h.events(CallOffered, ringing), limit_s=60)
    h.advance(2.0)
    assert not h.events(CallAnswered, ringing) and not h.events(CallQueued, in_ivr)
    extension = h.app.takeover
    assert isinstance(extension, CallStateExtension)
    await extension.recorder.flushed()
    stored = await as_deferred(extension.store.load())
    assert set(stored) == {c.uniqueid for c in (talking, ringing, waiting, gone, in_ivr)}
    assert stored[in_ivr.uniqueid]["ivr"]["menu"] != stored[in_ivr.uniqueid]["ivr"]["path"][0]
    joined_before = stored[waiting.uniqueid]["joined_at"]

    h.kill()
    h.advance(2.0)
    gone.hang_up()  # while no daemon runs
    h.advance(1.0)
    app = h.start_again(redis=redis_client)
    extension = app.takeover
    assert isinstance(extension, CallStateExtension)
    await h.run_until_async(lambda: extension.takeover.rounds >= 1, limit_s=30)
    assert extension.takeover.adopted == {
        talking.uniqueid: "talking", ringing.uniqueid: "ringing",
        waiting.uniqueid: "waiting", in_ivr.uniqueid: "ivr",
    }
    assert extension.takeover.ended_away == [gone.uniqueid]
    assert app.roster.get("a1").state is AgentState.ON_CALL
    assert app.dispatcher.call_of_agent("a1") is not None
    assert app.dispatcher.call_of_agent("a1").joined_at == stored[talking.uniqueid]["joined_at"]  # type: ignore[union-attr]
    assert app.dispatcher.call_of_agent("a2") is not None

    everyone = (talking, ringing, waiting, in_ivr)
    await h.run_until_async(
        lambda: all(h.events(CallCompleted, c) for c in everyone), limit_s=900
    )
    assert "resume-sorry" in h.prompts(in_ivr)
    counted = outcomes(h)
    assert counted == Counter({c.uniqueid: 1 for c in (*everyone, gone)})
    assert isinstance(h.events(CallAbandoned, gone)[0], CallAbandoned)
    queued = Counter(e.call_id for e in h.routing if isinstance(e, CallQueued))
    assert queued == Counter({c.uniqueid: 1 for c in (talking, ringing, waiting, gone, in_ivr)})
    (answered_waiting,) = h.events(CallAnswered, waiting)
    assert answered_waiting.joined_at == joined_before  # the SL clock did not restart
    assert not [
        c for c in h.agent_changes
        if c.new is AgentState.NOT_READY and c.reason is NotReadyReason.TECHNICAL
    ]

    # Wrap-ups over: the agents are ready, Redis holds no call any more, and
    # each agent's ledger runs without a gap or an overlap across the restart.
    h.advance(10.0)
    await h.run_until_async(
        lambda: h.state("a1") is AgentState.READY and h.state("a2") is AgentState.READY, limit_s=60
    )
    await extension.recorder.flushed()
    assert await as_deferred(extension.store.load()) == {}
    service = app.agent_stats
    assert isinstance(service, StatsService)
    await service.flushed()
    stored_ledgers = await as_deferred(service.store.load_ledgers(["a1", "a2"], h.now))
    for agent_id in ("a1", "a2"):
        ledger = stored_ledgers[agent_id].ledger
        spans = [(i.start, i.end) for i in ledger.intervals] + [(ledger.since, h.now)]
        assert ledger_is_whole(spans), (agent_id, spans)
    day = service.tally.day(service.default_queue, h.now)
    assert (day.offered, day.abandoned) == (5, 1)
    # One callback flag, with one reason, for the caller who gave up while no daemon ran.
    callbacks = app.complaints.callbacks
    flags = [
        *await as_deferred(callbacks.open_flags()),
        *await as_deferred(callbacks.closed_between(0.0, h.now + 1)),
    ]
    # (numbers of this test only: another test's late write may land in this database)
    mine = [(f.number, len(f.reasons)) for f in flags if f.number.startswith("0935111")]
    assert mine == [("0935111004", 1)]
    h.stop()


@pytest_twisted.ensureDeferred
async def test_a_caller_who_arrived_while_no_daemon_ran_gets_the_main_menu(
    redis_client: Redis, tmp_path: Path
) -> None:
    h = E2E.build(tmp_path, redis=redis_client, killable=True)
    h.phone("PJSIP/101", PhoneScript(answer_after_s=2.0, talk_s=10.0))
    h.log_in("a1")
    h.advance(1.0)
    await flushed(h)
    h.kill()
    late = h.call(wants_agent("0935111009"))
    h.advance(5.0)
    assert h.prompts(late) == []  # nobody drives the caller
    app = h.start_again(redis=redis_client)
    await h.run_until_async(lambda: h.events(CallAnswered, late), limit_s=120)
    extension = app.takeover
    assert isinstance(extension, CallStateExtension)
    assert extension.takeover.adopted == {late.uniqueid: "new"}
    (queued,) = h.events(CallQueued, late)
    (answered,) = h.events(CallAnswered, late)
    # The wait is counted from the channel's creation, not from the take-over.
    assert answered.joined_at <= queued.at - 5.0
    h.stop()


@pytest_twisted.ensureDeferred
async def test_an_ami_reconnect_takes_over_nothing_the_daemon_already_holds(
    redis_client: Redis, tmp_path: Path
) -> None:
    """The take-over runs after every resync; the daemon's own callers, and those
    that hung up while the link was down, are settled by its own code, once."""
    h = E2E.build(tmp_path, redis=redis_client)
    stays = h.call(wants_agent("0935111011"))
    leaves = h.call(wants_agent("0935111012"))
    await h.run_until_async(lambda: h.events(CallQueued, stays) and h.events(CallQueued, leaves),
                            limit_s=60)
    h.advance(6.0)
    extension = h.app.takeover
    assert isinstance(extension, CallStateExtension)
    await extension.recorder.flushed()
    h.drop_link(refuse=1)
    leaves.hang_up()
    h.wait_reconnected()
    await h.run_until_async(lambda: extension.takeover.rounds >= 2, limit_s=30)
    h.advance(1.0)
    assert extension.takeover.adopted == {} and extension.takeover.ended_away == []
    assert len(h.events(CallAbandoned, leaves)) == 1
    assert h.app.dispatcher.waiting == 1 and h.alive(stays)
    h.stop()


@pytest_twisted.ensureDeferred
async def test_an_agent_whose_phone_is_still_up_stays_on_the_call_without_a_record(
    redis_client: Redis, tmp_path: Path
) -> None:
    """A conversation the call state does not hold (a callback, a lost last write):
    the agent stays on it while their phone's channel is up, then wraps up."""
    h = E2E.build(tmp_path, redis=redis_client, killable=True)
    h.phone("PJSIP/101", PhoneScript(answer_after_s=2.0, talk_s=20.0))
    h.log_in("a1")
    talking = h.call(wants_agent("0935111021"))
    await h.run_until_async(lambda: h.events(CallAnswered, talking), limit_s=60)
    await flushed(h)
    extension = h.app.takeover
    assert isinstance(extension, CallStateExtension)
    await extension.recorder.flushed()
    await as_deferred(redis_client.delete(extension.store.live_key))  # the record is lost
    h.kill()
    h.advance(1.0)
    app = h.start_again(redis=redis_client)
    extension = app.takeover
    assert isinstance(extension, CallStateExtension)
    await h.run_until_async(lambda: extension.takeover.rounds >= 1, limit_s=30)
    assert app.roster.get("a1").state is AgentState.ON_CALL
    await h.run_until_async(lambda: not h.alive(talking), limit_s=60)
    h.advance(0.5)
    assert app.roster.get("a1").state is AgentState.WRAP_UP
    await h.run_until_async(lambda: app.roster.get("a1").state is AgentState.READY, limit_s=30)
    assert not [c for c in h.agent_changes if c.new is AgentState.NOT_READY]
    h.stop()


def _ivr_record(requested: str, **extra: object) -> dict[str, object]:
    from ivr.machine import Phase, State, state_to_dict
    from ivr.outcome import EndReason, Outcome, Request

    outcome = Outcome(
        call_id="c1", caller_number="09120000001", language="fa", requested=Request(requested),
        ended=EndReason.COMPLETED, path=("main-menu",), started_at=100.0, ended_at=130.0,
        category="billing", urgent=True, vulnerable=True,
    )
    state = State("c1", "09120000001", 100.0, "fa", "to-agent", phase=Phase.DONE, outcome=outcome)
    return {"v": 1, "call_id": "c1", "channel": "PJSIP/x-1", "caller_number": "09120000001",
            "arrived_at": 99.0, "ivr": state_to_dict(state), **extra}


def test_a_record_whose_ivr_decided_agent_without_a_place_in_line_is_taken_as_waiting() -> None:
    from shenava.takeover import decided_waiting

    waiting = decided_waiting(_ivr_record("agent"))
    assert waiting is not None
    assert (waiting["phase"], waiting["joined_at"], waiting["arrived_at"]) == ("waiting", 130.0, 99.0)
    assert (waiting["category"], waiting["language"]) == ("billing", "fa")
    assert waiting["facts"] == {"urgency": "high", "vulnerable": True}
    # One who arrived while no daemon ran: the wait counts from the channel's creation.
    assert decided_waiting(_ivr_record("agent", join_at=50.0))["joined_at"] == 50.0  # type: ignore[index]
    # Anything else is left alone: another request, a place already written.
    assert decided_waiting(_ivr_record("voicemail")) is None
    assert decided_waiting(_ivr_record("agent", phase="waiting", joined_at=131.0)) is None
    assert decided_waiting({"v": 1, "call_id": "c1", "ivr": "?"}) is None

"""A caller gives up waiting, is called back, and the outcome closes the flag.

End to end through the test PBX in virtual time with a real Redis: the
abandon raises a callback flag; when an agent becomes free the dialler
originates the agent's leg into ``[shenava-callback]``, which dials the
customer's phone (transcript 42); the customer answers and the flag closes
with that recorded outcome.
"""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from redis.asyncio import Redis

from routing.callbacks import AttemptOutcome, FlagStatus, ReasonKind, Resolution, next_attempt_at
from routing.events import CallAbandoned, CallQueued
from shenava_base.aio import as_deferred
from testpbx.scripts import CallerScript, PhoneMode, PhoneScript
from tests.e2e_harness import E2E

CUSTOMER = "09121112233"


async def flag_of(h: E2E, number: str) -> object:
    store = h.app.complaints.callbacks
    return await as_deferred(store.open_flag_for(number))


async def customer_gives_up(h: E2E) -> object:
    """The customer asks for an agent, nobody answers, they give up after a minute: their flag."""
    h.call(CallerScript(number=CUSTOMER, answers=("1", "3"), patience_s=60.0))
    await h.run_until_async(
        lambda: any(isinstance(e, CallAbandoned) for e in h.routing), limit_s=120.0
    )
    for _ in range(200):
        if await flag_of(h, CUSTOMER) is not None:
            break
        await h.run_until_async(lambda: True, limit_s=1.0)
        h.advance(0.5)
    flag = await flag_of(h, CUSTOMER)
    assert flag is not None
    return flag


@pytest_twisted.ensureDeferred
async def test_a_caller_who_gives_up_is_called_back_and_the_answer_closes_the_flag(
    redis_client: Redis, tmp_path: Path
) -> None:
    h = E2E.build(tmp_path, redis=redis_client)
    try:
        store = h.app.complaints.callbacks
        h.phones({
            "PJSIP/101": PhoneScript(answer_after_s=2.0, talk_s=20.0),
            **{f"PJSIP/10{i}": PhoneScript(answer_after_s=2.0, talk_s=20.0) for i in (2, 3, 4)},
            f"PJSIP/{CUSTOMER}": PhoneScript(answer_after_s=3.0, talk_s=15.0),
        })
        # Nobody is logged in: the caller asks for an agent (1 = Persian,
        # 3 = an agent), waits on hold, and hangs up after a minute.
        h.call(CallerScript(number=CUSTOMER, answers=("1", "3"), patience_s=60.0))
        await h.run_until_async(
            lambda: any(isinstance(e, CallAbandoned) for e in h.routing), limit_s=120.0
        )
        [queued] = [e for e in h.routing if isinstance(e, CallQueued)]
        [gone] = [e for e in h.routing if isinstance(e, CallAbandoned)]
        assert gone.at - queued.at > 5.0  # past the short-abandon threshold

        flags: list[object] = []

        async def flag_raised() -> bool:
            flags[:] = [await as_deferred(store.open_flag_for(CUSTOMER))]
            return flags[0] is not None

        for _ in range(200):
            if await flag_raised():
                break
            await h.run_until_async(lambda: True, limit_s=1.0)
            h.advance(0.5)
        flag = flags[0]
        assert flag is not None
        assert [r.kind for r in flag.reasons] == [ReasonKind.ABANDONED]

        # The agents come (the others are the headroom the service level needs
        # while one dials, see docs/statistics.md); the dialler rings the agent
        # idle longest first, then the customer.
        h.log_in("a1")
        h.advance(1.0)
        h.log_in("a2", "a3", "a4")
        closed: list[object] = []

        async def flag_closed() -> bool:
            current = await as_deferred(store.get(flag.flag_id))
            closed[:] = [current]
            return current.status is FlagStatus.CLOSED

        for _ in range(400):
            if await flag_closed():
                break
            await h.run_until_async(lambda: True, limit_s=1.0)
            h.advance(1.0)
        final = closed[0]
        assert final.status is FlagStatus.CLOSED
        assert final.resolution is Resolution.ANSWERED
        assert [a.outcome for a in final.attempts] == [AttemptOutcome.ANSWERED]
        assert final.attempts[0].agent_id == "a1"
        originates = [m for m in h.actions("Originate") if m.get("Context") == "shenava-callback"]
        assert len(originates) == 1
        assert originates[0].get("Channel") == "PJSIP/101"
        assert originates[0].get("Exten") == CUSTOMER
    finally:
        h.stop()


@pytest_twisted.ensureDeferred
async def test_a_customer_who_does_not_answer_keeps_the_flag_open_with_the_attempt_recorded(
    redis_client: Redis, tmp_path: Path
) -> None:
    h = E2E.build(tmp_path, redis=redis_client)
    try:
        store = h.app.complaints.callbacks
        h.phones({
            "PJSIP/101": PhoneScript(answer_after_s=2.0, talk_s=20.0),
            **{f"PJSIP/10{i}": PhoneScript(answer_after_s=2.0, talk_s=20.0) for i in (2, 3, 4)},
            f"PJSIP/{CUSTOMER}": PhoneScript(mode=PhoneMode.NO_ANSWER),
        })
        h.call(CallerScript(number=CUSTOMER, answers=("1", "3"), patience_s=60.0))
        await h.run_until_async(
            lambda: any(isinstance(e, CallAbandoned) for e in h.routing), limit_s=120.0
        )
        h.log_in("a1", "a2", "a3", "a4")
        found: list[object] = []

        async def attempted() -> bool:
            current = await as_deferred(store.open_flag_for(CUSTOMER))
            found[:] = [current]
            return current is not None and any(a.outcome is not None for a in current.attempts)

        for _ in range(400):
            if await attempted():
                break
            await h.run_until_async(lambda: True, limit_s=1.0)
            h.advance(1.0)
        flag = found[0]
        assert flag is not None and flag.status is FlagStatus.OPEN
        assert [a.outcome for a in flag.attempts] == [AttemptOutcome.NO_ANSWER]
        policy = h.app.config.callbacks.policy
        assert next_attempt_at(flag, policy) > h.now  # backed off before the next attempt
    finally:
        h.stop()


@pytest_twisted.ensureDeferred
async def test_a_customer_back_on_the_line_is_not_rung_until_they_hang_up(
    redis_client: Redis, tmp_path: Path
) -> None:
    from ami_bridge.events import CallArrived, ChannelHungUp

    h = E2E.build(tmp_path, redis=redis_client)
    try:
        store = h.app.complaints.callbacks
        h.phones({
            **{f"PJSIP/10{i}": PhoneScript(answer_after_s=2.0, talk_s=20.0) for i in (1, 2, 3, 4)},
            f"PJSIP/{CUSTOMER}": PhoneScript(answer_after_s=3.0, talk_s=15.0),
        })
        # First call: nobody is logged in; the caller gives up waiting (a flag).
        flag = await customer_gives_up(h)

        # They call again and are in the menus (silent after choosing the language)
        # when the agents come: the dial gate is open, the flag due, the customer busy.
        seen: list[tuple[float, object]] = []
        h.app.tracker.subscribe(lambda e: seen.append((h.now, e)))
        h.call(CallerScript(number=CUSTOMER, answers=("1",), hangup_after_s=12.0))
        await h.run_until_async(lambda: any(isinstance(e, CallArrived) for _, e in seen), limit_s=10.0)
        [arrived] = [e for _, e in seen if isinstance(e, CallArrived)]
        h.log_in("a1", "a2", "a3", "a4")

        def callback_originates() -> list[object]:
            return [m for m in h.actions("Originate") if m.get("Context") == "shenava-callback"]

        for _ in range(16):  # 8 s of the 12 the caller stays
            await h.run_until_async(lambda: True, limit_s=1.0)
            h.advance(0.5)
        assert callback_originates() == []
        held = await as_deferred(store.get(flag.flag_id))
        assert held.attempts == ()

        # They hang up: now the callback goes out, and reaches them.
        for _ in range(400):
            current = await as_deferred(store.get(flag.flag_id))
            if current.status is FlagStatus.CLOSED:
                break
            await h.run_until_async(lambda: True, limit_s=1.0)
            h.advance(1.0)
        [hung_up_at] = [at for at, e in seen
                        if isinstance(e, ChannelHungUp) and e.uniqueid == arrived.uniqueid]
        assert current.status is FlagStatus.CLOSED
        assert current.resolution is Resolution.ANSWERED
        assert [a.outcome for a in current.attempts] == [AttemptOutcome.ANSWERED]
        assert current.attempts[0].started_at >= hung_up_at
        assert len(callback_originates()) == 1
        h.advance(60.0)  # the callback's talk ends: nothing is left of either call
        dialer = h.app.complaints.dialer
        await dialer.settled()  # the outcome's write (and its lease's release) has landed
        assert not h.world.channels()
        assert len(dialer.live_numbers) == 0 and dialer._skipped() == set()
    finally:
        h.stop()


@pytest_twisted.ensureDeferred
async def test_the_agent_sees_whom_they_call_back_masked_and_the_supervisor_in_full(
    redis_client: Redis, tmp_path: Path
) -> None:
    from twisted.logger import globalLogPublisher

    from complaints.roles import Actor, Role

    logged: list[str] = []

    def keep(event: dict[str, object]) -> None:
        from twisted.logger import formatEvent

        logged.append(formatEvent(event))

    globalLogPublisher.addObserver(keep)
    h = E2E.build(tmp_path, redis=redis_client)
    try:
        h.phones({
            **{f"PJSIP/10{i}": PhoneScript(answer_after_s=2.0, talk_s=20.0) for i in (1, 2, 3, 4)},
            f"PJSIP/{CUSTOMER}": PhoneScript(answer_after_s=3.0, talk_s=15.0),
        })
        h.call(CallerScript(number=CUSTOMER, answers=("1", "3"), patience_s=60.0))
        await h.run_until_async(
            lambda: any(isinstance(e, CallAbandoned) for e in h.routing), limit_s=120.0
        )
        for _ in range(200):
            if await flag_of(h, CUSTOMER) is not None:
                break
            await h.run_until_async(lambda: True, limit_s=1.0)
            h.advance(0.5)
        h.log_in("a1")
        h.advance(1.0)
        h.log_in("a2", "a3", "a4")
        for _ in range(400):
            current = h.app.roster.get("a1").current_call
            flag = await flag_of(h, CUSTOMER)  # a Redis round trip: the dialler's own get theirs
            if current is not None and current.startswith("callback:") and flag.attempts:
                break
            await h.run_until_async(lambda: True, limit_s=1.0)
            h.advance(0.5)
        api = h.app.http.agents
        assert (h.app.roster.get("a1").current_call or "").startswith("callback:"), [
            line for line in logged if "allback" in line]
        mine = await api.call(None, Actor("a1", Role.AGENT), "a1")
        call = mine["call"]
        assert call["kind"] == "callback"
        assert call["caller_number"] == "0912***2233"
        assert call["number_masked"] is True
        assert call["callback"]["reasons"] == ["abandoned"]
        assert call["callback"]["attempt"] == 1
        seen = await api.call(None, Actor("sara", Role.SUPERVISOR), "a1")
        assert seen["call"]["caller_number"] == CUSTOMER
        assert not any(CUSTOMER in line for line in logged)
    finally:
        globalLogPublisher.removeObserver(keep)
        h.stop()


@pytest_twisted.ensureDeferred
async def test_a_customer_who_calls_in_while_the_agent_rings_for_their_callback_is_not_dialled(
    redis_client: Redis, tmp_path: Path
) -> None:
    """The dialler rings agent a1's phone for the customer's callback; before a1
    answers, the customer calls in. Before, a1 answered and the callback context
    rang the customer's phone in the middle of their own call. Now the ringing leg
    is hung up, the attempt ends ``customer_called_in`` (not counted), a1 is ready
    (not ``missed``), and the customer is called back only after their call ends."""
    from ami_bridge.events import CallArrived, ChannelHungUp, DialStarted
    from routing.callbacks import UNCOUNTED_OUTCOMES

    h = E2E.build(tmp_path, redis=redis_client)
    try:
        store = h.app.complaints.callbacks
        h.phones({
            "PJSIP/101": PhoneScript(answer_after_s=8.0, talk_s=20.0),
            **{f"PJSIP/10{i}": PhoneScript(answer_after_s=2.0, talk_s=20.0) for i in (2, 3, 4)},
            f"PJSIP/{CUSTOMER}": PhoneScript(answer_after_s=3.0, talk_s=15.0),
        })
        flag = await customer_gives_up(h)
        seen: list[tuple[float, object]] = []
        h.app.tracker.subscribe(lambda e: seen.append((h.now, e)))

        def callback_originates() -> list[object]:
            return [m for m in h.actions("Originate") if m.get("Context") == "shenava-callback"]

        h.log_in("a1")
        h.advance(1.0)
        h.log_in("a2", "a3", "a4")
        await h.run_until_async(lambda: callback_originates(), limit_s=60.0)
        assert callback_originates()[0].get("Channel") == "PJSIP/101"
        # a1's phone rings (8 s); the customer calls in, silent in the menus for 20 s
        before = len(seen)
        h.call(CallerScript(number=CUSTOMER, answers=("1",), hangup_after_s=20.0))
        [arrived] = [e for _, e in seen[before:] if isinstance(e, CallArrived)]
        assert not any(isinstance(e, ChannelHungUp) for _, e in seen[:before])  # a1's phone rings

        for _ in range(400):
            current = await as_deferred(store.get(flag.flag_id))
            if current.status is FlagStatus.CLOSED:
                break
            await h.run_until_async(lambda: True, limit_s=1.0)
            h.advance(1.0)
        hung_up = [at for at, e in seen
                   if isinstance(e, ChannelHungUp) and e.uniqueid == arrived.uniqueid]
        assert hung_up, "the callback reached the customer during their own call"
        hung_up_at = hung_up[0]
        rung_at = [at for at, e in seen
                   if isinstance(e, DialStarted) and e.dest_channel.startswith(f"PJSIP/{CUSTOMER}")]
        assert rung_at and min(rung_at) >= hung_up_at  # never during their own call
        assert current.resolution is Resolution.ANSWERED
        first, second = current.attempts
        assert first.outcome is AttemptOutcome.CUSTOMER_CALLED_IN and first.agent_id == "a1"
        assert first.outcome in UNCOUNTED_OUTCOMES
        assert second.outcome is AttemptOutcome.ANSWERED and second.started_at >= hung_up_at
        # never put not ready as "missed"
        assert not [c for c in h.agent_changes if c.agent_id == "a1" and c.new_reason is not None]
    finally:
        h.stop()

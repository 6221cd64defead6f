"""Outbound legs: ``Originate`` and the ``Dial`` application, and how legs answer.

A leg is the ``;1`` half of a Local channel (its ``;2`` runs the dialplan of
the called context) or a device channel (``PJSIP/101-00000003``) played by a
registered :class:`~testpbx.scripts.PhoneScript`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall

from ami_bridge.codec import Header
from testpbx import bridges, moh, teardown
from testpbx.channel import (
    CAUSE_CONGESTION,
    CAUSE_NO_ANSWER,
    CAUSE_NORMAL_CLEARING,
    CAUSE_UNKNOWN,
    CAUSE_USER_BUSY,
    STATE_BUSY,
    STATE_RINGING,
    STATE_UP,
    UNKNOWN,
    Channel,
)
from testpbx.formatting import dial_event
from testpbx.options import BUSY_FAR, BUSY_LEG, BUSY_RESPONSE
from testpbx.scripts import HOLD_POLL_S, PhoneMode, PhoneScript

if TYPE_CHECKING:
    from testpbx.hub import Hub

REASON_FAILED = 0
REASON_HUNG_UP = 1
REASON_NO_ANSWER = 3
REASON_ANSWERED = 4
REASON_BUSY = 5
REASON_CONGESTION = 8
DEVICE_REFUSAL_S = 0.05  # a busy phone answers the INVITE with 486 at once

_REASON_BY_CAUSE = {CAUSE_NO_ANSWER: REASON_NO_ANSWER, CAUSE_USER_BUSY: REASON_BUSY,
                    CAUSE_CONGESTION: REASON_CONGESTION}
_DIALSTATUS_BY_CAUSE = {CAUSE_NO_ANSWER: "NOANSWER", CAUSE_USER_BUSY: "BUSY",
                        CAUSE_CONGESTION: "CONGESTION"}


@dataclass(frozen=True, slots=True)
class Target:
    """Where an originated leg goes once answered: a context or an application."""

    context: str | None = None
    exten: str | None = None
    priority: int = 1
    application: str | None = None
    data: str = ""

    def fields(self) -> list[Header]:
        if self.application is not None:
            return [("Application", self.application), ("Data", self.data)]
        return [("Context", self.context or ""), ("Exten", self.exten or "")]


@dataclass(frozen=True, slots=True)
class CallerId:
    name: str = UNKNOWN
    number: str = UNKNOWN


def parse_callerid(text: str | None) -> CallerId:
    if not text:
        return CallerId()
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].partition("<")
        return CallerId(name.strip().strip('"') or UNKNOWN, number.strip() or UNKNOWN)
    return CallerId(UNKNOWN, text)


class Dialer:
    """Whoever waits on a leg. Subclasses say what answering or failing means."""

    def __init__(self, world: Hub, leg: Channel) -> None:
        self.world = world
        self.leg = leg
        self.answered = False
        self.done = False

    def ringing(self) -> None:
        self.world.emit(dial_event("DialState", self.leg, self.calling(), ("DialStatus", "RINGING")))

    def calling(self) -> Channel | None:
        return None

    def began(self) -> None:
        """Called right after ``DialBegin``."""

    def on_answer(self) -> None:
        raise NotImplementedError

    def on_failure(self, cause: int) -> None:
        raise NotImplementedError

    def answer(self) -> None:
        if self.answered or self.done:
            return
        self.answered = True
        self.on_answer()

    def leg_gone(self, leg: Channel) -> None:
        if self.answered or self.done:
            return
        self.done = True
        self.on_failure(leg.hangupcause)


# -- legs -------------------------------------------------------------------


def start_leg(
    world: Hub,
    dial: str,
    make_dialer: Callable[[Channel], Dialer],
    *,
    callerid: CallerId,
    variables: dict[str, str],
    uniqueids: tuple[str | None, str | None] = (None, None),
    linkedid: str | None = None,
    calling: Channel | None = None,
    voice_steps: list[tuple[str, str]] | None = None,
) -> Channel | None:
    """Create and start a leg; None when the endpoint does not exist."""
    local = world.parse_local(dial)
    if local is not None:
        exten, context = local
        one, two = world.new_local_pair(exten, context, uniqueids=uniqueids, linkedid=linkedid)
        for ch in (one, two):
            world.emit_channel("Newchannel", ch)
        for ch in (one, two):
            ch.caller_num, ch.caller_name = callerid.number, callerid.name
            ch.connected_num, ch.connected_name = callerid.number, callerid.name
            ch.variables.update(variables)
        one.dialer = make_dialer(one)
        world.emit(dial_event("DialBegin", one, calling, ("DialString", f"{exten}@{context}")))
        one.dialer.began()
        two.steps_override = voice_steps
        world.goto(two, context, exten, 1)
        return one
    phone = world.phone(dial)
    if phone is None or phone.mode is PhoneMode.UNREACHABLE:
        return None
    leg = world.new_device_channel(dial, uniqueid=uniqueids[0], linkedid=linkedid)
    world.emit_channel("Newchannel", leg)
    leg.caller_num, leg.caller_name = callerid.number, callerid.name
    leg.connected_num, leg.connected_name = callerid.number, callerid.name
    leg.variables.update(variables)
    leg.dialer = make_dialer(leg)
    world.emit(dial_event("DialBegin", leg, calling, ("DialString", dial.partition("/")[2])))
    leg.dialer.began()
    _play_phone(world, leg, phone)
    return leg


def _play_phone(world: Hub, leg: Channel, phone: PhoneScript) -> None:
    if phone.mode in (PhoneMode.BUSY, PhoneMode.CONGESTION):
        cause = CAUSE_USER_BUSY if phone.mode is PhoneMode.BUSY else CAUSE_CONGESTION
        world.later(leg, DEVICE_REFUSAL_S, refuse, world, leg, cause)
        return
    ringing(world, leg)
    if phone.mode is PhoneMode.ANSWER:
        world.later(leg, phone.answer_after_s, _device_answers, world, leg, phone)


def _device_answers(world: Hub, leg: Channel, phone: PhoneScript) -> None:
    answer(world, leg)
    if phone.talk_s is not None:
        world.later(None, phone.talk_s, _talk_over, world, leg, phone)


def _talk_over(world: Hub, leg: Channel, phone: PhoneScript) -> None:
    if phone.hold_until is not None and not phone.hold_until.exists():
        if leg.findable:  # held on until the file exists
            world.later(None, HOLD_POLL_S, _talk_over, world, leg, phone)
        return
    far_end_hangs_up(world, leg)


def far_end_hangs_up(world: Hub, ch: Channel, cause: int = CAUSE_NORMAL_CLEARING) -> None:
    """The phone behind a device channel hangs up (a SIP BYE)."""
    if not ch.findable:
        return
    world.emit_channel("HangupRequest", ch, ("Cause", str(cause)))
    teardown.remote_hangup(world, ch, cause)


def _leg_of(ch: Channel) -> Channel:
    """The channel whose dialer cares: the ;1 half when ``ch`` is a ;2."""
    if ch.half == 2 and ch.partner is not None:
        return ch.partner
    return ch


def ringing(world: Hub, ch: Channel) -> None:
    leg = _leg_of(ch)
    if leg.state != STATE_RINGING and leg.state != STATE_UP:
        leg.state = STATE_RINGING
        world.emit_channel("Newstate", leg)
        if leg.dialer is not None:
            leg.dialer.ringing()


def answer(world: Hub, ch: Channel) -> None:
    """``ch`` answers; for a Local ;2 the ;1 comes up with it."""
    for part in (ch, ch.partner) if ch.half == 2 else (ch,):
        if part is not None and part.state != STATE_UP:
            part.state = STATE_UP
            world.emit_channel("Newstate", part)
    leg = _leg_of(ch)
    if leg.dialer is not None:
        leg.dialer.answer()


def refuse(world: Hub, ch: Channel, cause: int) -> None:
    """``Busy()``/``Congestion()``: the leg fails with ``cause``."""
    leg = _leg_of(ch)
    if (
        cause == CAUSE_USER_BUSY and ch.half == 2 and leg is not ch and leg.alive
        and not leg.dying and isinstance(leg.dialer, OriginateDialer) and not leg.dialer.done
    ):
        _busy_behind_local(world, ch, leg, leg.dialer)
        return
    leg.hangupcause = cause
    ch.hangupcause = cause
    teardown.end(world, leg)


def _busy_behind_local(world: Hub, far: Channel, leg: Channel, dialer: OriginateDialer) -> None:
    """An originated Local leg whose ``;2`` runs ``Busy()``, as transcript 46 shows.

    The ``;2`` goes Busy, the dial ends ``BUSY``, ``;2`` is asked to hang up
    with cause 0; then, in an order that varies on a real Asterisk (the
    world's ``busy_order``), the failed ``OriginateResponse`` (Reason 5,
    Uniqueid = the ChannelId), the ``;1`` Hangup with cause 0, and the ``;2``
    SoftHangupRequest (16) and Hangup with cause 17. So a client cannot read
    "busy" from the first Hangup it sees.
    """
    dialer.done = True  # settled here, not by leg_gone
    if dialer.timer.active():
        dialer.timer.cancel()
    far.state = STATE_BUSY
    world.emit_channel("Newstate", far)
    world.emit(dial_event("DialEnd", leg, None, ("DialStatus", "BUSY")))
    world.emit_channel("HangupRequest", far, ("Cause", str(CAUSE_UNKNOWN)))
    # Both halves are going: neither tells the other (the order is set below).
    leg.dying = far.dying = True
    leg.hangupcause, far.hangupcause = CAUSE_UNKNOWN, CAUSE_USER_BUSY

    def response() -> None:
        fail(world, dialer.request, REASON_BUSY, uniqueid=leg.uniqueid)
        if dialer.on_done is not None:
            dialer.on_done(False)

    def leg_hangs_up() -> None:
        teardown.end(world, leg)

    def far_hangs_up() -> None:
        teardown.soft_hangup(world, far, CAUSE_NORMAL_CLEARING)
        teardown.end(world, far)

    steps = {BUSY_RESPONSE: response, BUSY_LEG: leg_hangs_up, BUSY_FAR: far_hangs_up}
    for step in world.busy_order():
        steps[step]()


# -- Originate ----------------------------------------------------------------


@dataclass
class OriginateRequest:
    dial: str
    target: Target
    callerid: CallerId = field(default_factory=CallerId)
    variables: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0
    channel_id: str | None = None
    other_channel_id: str | None = None
    action_id: str | None = None


class OriginateDialer(Dialer):
    def __init__(
        self, world: Hub, leg: Channel, request: OriginateRequest,
        on_done: Callable[[bool], None] | None,
    ) -> None:
        super().__init__(world, leg)
        self.request = request
        self.on_done = on_done
        self.timer: IDelayedCall = world.later(None, request.timeout_s, self._timeout)

    def _timeout(self) -> None:
        if not self.answered and not self.done and self.leg.alive:
            self.leg.hangupcause = CAUSE_NO_ANSWER
            teardown.end(self.world, self.leg)

    def on_answer(self) -> None:
        if self.timer.active():
            self.timer.cancel()
        leg = self.leg
        self.world.emit(dial_event("DialEnd", leg, None, ("DialStatus", "ANSWER")))
        respond(self.world, self.request, leg, REASON_ANSWERED)
        if self.on_done is not None:
            self.on_done(True)
        target = self.request.target
        if target.application is not None:
            run_application(self.world, leg, target.application, target.data)
        else:
            self.world.goto(leg, target.context or "default",
                          target.exten or "s", target.priority)

    def on_failure(self, cause: int) -> None:
        if self.timer.active():
            self.timer.cancel()
        fail(self.world, self.request, _REASON_BY_CAUSE.get(cause, REASON_HUNG_UP))
        if self.on_done is not None:
            self.on_done(False)


def originate(
    world: Hub, request: OriginateRequest, on_done: Callable[[bool], None] | None = None
) -> None:
    def make(leg: Channel) -> Dialer:
        return OriginateDialer(world, leg, request, on_done)

    leg = start_leg(
        world, request.dial, make, callerid=request.callerid, variables=request.variables,
        uniqueids=(request.channel_id, request.other_channel_id),
    )
    if leg is None:
        fail(world, request, REASON_FAILED)
        if on_done is not None:
            on_done(False)


def respond(world: Hub, request: OriginateRequest, leg: Channel, reason: int) -> None:
    headers: list[Header] = [("Event", "OriginateResponse"), ("Privilege", "call,all")]
    if request.action_id is not None:
        headers.append(("ActionID", request.action_id))
    headers += [("Response", "Success"), ("Channel", leg.name), *request.target.fields(),
                ("Reason", str(reason)), ("Uniqueid", leg.uniqueid),
                ("CallerIDNum", request.callerid.number), ("CallerIDName", request.callerid.name)]
    world.emit(headers)


def fail(
    world: Hub, request: OriginateRequest, reason: int, *, uniqueid: str = UNKNOWN
) -> None:
    headers: list[Header] = [("Event", "OriginateResponse"), ("Privilege", "call,all")]
    if request.action_id is not None:
        headers.append(("ActionID", request.action_id))
    headers += [("Response", "Failure"), ("Channel", request.dial), *request.target.fields(),
                ("Reason", str(reason)), ("Uniqueid", uniqueid),
                ("CallerIDNum", request.callerid.number), ("CallerIDName", request.callerid.name)]
    world.emit(headers)


def run_application(world: Hub, leg: Channel, app: str, data: str) -> None:
    """An originated leg runs one application, then hangs up (no dialplan)."""
    leg.in_autoloop = False
    leg.application, leg.appdata = app, data
    handler = world.application(app.lower())
    duration = handler(world, leg, data) if handler is not None else 0.0
    if duration is not None:
        world.later(leg, duration, teardown.pbx_hangup, world, leg)


# -- Dial() ---------------------------------------------------------------------


class DialAppDialer(Dialer):
    def __init__(self, world: Hub, leg: Channel, caller: Channel, options: str,
                 timeout_s: float | None) -> None:
        super().__init__(world, leg)
        self.caller = caller
        self.options = options
        self.timer = world.later(None, timeout_s, self._timeout) if timeout_s else None

    def calling(self) -> Channel | None:
        return self.caller

    def began(self) -> None:
        self.caller.program = self
        if "m" in self.options:
            moh.start_moh(self.world, self.caller, "default")

    def _end_dial(self, status: str) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.caller.program = None
        self.world.emit(dial_event("DialEnd", self.leg, self.caller, ("DialStatus", status)))
        moh.stop_moh(self.world, self.caller)

    def _timeout(self) -> None:
        if self.answered or self.done:
            return
        self.done = True
        self._end_dial("NOANSWER")
        self.leg.hangupcause = CAUSE_NO_ANSWER
        teardown.end(self.world, self.leg)
        self._continue()

    def _continue(self) -> None:
        self.world.resume_next(self.caller)

    def stop(self) -> None:
        """The caller went away (hang-up, redirect) while the leg rang."""
        if self.answered or self.done:
            return
        self.done = True
        self._end_dial("CANCEL")
        teardown.end(self.world, self.leg)

    def on_answer(self) -> None:
        world, leg, caller = self.world, self.leg, self.caller
        self._end_dial("ANSWER")
        leg.exten = ""
        bridge = bridges.create(world)

        def leg_after() -> None:
            teardown.end(world, leg)

        def caller_after() -> None:
            if "g" in self.options:
                self._continue()
            else:
                teardown.pbx_hangup(world, caller)

        bridges.enter(world, bridge, leg, leg_after)
        bridges.enter(world, bridge, caller, caller_after)

    def on_failure(self, cause: int) -> None:
        self._end_dial(_DIALSTATUS_BY_CAUSE.get(cause, "CHANUNAVAIL"))
        self._continue()


def dial_app(world: Hub, caller: Channel, target: str, timeout_s: float | None,
             options: str) -> None:
    dialers: list[DialAppDialer] = []

    def make(leg: Channel) -> Dialer:
        dialer = DialAppDialer(world, leg, caller, options, timeout_s)
        dialers.append(dialer)
        return dialer

    exten = target.partition("/")[2].partition("@")[0]
    callerid = CallerId(caller.caller_name, exten or caller.caller_num)
    leg = start_leg(world, target, make, callerid=callerid, variables={},
                    linkedid=caller.linkedid, calling=caller)
    if leg is None:
        world.resume_next(caller)

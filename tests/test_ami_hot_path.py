"""The per-call paths made cheaper for issue #16 keep their behaviour.

Subscribers marked with the kinds they handle are told of those only (in
subscription order); an ``Action: AGI`` is written byte for byte as the
general encoder writes it, and its deadline still fails the command; the
deadlines' heap keeps deadline order for many at once.
"""

from __future__ import annotations

import ast
import inspect
import random
import textwrap
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ami_bridge.codec import Message, encode_message
from ami_bridge.deadlines import Deadlines
from ami_bridge.errors import ActionTimeoutError, ChannelGoneError
from ami_bridge.events import (
    ChannelCreated,
    ChannelEvent,
    ChannelHungUp,
    DtmfReceived,
    TrackerEvent,
)
from ami_bridge.protocol import AMIProtocol, agi_verb
from ami_bridge.tracker import KINDS_ATTRIBUTE, CallTracker, handles
from ivr.machine import Play, SetVariable
from ivr.runner import _batched


def _channel_event(name: str, uniqueid: str, extra: str = "") -> Message:
    return Message.from_text(
        f"Event: {name}\r\nChannel: PJSIP/1-1\r\nChannelState: 6\r\nUniqueid: {uniqueid}"
        f"\r\nLinkedid: {uniqueid}{extra}"
    )


def test_a_marked_subscriber_is_told_only_of_its_kinds_in_order() -> None:
    tracker = CallTracker()
    told: list[tuple[str, str]] = []

    def everything(event: TrackerEvent) -> None:
        told.append(("all", type(event).__name__))

    @handles(ChannelHungUp, DtmfReceived)
    def some(event: TrackerEvent) -> None:
        told.append(("some", type(event).__name__))

    @handles(ChannelEvent)  # a base class: every channel event
    def base(event: TrackerEvent) -> None:
        told.append(("base", type(event).__name__))

    tracker.subscribe(some)
    tracker.subscribe(everything)
    tracker.subscribe(base)
    tracker.handle(_channel_event("Newchannel", "1.1"), 1.0)
    tracker.handle(_channel_event("DTMFEnd", "1.1", "\r\nDigit: 5\r\nDirection: Received"), 2.0)
    tracker.handle(_channel_event("Hangup", "1.1", "\r\nCause: 16"), 3.0)
    assert told == [
        ("all", "CallArrived"), ("base", "CallArrived"),  # CallArrived is a ChannelEvent
        ("all", "ChannelCreated"), ("base", "ChannelCreated"),
        ("some", "DtmfReceived"), ("all", "DtmfReceived"), ("base", "DtmfReceived"),
        ("some", "ChannelHungUp"), ("all", "ChannelHungUp"), ("base", "ChannelHungUp"),
        ("all", "CallEnded"),
    ]
    # kinds given to subscribe win over the mark; unsubscribe keeps the rest
    told.clear()
    tracker.unsubscribe(everything)
    tracker.subscribe(everything, kinds=[ChannelCreated])
    tracker.handle(_channel_event("Newchannel", "2.1"), 4.0)
    assert told == [("base", "CallArrived"), ("base", "ChannelCreated"),
                    ("all", "ChannelCreated")]


def _kinds_checked(handler: Any) -> set[type]:
    """The classes a handler tests its event against (``isinstance(event, ...)``)."""
    function = inspect.unwrap(handler)
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    definition = tree.body[0]
    assert isinstance(definition, ast.FunctionDef)
    params = [a.arg for a in definition.args.args if a.arg != "self"]
    names: set[str] = set()
    for node in ast.walk(definition):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "isinstance" and isinstance(node.args[0], ast.Name)
                and node.args[0].id == params[0]):
            kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            names.update(k.id for k in kinds if isinstance(k, ast.Name))
    return {function.__globals__[name] for name in names}


def test_the_daemons_subscribers_are_marked_with_every_kind_they_act_on() -> None:
    """A subscriber that comes to act on a new kind without adding it to its mark
    would never be told of it: each mark covers the handler's own checks."""
    from routing.callback_dialer import CallbackDialer
    from routing.dispatch import CallDispatcher
    from shenava.app import Shenava
    from shenava.callflow import CallFlow
    from shenava.http.screenpop import CallMemory
    from shenava.routing_log import RoutingLog
    from shenava.takeover import Takeover

    handlers = [CallFlow._on_event, CallDispatcher._on_tracker_event,
                CallbackDialer._on_tracker_event, Shenava._count_calls,
                CallMemory.on_tracker_event, RoutingLog.on_tracker_event,
                Takeover._on_tracker_event]
    for handler in handlers:
        marked = getattr(handler, KINDS_ATTRIBUTE, None)
        assert marked, handler.__qualname__
        checked = _kinds_checked(handler)
        assert checked, handler.__qualname__
        missing = {k.__name__ for k in checked if not issubclass(k, marked)}
        assert not missing, f"{handler.__qualname__} acts on {missing} but is not marked so"
    assert ChannelHungUp in CallFlow._on_event.tracker_event_kinds  # type: ignore[attr-defined]


def _connected() -> tuple[AMIProtocol, StringTransport, Clock]:
    clock = Clock()
    proto = AMIProtocol(clock, action_timeout=5.0, action_id_prefix="t")
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
    return proto, transport, clock


def test_an_agi_action_is_written_as_the_encoder_writes_it() -> None:
    proto, transport, _ = _connected()
    commands = ['STREAM FILE shenava/welcome "0123456789*#"', "GET DATA shenava/ref 5000 8",
                'SET VARIABLE CHANNEL(language) "fa"', "EXEC MSet A=1,B=\u0627"]
    for n, command in enumerate(commands, start=1):
        proto.agi("Local/s@caller-1;1", command, command_id=f"c{n}")
        assert transport.value() == encode_message([
            ("Action", "AGI"), ("Channel", "Local/s@caller-1;1"), ("Command", command),
            ("CommandID", f"c{n}"), ("ActionID", f"t-{n}"),
        ])
        transport.clear()
    assert agi_verb(commands[0]) == "STREAM FILE" and agi_verb(commands[0]) == "STREAM FILE"
    assert agi_verb("SAY DIGITS 12345") == "SAY DIGITS"


def test_an_unanswered_agi_action_still_fails_its_command_at_its_deadline() -> None:
    proto, transport, clock = _connected()
    failures: list[Any] = []
    proto.agi("PJSIP/1-1", "ANSWER", command_id="a").addErrback(failures.append)
    clock.advance(4.9)
    assert not failures
    clock.advance(0.1)
    [failure] = failures
    assert failure.check(ActionTimeoutError)
    assert proto.pending_count == 0 and not clock.getDelayedCalls()
    # answered in time: no time-out, and nothing left scheduled
    answered: list[Any] = []
    proto.agi("PJSIP/1-1", "ANSWER", command_id="b").addBoth(answered.append)
    proto.dataReceived(
        b"Response: Success\r\nActionID: t-2\r\n\r\n"
        b"Event: AsyncAGIExec\r\nChannel: PJSIP/1-1\r\nCommandId: b\r\n"
        b"Result: 200%20result%3D0%0A\r\n\r\n"
    )
    assert [r.result for r in answered] == ["0"]
    clock.advance(10.0)  # the kept deadline timer comes, fires nothing, and is not set again
    assert answered == answered[:1] and not failures[1:]
    assert not clock.getDelayedCalls()


def test_agi_refused_by_asterisk_still_fails_as_before() -> None:
    proto, _, _ = _connected()
    failures: list[Any] = []
    proto.agi("PJSIP/9-9", "ANSWER", command_id="x").addErrback(failures.append)
    proto.dataReceived(
        b"Response: Error\r\nActionID: t-1\r\nMessage: Channel PJSIP/9-9 does not exist.\r\n\r\n"
    )
    [failure] = failures
    assert failure.check(ChannelGoneError)


def test_many_deadlines_fire_in_deadline_order_with_one_timer() -> None:
    clock = Clock()
    deadlines = Deadlines(clock)
    fired: list[tuple[float, int]] = []
    rng = random.Random(7)
    handles_ = []
    for n in range(300):
        when = rng.choice([1.0, 2.5, 2.5, 10.0, 0.5 * rng.randint(1, 30)])
        handles_.append((when, n, deadlines.call_later(when, lambda w=when, i=n: fired.append((w, i)))))
    for _when, _n, handle in handles_[::3]:
        handle.cancel()
    assert len(clock.getDelayedCalls()) == 1
    clock.pump([0.25] * 80)
    expected = sorted((w, n) for w, n, _ in handles_ if n % 3)
    assert fired == expected  # by deadline, then in the order set


def test_batching_set_variables_leaves_other_steps_as_they_are() -> None:
    play = Play("welcome", "fa")
    one = SetVariable("A", "1")
    assert _batched((one, play, SetVariable("B", "2"))) == (one, play, SetVariable("B", "2"))
    batched = _batched((play, one, SetVariable("B", "2")))
    assert len(batched) == 2 and batched[0] is play

"""Events reach only the observers that name them, and nothing is missed (#16 item 3).

The call tracker is attached for the AMI events it acts on
(``CallTracker.event_names``): fed so, over every capture in
``tests/data/ami-transcripts/`` and one call of the demo's traffic, it makes
the same events and ends in the same state as a tracker fed every event.
The same holds for the tracker's subscribers marked with the kinds they act
on (the live numbers), and for the AGI timing the connection reports.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ami_bridge.codec import Message, encode_message
from ami_bridge.events import TrackerEvent
from ami_bridge.observers import EventObservers
from ami_bridge.protocol import AMIProtocol
from ami_bridge.tracker import KINDS_ATTRIBUTE, CallTracker, attach_tracker
from benchmarks.ami_calls import call_traffic
from routing.live_numbers import LiveNumbers
from tests.paths import TRANSCRIPTS
from tests.test_connection import connect_fully, make

TRANSCRIPT_FILES = sorted(TRANSCRIPTS.glob("*.ami"))


def _connected(clock: Clock) -> AMIProtocol:
    proto = AMIProtocol(clock, action_id_prefix="t")
    proto.makeConnection(StringTransport())
    return proto


def _state(tracker: CallTracker) -> Any:
    return (
        {u: dataclasses.asdict(c) for u, c in tracker.channels.items()},
        {k: (c.started_at, c.adopted, sorted(c.channels)) for k, c in tracker.calls.items()},
        dict(tracker._by_name),
        {k: dict(v) for k, v in tracker._locals.items()},
    )


class _Source:
    """What ``attach_tracker`` feeds from, keeping the names it was given."""

    def __init__(self) -> None:
        self.observers = EventObservers()

    def add_event_observer(self, observer: Any, names: Any = None) -> None:
        self.observers.add(observer, names)

    def add_resync_observer(self, observer: Any) -> None:
        pass

    def feed(self, message: Message) -> None:
        for observer in self.observers.told_of(message.event):
            observer(message)


def _replay_both_ways(stream: bytes) -> tuple[list[TrackerEvent], list[TrackerEvent], int]:
    """(events fed every event, events fed by name, events not handed over)."""
    clock = Clock()
    every, named = CallTracker(), CallTracker()
    seen_every: list[TrackerEvent] = []
    seen_named: list[TrackerEvent] = []
    every.subscribe(seen_every.append)
    named.subscribe(seen_named.append)
    source = _Source()
    attach_tracker(named, source, clock)
    skipped = [0]
    proto = _connected(clock)

    def feed_all(message: Message) -> None:
        clock.advance(1.0)
        every.handle(message, clock.seconds())
        before = len(seen_named)
        source.feed(message)
        if message.event not in named.event_names:
            skipped[0] += 1
            if len(seen_named) != before:
                wrong.append(message.event)

    wrong: list[str | None] = []  # (an observer's exception is logged, not raised)
    proto.add_event_observer(feed_all)
    proto.dataReceived(stream)
    assert not wrong
    assert _state(named) == _state(every)
    return seen_every, seen_named, skipped[0]


@pytest.mark.parametrize("path", TRANSCRIPT_FILES, ids=lambda p: p.name)
def test_the_tracker_fed_by_event_name_sees_each_capture_as_fed_everything(path: Any) -> None:
    every, named, skipped = _replay_both_ways(path.read_bytes())
    assert named == every


def test_every_capture_together_exercises_the_handlers_and_the_skipped_events() -> None:
    """The captures hold events the tracker acts on and events it does not:
    both sides of the index are exercised (a name missing from ``event_names``
    would change what the tracker makes from them)."""
    names: set[str] = set()
    for path in TRANSCRIPT_FILES:
        for block in path.read_bytes().split(b"\r\n"):
            if block.startswith(b"Event: "):
                names.add(block[7:].decode())
    tracker = CallTracker()
    acted = names & tracker.event_names
    assert {"Newchannel", "Hangup", "Newstate", "DialBegin", "DialEnd", "BridgeEnter",
            "BridgeLeave", "AsyncAGIStart", "AsyncAGIEnd", "OriginateResponse",
            "NewCallerid", "DTMFEnd"} <= acted
    assert {"AsyncAGIExec", "VarSet", "Newexten", "DeviceStateChange"} & (names - acted)
    # VarSet is acted on only if the tracker keeps variables: it does
    assert "VarSet" in tracker.event_names


def test_a_call_of_the_demo_traffic_is_tracked_alike_and_its_agi_results_skip_the_tracker() -> None:
    stream = b"Asterisk Call Manager/11.0.0\r\n" + b"".join(
        data for _channel, _command_id, data in call_traffic(1, 1) + call_traffic(2, 23)
    )
    every, named, skipped = _replay_both_ways(stream)
    assert named == every and len(every) > 20
    assert skipped == 2 * 22  # the AsyncAGIExec of each AGI command


def test_observers_by_name_keep_their_order_and_follow_changes() -> None:
    observers = EventObservers()
    told: list[tuple[str, str | None]] = []

    def make_observer(tag: str) -> Any:
        return lambda message: told.append((tag, message.event))

    a, b, c = make_observer("a"), make_observer("b"), make_observer("c")
    observers.add(a, names=["Hangup"])
    observers.add(b)
    observers.add(c, names=("Hangup", "Newchannel"))
    for name in ("Hangup", "Newchannel", "AsyncAGIExec", "Hangup"):
        for observer in observers.told_of(name):
            observer(Message.of(("Event", name)))
    assert told == [("a", "Hangup"), ("b", "Hangup"), ("c", "Hangup"),
                    ("b", "Newchannel"), ("c", "Newchannel"),
                    ("b", "AsyncAGIExec"),
                    ("a", "Hangup"), ("b", "Hangup"), ("c", "Hangup")]
    assert observers.told_of(None) == (b,)  # a message with no name: the all-observers
    observers.remove_first(b)
    assert observers.told_of("AsyncAGIExec") == ()
    assert observers.told_of("Hangup") == (a, c)
    observers.add(b, names=[])
    observers.add(a)
    assert observers.told_of("Newchannel") == (c, a)
    observers.remove_every(a)
    assert observers.told_of("Hangup") == (c,) and observers.observers == (c, b)


def test_the_connection_hands_events_by_name_and_the_protocol_too() -> None:
    connection, endpoint, _clock, _, _ = make()
    seen: list[tuple[str, str | None]] = []
    connection.add_event_observer(lambda m: seen.append(("hangups", m.event)), names=["Hangup"])
    connection.add_event_observer(lambda m: seen.append(("all", m.event)))
    connection.startService()
    server = connect_fully(endpoint)
    server.send(("Event", "AsyncAGIExec"), ("CommandID", "x"))
    server.send(("Event", "Hangup"), ("Uniqueid", "1.1"), ("Channel", "SIP/a-1"))
    assert seen == [("all", "AsyncAGIExec"), ("hangups", "Hangup"), ("all", "Hangup")]
    proto = _connected(Clock())
    proto.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
    got: list[str | None] = []
    proto.add_event_observer(lambda m: got.append(m.event), names={"Newstate"})
    proto.dataReceived(encode_message([("Event", "Newchannel")]) + encode_message(
        [("Event", "Newstate")]))
    assert got == ["Newstate"]


def test_agi_timing_observers_are_told_of_each_result_once() -> None:
    connection, endpoint, clock, _, _ = make()
    timed: list[tuple[str, float]] = []
    connection.add_agi_observer(lambda command, took: timed.append((command, took)))
    connection.startService()
    server = connect_fully(endpoint)
    results: list[Any] = []
    connection.agi("SIP/a-1", "GET DATA beep 3000 4", command_id="g1").addBoth(results.append)
    connection.agi("SIP/a-1", "HANGUP", command_id="h1").addBoth(results.append)
    [get_data, hangup] = server.take()
    server.send(("Response", "Success"), ("ActionID", get_data["ActionID"]))
    clock.advance(2.5)
    server.send(("Event", "AsyncAGIExec"), ("Channel", "SIP/a-1"), ("CommandId", "g1"),
                ("Result", "200%20result%3D12%0A"))
    # refused: no result, no timing
    server.send(("Response", "Error"), ("ActionID", hangup["ActionID"]),
                ("Message", "Channel SIP/a-1 does not exist."))
    assert timed == [("GET DATA beep 3000 4", 2.5)]
    assert results[0].result == "12" and results[1].check(Exception)
    # an observer added once connected is told too; a failing one is contained
    connection.add_agi_observer(lambda command, took: 1 / 0)
    connection.agi("SIP/a-1", "ANSWER", command_id="a1").addBoth(results.append)
    [answer] = server.take()
    server.send(("Response", "Success"), ("ActionID", answer["ActionID"]))
    server.send(("Event", "AsyncAGIExec"), ("Channel", "SIP/a-1"), ("CommandId", "a1"),
                ("Result", "200%20result%3D0%0A"))
    assert timed[-1] == ("ANSWER", 0.0) and results[-1].result == "0"


def test_the_live_numbers_are_told_of_every_kind_they_act_on() -> None:
    """Marked with its kinds, it counts as it would fed every event, at every
    event of the captures and of a call of the demo's traffic (two Local halves
    with the caller's number: the second is only a ``ChannelCreated``)."""
    assert getattr(LiveNumbers.on_tracker_event, KINDS_ATTRIBUTE)
    numbers = 0
    wrong: list[tuple[str, str | None]] = []
    demo = b"Asterisk Call Manager/11.0.0\r\n" + b"".join(
        data for _channel, _command_id, data in call_traffic(1, 1)
    )
    for name, stream in [(p.name, p.read_bytes()) for p in TRANSCRIPT_FILES] + [("demo", demo)]:
        tracker = CallTracker()

        def caller_of(uniqueid: str, tracker: CallTracker = tracker) -> str | None:
            channel = tracker.channel(uniqueid)
            return channel.caller_num if channel is not None else None

        by_mark, by_all = LiveNumbers(caller_of=caller_of), LiveNumbers(caller_of=caller_of)
        tracker.subscribe(by_mark.on_tracker_event)  # told of its marked kinds
        tracker.subscribe(lambda event, n=by_all: n.on_tracker_event(event))  # of every event
        proto = _connected(Clock())

        def feed(message: Message, tracker: CallTracker = tracker, a: Any = by_mark,
                 b: Any = by_all, name: str = name) -> None:
            nonlocal numbers
            tracker.handle(message, 1.0)
            if (a._of_channel, a._live) != (b._of_channel, b._live):
                wrong.append((name, message.event))
            numbers += len(b._of_channel)

        proto.add_event_observer(feed)
        proto.dataReceived(stream)
        assert not wrong  # (an observer's exception is logged, not raised)
    assert numbers  # some capture has a number to count


def test_the_in_memory_ivr_benchmark_walks_every_caller_to_an_outcome() -> None:
    """``benchmarks/ivr_results.py`` drives real runners through the protocol:
    every caller of its mix reaches an outcome and nothing is left pending."""
    from benchmarks.ivr_results import run_round

    took, results, outcomes = run_round(40, seed=3)
    assert outcomes == 40
    assert 40 * 5 < results < 40 * 25 and took >= 0

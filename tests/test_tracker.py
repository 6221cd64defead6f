"""CallTracker on the real event streams of the captures, and on resync."""

from __future__ import annotations

from typing import Any, TypeVar

from ami_bridge.codec import AMIDecoder, Message
from ami_bridge.events import (
    AgiSessionEnded,
    AgiSessionStarted,
    BridgeJoined,
    BridgeLeft,
    CallAdopted,
    CallArrived,
    CallEnded,
    ChannelAdopted,
    ChannelHungUp,
    ChannelRelinked,
    DialEnded,
    DtmfReceived,
    OriginateFinished,
    TrackerEvent,
)
from ami_bridge.tracker import CallTracker
from tests.paths import TRANSCRIPTS

E = TypeVar("E", bound=TrackerEvent)


def messages(name: str) -> list[Message]:
    return AMIDecoder().feed(next(TRANSCRIPTS.glob(f"{name}-*.ami")).read_bytes())


def replay(name: str, tracker: CallTracker | None = None) -> tuple[CallTracker, list[TrackerEvent]]:
    tracker = tracker or CallTracker()
    events: list[TrackerEvent] = []
    tracker.subscribe(events.append)
    for i, message in enumerate(messages(name)):
        returned = tracker.handle(message, 1000.0 + i)
        assert events[len(events) - len(returned) :] == returned
    return tracker, events


def of(events: list[TrackerEvent], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def test_transcript_10_ivr_call() -> None:
    tracker, events = replay("10")
    [arrived] = of(events, CallArrived)
    assert arrived.linkedid == arrived.uniqueid == "1795339506.82"
    assert arrived.channel == "Local/s@caller-sim-00000027;1"
    [agi] = of(events, AgiSessionStarted)
    assert agi.uniqueid == "1795339506.82"
    assert agi.env["agi_callerid"] == "09121234567"
    assert agi.env["agi_context"] == "complaints-ivr"
    assert [(d.digit, d.direction) for d in of(events, DtmfReceived)] == [
        ("2", "Received"),
        ("1", "Received"),
    ]
    [originate] = of(events, OriginateFinished)
    assert (originate.action_id, originate.success, originate.answered) == ("orig-1", True, True)
    assert len(of(events, AgiSessionEnded)) == 1
    assert [h.uniqueid for h in of(events, ChannelHungUp)] == ["1795339506.82", "1795339506.83"]
    [ended] = of(events, CallEnded)
    assert ended.linkedid == "1795339506.82" and ended.started_at == arrived.at
    assert ended.at > events[0].at
    assert tracker.calls == {} and tracker.channels == {}
    # Events are ordered by time, each stamped with the time given.
    assert [e.at for e in events] == sorted(e.at for e in events)


def test_local_halves_are_linked_and_one_call_per_caller() -> None:
    tracker = CallTracker()
    for i, message in enumerate(messages("10")):
        tracker.handle(message, float(i))
        if message.event == "AsyncAGIStart":
            break
    assert list(tracker.calls) == ["1795339506.82"]
    call = tracker.calls["1795339506.82"]
    assert set(call.channels) == {"1795339506.82", "1795339506.83"}
    one = tracker.channel_by_name("Local/s@caller-sim-00000027;1")
    two = tracker.channel_by_name("Local/s@caller-sim-00000027;2")
    assert one is not None and two is not None
    assert (one.local_peer, two.local_peer) == (two.uniqueid, one.uniqueid)
    assert call.origin is one
    assert one.caller_num == "09121234567" and one.in_agi
    assert one.variables["CALLER_LANG"] == "fa"


def test_transcript_40_bridge_and_agent_leg() -> None:
    tracker, events = replay("40")
    arrived = of(events, CallArrived)
    # The caller and the originated agent leg: two Linkedids, one arrival each.
    assert len(arrived) == 2
    assert len({a.linkedid for a in arrived}) == 2
    joined = of(events, BridgeJoined)
    assert len(joined) == 2 and len({j.bridge_id for j in joined}) == 1
    assert [j.members for j in joined] == [1, 2]
    # Bridged, the agent leg takes the caller's Linkedid.
    relinked = of(events, ChannelRelinked)
    caller = arrived[0].linkedid
    assert all(r.linkedid == caller for r in relinked)
    assert len(of(events, BridgeLeft)) == 2
    # The capture ends with the agent leg still up (ChannelId chose its Uniqueids):
    # the caller's call holds the bridged agent half, the other half its own.
    assert of(events, CallEnded) == []
    assert {k: set(c.channels) for k, c in tracker.calls.items()} == {
        caller: {"agentleg-0001"},
        "agentleg-0001": {"agentleg-0002"},
    }
    agent = tracker.channel("agentleg-0001")
    assert agent is not None and agent.local_peer == "agentleg-0002"


def test_transcript_43_agent_hangs_up_first() -> None:
    tracker, events = replay("43")
    arrived = of(events, CallArrived)
    assert [a.channel for a in arrived] == [
        "Local/s@caller-queue-00000023;1",
        "Local/101@agent-leg-00000024;1",
    ]
    [relinked] = of(events, ChannelRelinked)
    assert (relinked.uniqueid, relinked.previous_linkedid, relinked.linkedid) == (
        "1795339422.74",
        "1795339422.74",
        "1795339420.72",
    )
    hangups = of(events, ChannelHungUp)
    assert len(hangups) == 4 and all(h.cause == 16 for h in hangups)
    ended = of(events, CallEnded)
    assert [e.linkedid for e in ended] == ["1795339422.74", "1795339420.72"]
    assert all(not e.missed and not e.adopted for e in ended)
    assert len(of(events, AgiSessionStarted)) == 1
    assert of(events, AgiSessionEnded) == []  # transcript 43: no AsyncAGIEnd comes
    assert tracker.channels == {}


def test_transcript_44_redirect_dial_back_to_agi() -> None:
    tracker, events = replay("44")
    # The agent's channels are created by Dial with the caller's Linkedid: one call.
    [arrived] = of(events, CallArrived)
    assert arrived.linkedid == "1795339457.78"
    dials = [d for d in of(events, DialEnded) if d.caller_uniqueid is not None]
    assert [(d.caller_uniqueid, d.dest_channel, d.status, d.answered) for d in dials] == [
        ("1795339457.78", "Local/101@agent-phone-00000026;1", "ANSWER", True)
    ]
    assert len(of(events, AgiSessionStarted)) == 2
    assert len(of(events, AgiSessionEnded)) == 2
    assert of(events, ChannelRelinked) == []
    [ended] = of(events, CallEnded)
    assert ended.linkedid == arrived.linkedid
    assert len(of(events, ChannelHungUp)) == 4


def test_transcript_41_originate_not_answered() -> None:
    _, events = replay("41")
    [finished] = of(events, OriginateFinished)
    assert (finished.success, finished.reason, finished.answered) == (False, 3, False)
    assert finished.uniqueid is None


def core_show_channels() -> list[Message]:
    return [m for m in messages("30") if m.event == "CoreShowChannel"]


def test_resync_adopts_unknown_calls_without_arrival() -> None:
    tracker = CallTracker()
    events = tracker.resync(core_show_channels(), 500.0)
    assert of(events, CallArrived) == []
    [adopted] = of(events, CallAdopted)
    assert adopted.linkedid == "1795339020.16"
    assert set(adopted.uniqueids) == {"1795339020.16", "1795339020.17"}
    channels = of(events, ChannelAdopted)
    assert {(c.channel, c.local_peer) for c in channels} == {
        ("Local/s@caller-queue-00000008;1", "1795339020.17"),
        ("Local/s@caller-queue-00000008;2", "1795339020.16"),
    }
    # A second resync with the same list changes nothing.
    assert tracker.resync(core_show_channels(), 501.0) == []
    # Live events then apply to the adopted call; its end is reported once.
    hangups = [
        m for m in messages("30") if m.event == "Hangup" and m["Linkedid"] == "1795339020.16"
    ]
    later: list[TrackerEvent] = []
    for message in hangups:
        later += tracker.handle(message, 510.0)
    [ended] = of(later, CallEnded)
    assert ended.adopted and ended.linkedid == "1795339020.16"


def test_resync_ends_calls_that_hung_up_while_disconnected() -> None:
    tracker = CallTracker()
    for i, message in enumerate(messages("10")):
        tracker.handle(message, float(i))
        if message.event == "AsyncAGIStart":
            break
    assert "1795339506.82" in tracker.calls
    events = tracker.resync(core_show_channels(), 100.0)
    hung = of(events, ChannelHungUp)
    assert {h.uniqueid for h in hung} == {"1795339506.82", "1795339506.83"}
    assert all(h.missed and h.cause is None for h in hung)
    [ended] = of(events, CallEnded)
    assert ended.linkedid == "1795339506.82" and ended.missed
    assert set(tracker.calls) == {"1795339020.16"}


def test_subscriber_exception_does_not_stop_others() -> None:
    tracker = CallTracker()
    seen: list[TrackerEvent] = []

    def broken(event: TrackerEvent) -> None:
        raise RuntimeError("subscriber bug")

    tracker.subscribe(broken)
    tracker.subscribe(seen.append)
    for i, message in enumerate(messages("10")):
        tracker.handle(message, float(i))
    assert len(of(seen, CallEnded)) == 1


def _state(tracker: CallTracker) -> object:
    return (
        {u: (c.name, c.linkedid, c.state, c.state_desc, c.caller_num, c.bridge_id, c.in_agi,
             c.local_peer, dict(c.variables)) for u, c in tracker.channels.items()},
        {k: (c.started_at, sorted(c.channels)) for k, c in tracker.calls.items()},
    )


def test_observe_keeps_the_state_handle_keeps_and_tells_the_same_changes() -> None:
    heard = (DtmfReceived, ChannelHungUp, OriginateFinished, AgiSessionStarted)
    for path in sorted(TRANSCRIPTS.glob("*.ami")):
        stream = AMIDecoder().feed(path.read_bytes())
        handled, observed = CallTracker(), CallTracker()
        told: list[TrackerEvent] = []
        observed.subscribe(told.append, heard)
        made: list[TrackerEvent] = []
        for i, message in enumerate(stream):
            made.extend(handled.handle(message, 1000.0 + i))
            observed.observe(message, 1000.0 + i)
        assert _state(observed) == _state(handled), path.name
        assert told == [e for e in made if isinstance(e, heard)], path.name


def test_observe_makes_no_change_of_a_kind_nobody_listens_for(monkeypatch: Any) -> None:
    from ami_bridge.tracker import EVERY_KIND

    heard = (ChannelHungUp,)

    def never(self: object, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"{type(self).__name__} made for no one")

    for kind in EVERY_KIND - set(heard):
        monkeypatch.setattr(kind, "__init__", never)
    tracker = CallTracker()
    told: list[TrackerEvent] = []
    tracker.subscribe(told.append, heard)
    for name in ("10", "40", "43", "44"):
        for i, message in enumerate(messages(name)):
            tracker.observe(message, float(i))
    assert told and all(isinstance(e, ChannelHungUp) for e in told)

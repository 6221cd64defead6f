"""The tracker's memory is bounded: finished calls leave nothing, and a cap on channels.

200,000 channels that never hung up once kept 200 MB until the next
reconnect; now past ``max_channels`` the oldest idle channels are dropped
with a warning and a missed hang-up.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from twisted.logger import Logger

from ami_bridge.codec import AMIDecoder, Message
from ami_bridge.events import CallEnded, ChannelHungUp, TrackerEvent
from ami_bridge.tracker import CallTracker
from tests.paths import TRANSCRIPTS

# Captures whose every channel hangs up before the capture ends.
FINISHED = ["10", "11", "21", "22", "23", "41", "42", "43", "44", "46"]


def messages(name: str) -> list[Message]:
    return AMIDecoder().feed(next(TRANSCRIPTS.glob(f"{name}-*.ami")).read_bytes())


def empty(tracker: CallTracker) -> bool:
    return not (tracker.channels or tracker.calls or tracker._by_name or tracker._locals)


@pytest.mark.parametrize("name", FINISHED)
def test_a_finished_call_leaves_nothing_in_the_tracker(name: str) -> None:
    tracker = CallTracker()
    for i, message in enumerate(messages(name)):
        tracker.handle(message, 1000.0 + i)
    assert empty(tracker)


def newchannel(n: int, name: str | None = None) -> Message:
    return Message.of(
        ("Event", "Newchannel"), ("Channel", name or f"PJSIP/100-{n:08x}"),
        ("Uniqueid", f"1.{n}"), ("Linkedid", f"1.{n}"), ("ChannelState", "4"),
    )


def hangup(n: int, name: str | None = None) -> Message:
    return Message.of(
        ("Event", "Hangup"), ("Channel", name or f"PJSIP/100-{n:08x}"),
        ("Uniqueid", f"1.{n}"), ("Linkedid", f"1.{n}"), ("Cause", "16"),
    )


def test_a_renamed_local_half_leaves_nothing() -> None:
    tracker = CallTracker()
    tracker.handle(newchannel(1, "Local/s@ivr-00000001;1"), 1.0)
    tracker.handle(
        Message.of(("Event", "Rename"), ("Channel", "Local/s@ivr-00000001;1"),
                   ("Newname", "Local/s@ivr-00000002;1"), ("Uniqueid", "1.1")), 2.0,
    )
    tracker.handle(hangup(1, "Local/s@ivr-00000002;1"), 3.0)
    assert empty(tracker)


def test_channels_past_the_cap_drop_the_oldest_idle_ones_with_a_warning() -> None:
    tracker = CallTracker(max_channels=1000)
    logged: list[dict[str, Any]] = []
    tracker.log = Logger(namespace="test", observer=cast(Any, logged.append))
    events: list[TrackerEvent] = []
    tracker.subscribe(events.append)
    # The very first channel is in the IVR: busy, so kept over idle ones.
    tracker.handle(newchannel(0), 0.0)
    tracker.handle(Message.of(("Event", "AsyncAGIStart"), ("Uniqueid", "1.0"), ("Env", "")), 0.0)
    for n in range(1, 20_000):
        tracker.handle(newchannel(n), float(n))
    assert len(tracker.channels) <= 1000
    assert len(tracker.calls) <= 1000
    assert "1.0" in tracker.channels  # busy: not dropped
    assert "1.19999" in tracker.channels and "1.1" not in tracker.channels
    dropped = [e for e in events if isinstance(e, ChannelHungUp) and e.missed]
    assert len(dropped) == tracker.channels_dropped == 20_000 - len(tracker.channels)
    assert len([e for e in events if isinstance(e, CallEnded) and e.missed]) == len(dropped)
    warnings = [e for e in logged if "ami.max_channels" in e["log_format"]]
    # One warning a batch (a hundredth of the cap), not one a channel.
    assert 0 < len(warnings) <= len(dropped) // 10


def test_resync_past_the_cap_keeps_the_listed_channels() -> None:
    tracker = CallTracker(max_channels=100)
    for n in range(100):
        tracker.handle(newchannel(n), float(n))
    listed = [
        Message.of(("Event", "CoreShowChannel"), ("Channel", f"PJSIP/200-{n}"),
                   ("Uniqueid", f"2.{n}"), ("Linkedid", f"2.{n}"), ("Duration", "00:00:05"))
        for n in range(150)
    ]
    tracker.resync(listed, 1000.0)
    # Listed channels are kept over unlisted ones, up to the cap.
    assert len(tracker.channels) == 100
    assert all(uid.startswith("2.") for uid in tracker.channels)
    assert len(tracker.calls) == 100

"""The hold keeps a waiting caller company through failed commands.

Under overload an AGI command can get no answer in time (ActionTimeoutError,
seen 194 times in a full chaos run): the hold loop used to end in an unhandled
error, leaving the caller in silence while they kept their place in line.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed

from ami_bridge.agi import parse_result
from ami_bridge.errors import ActionTimeoutError, AGIResultError, ChannelGoneError
from routing.hold import MAX_FAILED_IN_A_ROW, HoldConfig, HoldLoop


def _loop(agi: Any) -> HoldLoop:
    return HoldLoop(agi, "PJSIP/caller-1", "fa", HoldConfig(announce_every_s=45), position=lambda: 3,
                    on_choice=lambda key: None, set_language=False)


def test_a_timed_out_music_command_goes_on_to_the_announcement_and_music() -> None:
    sent: list[str] = []
    music_left: list[Deferred[Any]] = []

    def agi(channel: str, command: str) -> Deferred[Any]:
        sent.append(command)
        if command.startswith("EXEC MusicOnHold"):
            if len([c for c in sent if c.startswith("EXEC MusicOnHold")]) == 1:
                return fail(ActionTimeoutError("AGI EXEC MusicOnHold", "agi-1", 10.0))
            music_left.append(Deferred())
            return music_left[-1]
        return succeed(parse_result("200 result=0"))

    loop = _loop(agi)
    done = loop.start()
    failures: list[Any] = []
    done.addErrback(failures.append)
    assert failures == []
    assert sent[0].startswith("EXEC MusicOnHold")
    assert any(c.startswith("EXEC Playback") or c.startswith("STREAM FILE") for c in sent[1:])
    assert any(c.startswith("GET DATA") for c in sent[1:])
    assert sent[-1].startswith("EXEC MusicOnHold") and len(music_left) == 1  # the music again
    assert not done.called  # still keeping the caller company


def test_failures_in_a_row_are_bounded_and_end_without_an_unhandled_error() -> None:
    sent: list[str] = []

    def agi(channel: str, command: str) -> Deferred[Any]:
        sent.append(command)
        return fail(AGIResultError("unreadable result", verb=command.split()[0]))

    done = _loop(agi).start()
    results: list[Any] = []
    done.addBoth(results.append)
    assert results == [None]  # ended cleanly, not with an error
    assert len(sent) == MAX_FAILED_IN_A_ROW


def test_a_gone_channel_still_ends_the_hold_at_once() -> None:
    sent: list[str] = []

    def agi(channel: str, command: str) -> Deferred[Any]:
        sent.append(command)
        return fail(ChannelGoneError("gone"))

    done = _loop(agi).start()
    results: list[Any] = []
    done.addBoth(results.append)
    assert results == [None] and len(sent) == 1

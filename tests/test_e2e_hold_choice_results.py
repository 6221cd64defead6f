"""A waiting caller chooses voicemail and one AGI result comes back unreadable.

Through the test PBX: the caller waits, presses 2 at the hold options, and the
PBX garbles the ``Result`` of one command of the voicemail sequence (as the
fuzzed ``result=²`` did). The command ran; its result is unknown. The call must
go on (the beep and the recording, the "message saved" prompt, the hang-up),
and the choice must be handed on with its recording, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ami_bridge.testpbx.agi_engine import AgiSession
from ami_bridge.testpbx.scripts import CallerScript
from tests.e2e_harness import E2E

VOICEMAIL_AT_HOLD = ("1", "3", "2")  # Persian, straight to the line, then 2 at the hold options


@pytest.fixture
def h(tmp_path: Path) -> Iterator[E2E]:
    harness = E2E.build(tmp_path)
    yield harness
    harness.stop()


def garble(monkeypatch: pytest.MonkeyPatch, starts: str, result: str) -> list[str]:
    """The PBX answers the first command starting with ``starts`` with ``result``."""
    garbled: list[str] = []
    send = AgiSession._send_exec

    def send_exec(self: AgiSession, command: Any, real: str) -> None:
        if not garbled and command.line.startswith(starts):
            garbled.append(command.line)
            real = result
        send(self, command, real)

    monkeypatch.setattr(AgiSession, "_send_exec", send_exec)
    return garbled


@pytest.mark.parametrize("starts", [
    "STREAM FILE shenava/leave-message",
    "RECORD FILE",
    "STREAM FILE shenava/message-saved",
])
@pytest.mark.parametrize("result", ["200 result=²", "200 result=99999999", "garbage"])
def test_an_unreadable_result_in_the_voicemail_choice_moves_on(
    h: E2E, monkeypatch: pytest.MonkeyPatch, starts: str, result: str,
) -> None:
    garbled = garble(monkeypatch, starts, result)
    chosen: list[tuple[Any, str | None]] = []
    h.app.callflow.on_hold_choice = lambda event, recording: chosen.append((event, recording))
    call = h.call(CallerScript(number="09120000001", answers=VOICEMAIL_AT_HOLD))
    h.run_until(lambda: chosen, limit_s=200)
    h.advance(30.0)
    assert garbled, "the PBX never sent the command to garble"
    commands = h.agi_commands(call)
    after = commands[commands.index(garbled[0]) + 1:]
    assert [c.split(" ", 2)[:2] for c in commands if c.startswith(("RECORD", "HANGUP"))] == [
        ["RECORD", "FILE"], ["HANGUP"]]
    if starts != "STREAM FILE shenava/message-saved":
        assert 'STREAM FILE shenava/message-saved ""' in after  # never left in silence
    assert after[-1] == "HANGUP"
    [(event, recording)] = chosen
    assert event.choice == "voicemail"
    record = next(c for c in commands if c.startswith("RECORD FILE"))
    assert recording is not None and record.startswith(f"RECORD FILE {recording} ")
    assert not h.alive(call)

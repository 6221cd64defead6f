"""The ``shenava`` command itself: extras, exit codes, output."""

from __future__ import annotations

from shenava.cli import EXIT_MISSING, missing_extra


def test_worker_and_transcribe_name_the_extra_when_vosk_is_missing() -> None:
    for command in ("worker", "transcribe"):
        message = missing_extra(command, installed=lambda module: module != "vosk")
        assert message is not None
        assert "shenava[transcribe]" in message
        assert f"shenava {command}" in message


def test_other_commands_need_no_extra() -> None:
    for command in ("run", "demo", "report", "complaints", "models"):
        assert missing_extra(command, installed=lambda module: False) is None
    assert missing_extra("worker", installed=lambda module: True) is None
    assert EXIT_MISSING == 3

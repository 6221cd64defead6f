"""Scripted participants: the people the test PBX plays (plain data).

A :class:`CallerScript` is a caller on the support line; a :class:`PhoneScript`
is an agent's phone. Times are seconds; the world drives them on its clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

LANGUAGE_VARIABLE = "CALLER_LANG"
HOLD_POLL_S = 0.1


class AfterSpeaking(Enum):
    """What a caller does when the audio spoken into ``RECORD FILE`` is over."""

    PRESS_HASH = "hash"
    STAY_SILENT = "silent"
    HANG_UP = "hangup"


@dataclass(frozen=True, slots=True)
class CallerScript:
    """A caller. Digits come two ways.

    ``answers`` is the reliable way: each time the IVR asks for input (a
    ``GET DATA`` or ``WAIT FOR DIGIT`` starts) the caller takes the next answer
    and types it ``answer_delay_s`` later, one key every ``digit_gap_s``; ``""``
    means "say nothing, let it time out". ``("2", "1", "12345#")`` presses 2 at
    the first prompt, 1 at the second, then types 12345#.

    ``timed_digits`` are keys pressed at fixed times after the call starts,
    whatever is running (type-ahead: keys pressed while no command runs are
    seen as DTMF events but never reach the next command, as on Asterisk).
    """

    number: str = "09120000000"
    name: str = "Caller"
    language: str | None = "fa"
    variables: dict[str, str] = field(default_factory=dict)
    answers: Sequence[str] = ()
    answer_delay_s: float = 1.0
    digit_gap_s: float = 0.3
    timed_digits: Sequence[tuple[float, str]] = ()
    audio: Path | None = None
    speak_after_s: float = 0.5
    after_speaking: AfterSpeaking = AfterSpeaking.PRESS_HASH
    patience_s: float | None = None
    hangup_after_s: float | None = None
    talk_s: float | None = None
    menu_answers: Mapping[str, str] = field(default_factory=dict)
    """Answers by the prompt asked (``{"choose-language": "1", "main-menu": "3"}``),
    before ``answers``: a caller who hears a menu again (a daemon took the call
    over) answers it again, as a person would."""

    def channel_variables(self) -> dict[str, str]:
        merged = dict(self.variables)
        if self.language is not None:
            merged.setdefault(LANGUAGE_VARIABLE, self.language)
        return merged


class PhoneMode(Enum):
    ANSWER = "answer"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    CONGESTION = "congestion"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class PhoneScript:
    """An agent's phone, by endpoint (``PJSIP/101``).

    It rings for ``answer_after_s`` then answers; ``talk_s`` later the agent
    hangs up (``None``: stays until the other side hangs up). With
    ``hold_until``, the agent talks on past ``talk_s`` until that file exists
    (a test holds calls up until it has seen what it waits for, whatever the
    machine's load), polled every ``HOLD_POLL_S``.
    """

    mode: PhoneMode = PhoneMode.ANSWER
    answer_after_s: float = 2.0
    talk_s: float | None = None
    hold_until: Path | None = None

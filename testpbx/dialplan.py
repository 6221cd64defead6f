"""The capture dialplan (``asterisk-conf/extensions.conf``) as data, and a tiny runner.

Each context is a list of ``(application, data)`` priorities; every
extension of a context behaves alike, as in the captures (``_X.`` or ``s``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from testpbx import agi_engine, dtmf, originate, teardown
from testpbx.channel import (
    CAUSE_CONGESTION,
    CAUSE_USER_BUSY,
    STATE_UP,
    Channel,
)
from testpbx.scripts import PhoneMode, PhoneScript

if TYPE_CHECKING:
    from testpbx.hub import Hub

FOREVER_S = 86400.0
SEND_DTMF_STEP_S = 0.452  # SendDTMF(2) took 0.452 s in transcript 10
DEFAULT_ANSWER_SETTLE_S = 0.5  # Answer() waits up to 500 ms for media (transcripts 42, 44)
# caller-sim and caller-queue moved on sooner in the captures (their partner
# was already running the IVR).
ANSWER_SETTLE_S = {"caller-sim": 0.1, "caller-queue": 0.12}

BUILTIN_DIALPLAN: dict[str, list[tuple[str, str]]] = {
    "complaints-ivr": [("NoOp", "complaint line"), ("Answer", ""), ("AGI", "agi:async"), ("Hangup", "")],
    "caller-sim": [
        ("Answer", ""),
        ("Wait", "2"),
        ("SendDTMF", "2"),
        ("Wait", "1.5"),
        ("SendDTMF", "1"),
        ("Wait", "1"),
        ("Playback", "vm-intro&vm-intro"),
        ("Wait", "10"),
        ("Hangup", ""),
    ],
    "caller-queue": [("Answer", ""), ("Wait", "60")],
    "agent-phone": [("Answer", ""), ("Wait", "3"), ("Hangup", "")],
    "agent-noanswer": [("Ringing", ""), ("Wait", "40")],
    "agent-leg": [("Wait", "2"), ("Answer", ""), ("Wait", "60")],
    "agent-leg-noanswer": [("Ringing", ""), ("Wait", "60")],
    "agent-busy": [("Busy", "5")],
    "customer-phone": [("Wait", "3"), ("Answer", ""), ("Playback", "vm-intro"), ("Wait", "20")],
    "shenava-connect": [
        ("Dial", "Local/${EXTEN}@agent-phone,20,gm"),
        ("AGI", "agi:async"),
        ("Hangup", ""),
    ],
    # Shenava's callback context (etc/asterisk/extensions.conf): from the agent's
    # answered leg, dial the customer's phone (register it as PJSIP/<number>).
    "shenava-callback": [("Dial", "PJSIP/${EXTEN},30"), ("Hangup", "")],
}


def phone_program(script: PhoneScript) -> list[tuple[str, str]]:
    """A registered phone as dialplan, so Local legs to it behave like the real thing."""
    if script.mode is PhoneMode.ANSWER:
        talk = FOREVER_S if script.talk_s is None else script.talk_s
        return [
            ("Ringing", ""),
            ("Wait", str(script.answer_after_s)),
            ("Answer", ""),
            ("Wait", str(talk)),
            ("Hangup", ""),
        ]
    if script.mode is PhoneMode.NO_ANSWER:
        return [("Ringing", ""), ("Wait", str(FOREVER_S))]
    if script.mode is PhoneMode.BUSY:
        return [("Busy", "")]
    if script.mode is PhoneMode.CONGESTION:
        return [("Congestion", "")]
    return [("Hangup", "20")]


def goto(world: Hub, ch: Channel, context: str, exten: str, priority: int = 1) -> None:
    ch.cancel_timers()
    if ch.half == 1 or ch.tech != "Local":
        ch.steps_override = None
    ch.context, ch.exten, ch.priority = context, exten, priority
    ch.in_autoloop = True
    execute(world, ch)


def resume_next(world: Hub, ch: Channel) -> None:
    """Go on at the next priority (after AGI ends, after Dial)."""
    if not ch.findable:
        return
    ch.priority += 1
    execute(world, ch)


def execute(world: Hub, ch: Channel) -> None:
    if not ch.findable:
        return
    steps = ch.steps_override or world.steps(ch.context, ch.exten)
    if steps is None or not 1 <= ch.priority <= len(steps):
        ch.application, ch.appdata = "", ""
        teardown.pbx_hangup(world, ch)
        return
    app, data = steps[ch.priority - 1]
    data = data.replace("${EXTEN}", ch.exten)
    ch.application, ch.appdata = app, data
    handler = APPS.get(app.lower(), _unknown_app)
    duration = handler(world, ch, data)
    if duration is None:
        return
    if duration <= 0:
        resume_next(world, ch)
    else:
        world.later(ch, duration, resume_next, world, ch)


def _noop(world: Hub, ch: Channel, data: str) -> float:
    return 0.0


def _answer(world: Hub, ch: Channel, data: str) -> float:
    if ch.state == STATE_UP:
        return 0.0
    originate.answer(world, ch)
    return ANSWER_SETTLE_S.get(ch.context, DEFAULT_ANSWER_SETTLE_S)


def _wait(world: Hub, ch: Channel, data: str) -> float:
    try:
        return max(0.0, float(data or 0))
    except ValueError:
        return 0.0


def _ringing(world: Hub, ch: Channel, data: str) -> float:
    originate.ringing(world, ch)
    return 0.0


def _send_dtmf(world: Hub, ch: Channel, data: str) -> float:
    target = ch.partner if ch.partner is not None else ch
    digits = [d for d in data.split(",")[0] if d in "0123456789*#ABCD"]
    for i, digit in enumerate(digits):
        world.later(ch, i * SEND_DTMF_STEP_S, dtmf.press, world, target, digit)
    return SEND_DTMF_STEP_S * max(1, len(digits))


def _playback(world: Hub, ch: Channel, data: str) -> float:
    from testpbx.audio import prompt_audio

    files = [f for f in data.split(",")[0].split("&") if f]
    start = world.now()
    total = 0.0
    for name in files:
        samples = prompt_audio(world.options, name)
        ch.speech.append((start + total, samples))
        total += len(samples) / 2 / 8000
    return total


def _agi(world: Hub, ch: Channel, data: str) -> None:
    agi_engine.start_session(world, ch)
    return None


def _hangup(world: Hub, ch: Channel, data: str) -> None:
    cause = int(data) if data.strip().isdigit() else None
    teardown.pbx_hangup(world, ch, cause)
    return None


def _busy(world: Hub, ch: Channel, data: str) -> None:
    originate.refuse(world, ch, CAUSE_USER_BUSY)
    return None


def _congestion(world: Hub, ch: Channel, data: str) -> None:
    originate.refuse(world, ch, CAUSE_CONGESTION)
    return None


def _set(world: Hub, ch: Channel, data: str) -> float:
    name, _, value = data.partition("=")
    if name:
        ch.variables[name.strip()] = value
    return 0.0


def _dial(world: Hub, ch: Channel, data: str) -> None:
    parts = data.split(",")
    target = parts[0]
    timeout = float(parts[1]) if len(parts) > 1 and parts[1].strip() else None
    options = parts[2] if len(parts) > 2 else ""
    originate.dial_app(world, ch, target, timeout, options)
    return None


def _unknown_app(world: Hub, ch: Channel, data: str) -> float:
    # Queue() and other apps are not imitated: the channel waits, then goes on.
    return FOREVER_S


APPS: dict[str, Callable[[Hub, Channel, str], float | None]] = {
    "noop": _noop,
    "answer": _answer,
    "wait": _wait,
    "ringing": _ringing,
    "senddtmf": _send_dtmf,
    "playback": _playback,
    "agi": _agi,
    "hangup": _hangup,
    "busy": _busy,
    "congestion": _congestion,
    "set": _set,
    "dial": _dial,
}

"""A scripted caller playing its :class:`CallerScript` on the clock."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall

from testpbx import dtmf, teardown
from testpbx.audio import RATE, SAMPLE_BYTES, read_pcm
from testpbx.channel import Channel
from testpbx.dialplan import FOREVER_S
from testpbx.originate import CallerId, Dialer, start_leg
from testpbx.scripts import AfterSpeaking, CallerScript

if TYPE_CHECKING:
    from testpbx.hub import Hub

CALLER_CONTEXT = "caller-sim"
HASH_AFTER_SPEAKING_S = 0.5
VOICE_STEPS = [("Answer", ""), ("Wait", str(FOREVER_S))]


class CallerRun:
    """Drives one call: keys at prompts, speech into recordings, patience, hang-up."""

    def __init__(self, world: Hub, script: CallerScript, line: Channel, voice: Channel) -> None:
        self.world = world
        self.script = script
        self.line = line  # the channel in the IVR (Local ;1)
        self.voice = voice  # the caller's own end (Local ;2)
        self.answers: deque[str] = deque(script.answers)
        self.timers: list[IDelayedCall] = []
        self.talk_timer: IDelayedCall | None = None
        self.patience_timer: IDelayedCall | None = None
        self.connected = False

    def _after(self, delay: float, fn: Callable[..., Any], *args: Any) -> IDelayedCall:
        call = self.world.later(None, delay, fn, *args)
        self.timers.append(call)
        return call

    def begin(self) -> None:
        for at, digits in self.script.timed_digits:
            self._type(at, digits)
        if self.script.hangup_after_s is not None:
            self._after(self.script.hangup_after_s, self.hang_up)
        if self.script.patience_s is not None:
            self.patience_timer = self._after(self.script.patience_s, self.hang_up)

    def _type(self, delay: float, digits: str) -> None:
        for i, digit in enumerate(digits):
            self._after(delay + i * self.script.digit_gap_s, dtmf.press, self.world, self.line, digit)

    def prompt_started(self, prompt: str = "") -> None:
        by_prompt = self.script.menu_answers
        if by_prompt:
            name = prompt.rsplit("/", 1)[-1]
            if name in by_prompt:
                self._type(self.script.answer_delay_s, by_prompt[name])
                return
        if self.answers:
            self._type(self.script.answer_delay_s, self.answers.popleft())

    def record_started(self) -> None:
        script = self.script
        pcm = read_pcm(script.audio) if script.audio is not None else b""
        self._after(script.speak_after_s, self._speak, pcm)

    def _speak(self, pcm: bytes) -> None:
        if pcm:
            self.voice.speech.append((self.world.now(), pcm))
        spoken_s = len(pcm) / SAMPLE_BYTES / RATE
        after = self.script.after_speaking
        if after is AfterSpeaking.PRESS_HASH:
            self._type(spoken_s + HASH_AFTER_SPEAKING_S, "#")
        elif after is AfterSpeaking.HANG_UP:
            self._after(spoken_s + HASH_AFTER_SPEAKING_S, self.hang_up)

    def bridged(self) -> None:
        self.connected = True
        if self.patience_timer is not None and self.patience_timer.active():
            self.patience_timer.cancel()
        if self.script.talk_s is not None:
            self.talk_timer = self._after(self.script.talk_s, self.hang_up)

    def unbridged(self) -> None:
        if self.talk_timer is not None and self.talk_timer.active():
            self.talk_timer.cancel()

    def hang_up(self) -> None:
        if self.voice.findable:
            teardown.request_hangup(self.world, self.voice)

    def channel_gone(self, ch: Channel) -> None:
        for call in self.timers:
            if call.active():
                call.cancel()
        self.timers.clear()


class _PlacedCall(Dialer):
    """The caller's Local pair came up: send the line half into the support line."""

    def __init__(self, world: Hub, leg: Channel) -> None:
        super().__init__(world, leg)

    def on_answer(self) -> None:
        from testpbx import dialplan
        from testpbx.formatting import dial_event

        self.world.emit(dial_event("DialEnd", self.leg, None, ("DialStatus", "ANSWER")))
        dialplan.goto(self.world, self.leg, self.world.options.support_context, "s", 1)
        run = self.leg.caller
        if run is not None:
            run.begin()

    def on_failure(self, cause: int) -> None:
        pass


def start_scripted_call(world: Hub, script: CallerScript) -> tuple[Channel, Channel]:
    runs: list[CallerRun] = []

    def make(leg: Channel) -> Dialer:
        assert leg.partner is not None
        run = CallerRun(world, script, leg, leg.partner)
        leg.caller = run
        runs.append(run)
        return _PlacedCall(world, leg)

    leg = start_leg(
        world, f"Local/s@{CALLER_CONTEXT}", make,
        callerid=CallerId(script.name, script.number),
        variables=script.channel_variables(),
        voice_steps=VOICE_STEPS,
    )
    assert leg is not None and leg.partner is not None
    return leg, leg.partner

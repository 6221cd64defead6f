"""The AsyncAGI runner: executes the menu machine's commands on one call's channel.

One runner per call. The composition root makes it on ``AsyncAGIStart`` with an
``AGIChannel`` bound to the channel, calls ``run``, and forwards two things it
sees on AMI for that channel: ``DTMFEnd`` (``Direction: Received``) to
``dtmf_received``, and ``Hangup``/``AsyncAGIEnd`` to ``channel_hung_up``.

Why DTMFEnd: Asterisk hands a key to an AGI command only while one that reads
keys runs (``GET DATA``, ``STREAM FILE`` with escape digits, ``RECORD FILE``);
keys pressed between commands, or during ``SET VARIABLE`` or a prompt that may
not be interrupted, are dropped. The runner keeps those as type-ahead and gives
them to the machine at the next ``Collect`` instead of running ``GET DATA``.
While a key-reading command runs, DTMFEnd is ignored: the key comes back in
that command's result.

Hang-ups show up three ways: a command ends with ``result=-1``, a command is
refused with ``ChannelGoneError``, or ``channel_hung_up`` is called while the
runner waits. ``STREAM FILE`` and ``SAY DIGITS`` also answer ``result=-1`` when
a sound file is missing; a ``-1`` from them with nothing played (``endpos=0``,
or from ``SAY DIGITS``) is logged and the call carries on, and the next command
tells a hang-up from a missing file.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ami_bridge.agi import AGIResult, quote_argument
from ami_bridge.errors import AGIResultError, AMIError, ChannelGoneError, ConnectionLostError
from ivr.errors import OutcomeNotDeliveredError
from ivr.machine import (
    CHANNEL_LANGUAGE,
    Collect,
    Command,
    Digits,
    EndCall,
    Failed,
    Finish,
    HungUp,
    Input,
    LookupComplaint,
    LookupResult,
    MenuMachine,
    Outcome,
    Play,
    Record,
    Recorded,
    Request,
    SayDigits,
    SetVariable,
    Start,
    State,
    Step,
    Timeout,
)
from ivr.prompts import SOUND_FOLDER
from shenava_base.clock import Clock

ESCAPE_DIGITS = "0123456789*#"
SILENCE = "silence/1"
"""Asterisk's core sound of one second of silence: the prompt of a GET DATA that carries on a number."""
LOOKUP_TIMEOUT_S = 5.0
LINK_WAIT_S = 120.0
"""How long a command waits for a broken AMI link to come back before the session gives up."""
MAX_LINK_WAITS = 3  # reconnects one command may wait for before the session gives up
MAX_TYPE_AHEAD = 32
MAX_FAILED_STEPS = 5  # failed commands in a row before the session is given up
KEPT_BEFORE_TOLD = frozenset({Request.VOICEMAIL, Request.CALLBACK})
"""Outcomes handed to the sink *before* the last prompts tell the caller they are
kept ("message saved", "callback booked"): the sink journals them (fsynced), so a
``kill -9`` during or right after the prompt never loses what the caller heard
was kept."""

T = TypeVar("T")

# What an unreadable result of these commands is taken as: played with no key
# pressed, or nothing typed (which the menu answers by asking again).
_UNREADABLE_AS = {
    "STREAM FILE": AGIResult(200, "0"),
    "SAY DIGITS": AGIResult(200, "0"),
    "GET DATA": AGIResult(200, "", "timeout"),
}



class AGIChannel(Protocol):
    """One call's channel as the runner sees it; the AMI protocol's ``agi(channel, command)`` adapts to it.

    A channel may also have ``start(command, reply) -> command_id`` and
    ``forget(command_id)`` (:class:`AGIReplyChannel`, the AMI protocol's
    ``agi_reply``/``forget_agi``): the runner then uses those, one callable and
    no Deferred per command."""

    def execute(self, command: str) -> Deferred[AGIResult]:
        """Run one AGI command; fire with its result, or fail (``ChannelGoneError`` when the caller is gone)."""
        ...


AGIReply = Callable[[AGIResult | BaseException], object]


class AGIReplyChannel(AGIChannel, Protocol):
    """An :class:`AGIChannel` that tells a callable the end of each command."""

    def start(self, command: str, reply: AGIReply) -> str:
        """Run one AGI command; ``reply`` is told its result or its error once (at
        once when it cannot be sent). Returns what ``forget`` takes."""
        ...

    def forget(self, command_id: str) -> None:
        """Drop a started command: its ``reply`` is never told."""
        ...


class OutcomeSink(Protocol):
    """Where an outcome goes: the waiting line, the voicemail store, the callback flags."""

    def on_outcome(self, outcome: Outcome) -> Deferred[None] | None: ...


ComplaintLookup = Callable[[str], Deferred[str | None]]
"""Fires with the complaint's status key (``"in_progress"``), or None if there is no such complaint."""

RecordingName = Callable[[], str]
"""Gives a fresh ``RECORD FILE`` name (Asterisk's view of the path, no extension).

Shenava's voicemail store makes it (``VoicemailStore.allocate(now).record_name``)
from the time and a random token; the runner never builds a path itself.
"""

_UNSAFE_IN_NAME = frozenset(" \t\r\n\x00\"'")


class _Gone:
    """The caller hung up while the runner waited."""


_GONE = _Gone()


class _Relay:
    """What the session waits on in ``IVRRunner._wait``: a hang-up ends the wait."""

    __slots__ = ("deferred",)

    def __init__(self, deferred: Deferred[Any]) -> None:
        self.deferred = deferred


_AGI_WAIT = object()  # ``IVRRunner._waiting`` while an AGI command runs


@types.coroutine
def _command(command: str) -> Generator[str, Any, AGIResult | _Gone]:
    """Await one AGI command: the session's driver (``IVRRunner._turn``) sends it."""
    return (yield command)  # the driver (``_turn``) sends the result back


@types.coroutine
def _relayed(deferred: Deferred[T]) -> Generator[_Relay, Any, T | _Gone]:
    return (yield _Relay(deferred))


class _CommandFailed(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class IVRRunner:
    """Runs the menus for one call: machine commands out, AGI results in."""

    log = Logger()

    def __init__(
        self,
        machine: MenuMachine,
        channel: AGIChannel,
        clock: Clock,
        sink: OutcomeSink,
        lookup_complaint: ComplaintLookup,
        *,
        channel_language: str = "en",
        sound_folder: str = SOUND_FOLDER,
        lookup_timeout_s: float = LOOKUP_TIMEOUT_S,
        recording_name: RecordingName | None = None,
        link_back: Callable[[], Deferred[Any]] | None = None,
        link_wait_s: float = LINK_WAIT_S,
    ) -> None:
        self._machine = machine
        self._channel = channel
        self._clock = clock
        self._sink = sink
        self._lookup = lookup_complaint
        self._channel_language = channel_language
        self._folder = sound_folder
        self._lookup_timeout_s = lookup_timeout_s
        self._recording_name = recording_name
        # ``AMIConnection.when_connected``: a command cut off by a lost AMI link
        # is sent again once the link is back (the caller is still in
        # AGI(agi:async) on Asterisk, waiting; the menu is asked again).
        self._link_back = link_back
        self._link_wait_s = link_wait_s
        self._type_ahead = ""
        self._reads_keys = False
        self._gone = False
        self._link_lost = False
        self._ending = False
        self._done = False
        # The session is one coroutine (``_run``) driven by ``_turn``: it
        # yields an AGI command (a str), a ``_Relay`` or a Deferred, and is
        # resumed by the command's reply, the relay or the Deferred.
        self._coro: Coroutine[Any, Any, Outcome] | None = None
        self._finished: Deferred[Outcome] | None = None
        self._waiting: object = None  # ``_AGI_WAIT`` or the ``_Relay`` a hang-up ends
        self._starting = False  # starting a wait: a reply told now is ``_early``
        self._early: tuple[Any, BaseException | None] | None = None
        start = getattr(channel, "start", None)
        forget = getattr(channel, "forget", None)
        self._start: Callable[[str, AGIReply], str] | None = start if forget is not None else None
        self._forget: Callable[[str], object] | None = forget if start is not None else None
        self._command_id = ""
        self._command_deferred: Deferred[AGIResult] | None = None  # a channel with only ``execute``
        self._delivered: Outcome | None = None  # handed to the sink already
        self._delivery_error: Exception | None = None
        self._call_id = ""
        self.state: State | None = None
        # Told after every step of the machine (the call state recorder keeps
        # the state in Redis, so another daemon can resume the menus).
        self.on_state: Callable[[State], object] | None = None

    # -- what the composition root calls ------------------------------------

    def run(self, call_id: str, caller_number: str, variables: Mapping[str, str] | None = None) -> Deferred[Outcome]:
        """Walk the menus; fires with the outcome once the sink has taken it."""
        self._call_id = call_id
        start = Start(self._clock.seconds(), caller_number, call_id, dict(variables or {}))
        return self._drive(self._run(self._machine.start(start)))

    def resume(self, state: State, apology: str | None = None) -> Deferred[Outcome]:
        """Walk on from ``state``, saved by an earlier daemon (see ``MenuMachine.resume``)."""
        self._call_id = state.call_id
        self._channel_language = ""  # unknown: the resumed steps set it
        return self._drive(self._run(self._machine.resume(state, self._clock.seconds(), apology)))

    @property
    def channel_language(self) -> str:
        """The channel's ``CHANNEL(language)`` as this runner last set or saw it ("" unknown)."""
        return self._channel_language

    def _stepped(self, state: State) -> None:
        self.state = state
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:
                self.log.failure("IVR state observer failed on call {call_id}", call_id=self._call_id)

    def dtmf_received(self, digit: str) -> None:
        """A ``DTMFEnd`` (received) on this channel."""
        if self._done or self._gone or self._reads_keys:
            return
        if len(digit) == 1 and digit in ESCAPE_DIGITS and len(self._type_ahead) < MAX_TYPE_AHEAD:
            self._type_ahead += digit

    def channel_hung_up(self) -> None:
        """The channel hung up (``Hangup`` or ``AsyncAGIEnd`` seen); stop waiting on it."""
        if self._ending or self._done:
            return
        self._gone = True
        waiting, self._waiting = self._waiting, None
        if waiting is None:
            return  # not waiting (or on the outcome's delivery, which runs on)
        if waiting is _AGI_WAIT:
            self._drop_command()  # its answer, if any, is dropped
        self._resume(_GONE, None)

    # -- the driver -----------------------------------------------------------
    #
    # What ``Deferred.fromCoroutine`` did, for this one coroutine: an AGI
    # command is started with the channel's ``start`` and its reply resumes
    # the session directly; no Deferred, no callback chain and no context
    # copy per command (docs/scaling.md, "Per-call CPU").

    def _drive(self, coro: Coroutine[Any, Any, Outcome]) -> Deferred[Outcome]:
        self._coro = coro
        finished: Deferred[Outcome] = Deferred(self._cancel_run)
        self._finished = finished
        self._turn(None, None)
        return finished

    def _turn(self, value: Any, error: BaseException | None) -> None:
        """Resume the session with ``value`` (or ``error``) and start what it waits on next."""
        while True:
            coro = self._coro
            if coro is None:
                return  # cancelled
            try:
                awaited = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                self._end(stop.value, None)
                return
            except BaseException:
                self._end(None, Failure())
                return
            if self._coro is None:
                coro.close()  # cancelled during its own step
                return
            self._early = None
            self._starting = True
            try:
                self._wait_on(awaited)
            except BaseException as exc:
                self._waiting = None
                self._early = (None, exc)
            finally:
                self._starting = False
            early = self._early
            if early is None:
                return  # the reply, relay or Deferred resumes the session
            self._early = None
            value, error = early

    def _wait_on(self, awaited: object) -> None:
        if type(awaited) is str:
            self._waiting = _AGI_WAIT
            if self._start is not None:
                self._command_id = self._start(awaited, self._replied)
                return
            d = self._channel.execute(awaited)
            self._command_deferred = d
            d.addCallbacks(self._executed, self._execute_failed, callbackArgs=(d,), errbackArgs=(d,))
        elif type(awaited) is _Relay:
            self._waiting = awaited
            awaited.deferred.addCallbacks(
                self._relay_fired, self._relay_failed, callbackArgs=(awaited,), errbackArgs=(awaited,)
            )
        elif isinstance(awaited, Deferred):
            awaited.addBoth(self._deferred_fired)
        else:
            raise TypeError(f"the IVR session cannot wait on {awaited!r}")

    def _resume(self, value: Any, error: BaseException | None) -> None:
        if self._starting:
            self._early = (value, error)
        else:
            self._turn(value, error)

    def _replied(self, outcome: AGIResult | BaseException) -> None:
        """The reply of the AGI command the session waits on (``start``)."""
        if self._waiting is not _AGI_WAIT:
            return  # dropped already (a hang-up)
        self._waiting = None
        error = outcome if isinstance(outcome, BaseException) else None
        if self._starting:
            self._early = (outcome, error)  # told at once: ``_turn`` carries on with it
        else:
            self._turn(outcome, error)

    def _executed(self, result: AGIResult, d: Deferred[AGIResult]) -> None:
        if self._command_deferred is d:
            self._command_deferred = None
            self._replied(result)

    def _execute_failed(self, failure: Failure, d: Deferred[AGIResult]) -> None:
        if self._command_deferred is d:
            self._command_deferred = None
            self._replied(failure.value)

    def _drop_command(self) -> None:
        if self._forget is not None:
            self._forget(self._command_id)
            return
        d, self._command_deferred = self._command_deferred, None
        if d is not None:
            d.cancel()

    def _relay_fired(self, value: Any, relay: _Relay) -> None:
        if self._waiting is relay:
            self._waiting = None
            self._resume(value, None)

    def _relay_failed(self, failure: Failure, relay: _Relay) -> None:
        if self._waiting is relay:
            self._waiting = None
            self._resume(None, failure.value)

    def _deferred_fired(self, result: Any) -> None:
        if isinstance(result, Failure):
            self._resume(None, result.value)
        else:
            self._resume(result, None)

    def _cancel_run(self, _finished: Deferred[Outcome]) -> None:
        """``run``'s Deferred cancelled: the session stops where it waits (its
        command dropped, nothing more sent or delivered); Twisted then fails
        the Deferred with ``CancelledError``."""
        waiting, self._waiting = self._waiting, None
        if waiting is _AGI_WAIT:
            self._drop_command()
        coro, self._coro = self._coro, None
        self._done = True
        if coro is not None:
            try:
                coro.close()
            except (RuntimeError, ValueError):
                pass  # cancelled from inside its own step: ``_turn`` closes it

    def _end(self, outcome: Outcome | None, failure: Failure | None) -> None:
        finished = self._finished
        self._coro = None
        if finished is None or finished.called:
            return  # cancelled already
        if failure is not None:
            finished.errback(failure)
        else:
            finished.callback(outcome)  # type: ignore[arg-type]  # an Outcome when no failure

    # -- the loop -----------------------------------------------------------

    async def _run(self, step: Step) -> Outcome:
        self._stepped(step.state)
        commands = step.commands
        self.log.info("IVR started for call {call_id}", call_id=self._call_id)
        failures = 0
        while True:
            result = await self._execute(commands)
            if isinstance(result, Outcome):
                break
            failures = failures + 1 if isinstance(result, Failed) else 0
            if failures > MAX_FAILED_STEPS:
                # Nothing can be run on this channel any more (the AMI link
                # is gone and the machine keeps asking): end as a hang-up,
                # keeping what the caller entered.
                result = HungUp(self._now())
            assert self.state is not None
            step = self._machine.step(self.state, result)
            commands = step.commands
            if not commands:
                # The machine ignored the input: a bug in this runner, not the caller's fault.
                step = self._machine.step(step.state, Failed(self._now(), "machine gave no command"))
                commands = step.commands
            self._stepped(step.state)
        self._done = True
        self.log.info(
            "IVR ended for call {call_id}: {requested} ({ended}) via {path}",
            call_id=self._call_id, requested=result.requested.value, ended=result.ended.value,
            path="/".join(result.path),
        )
        if self._delivered is None:
            await self._deliver(result)
        if self._delivery_error is not None:
            raise OutcomeNotDeliveredError(result) from self._delivery_error
        return result

    async def _deliver(self, outcome: Outcome) -> None:
        """Hand the outcome to the sink, once per session (a failure is kept for ``_run``)."""
        self._delivered = outcome
        try:
            delivered = self._sink.on_outcome(outcome)
            if delivered is not None:
                await delivered
        except Exception as exc:
            self.log.failure(
                "outcome sink failed for call {call_id}", Failure(), call_id=self._call_id
            )
            self._delivery_error = exc

    async def _execute(self, commands: tuple[Command, ...]) -> Input | Outcome:
        """Run commands up to the one that waits; return the machine's next input."""
        last = commands[-1] if commands else None
        if (
            isinstance(last, Finish) and len(commands) > 1 and self._delivered is None
            and last.outcome.requested in KEPT_BEFORE_TOLD
        ):
            await self._deliver(last.outcome)  # kept before the caller is told so
        for command in _batched(commands):
            if self._gone and not isinstance(command, Finish):
                return HungUp(self._now())
            if self._link_lost and not isinstance(command, Finish):
                continue  # no AMI link: only the outcome can still be delivered
            try:
                answer = await self._one(command)
            except _CommandFailed as exc:
                self.log.warn(
                    "AGI failed on call {call_id}: {reason}", call_id=self._call_id, reason=exc.reason
                )
                return Failed(self._now(), exc.reason)
            if answer is not None:
                return answer
        return Failed(self._now(), "the machine's commands did not end in one that waits")

    async def _one(self, command: Command | _SetVariables) -> Input | Outcome | None:
        match command:
            case Finish(outcome=outcome):
                return outcome
            case Play(prompt=prompt, lang=lang, interruptible=interruptible, pinned=pinned):
                if interruptible and self._type_ahead:
                    return None  # the caller is ahead of this prompt
                sound = await self._sound(prompt, lang, pinned)
                if interruptible and self._type_ahead:
                    return None  # keys pressed while the language changed
                escape = ESCAPE_DIGITS if interruptible else ""
                result = await self._agi(f"STREAM FILE {sound} {quote_argument(escape)}", interruptible)
                return self._played(result, prompt)
            case SayDigits(digits=digits, lang=lang, interruptible=interruptible):
                if (interruptible and self._type_ahead) or not digits:
                    return None
                await self._use_language(lang)
                if interruptible and self._type_ahead:
                    return None
                escape = ESCAPE_DIGITS if interruptible else ""
                result = await self._agi(f"SAY DIGITS {digits} {quote_argument(escape)}", interruptible)
                return self._played(result, "digits")
            case SetVariable(name=name, value=value):
                if name == CHANNEL_LANGUAGE and value == self._channel_language:
                    return None  # already so (e.g. a prompt in that language just played)
                result = await self._agi(f"SET VARIABLE {name} {_quoted(value)}", False)
                if isinstance(result, _Gone):
                    return HungUp(self._now())
                if name == CHANNEL_LANGUAGE:
                    self._channel_language = value
                return None
            case _SetVariables(variables=variables):
                return await self._set_variables(variables)
            case Collect():
                return await self._collect(command)
            case LookupComplaint(reference=reference):
                return await self._lookup_complaint(reference)
            case Record():
                return await self._record(command)
            case EndCall():
                self._ending = True
                try:
                    await self._agi("HANGUP", False)
                except _CommandFailed:
                    pass  # the call is ending either way
                return None
        raise AssertionError(f"unknown command {command!r}")

    async def _set_variables(self, variables: tuple[SetVariable, ...]) -> Input | Outcome | None:
        """Several channel variables in one round trip: ``EXEC MSet(A=1,B=2)``.

        An Asterisk without MSet answers ``result=-2`` (no such application):
        then they are set one by one, as before."""
        pairs = ",".join(f"{v.name}={v.value}" for v in variables)
        result = await self._agi(f"EXEC MSet {quote_argument(pairs)}", False)
        if isinstance(result, _Gone):
            return HungUp(self._now())
        if result.result == "-2":
            for variable in variables:
                answer = await self._one(variable)
                if answer is not None:
                    return answer
        return None

    def _played(self, result: AGIResult | _Gone, what: str) -> Input | None:
        if isinstance(result, _Gone):
            return HungUp(self._now())
        if result.hung_up:
            endpos = result.endpos
            if endpos:  # it was playing: only a hang-up stops it with -1
                return HungUp(self._now())
            self.log.warn(
                "could not play {sound} on call {call_id} (missing sound file, or the caller hung up)",
                sound=what, call_id=self._call_id,
            )
            return None
        if result.dtmf:
            self._type_ahead += result.dtmf
        return None

    async def _collect(self, command: Collect) -> Input:
        if self._type_ahead:
            typed, self._type_ahead = self._type_ahead, ""
            return Digits(self._now(), typed)
        if command.prompt is None:
            await self._use_language(command.lang)
            prompt = SILENCE
        else:
            prompt = await self._sound(command.prompt, command.lang, command.pinned)
        timeout_ms = int(round(command.timeout_s * 1000))
        result = await self._agi(f"GET DATA {prompt} {timeout_ms} {command.max_digits}", True)
        if isinstance(result, _Gone) or result.hung_up:
            return HungUp(self._now())
        digits = result.digits
        if not digits:
            # "result= (timeout)" is silence; a bare "result=" is "#" pressed alone.
            return Timeout(self._now()) if result.timed_out else Digits(self._now(), "#")
        if len(digits) < command.max_digits:
            digits += "#"  # GET DATA stopped early ("#" or a pause): the number is complete
        return Digits(self._now(), digits)

    async def _lookup_complaint(self, reference: str) -> Input:
        lookup = self._lookup(reference)
        lookup.addTimeout(self._lookup_timeout_s, cast(Any, self._clock))
        try:
            status = await self._wait(lookup)
        except Exception as exc:
            self.log.warn(
                "complaint look-up failed on call {call_id}: {error!r}", call_id=self._call_id, error=exc
            )
            return LookupResult(self._now(), None, failed=True)
        if isinstance(status, _Gone):
            return HungUp(self._now())
        return LookupResult(self._now(), status)

    def _new_recording_name(self) -> str | None:
        if self._recording_name is None:
            self.log.error("no recording-name allocator: cannot record on call {call_id}", call_id=self._call_id)
            return None
        try:
            name = self._recording_name()
        except Exception:
            self.log.failure("recording-name allocator failed on call {call_id}", call_id=self._call_id)
            return None
        if not name or any(c in _UNSAFE_IN_NAME for c in name):
            self.log.error("refusing recording name {name!r} on call {call_id}", name=name, call_id=self._call_id)
            return None
        return name

    async def _record(self, command: Record) -> Input:
        name = self._new_recording_name()
        if name is None:
            return Recorded(self._now(), ok=False)
        timeout_ms = int(round(command.max_duration_s * 1000))
        parts = [
            "RECORD FILE", name, command.format, quote_argument(command.escape),
            str(timeout_ms), "0",
        ]
        if command.beep:
            parts.append("BEEP")
        if command.silence_s > 0:
            parts.append(f"s={int(round(command.silence_s))}")
        result = await self._agi(" ".join(parts), True)
        if isinstance(result, _Gone):
            return Recorded(self._now(), ok=True, caller_hung_up=True, name=name)
        if result.hung_up:
            if result.data == "writefile":
                return Recorded(self._now(), ok=False)
            return Recorded(self._now(), ok=True, caller_hung_up=True, name=name)
        return Recorded(self._now(), ok=True, name=name)

    async def _sound(self, prompt: str, lang: str, pinned: bool) -> str:
        """The sound name of ``prompt`` in ``lang``: by its language's folder for
        a pinned prompt the channel's language would not find (no switch, see
        ``ivr.machine.Play``), else after switching the channel's language."""
        if pinned and lang != self._channel_language:
            return f"{lang}/{self._folder}/{prompt}"
        await self._use_language(lang)
        return f"{self._folder}/{prompt}"

    async def _use_language(self, lang: str) -> None:
        """Asterisk finds sounds by the channel's language; switch it when a prompt needs another."""
        if lang != self._channel_language:
            if not isinstance(await self._agi(f"SET VARIABLE {CHANNEL_LANGUAGE} {_quoted(lang)}", False), _Gone):
                self._channel_language = lang

    # -- AGI plumbing -----------------------------------------------------

    async def _agi(self, command: str, reads_keys: bool) -> AGIResult | _Gone:
        link_waits = 0
        while True:
            if self._gone:
                return _GONE
            self._reads_keys = reads_keys
            try:
                result = await _command(command)
                break
            except ChannelGoneError:
                self._gone = True
                return _GONE
            except ConnectionLostError as exc:
                link_waits += 1
                if link_waits <= MAX_LINK_WAITS and await self._wait_for_link():
                    continue  # the link is back: send the command again
                if self._gone:
                    return _GONE  # the caller hung up while the link was down
                self._link_lost = True
                raise _CommandFailed(f"{command.split(' ', 2)[:2]}: {exc}") from exc
            except AGIResultError as exc:
                # It ran, but its result is unreadable: a prompt counts as
                # played, GET DATA as silence (the menu is asked again);
                # anything else is a failed command.
                self.log.warn(
                    "unreadable AGI result on call {call_id}: {code}: {reason}",
                    call_id=self._call_id, code=exc.code, reason=exc.reason,
                )
                stand_in = _UNREADABLE_AS.get(exc.verb or "")
                if stand_in is None:
                    raise _CommandFailed(f"{command.split(' ', 2)[:2]}: {exc}") from exc
                result = stand_in
                break
            except AMIError as exc:
                raise _CommandFailed(f"{command.split(' ', 2)[:2]}: {exc}") from exc
            finally:
                self._reads_keys = False
        if isinstance(result, _Gone):
            return result
        if not result.ok:
            raise _CommandFailed(f"{command.split(' ', 2)[:2]} answered {result.code} {result.data or ''}")
        return result

    async def _wait_for_link(self) -> bool:
        """Wait (bounded) for the AMI link; True when it is back and the caller is still here.

        A caller who hung up meanwhile is seen through the resync after the
        reconnect (``channel_hung_up``), which wakes this wait first."""
        if self._link_back is None or self._gone or self._link_lost:
            return False
        self.log.info("AMI link lost on call {call_id}: waiting for it", call_id=self._call_id)
        # One turn of the clock first: the connection learns of the loss just
        # after its commands fail, and would otherwise still offer the dead link.
        tick: Deferred[object] = Deferred()
        self._clock.callLater(0, tick.callback, None)
        if isinstance(await self._wait(tick), _Gone):
            return False
        back = self._link_back()
        back.addTimeout(self._link_wait_s, cast(Any, self._clock))
        try:
            result = await self._wait(back)
        except Exception:
            return False
        return not isinstance(result, _Gone) and not self._gone

    async def _wait(self, deferred: Deferred[T]) -> T | _Gone:
        """Wait for ``deferred`` unless the caller hangs up first; a late answer is dropped."""
        if self._gone:
            deferred.addErrback(lambda _failure: None)
            return _GONE
        return await _relayed(deferred)

    def _now(self) -> float:
        return self._clock.seconds()


@dataclass(frozen=True, slots=True)
class _SetVariables:
    """Consecutive plain ``SetVariable`` commands, run as one ``EXEC MSet``."""

    variables: tuple[SetVariable, ...]


# What MSet is sent here: Asterisk splits its argument at "," (honouring quotes,
# backslashes and brackets) and each pair at its first "=". It would also take a
# function (``CHANNEL(language)``) as a name (main/pbx_variables.c); only plain
# variable names are batched, so a language switch stays a command of its own.
_MSET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.A)
_MSET_VALUE = re.compile(r"[A-Za-z0-9_.:/+@*#-]+", re.A)


def _msettable(command: Command) -> bool:
    return (
        type(command) is SetVariable
        and _MSET_NAME.fullmatch(command.name) is not None
        and _MSET_VALUE.fullmatch(command.value) is not None
    )


def _batched(
    commands: tuple[Command, ...],
) -> tuple[Command, ...] | list[Command | _SetVariables]:
    """``commands`` with each run of two or more MSet-able ``SetVariable`` made one."""
    previous_set = False  # most steps have no two SetVariable in a row: nothing to batch
    for step in commands:
        is_set = type(step) is SetVariable
        if is_set and previous_set:
            break
        previous_set = is_set
    else:
        return commands
    out: list[Command | _SetVariables] = []
    run: list[SetVariable] = []
    for command in (*commands, None):
        if command is not None and _msettable(command):
            assert isinstance(command, SetVariable)
            run.append(command)
            continue
        if len(run) > 1:
            out.append(_SetVariables(tuple(run)))
        else:
            out.extend(run)
        run = []
        if command is not None:
            out.append(command)
    return out


def _quoted(value: str) -> str:
    """An AGI argument in double quotes, as ``SET VARIABLE X "value"``."""
    if any(c in value for c in "\r\n\x00"):
        raise ValueError("an AGI argument cannot hold CR, LF or NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

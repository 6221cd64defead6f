"""One caller's way through Shenava: AsyncAGI start -> IVR -> what they asked for.

The call tracker reports ``AsyncAGIStart`` for a channel in the support-line
context; this starts an :class:`~ivr.runner.IVRRunner` on it, forwards the
caller's key presses between commands (type-ahead) and their hang-up, and
hands the IVR's outcome on:

- a new complaint is opened in the register first, and its reference number
  is read to the caller digit by digit ("shenava/your-reference");
- ``agent``: the caller joins the waiting line (:mod:`routing.dispatch`);
- ``voicemail`` / ``callback`` / ``hung_up_in_ivr``: handed to the sinks that
  keep them (voicemail store, callback flags), never dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.logger import Logger

from ami_bridge.agi import AGIResult
from ami_bridge.errors import (
    AGICommandError,
    AGIResultError,
    AMIError,
    ChannelGoneError,
    ConnectionLostError,
)
from ami_bridge.events import (
    AgiSessionEnded,
    AgiSessionStarted,
    ChannelHungUp,
    DtmfReceived,
    TrackerEvent,
)
from ami_bridge.tracker import CallTracker, handles
from ivr.machine import EndReason, MenuMachine, Outcome, State, state_to_dict
from ivr.menu_schema import Request
from ivr.runner import AGIReply, IVRRunner
from routing.calls import Urgency
from routing.dispatch import CallDispatcher
from routing.events import CallLeftForChoice
from shenava_base.clock import Clock
from shenava_base.outage import OutageNote
from shenava_base.privacy import mask_number

log = Logger()

SOUND_FOLDER = "shenava"
MAX_HOLD_VOICEMAIL_MS = 180_000
VOICEMAIL_SILENCE_S = 5
ComplaintLookup = Callable[[str], Deferred[str | None]]


class AGIExecutor(Protocol):
    def agi(
        self, channel: str, command: str, *, command_id: str | None = None,
        timeout: float | None = None,
    ) -> Deferred[AGIResult]: ...


class AGIReplyExecutor(AGIExecutor, Protocol):
    def agi_reply(
        self, channel: str, command: str, reply: AGIReply, *, command_id: str | None = None,
        timeout: float | None = None,
    ) -> str: ...

    def forget_agi(self, command_id: str) -> None: ...


class OutcomeHandler(Protocol):
    """Somewhere an IVR outcome is kept (voicemails, callback flags, the register)."""

    def __call__(self, outcome: Outcome, channel: str) -> Deferred[Any] | None: ...


@dataclass(slots=True)
class _ChannelAGI:
    """The runner's ``AGIChannel``: one channel's commands through the AMI link."""

    ami: AGIExecutor
    channel: str

    def execute(self, command: str) -> Deferred[AGIResult]:
        return self.ami.agi(self.channel, command)


@dataclass(slots=True)
class _ChannelAGIReply:
    """``_ChannelAGI`` through an AMI link with ``agi_reply`` (``AMIConnection``):
    the runner's commands without a Deferred each (``ivr.runner.AGIReplyChannel``)."""

    ami: AGIReplyExecutor
    channel: str

    def execute(self, command: str) -> Deferred[AGIResult]:
        return self.ami.agi(self.channel, command)

    def start(self, command: str, reply: AGIReply) -> str:
        return self.ami.agi_reply(self.channel, command, reply)

    def forget(self, command_id: str) -> None:
        self.ami.forget_agi(command_id)


@dataclass(slots=True, eq=False)
class _Session:
    runner: IVRRunner
    channel: str
    arrived_at: float
    caller_number: str = ""
    complaint: str | None = None  # the reference of the complaint opened for this call
    join_at: float | None = None  # when their wait began, if not when they join the line
    hung_up: bool = False
    recording: str | None = None  # the last RECORD FILE name given to this call's IVR


@dataclass(slots=True, eq=False)
class _HoldChoice:
    """A waiting caller's choice being served: kept in the call state until over."""

    event: CallLeftForChoice
    step: str = "chosen"  # chosen -> recording (voicemail) -> kept (handed on)
    recording: str | None = None
    resumed: bool = False

    def to_record(self) -> dict[str, Any]:
        e = self.event
        return {
            "hold_choice": {
                "choice": e.choice, "at": e.at, "joined_at": e.joined_at,
                "position": e.position, "language": e.language,
                "step": self.step, "recording": self.recording,
            },
            "channel": e.channel,
            "caller_number": e.caller_number,
        }

    @classmethod
    def from_record(cls, call_id: str, record: Mapping[str, Any], channel: str) -> _HoldChoice | None:
        raw = record.get("hold_choice")
        if not isinstance(raw, Mapping):
            return None
        try:
            choice = str(raw["choice"])
            step = str(raw.get("step") or "chosen")
            if choice not in ("callback", "voicemail") or step not in ("chosen", "recording", "kept"):
                return None
            position = raw.get("position")
            event = CallLeftForChoice(
                call_id, float(raw["at"]), float(raw["joined_at"]), choice,
                str(record.get("caller_number") or ""),
                None if position is None else int(position), channel or str(record.get("channel") or ""),
                str(raw.get("language") or "fa"),
            )
        except (KeyError, TypeError, ValueError):
            log.error("hold choice of call {call} unreadable; ignored", call=call_id)
            return None
        recording = raw.get("recording")
        return cls(event, step, str(recording) if recording else None)


async def _no_lookup(reference: str) -> str | None:
    return None


def _fresh_recording_name() -> str:
    """A recording name made here, never from channel data or caller input."""
    return f"shenava-vm/vm-{uuid.uuid4().hex}"


class CallFlow:
    def __init__(
        self,
        *,
        ami: AGIExecutor,
        tracker: CallTracker,
        clock: Clock,
        machine: MenuMachine,
        dispatcher: CallDispatcher,
        support_context: str,
        lookup_complaint: ComplaintLookup | None = None,
        open_complaint: Callable[[Outcome, str], Deferred[str | None]] | None = None,
        on_voicemail: OutcomeHandler | None = None,
        on_callback: OutcomeHandler | None = None,
    ) -> None:
        self._ami = ami
        self._tracker = tracker
        self._clock = clock
        self._machine = machine
        self._dispatcher = dispatcher
        self._support_context = support_context
        # The hooks other packages fill in (the complaint register, the
        # voicemail store, callback flags); each may be left as None.
        self.lookup_complaint: ComplaintLookup = lookup_complaint or (
            lambda ref: ensureDeferred(_no_lookup(ref))
        )
        self.open_complaint = open_complaint
        self.on_voicemail = on_voicemail
        self.on_callback = on_callback
        # Facts about the caller that raise their priority (an open
        # complaint, a pending callback flag, an abuse report):
        # ``caller_facts(number) -> Deferred[dict]`` of WaitingCall fields.
        self.caller_facts: Callable[[str], Deferred[dict[str, Any]]] | None = None
        self.facts_outage = OutageNote(
            "caller facts", "callers join the waiting line with the IVR's facts only", log, clock.seconds,
        )
        self.on_hold_choice: Callable[[CallLeftForChoice, str | None], Deferred[Any] | None] | None = None
        self.recording_name: Callable[[], str] = _fresh_recording_name
        # ``(call_id, recording name) -> Deferred[bool]``: that voicemail is kept
        # already (the voicemail intake); the take-over asks before resuming a
        # caller at the recording step.
        self.recording_kept: Callable[[str, str], Deferred[bool]] | None = None
        # ``(number, recording name) -> Deferred[bool]``: that voicemail's callback
        # flag reason is kept (the complaints' callback sources): the recording
        # was over and handed on, even if its intake entry never reached the journal.
        self.voicemail_flagged: Callable[[str, str], Deferred[bool]] | None = None
        self.language_variable = machine.language_variable
        # Where Shenava's prompts live in Asterisk's sounds dir (``ivr.sound_folder``).
        self.sound_folder = SOUND_FOLDER
        dispatcher.choice_handler = self._hold_choice
        # Told of a call whose IVR state changed (shenava.call_state), and of
        # the support line's AGI step as AsyncAGIStart shows it (the take-over
        # finds callers there).
        self.on_change: Callable[[str], object] | None = None
        self.on_agi_step: Callable[[str, str, str], object] | None = None
        self._sessions: dict[str, _Session] = {}
        self._choices: dict[str, _HoldChoice] = {}  # hold choices being served
        self._seen: set[str] = set()
        self._observers: list[Callable[[Outcome], object]] = []
        self.sessions_started = 0
        tracker.subscribe(self._on_event)

    def subscribe(self, observer: Callable[[Outcome], object]) -> None:
        """Told of every IVR outcome (for figures and tests)."""
        self._observers.append(observer)

    @property
    def in_ivr(self) -> int:
        return len(self._sessions)

    # -- tracker events ------------------------------------------------------

    @handles(AgiSessionStarted, DtmfReceived, ChannelHungUp, AgiSessionEnded)
    def _on_event(self, event: TrackerEvent) -> None:
        if isinstance(event, AgiSessionStarted):
            self._on_agi_start(event)
        elif isinstance(event, DtmfReceived):
            session = self._sessions.get(event.uniqueid)
            if session is not None and event.direction.lower() == "received":
                session.runner.dtmf_received(event.digit)
        elif isinstance(event, (ChannelHungUp, AgiSessionEnded)):
            session = self._sessions.get(event.uniqueid)
            if session is not None:
                session.runner.channel_hung_up()
            if isinstance(event, ChannelHungUp):
                if session is not None:
                    session.hung_up = True
                # Kept while the channel lives (it may come back to AGI after
                # a Redirect: no second IVR); a Uniqueid is never reused.
                self._seen.discard(event.uniqueid)

    def _on_agi_start(self, event: AgiSessionStarted) -> None:
        context = event.env.get("agi_context", "")
        if context != self._support_context or event.uniqueid in self._seen:
            return
        if self.on_agi_step is not None:
            self.on_agi_step(context, event.env.get("agi_extension", ""),
                             event.env.get("agi_priority", ""))
        channel = event.env.get("agi_channel") or event.channel
        caller = event.env.get("agi_callerid", "")
        if caller in ("unknown", "<unknown>"):
            caller = ""
        self.start_session(
            event.uniqueid, channel, caller, event.at,
            channel_language=event.env.get("agi_language", "en"),
        )

    def start_session(
        self, call_id: str, channel: str, caller: str, arrived_at: float, *,
        channel_language: str = "en", resume: State | None = None,
        complaint: str | None = None, apology: str | None = None,
        join_at: float | None = None,
    ) -> bool:
        """Run the IVR for a caller at the AGI step: from the start, or from a
        state an earlier daemon left (``resume``). False if already running."""
        if call_id in self._seen:
            return False
        self._seen.add(call_id)
        tracked = self._tracker.channel(call_id)
        variables: Mapping[str, str] = dict(tracked.variables) if tracked is not None else {}
        agi_channel: _ChannelAGI | _ChannelAGIReply
        if hasattr(self._ami, "agi_reply") and hasattr(self._ami, "forget_agi"):
            agi_channel = _ChannelAGIReply(cast(AGIReplyExecutor, self._ami), channel)
        else:
            agi_channel = _ChannelAGI(self._ami, channel)  # a link with ``agi`` alone
        runner = IVRRunner(
            self._machine,
            agi_channel,
            self._clock,
            _Sink(self, channel),
            lambda ref: self.lookup_complaint(ref),
            channel_language=channel_language,
            sound_folder=self.sound_folder,
            recording_name=lambda: self._name_recording(call_id),
            link_back=getattr(self._ami, "when_connected", None),
        )
        session = _Session(runner, channel, arrived_at, caller, complaint, join_at)
        self._sessions[call_id] = session
        if self.on_change is not None:
            on_change = self.on_change
            runner.on_state = lambda _state: on_change(call_id)
        self.sessions_started += 1
        log.info(
            "call {call} from {caller} {how} the IVR", call=call_id,
            caller=mask_number(caller), how="entered" if resume is None else "resumed",
        )
        d: Deferred[Any]
        if resume is not None:
            d = runner.resume(resume, apology)
        elif not self.language_variable or self.language_variable in variables:
            d = runner.run(call_id, caller, dict(variables))  # nothing to read first
        else:
            d = ensureDeferred(self._read_variables(channel, variables))
            d.addCallback(lambda found: runner.run(call_id, caller, found))
        d.addErrback(self._runner_failed, call_id)
        d.addBoth(self._session_over, call_id)
        return True

    def holds(self, call_id: str) -> bool:
        return call_id in self._sessions or call_id in self._choices

    def _name_recording(self, call_id: str) -> str:
        """A fresh recording name, kept in the call's record (the take-over's
        :meth:`recover_voicemail` finds the file by it)."""
        name = self.recording_name()
        session = self._sessions.get(call_id)
        if session is not None:
            session.recording = name
            if self.on_change is not None:
                self.on_change(call_id)
        return name

    def recover_voicemail(self, call_id: str, record: Mapping[str, Any], now: float) -> bool:
        """A caller an earlier daemon was recording hung up while no daemon watched
        (its ``kill -9`` came before it learned of the hang-up): keep the recording
        as that daemon would have (a caller who hangs up while recording leaves a
        voicemail). Likewise a caller whose IVR was done with a voicemail (they
        heard "message saved") whose outcome the dead daemon had not handed on
        yet. True if it was handed on."""
        from ivr.machine import Phase, state_from_dict

        name = record.get("recording")
        raw = record.get("ivr")
        if not name or not isinstance(raw, dict) or self.on_voicemail is None:
            return False
        try:
            state = state_from_dict(raw)
        except (KeyError, TypeError, ValueError):
            return False
        if state.phase is Phase.DONE:
            # The IVR was done: "message saved" was playing (or played) and the
            # outcome not yet handed on when the daemon died (under load the
            # intake runs seconds later). The caller heard it was saved: keep it.
            done = state.outcome
            if done is None or done.requested is not Request.VOICEMAIL or not done.recording:
                return False
            return self._hand_on_voicemail(call_id, done, record, "after hearing it was saved")
        if state.phase is not Phase.RECORD:
            return False
        return self._hand_on_voicemail(
            call_id, self._recorded_outcome(call_id, record, state, now, EndReason.HUNG_UP), record,
            "while recording",
        )

    def _recorded_outcome(
        self, call_id: str, record: Mapping[str, Any], state: State, now: float, ended: EndReason
    ) -> Outcome:
        """The voicemail outcome of a caller an earlier daemon left at the recording step."""
        return Outcome(
            call_id=call_id, caller_number=str(record.get("caller_number") or state.caller_number),
            language=state.language, requested=Request.VOICEMAIL, ended=ended,
            path=state.path, started_at=state.started_at, ended_at=now, category=state.category,
            urgent=state.urgent, vulnerable=state.vulnerable, care=state.care,
            account=state.account, reference=state.reference,
            callback_number=state.callback_number, recording=str(record.get("recording") or ""),
        )

    def hand_on_recorded_voicemail(self, call_id: str, record: Mapping[str, Any], now: float) -> bool:
        """A caller still on the line whose recording the killed daemon had handed on in
        part (its flag reason is kept, its intake entry was not: the two are separate
        journal entries, and a ``kill -9`` fell between them): hand it on again (the
        intake registers it once, by its id; the flag reason is there already).
        The caller then hears "message saved" (:meth:`finish_kept_voicemail`)."""
        from ivr.machine import state_from_dict

        raw = record.get("ivr")
        if not record.get("recording") or not isinstance(raw, dict) or self.on_voicemail is None:
            return False
        try:
            state = state_from_dict(raw)
        except (KeyError, TypeError, ValueError):
            return False
        outcome = self._recorded_outcome(call_id, record, state, now, EndReason.COMPLETED)
        return self._hand_on_voicemail(call_id, outcome, record, "and was kept in part")

    def _hand_on_voicemail(
        self, call_id: str, outcome: Outcome, record: Mapping[str, Any], when: str
    ) -> bool:
        """Give a recovered voicemail to the intake (idempotent: by the recording's
        id, the call's complaint and the flag reason's operation id)."""
        assert self.on_voicemail is not None
        log.info("call {call} hung up {when} and no daemon watched: its voicemail is kept",
                 call=call_id, when=when)
        d = maybeDeferred(self.on_voicemail, outcome, str(record.get("channel") or ""))
        d.addErrback(lambda f: log.failure("voicemail of call {call} not kept", f, call=call_id))
        return True

    def snapshot(self, call_id: str) -> dict[str, Any] | None:
        """The IVR part of the call's record (None: not in the IVR)."""
        session = self._sessions.get(call_id)
        if session is None or session.runner.state is None:
            choice = self._choices.get(call_id)
            return choice.to_record() if choice is not None else None
        part = {
            "ivr": state_to_dict(session.runner.state),
            "channel": session.channel,
            "caller_number": session.caller_number,
            "arrived_at": session.arrived_at,
            "complaint": session.complaint,
            "join_at": session.join_at,
        }
        if session.recording is not None:
            part["recording"] = session.recording
        return part

    async def _read_variables(self, channel: str, known: Mapping[str, str]) -> dict[str, str]:
        """The dialplan's language for the caller (``Set(SHENAVA_LANG=en)``), if any.

        Known already when manager.conf's ``channelvars`` names it: the
        ``AsyncAGIStart`` then carries ``ChanVariable: SHENAVA_LANG=...`` (empty
        when unset), which the tracker keeps. Otherwise read with ``GET
        VARIABLE`` (one AGI round trip): the ``VarSet`` events that would carry
        it are filtered out by the shipped AMI user."""
        variables = dict(known)
        name = self.language_variable
        if not name or name in variables:
            return variables
        try:
            result = await self._ami.agi(channel, f"GET VARIABLE {name}")
        except (AGICommandError, ConnectionLostError):
            return variables  # the runner finds out for itself
        if result.ok and result.result == "1" and result.data:
            variables[name] = result.data
        return variables

    def _runner_failed(self, failure: Any, call_id: str) -> None:
        log.failure("IVR session of call {call} failed", failure, call=call_id)

    def _session_over(self, result: object, call_id: str) -> None:
        self._sessions.pop(call_id, None)
        if self.on_change is not None:
            self.on_change(call_id)

    # -- outcomes -------------------------------------------------------------

    async def deliver(self, outcome: Outcome, channel: str) -> None:
        session = self._sessions.get(outcome.call_id)
        arrived_at = session.arrived_at if session is not None else outcome.started_at
        for observer in list(self._observers):
            try:
                observer(outcome)
            except Exception:
                log.failure("outcome observer failed for call {call}", call=outcome.call_id)
        reference: str | None = session.complaint if session is not None else None
        if reference is None and self.open_complaint is not None and outcome.category is not None:
            reference = await self.open_complaint(outcome, channel)
            if session is not None and reference:
                session.complaint = reference  # a resumed call does not open it twice
                if self.on_change is not None:
                    self.on_change(outcome.call_id)
        requested = outcome.requested
        if requested is Request.AGENT:
            if reference:
                await self._tell_reference(channel, reference)
            facts: dict[str, Any] = {}
            number = outcome.callback_number or outcome.caller_number
            if self.caller_facts is not None and number:
                try:
                    facts = dict(await self.caller_facts(number))
                    self.facts_outage.ok()
                except Exception as exc:
                    if self.facts_outage.expected(exc):  # Redis away: once per outage
                        self.facts_outage.failed(exc)
                    else:
                        log.failure("caller facts unavailable for call {call}", call=outcome.call_id)
            facts.setdefault("urgency", Urgency.HIGH if outcome.urgent else Urgency.NORMAL)
            facts.setdefault("vulnerable", outcome.vulnerable)
            if session is not None and session.hung_up:
                # They hung up while the complaint was opened or its reference
                # read: nothing would ever take them out of the line again.
                log.info(
                    "call {call} hung up before joining the waiting line", call=outcome.call_id
                )
                return
            self._dispatcher.join(
                call_id=outcome.call_id,
                channel=channel,
                caller_number=outcome.callback_number or outcome.caller_number,
                language=outcome.language,
                category=outcome.category,
                arrived_at=arrived_at,
                joined_at=session.join_at if session is not None else None,
                # The IVR left the channel in the caller's language: the hold
                # need not set it again (one AGI round trip less per caller).
                language_on_channel=(
                    session is not None and session.runner.channel_language == outcome.language
                ),
                **facts,
            )
        elif requested is Request.VOICEMAIL and self.on_voicemail is not None:
            await maybeDeferred(self.on_voicemail, outcome, channel)
        elif requested is Request.CALLBACK and self.on_callback is not None:
            await maybeDeferred(self.on_callback, outcome, channel)

    # -- a waiting caller chose a callback or a voicemail instead ---------------

    def _hold_choice(self, event: CallLeftForChoice) -> None:
        self._start_hold_choice(_HoldChoice(event))

    def _start_hold_choice(self, choice: _HoldChoice) -> None:
        call_id = choice.event.call_id
        # Kept in the call state until it is over: the waiting line has let the
        # caller go, so without it a kill -9 lost the choice (docs/takeover.md).
        self._choices[call_id] = choice
        self._changed(call_id)
        d = ensureDeferred(self._run_hold_choice(choice))
        d.addErrback(
            lambda f: log.failure("hold choice of call {call} failed", f, call=call_id)
        )

        def over(_: object) -> None:
            if self._choices.get(call_id) is choice:
                del self._choices[call_id]
                self._changed(call_id)

        d.addBoth(over)

    def _changed(self, call_id: str) -> None:
        if self.on_change is not None:
            self.on_change(call_id)

    async def _run_hold_choice(self, choice: _HoldChoice) -> None:
        """Callback: hand the choice on, thank them and hang up (their place is
        kept by the flag). Voicemail: record after a beep, hand it on, say it is
        saved, then hang up. The choice is handed on (journalled) *before* the
        caller is told it is booked or saved, and even if they hang up half-way.

        A command whose result is unreadable (``AGIResultError``) or refused
        ran or failed without ending the call: the sequence moves on (a prompt
        counts as played; a recording as made, its file checked by the
        voicemail intake), so the caller is never left in silence and what
        they chose still counts. Only a hang-up or a lost link ends it.

        ``choice.step`` says where an earlier daemon left it (the take-over):
        ``recording`` (its ``RECORD FILE`` may still run: our first command
        queues behind it), ``kept`` (handed on already: only the last prompt)."""
        event = choice.event
        gone = False
        try:
            if event.choice == "voicemail" and choice.step == "chosen":
                name = self.recording_name()
                await self._hold_step(event, f'STREAM FILE {self.sound_folder}/leave-message ""')
                choice.recording, choice.step = name, "recording"
                self._changed(event.call_id)
                await self._hold_step(
                    event,
                    f"RECORD FILE {name} wav # {MAX_HOLD_VOICEMAIL_MS} BEEP s={VOICEMAIL_SILENCE_S}",
                )
            elif choice.step == "recording" and choice.resumed:
                await self._hold_step(event, "NOOP")  # after the earlier daemon's RECORD FILE
        except (ChannelGoneError, ConnectionLostError):
            gone = True  # hung up: what they chose still counts
        if choice.step != "kept":
            await self._hand_on_choice(choice)
        if gone:
            return
        try:
            if event.choice == "callback":
                await self._hold_step(event, f'STREAM FILE {self.sound_folder}/hold-callback-booked ""')
            else:
                await self._hold_step(event, f'STREAM FILE {self.sound_folder}/message-saved ""')
            await self._hold_step(event, "HANGUP")
        except (ChannelGoneError, ConnectionLostError):
            pass

    async def _hand_on_choice(self, choice: _HoldChoice) -> None:
        """Give the choice to its sinks (the callback flag, the voicemail intake),
        which journal it; then the call state says it is kept."""
        if self.on_hold_choice is not None:
            try:
                await maybeDeferred(self.on_hold_choice, choice.event, choice.recording)
            except Exception:
                log.failure("hold choice of call {call} not kept", call=choice.event.call_id)
        choice.step = "kept"
        self._changed(choice.event.call_id)

    def resume_hold_choice(self, call_id: str, record: Mapping[str, Any], channel: str) -> bool:
        """A caller an earlier daemon was serving a hold choice to, still on the line:
        carry on from where it was (record, hand on, the last prompt, hang up)."""
        choice = _HoldChoice.from_record(call_id, record, channel)
        if choice is None or call_id in self._choices:
            return False
        choice.resumed = True
        log.info("call {call}: hold choice ({choice}) resumed at {step}",
                 call=call_id, choice=choice.event.choice, step=choice.step)
        self._start_hold_choice(choice)
        return True

    def finish_kept_voicemail(self, call_id: str, record: Mapping[str, Any], channel: str) -> None:
        """A caller an earlier daemon left at the recording step whose voicemail is
        kept already (it had the result and journalled it, then died before the
        call state said so): "message saved" and the hang-up, not a second
        recording. Served like a hold voicemail handed on (``kept``), so the call
        state holds it meanwhile."""
        raw = record.get("ivr")
        ivr = raw if isinstance(raw, Mapping) else {}
        now = self._clock.seconds()
        event = CallLeftForChoice(
            call_id, now, now, "voicemail", str(record.get("caller_number") or ""), None, channel,
            str(ivr.get("language") or "fa"),
        )
        log.info("call {call}: its voicemail is kept already; saying so", call=call_id)
        self._start_hold_choice(_HoldChoice(event, "kept", str(record.get("recording") or "")))

    def recover_hold_choice(self, call_id: str, record: Mapping[str, Any]) -> bool:
        """A caller who made a hold choice and hung up while no daemon watched: hand
        the choice on as the killed daemon would have (idempotent: the flag reason
        by its source, the voicemail by its recording). True if handed on."""
        choice = _HoldChoice.from_record(call_id, record, str(record.get("channel") or ""))
        if choice is None or choice.step == "kept" or self.on_hold_choice is None:
            return False
        log.info("call {call} hung up after a hold choice ({choice}) and no daemon watched: "
                 "it is kept", call=call_id, choice=choice.event.choice)
        d = ensureDeferred(self._hand_on_choice(choice))
        d.addErrback(lambda f: log.failure("hold choice of call {call} not kept", f, call=call_id))
        return True

    async def _hold_step(self, event: CallLeftForChoice, command: str) -> None:
        """One command of the hold choice; raises only when the caller or the link is gone."""
        try:
            await self._ami.agi(event.channel, command)
        except AGIResultError as exc:
            log.warn(
                "hold choice of call {call}: unreadable AGI result ({code}: {reason}); "
                "taken as done, moving on",
                call=event.call_id, code=exc.code, reason=exc.reason,
            )
        except (ChannelGoneError, ConnectionLostError):
            raise
        except AMIError as exc:  # refused, or no answer in time: the caller is still there
            log.warn(
                "hold choice of call {call}: {verb} failed ({error}); moving on",
                call=event.call_id, verb=" ".join(command.split(" ", 2)[:2]), error=exc,
            )

    async def _tell_reference(self, channel: str, reference: str) -> None:
        """"Your reference is" and its digits, in one round trip.

        ``SAY DIGITS`` plays ``digits/<n>`` in the channel's language, one by
        one, as ``Playback`` plays a list of files: the caller hears the same
        from ``EXEC Playback shenava/your-reference&digits/7&digits/4...``."""
        try:
            if reference.isascii() and reference.isdigit():
                files = "&".join([f"{self.sound_folder}/your-reference",
                                  *(f"digits/{digit}" for digit in reference)])
                await self._ami.agi(channel, f"EXEC Playback {files}")
                return
            await self._ami.agi(channel, f'STREAM FILE {self.sound_folder}/your-reference ""')
            await self._ami.agi(channel, f'SAY DIGITS {reference} ""')
        except (AGICommandError, ConnectionLostError):
            pass  # the caller hung up: the complaint is open all the same


@dataclass(slots=True)
class _Sink:
    """The runner's ``OutcomeSink`` for one session."""

    flow: CallFlow
    channel: str

    def on_outcome(self, outcome: Outcome) -> Deferred[None]:
        return ensureDeferred(self.flow.deliver(outcome, self.channel))

"""The menu machine, pure: a call's state plus one input gives the next commands.

It never reads the clock or the network: every input carries ``now``, and
look-ups are commands (``LookupComplaint``) whose answers come back as inputs.
The runner (``ivr.runner``) executes the commands over AsyncAGI.

The protocol between them: every non-empty list of commands ends with exactly
one command that waits for an input (``Collect``, ``LookupComplaint``,
``Record``) or with ``Finish``; the commands before it (``Play``,
``SayDigits``, ``SetVariable``, ``EndCall``) just run. If the caller hangs up
mid-list, the runner feeds ``HungUp`` and runs the answer instead of the rest.

Type-ahead: digits the caller pressed before a ``Collect`` (the runner saw them
as ``DTMFEnd`` or as the key that cut a prompt short) come in as ``Digits`` and
are consumed menu by menu, skipping the prompts the caller already answered.
After an invalid key the rest of the type-ahead is dropped: it was typed
against menus the caller did not reach.

States are values: ``step`` never changes the state it is given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from operator import attrgetter

from ivr.menu_schema import (
    Check,
    ChoiceMenu,
    EndMenu,
    Limits,
    Menu,
    MenuBook,
    NumberMenu,
    Option,
    RecordMenu,
    StatusMenu,
    Store,
)
from ivr.outcome import EndReason as EndReason  # re-exported: the machine's result types
from ivr.outcome import Outcome as Outcome
from ivr.outcome import Request as Request

MAX_TYPE_AHEAD = 32
"""Keys kept ahead of the menus; a caller holding a key down does not grow state without bound."""

CHANNEL_LANGUAGE = "CHANNEL(language)"

# -- inputs ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    now: float
    caller_number: str
    call_id: str
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Digits:
    """Keys pressed; a trailing "#" ends a number (the runner adds it when GET DATA stopped early)."""

    now: float
    digits: str


@dataclass(frozen=True, slots=True)
class Timeout:
    now: float


@dataclass(frozen=True, slots=True)
class HungUp:
    now: float


@dataclass(frozen=True, slots=True)
class LookupResult:
    """The answer to ``LookupComplaint``: a status key, None if not found, or failed."""

    now: float
    status: str | None
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Recorded:
    """``RECORD FILE`` ended; ``caller_hung_up`` when the caller ended it by hanging up.

    ``name`` is the name the runner recorded under (it asked Shenava's allocator
    for it when it ran ``Record``); the machine only carries it to the outcome.
    """

    now: float
    ok: bool
    caller_hung_up: bool = False
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The channel cannot run AGI commands any more for a reason other than a hang-up."""

    now: float
    reason: str


Input = Digits | Timeout | HungUp | LookupResult | Recorded | Failed

# -- commands ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Play:
    """Play ``prompt`` in ``lang``.

    ``pinned``: a prompt of a bilingual menu, whose prompts alternate
    languages. The runner plays it by its language's folder
    (``fa/shenava/welcome``) when the channel has another language, instead of
    setting ``CHANNEL(language)`` before it: Asterisk finds the same file
    (main/file.c tries ``<channel language>/fa/shenava/welcome``, then
    ``fa/shenava/welcome`` as named), and the menu needs no language switches.
    Other prompts switch the channel's language, so that the digits said
    after them and Asterisk's fallback to its default language follow it."""

    prompt: str
    lang: str
    interruptible: bool = True
    pinned: bool = False


@dataclass(frozen=True, slots=True)
class Collect:
    """Play ``prompt`` (None: silence, to carry on a number) and collect up to
    ``max_digits`` keys. ``pinned`` as for :class:`Play`."""

    prompt: str | None
    lang: str
    timeout_s: float
    max_digits: int
    pinned: bool = False


@dataclass(frozen=True, slots=True)
class SayDigits:
    digits: str
    lang: str
    interruptible: bool = True


@dataclass(frozen=True, slots=True)
class SetVariable:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class LookupComplaint:
    reference: str


@dataclass(frozen=True, slots=True)
class Record:
    """Record the caller after a beep. The file name is not the machine's to choose:
    the runner asks its recording-name allocator (Shenava's voicemail store) for a
    fresh one each time, so no channel data or caller input ever reaches a path."""

    format: str
    escape: str
    max_duration_s: float
    silence_s: float
    beep: bool


@dataclass(frozen=True, slots=True)
class EndCall:
    """Hang the channel up (voicemail left, callback booked, status heard)."""


@dataclass(frozen=True, slots=True)
class Finish:
    outcome: Outcome


Command = Play | Collect | SayDigits | SetVariable | LookupComplaint | Record | EndCall | Finish
AWAITING = (Collect, LookupComplaint, Record, Finish)

# -- the outcome -------------------------------------------------------------


# -- state -------------------------------------------------------------------


class Phase(StrEnum):
    COLLECT = "collect"
    CONFIRM = "confirm"
    LOOKUP = "lookup"
    RECORD = "record"
    DONE = "done"


@dataclass(slots=True)
class State:
    call_id: str
    caller_number: str
    started_at: float
    language: str
    menu: str
    phase: Phase = Phase.COLLECT
    path: tuple[str, ...] = ()
    category: str | None = None
    urgent: bool | None = None
    vulnerable: bool = False
    care: str | None = None
    account: str | None = None
    reference: str | None = None
    callback_number: str | None = None
    recording: str | None = None
    complaint_status: str | None = None
    timeouts: int = 0
    invalid: int = 0
    inputs: int = 0
    entered: str = ""
    pending: str = ""
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class Step:
    state: State
    commands: tuple[Command, ...]

    @property
    def outcome(self) -> Outcome | None:
        last = self.commands[-1] if self.commands else None
        return last.outcome if isinstance(last, Finish) else None


def luhn_valid(number: str) -> bool:
    """True if the last digit is the Luhn check digit of the others."""
    if len(number) < 2 or not number.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def caller_digits(caller_number: str) -> str:
    """The caller's number as digits to read back, or "" if withheld or unusable."""
    digits = re.sub(r"\D", "", caller_number)
    return digits if len(digits) >= 3 else ""


class MenuMachine:
    """Walks a ``MenuBook`` for one call at a time; holds no per-call state itself."""

    def __init__(self, book: MenuBook) -> None:
        self._book = book
        self._settings = book.settings
        self._max_hops = len(book.menus) + 2

    @property
    def language_variable(self) -> str | None:
        """The channel variable through which the dialplan may set the language."""
        return self._settings.language_variable

    @property
    def book(self) -> MenuBook:
        return self._book

    def start(self, event: Start) -> Step:
        settings = self._settings
        state = State(
            call_id=event.call_id,
            caller_number=event.caller_number,
            started_at=event.now,
            language=settings.default_language,
            menu=settings.start,
        )
        out: list[Command] = []
        preset = event.variables.get(settings.language_variable or "") if settings.language_variable else None
        if preset in settings.languages:
            assert preset is not None
            state.language = preset
            out.append(SetVariable(CHANNEL_LANGUAGE, preset))
            self._enter(state, out, event.now, settings.start_with_language)
        else:
            self._enter(state, out, event.now, settings.start)
        return Step(state, tuple(out))

    def resume(self, state: State, now: float, apology: str | None = None) -> Step:
        """Carry on a call whose IVR ran under an earlier daemon, at the menu it
        was in, with what the caller had entered (``apology``: a short "sorry,
        let's continue" prompt first). Keys typed ahead are not kept: they were
        typed against prompts the caller may not have heard to the end."""
        st = _copy_state(state)
        st.pending = ""
        out: list[Command] = [SetVariable(CHANNEL_LANGUAGE, st.language)]
        if apology:
            out.append(Play(apology, st.language, interruptible=False))
        if st.phase is Phase.DONE and st.outcome is not None:
            end = self._book.menus.get(st.menu)
            if isinstance(end, EndMenu) and end.hangup:
                # The earlier daemon died during the last prompt ("message
                # saved", "callback booked"), before it hung up: say it again
                # and hang up. Left in AGI, the caller was taken for a new one
                # at the next take-over and left a second voicemail
                # (benchmarks/chaos.py).
                if end.prompt:
                    out.append(Play(end.prompt, st.language, interruptible=False))
                out.append(EndCall())
            out.append(Finish(st.outcome))
            return Step(st, tuple(out))
        menu = self._book.menus.get(st.menu)
        if menu is None:
            st.path = ()
            self._enter(st, out, now, self._settings.start)
        elif st.phase is Phase.LOOKUP and st.reference:
            out.append(LookupComplaint(st.reference))
        elif st.phase in (Phase.COLLECT, Phase.CONFIRM) and isinstance(menu, ChoiceMenu | NumberMenu):
            self._ask(st, out, now, first=False)  # the apology stands for the intro
        else:
            st.path = st.path[:-1]  # entered again: once in the path
            self._enter(st, out, now, st.menu)
        return Step(st, tuple(out))

    def step(self, state: State, event: Input) -> Step:
        st = _copy_state(state)
        out: list[Command] = []
        now = event.now
        if st.phase is Phase.DONE:
            if isinstance(event, HungUp) and st.outcome is not None and st.outcome.ended is not EndReason.HUNG_UP:
                self._hung_up_after_decision(st, out, now)
            return Step(st, tuple(out))
        match event:
            case HungUp():
                menu = self._book.menus.get(st.menu)
                if isinstance(menu, NumberMenu) and st.phase is Phase.CONFIRM:
                    # Checked, read back, not yet confirmed: what they typed is kept.
                    self._store(st, menu.store, st.entered)
                self._finish(st, out, now, Request.HUNG_UP_IN_IVR, EndReason.HUNG_UP)
            case Failed():
                self._finish(st, out, now, Request.AGENT, EndReason.FAILED)
            case Digits(digits=digits):
                if st.phase in (Phase.COLLECT, Phase.CONFIRM):
                    if self._count_input(st, out, now):
                        st.pending = (st.pending + digits)[:MAX_TYPE_AHEAD]
                        self._consume(st, out, now)
                else:
                    st.pending = (st.pending + digits)[:MAX_TYPE_AHEAD]
            case Timeout():
                if st.phase in (Phase.COLLECT, Phase.CONFIRM) and self._count_input(st, out, now):
                    self._timeout(st, out, now)
            case LookupResult():
                if st.phase is Phase.LOOKUP:
                    self._lookup_answered(st, out, event)
            case Recorded():
                if st.phase is Phase.RECORD:
                    self._recorded(st, out, event)
        return Step(st, tuple(out))

    # -- moving between menus ------------------------------------------------

    def _enter(self, st: State, out: list[Command], now: float, name: str, reason: EndReason = EndReason.COMPLETED, hops: int = 0) -> None:
        if hops > self._max_hops:
            self._finish(st, out, now, Request.AGENT, EndReason.FAILED)
            return
        menu = self._book.menus[name]
        st.menu = name
        st.path = (*st.path, name)
        st.timeouts = st.invalid = 0
        st.entered = ""
        match menu:
            case EndMenu():
                self._finish_at(st, out, now, menu, reason)
            case ChoiceMenu():
                if menu.say_digits and not caller_digits(st.caller_number):
                    assert menu.if_missing is not None
                    self._enter(st, out, now, menu.if_missing, reason, hops + 1)
                    return
                st.phase = Phase.COLLECT
                self._ask(st, out, now, first=True)
            case NumberMenu():
                st.phase = Phase.COLLECT
                self._ask(st, out, now, first=True)
            case StatusMenu():
                if not st.reference:
                    out.append(Play(menu.not_found_prompt, st.language, interruptible=False))
                    self._enter(st, out, now, menu.on_not_found, reason, hops + 1)
                    return
                st.phase = Phase.LOOKUP
                out.append(LookupComplaint(st.reference))
            case RecordMenu():
                st.phase = Phase.RECORD
                st.pending = ""
                out.append(Play(menu.prompt, st.language, interruptible=False))
                out.append(Record(
                    format=menu.format,
                    escape=menu.escape,
                    max_duration_s=menu.max_duration_s,
                    silence_s=menu.silence_s,
                    beep=menu.beep,
                ))

    def _ask(self, st: State, out: list[Command], now: float, first: bool) -> None:
        """Prompt for the current menu, unless type-ahead already answers it."""
        if st.pending:
            self._consume(st, out, now)
            return
        menu = self._book.menus[st.menu]
        lang = st.language
        if isinstance(menu, ChoiceMenu):
            timeout_s = self._timeout_s(st, menu.limits)
            if menu.bilingual:
                languages = self._settings.languages
                for index, other in enumerate(languages):
                    if first:
                        out.extend(Play(prompt, other, pinned=True) for prompt in menu.intro)
                    if index < len(languages) - 1:
                        out.append(Play(menu.prompt, other, pinned=True))
                out.append(Collect(menu.prompt, languages[-1], timeout_s, 1, pinned=True))
                return
            if first or menu.say_digits:
                out.extend(Play(prompt, lang) for prompt in menu.intro)
            if menu.say_digits:
                out.append(SayDigits(caller_digits(st.caller_number), lang))
            out.append(Collect(menu.prompt, lang, timeout_s, 1))
        elif isinstance(menu, NumberMenu):
            timeout_s = self._timeout_s(st, menu.limits)
            if st.phase is Phase.CONFIRM:
                assert menu.readback_prompt is not None and menu.confirm_prompt is not None
                out.append(Play(menu.readback_prompt, lang))
                out.append(SayDigits(st.entered, lang))
                out.append(Collect(menu.confirm_prompt, lang, timeout_s, 1))
            elif st.entered:
                out.append(Collect(None, lang, timeout_s, menu.max_length - len(st.entered)))
            else:
                out.append(Collect(menu.prompt, lang, timeout_s, menu.max_length))

    def _consume(self, st: State, out: list[Command], now: float) -> None:
        menu = self._book.menus[st.menu]
        if isinstance(menu, ChoiceMenu):
            key, st.pending = st.pending[0], st.pending[1:]
            option = menu.options.get(key)
            if option is None:
                self._invalid(st, out, now, self._settings.invalid_prompt)
            else:
                self._choose(st, out, now, option)
        elif isinstance(menu, NumberMenu):
            if st.phase is Phase.CONFIRM:
                self._confirm(st, out, now, menu)
            else:
                self._type_number(st, out, now, menu)

    def _choose(self, st: State, out: list[Command], now: float, option: Option) -> None:
        if option.language is not None and option.language != st.language:
            st.language = option.language
            out.append(SetVariable(CHANNEL_LANGUAGE, option.language))
        if option.category is not None:
            st.category = option.category
        if option.urgent is not None:
            st.urgent = option.urgent
        if option.vulnerable is not None:
            st.vulnerable = option.vulnerable
            st.care = option.care if option.vulnerable else None
        self._enter(st, out, now, option.goto)

    def _type_number(self, st: State, out: list[Command], now: float, menu: NumberMenu) -> None:
        while st.pending:
            key, st.pending = st.pending[0], st.pending[1:]
            if key == "#":
                self._number_done(st, out, now, menu)
                return
            if menu.skip_key is not None and key == menu.skip_key and not st.entered:
                assert menu.on_skip is not None
                self._enter(st, out, now, menu.on_skip)
                return
            if not key.isdigit():
                self._invalid(st, out, now, menu.invalid_prompt)
                return
            st.entered += key
            if len(st.entered) >= menu.max_length:
                self._number_done(st, out, now, menu)
                return
        self._ask(st, out, now, first=False)

    def _number_done(self, st: State, out: list[Command], now: float, menu: NumberMenu) -> None:
        number = st.entered
        valid = menu.min_length <= len(number) <= menu.max_length and (
            menu.check is Check.NONE or luhn_valid(number)
        )
        if not valid:
            self._invalid(st, out, now, menu.invalid_prompt)
            return
        if menu.confirm:
            st.phase = Phase.CONFIRM
            self._ask(st, out, now, first=False)
            return
        self._store(st, menu.store, number)
        self._enter(st, out, now, menu.next)

    def _confirm(self, st: State, out: list[Command], now: float, menu: NumberMenu) -> None:
        key, st.pending = st.pending[0], st.pending[1:]
        if key == menu.confirm_yes:
            self._store(st, menu.store, st.entered)
            self._enter(st, out, now, menu.next)
        elif key == menu.confirm_no:
            st.phase = Phase.COLLECT
            st.entered = ""
            st.pending = ""
            self._ask(st, out, now, first=False)
        else:
            self._invalid(st, out, now, self._settings.invalid_prompt)

    @staticmethod
    def _store(st: State, store: Store, number: str) -> None:
        if store is Store.ACCOUNT:
            st.account = number
        elif store is Store.REFERENCE:
            st.reference = number
        else:
            st.callback_number = number

    # -- errors, silence and limits -----------------------------------------

    def _limits(self, st: State) -> Limits:
        menu = self._book.menus[st.menu]
        assert isinstance(menu, ChoiceMenu | NumberMenu)
        return menu.limits

    def _timeout_s(self, st: State, limits: Limits) -> float:
        factor = self._settings.care_timeout_factor if st.vulnerable else 1.0
        return limits.timeout_s * factor

    def _invalid(self, st: State, out: list[Command], now: float, prompt: str) -> None:
        st.pending = ""
        st.invalid += 1
        limits = self._limits(st)
        if st.phase is Phase.COLLECT:
            st.entered = ""
        if st.invalid >= limits.max_invalid:
            out.append(Play(prompt, st.language, interruptible=False))
            self._enter(st, out, now, limits.on_invalid, EndReason.INVALID_INPUT)
            return
        out.append(Play(prompt, st.language))
        self._ask(st, out, now, first=False)

    def _timeout(self, st: State, out: list[Command], now: float) -> None:
        menu = self._book.menus[st.menu]
        if isinstance(menu, NumberMenu) and st.phase is Phase.COLLECT and st.entered:
            self._number_done(st, out, now, menu)  # the caller forgot "#"
            return
        st.timeouts += 1
        limits = self._limits(st)
        if st.timeouts < limits.max_timeouts:
            out.append(Play(self._settings.no_input_prompt, st.language))
            self._ask(st, out, now, first=False)
            return
        if isinstance(menu, ChoiceMenu) and menu.default_option is not None:
            self._choose(st, out, now, menu.options[menu.default_option])
            return
        if isinstance(menu, NumberMenu) and st.phase is Phase.CONFIRM:
            self._store(st, menu.store, st.entered)  # checked, only not confirmed: keep it
        self._enter(st, out, now, limits.on_timeout, EndReason.TIMEOUTS)

    def _count_input(self, st: State, out: list[Command], now: float) -> bool:
        """Count one caller input; past ``max_inputs`` the caller goes to a person."""
        st.inputs += 1
        if st.inputs <= self._settings.max_inputs:
            return True
        st.pending = ""
        fallback = self._book.menus.get(self._settings.on_invalid)
        if isinstance(fallback, EndMenu):
            st.path = (*st.path, fallback.name)
            self._finish_at(st, out, now, fallback, EndReason.INPUT_LIMIT)
        else:
            self._finish(st, out, now, Request.AGENT, EndReason.INPUT_LIMIT)
        return False

    # -- look-ups and recordings --------------------------------------------

    def _lookup_answered(self, st: State, out: list[Command], event: LookupResult) -> None:
        menu = self._book.menus[st.menu]
        assert isinstance(menu, StatusMenu)
        lang = st.language
        if event.failed:
            out.append(Play(menu.unavailable_prompt, lang, interruptible=False))
            self._enter(st, out, event.now, menu.on_error)
        elif event.status is None:
            out.append(Play(menu.not_found_prompt, lang, interruptible=False))
            self._enter(st, out, event.now, menu.on_not_found)
        else:
            st.complaint_status = event.status
            known = event.status in menu.statuses
            prompt = StatusMenu.prompt_for(event.status) if known else menu.unknown_prompt
            out.append(Play(prompt, lang, interruptible=False))
            self._enter(st, out, event.now, menu.next)

    def _recorded(self, st: State, out: list[Command], event: Recorded) -> None:
        menu = self._book.menus[st.menu]
        assert isinstance(menu, RecordMenu)
        if event.ok:
            st.recording = event.name
            if event.caller_hung_up:
                # Hanging up is how most callers end a message: it is a voicemail.
                self._finish(st, out, event.now, Request.VOICEMAIL, EndReason.HUNG_UP)
            else:
                self._enter(st, out, event.now, menu.next)
        elif event.caller_hung_up:
            self._finish(st, out, event.now, Request.HUNG_UP_IN_IVR, EndReason.HUNG_UP)
        else:
            if menu.failed_prompt:
                out.append(Play(menu.failed_prompt, st.language, interruptible=False))
            self._enter(st, out, event.now, menu.on_error)

    # -- the end -------------------------------------------------------------

    def _finish_at(self, st: State, out: list[Command], now: float, menu: EndMenu, reason: EndReason) -> None:
        if menu.request is Request.CALLBACK and st.callback_number is None:
            st.callback_number = caller_digits(st.caller_number) or None
        outcome = self._outcome(st, now, menu.request, reason)
        out.extend(channel_variables(outcome))
        if menu.prompt:
            out.append(Play(menu.prompt, st.language, interruptible=False))
        if menu.hangup:
            out.append(EndCall())
        st.phase = Phase.DONE
        st.outcome = outcome
        out.append(Finish(outcome))

    def _finish(self, st: State, out: list[Command], now: float, request: Request, reason: EndReason) -> None:
        outcome = self._outcome(st, now, request, reason)
        st.phase = Phase.DONE
        st.outcome = outcome
        out.append(Finish(outcome))

    @staticmethod
    def _hung_up_after_decision(st: State, out: list[Command], now: float) -> None:
        """The caller hung up during the last prompts: one waiting for an agent is gone."""
        assert st.outcome is not None
        requested = st.outcome.requested
        if requested is Request.AGENT:
            requested = Request.HUNG_UP_IN_IVR
        st.outcome = replace(st.outcome, requested=requested, ended=EndReason.HUNG_UP, ended_at=now)
        out.append(Finish(st.outcome))

    @staticmethod
    def _outcome(st: State, now: float, request: Request, reason: EndReason) -> Outcome:
        return Outcome(
            call_id=st.call_id,
            caller_number=st.caller_number,
            language=st.language,
            requested=request,
            ended=reason,
            path=st.path,
            started_at=st.started_at,
            ended_at=now,
            category=st.category,
            urgent=st.urgent,
            vulnerable=st.vulnerable,
            care=st.care,
            account=st.account,
            reference=st.reference,
            callback_number=st.callback_number,
            recording=st.recording,
            complaint_status=st.complaint_status,
        )


_STATE_FIELDS = tuple(State.__dataclass_fields__)
_state_values = attrgetter(*_STATE_FIELDS)
"""Every field of a State, in order, in one C call (its constructor's order)."""
_STATE_JSON_FIELDS = tuple(name for name in _STATE_FIELDS if name != "outcome")
_state_json_values = attrgetter(*_STATE_JSON_FIELDS)


def _copy_state(state: State) -> State:
    """A copy of ``state`` to step on: what ``dataclasses.replace(state)`` makes
    (every field passed to the constructor), without its per-field look-ups of
    the fields' descriptions (each step of every call copies one; replace cost
    ten times this)."""
    return State(*_state_values(state))


def state_to_dict(state: State) -> dict[str, object]:
    """A state as plain JSON values (the call state kept in Redis); ``state_from_dict`` reads it."""
    raw: dict[str, object] = dict(zip(_STATE_JSON_FIELDS, _state_json_values(state), strict=True))
    raw["phase"] = state.phase.value
    raw["path"] = list(state.path)
    raw["outcome"] = None if state.outcome is None else _outcome_to_dict(state.outcome)
    return raw


def state_from_dict(raw: Mapping[str, object]) -> State:
    fields = {k: v for k, v in raw.items() if k in State.__dataclass_fields__}
    fields["phase"] = Phase(str(fields.get("phase", Phase.COLLECT.value)))
    fields["path"] = tuple(str(p) for p in fields.get("path") or ())  # type: ignore[attr-defined]
    outcome = fields.get("outcome")
    fields["outcome"] = _outcome_from_dict(outcome) if isinstance(outcome, Mapping) else None
    return State(**fields)  # type: ignore[arg-type]


def _outcome_to_dict(outcome: Outcome) -> dict[str, object]:
    raw = {name: getattr(outcome, name) for name in Outcome.__dataclass_fields__}
    raw["requested"] = outcome.requested.value
    raw["ended"] = outcome.ended.value
    raw["path"] = list(outcome.path)
    return raw


def _outcome_from_dict(raw: Mapping[str, object]) -> Outcome:
    fields = {k: v for k, v in raw.items() if k in Outcome.__dataclass_fields__}
    fields["requested"] = Request(str(fields["requested"]))
    fields["ended"] = EndReason(str(fields["ended"]))
    fields["path"] = tuple(str(p) for p in fields.get("path") or ())  # type: ignore[attr-defined]
    return Outcome(**fields)  # type: ignore[arg-type]


def channel_variables(outcome: Outcome) -> list[SetVariable]:
    """What the dialplan and the agent's screen can read off the channel after the IVR."""
    values: dict[str, str | None] = {
        "SHENAVA_LANG": outcome.language,
        "SHENAVA_REQUEST": outcome.requested.value,
        "SHENAVA_CATEGORY": outcome.category,
        "SHENAVA_URGENT": None if outcome.urgent is None else str(int(outcome.urgent)),
        "SHENAVA_VULNERABLE": str(int(outcome.vulnerable)),
        "SHENAVA_CARE": outcome.care,
        "SHENAVA_ACCOUNT": outcome.account,
        "SHENAVA_REFERENCE": outcome.reference,
        "SHENAVA_CALLBACK_NUMBER": outcome.callback_number,
        "SHENAVA_RECORDING": outcome.recording,
    }
    return [SetVariable(name, value) for name, value in values.items() if value is not None]


def prompts_of(commands: tuple[Command, ...] | list[Command]) -> list[str]:
    """The prompt names in a list of commands, in order (a help for tests and logs)."""
    names: list[str] = []
    for command in commands:
        if isinstance(command, Play):
            names.append(command.prompt)
        elif isinstance(command, Collect) and command.prompt is not None:
            names.append(command.prompt)
    return names


__all__ = [
    "AWAITING", "Collect", "Command", "Digits", "EndCall", "EndReason", "Failed", "Finish",
    "HungUp", "Input", "LookupComplaint", "LookupResult", "Menu", "MenuMachine", "Outcome",
    "Phase", "Play", "Record", "Recorded", "Request", "SayDigits", "SetVariable", "Start",
    "State", "Step", "Timeout", "caller_digits", "channel_variables", "luhn_valid", "prompts_of",
    "state_from_dict", "state_to_dict",
]

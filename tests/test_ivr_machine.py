"""The pure menu machine on the shipped menus: paths, limits, type-ahead, hang-ups."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.machine import (
    AWAITING,
    Collect,
    Command,
    Digits,
    EndCall,
    EndReason,
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
    SayDigits,
    SetVariable,
    Start,
    Step,
    Timeout,
    caller_digits,
    luhn_valid,
    prompts_of,
)
from ivr.menu_schema import Request, load_menus

CALLER = "09121234567"
ACCOUNT = "79927398713"  # passes Luhn
VM_NAME = "/var/spool/shenava/voicemail/vm-20260101-093000-0123456789ab"  # made by the runner's allocator, never the machine
LANG_KEY = {"fa": "1", "en": "2"}

MACHINE = MenuMachine(load_menus())


class Call:
    """Drives the machine like the runner does, clock ticking one second per input."""

    def __init__(self, caller: str = CALLER, variables: dict[str, str] | None = None) -> None:
        self.now = 100.0
        self.step = MACHINE.start(Start(self.now, caller, "1795339506.82", variables or {}))
        self.steps = [self.step]

    def feed(self, *script: Any) -> Step:
        for item in script:
            self.now += 1.0
            self.step = MACHINE.step(self.step.state, to_input(item, self.now))
            self.steps.append(self.step)
        return self.step

    @property
    def commands(self) -> tuple[Command, ...]:
        return self.step.commands

    @property
    def outcome(self) -> Outcome:
        outcome = self.step.outcome
        assert outcome is not None, f"not finished: {self.commands}"
        return outcome

    def all_commands(self) -> list[Command]:
        return [command for step in self.steps for command in step.commands]


def to_input(item: Any, now: float) -> Input:
    """'123' digits, 'T' timeout, 'H' hang-up, ('status', s), ('rec', ok, hung_up), 'F' failed."""
    if isinstance(item, tuple):
        if item[0] == "status":
            return LookupResult(now, item[1], failed=item[1] == "!")
        return Recorded(now, ok=item[1], caller_hung_up=item[2], name=VM_NAME if item[1] else None)
    if item == "T":
        return Timeout(now)
    if item == "H":
        return HungUp(now)
    if item == "F":
        return Failed(now, "test")
    return Digits(now, item)


def last(call: Call) -> Command:
    return call.commands[-1]


# -- every path, both languages --------------------------------------------

PATHS: list[tuple[str, list[Any], Request, dict[str, Any]]] = [
    (
        "new complaint, urgent billing, account confirmed",
        ["1", "3", "1", "3", ACCOUNT + "#", "1"],
        Request.AGENT,
        {"category": "billing", "urgent": True, "vulnerable": False, "account": ACCOUNT,
         "path": ("language", "main", "category", "urgency", "care", "account", "agent")},
    ),
    (
        "new complaint from an elderly caller",
        ["1", "2", "2", "1", ACCOUNT + "#", "1"],
        Request.AGENT,
        {"category": "product", "urgent": False, "vulnerable": True, "care": "elderly"},
    ),
    (
        "new complaint, disability, no account to hand",
        ["1", "4", "1", "2", "*"],
        Request.AGENT,
        {"category": "staff_conduct", "vulnerable": True, "care": "disability", "account": None},
    ),
    (
        "status heard, then silence: goodbye",
        ["2", "12345#", "1", ("status", "in_progress"), "T"],
        Request.STATUS,
        {"reference": "12345", "complaint_status": "in_progress", "ended": EndReason.TIMEOUTS,
         "path": ("language", "main", "status-reference", "status", "after-status", "status-done")},
    ),
    (
        "status heard, then an agent",
        ["2", "12345#", "1", ("status", "resolved"), "1"],
        Request.AGENT,
        {"reference": "12345", "complaint_status": "resolved"},
    ),
    (
        "status not found, back to main, agent",
        ["2", "99999#", "1", ("status", None), "2", "3"],
        Request.AGENT,
        {"reference": "99999", "complaint_status": None},
    ),
    ("straight to an agent", ["3"], Request.AGENT, {"path": ("language", "main", "agent")}),
    (
        "voicemail",
        ["4", ("rec", True, False)],
        Request.VOICEMAIL,
        {"recording": VM_NAME},
    ),
    (
        "callback on the caller's own number",
        ["5", "1"],
        Request.CALLBACK,
        {"callback_number": CALLER},
    ),
    (
        "callback on another number",
        ["5", "2", "02188776655#", "1"],
        Request.CALLBACK,
        {"callback_number": "02188776655"},
    ),
]


@pytest.mark.parametrize("lang", ["fa", "en"])
@pytest.mark.parametrize(("name", "script", "requested", "expected"), PATHS, ids=[p[0] for p in PATHS])
def test_every_path_in_both_languages(
    lang: str, name: str, script: list[Any], requested: Request, expected: dict[str, Any]
) -> None:
    call = Call()
    call.feed(LANG_KEY[lang], *script)
    outcome = call.outcome
    assert outcome.requested is requested
    assert outcome.ended is expected.get("ended", EndReason.COMPLETED)
    assert outcome.language == lang
    assert outcome.started_at == 100.0 and outcome.ended_at == call.now
    for field_name, value in expected.items():
        assert getattr(outcome, field_name) == value, field_name
    # Everything after the language menu is spoken in the caller's language.
    after_choice = [c for step in call.steps[1:] for c in step.commands]
    spoken = [c for c in after_choice if isinstance(c, Play | Collect | SayDigits)]
    assert spoken and all(c.lang == lang for c in spoken)
    variables = {c.name: c.value for c in after_choice if isinstance(c, SetVariable)}
    assert variables["SHENAVA_LANG"] == lang
    assert variables["SHENAVA_REQUEST"] == requested.value


def test_start_plays_the_welcome_in_both_languages_and_collects_the_choice() -> None:
    call = Call()
    assert call.commands == (
        Play("welcome", "fa", pinned=True),
        Play("choose-language", "fa", pinned=True),
        Play("welcome", "en", pinned=True),
        Collect("choose-language", "en", 5.0, 1, pinned=True),
    )


def test_choosing_english_switches_the_channel_language() -> None:
    call = Call()
    call.feed("2")
    assert call.commands == (
        SetVariable("CHANNEL(language)", "en"),
        Collect("main-menu", "en", 5.0, 1),
    )


def test_silence_at_the_language_menu_means_persian() -> None:
    call = Call()
    call.feed("T")
    assert call.commands == (Collect("main-menu", "fa", 5.0, 1),)
    call.feed("3")
    assert call.outcome.language == "fa"
    assert call.outcome.ended is EndReason.COMPLETED


def test_a_language_set_by_the_dialplan_skips_the_language_menu() -> None:
    call = Call(variables={"SHENAVA_LANG": "en"})
    assert call.commands == (
        SetVariable("CHANNEL(language)", "en"),
        Collect("main-menu", "en", 5.0, 1),
    )
    bad = Call(variables={"SHENAVA_LANG": "de"})
    assert isinstance(last(bad), Collect) and last(bad).prompt == "choose-language"  # type: ignore[union-attr]


def test_voicemail_plays_its_prompt_then_records_and_hangs_up_after_thanks() -> None:
    call = Call()
    call.feed("2", "4")
    assert call.commands == (
        Play("leave-message", "en", interruptible=False),
        Record("wav", "#", 180.0, 5.0, True),
    )
    call.feed(("rec", True, False))
    assert prompts_of(call.commands) == ["message-saved"]
    assert isinstance(call.commands[-2], EndCall)


def test_a_failed_recording_apologises_and_goes_to_an_agent() -> None:
    call = Call()
    call.feed("2", "4", ("rec", False, False))
    assert prompts_of(call.commands) == ["record-failed", "transfer-agent"]
    assert call.outcome.requested is Request.AGENT and call.outcome.recording is None


def test_callback_reads_the_callers_number_back() -> None:
    call = Call()
    call.feed("1", "5")
    assert call.commands == (
        Play("callback-intro", "fa"),
        SayDigits(CALLER, "fa"),
        Collect("callback-confirm", "fa", 5.0, 1),
    )


@pytest.mark.parametrize("withheld", ["", "anonymous", "<unknown>"])
def test_callback_with_a_withheld_number_asks_for_one(withheld: str) -> None:
    call = Call(caller=withheld)
    call.feed("1", "5")
    assert call.commands == (Collect("enter-callback-number", "fa", 5.0, 15),)
    call.feed("02188776655#", "1")
    assert call.outcome.callback_number == "02188776655"


def test_status_lookup_is_a_command_and_its_answer_an_input() -> None:
    call = Call()
    call.feed("2", "2", "12345#")
    assert call.commands == (
        Play("you-entered", "en"),
        SayDigits("12345", "en"),
        Collect("confirm-number", "en", 5.0, 1),
    )
    call.feed("1")
    assert call.commands == (LookupComplaint("12345"),)
    call.feed(("status", "awaiting_customer"))
    assert call.commands == (
        Play("status-awaiting-customer", "en", interruptible=False),
        Collect("after-status-menu", "en", 5.0, 1),
    )


@pytest.mark.parametrize(
    ("answer", "prompt"),
    [("weird_state", "status-unknown"), (None, "status-not-found"), ("!", "status-unavailable")],
)
def test_status_answers_that_are_not_a_known_status(answer: str | None, prompt: str) -> None:
    call = Call()
    call.feed("1", "2", "12345#", "1", ("status", answer))
    assert prompts_of(call.commands)[0] == prompt


def test_a_failed_lookup_goes_to_an_agent() -> None:
    call = Call()
    call.feed("1", "2", "12345#", "1", ("status", "!"))
    assert call.outcome.requested is Request.AGENT


# -- timeouts and invalid keys ----------------------------------------------


def test_timeouts_re_prompt_up_to_the_limit_then_go_to_an_agent() -> None:
    call = Call()
    call.feed("2", "T")
    assert call.commands == (Play("no-input", "en"), Collect("main-menu", "en", 5.0, 1))
    call.feed("T")
    assert call.commands == (Play("no-input", "en"), Collect("main-menu", "en", 5.0, 1))
    call.feed("T")
    assert call.outcome.requested is Request.AGENT
    assert call.outcome.ended is EndReason.TIMEOUTS
    assert call.outcome.path == ("language", "main", "agent")
    assert "transfer-agent" in prompts_of(call.commands)


def test_an_invalid_key_plays_invalid_option_and_re_prompts() -> None:
    call = Call()
    call.feed("1", "9")
    assert call.commands == (Play("invalid-option", "fa"), Collect("main-menu", "fa", 5.0, 1))
    call.feed("#")
    assert call.commands == (Play("invalid-option", "fa"), Collect("main-menu", "fa", 5.0, 1))
    call.feed("0")
    assert call.commands[0] == Play("invalid-option", "fa", interruptible=False)
    assert call.outcome.requested is Request.AGENT
    assert call.outcome.ended is EndReason.INVALID_INPUT


def test_timeouts_and_invalid_keys_are_counted_per_menu_visit() -> None:
    call = Call()
    call.feed("2", "T", "T", "1")  # two silences in main, then a choice
    call.feed("T", "T")  # category counts afresh
    assert isinstance(last(call), Collect) and last(call).prompt == "category-menu"  # type: ignore[union-attr]


def test_vulnerable_callers_get_longer_to_answer() -> None:
    call = Call()
    call.feed("2", "1", "1", "1", "1")
    assert call.commands == (Collect("enter-account", "en", 10.0, 16),)


def test_input_limit_finishes_even_without_a_way_out() -> None:
    call = Call()
    call.feed("2", "2")
    for key in ["123456#", "2"] * 30:  # enter a reference, then "re-enter" it, forever
        if call.step.outcome is not None:
            break
        call.feed(key)
    assert call.outcome.ended is EndReason.INPUT_LIMIT
    assert call.outcome.requested is Request.AGENT


# -- type-ahead ---------------------------------------------------------------


def test_type_ahead_skips_the_prompts_already_answered() -> None:
    call = Call()
    call.feed("213")
    assert call.commands == (
        SetVariable("CHANNEL(language)", "en"),
        Collect("urgency-menu", "en", 5.0, 1),
    )
    assert call.step.state.category == "billing"


def test_type_ahead_through_to_the_account_readback() -> None:
    call = Call()
    call.feed("11113" + ACCOUNT + "#")
    assert call.commands == (
        Play("you-entered", "fa"),
        SayDigits(ACCOUNT, "fa"),
        Collect("confirm-number", "fa", 5.0, 1),
    )
    call.feed("1")
    assert call.outcome.account == ACCOUNT


def test_a_number_typed_ahead_in_part_is_carried_on_with_silence() -> None:
    call = Call()
    call.feed("11113", "7992")
    assert call.commands == (Collect(None, "fa", 5.0, 12),)
    call.feed("7398713#")
    assert SayDigits(ACCOUNT, "fa") in call.commands


def test_type_ahead_after_an_invalid_key_is_dropped() -> None:
    call = Call()
    call.feed("1", "93")  # 9 is invalid; 3 was typed against the menu the caller never reached
    assert call.commands == (Play("invalid-option", "fa"), Collect("main-menu", "fa", 5.0, 1))


def test_keys_pressed_during_a_lookup_wait_for_the_next_menu() -> None:
    call = Call()
    call.feed("1", "2", "12345#", "1")
    assert call.commands == (LookupComplaint("12345"),)
    call.feed("1")  # pressed while the look-up runs: no commands yet
    assert call.commands == ()
    call.feed(("status", "closed"))
    assert prompts_of(call.commands) == ["status-closed", "transfer-agent"]


# -- account number: length, check digit, readback -------------------------


@pytest.mark.parametrize(
    "typed",
    ["12345#", "79927398710#", "#", "12ab"],
    ids=["too short", "bad check digit", "nothing", "not digits"],
)
def test_a_bad_account_number_is_refused_and_asked_again(typed: str) -> None:
    call = Call()
    call.feed("2", "1", "1", "1", "3", typed.replace("ab", "*#"))
    assert call.commands == (Play("invalid-account", "en"), Collect("enter-account", "en", 5.0, 16))
    assert call.step.state.account is None


def test_account_re_entry_after_a_wrong_readback() -> None:
    call = Call()
    call.feed("2", "1", "1", "1", "3", "4111111111111111")  # 16 digits: no "#" needed
    assert call.commands[1] == SayDigits("4111111111111111", "en")
    call.feed("2")
    assert call.commands == (Collect("enter-account", "en", 5.0, 16),)
    call.feed(ACCOUNT + "#", "1")
    assert call.outcome.account == ACCOUNT


def test_a_pause_after_some_digits_ends_the_number() -> None:
    call = Call()
    call.feed("2", "1", "1", "1", "3", ACCOUNT, "T")
    assert call.commands[1] == SayDigits(ACCOUNT, "en")


def test_three_bad_account_numbers_go_to_an_agent_without_one() -> None:
    call = Call()
    call.feed("2", "1", "1", "1", "3", "1#", "1#", "1#")
    assert call.outcome.requested is Request.AGENT
    assert call.outcome.ended is EndReason.INVALID_INPUT
    assert call.outcome.account is None
    assert call.outcome.category == "service_quality"


def test_silence_at_the_readback_keeps_the_checked_number() -> None:
    call = Call()
    call.feed("2", "1", "1", "1", "3", ACCOUNT + "#", "T", "T", "T")
    assert call.outcome.account == ACCOUNT
    assert call.outcome.ended is EndReason.TIMEOUTS


@pytest.mark.parametrize(
    ("number", "valid"),
    [("79927398713", True), ("4111111111111111", True), ("0", False), ("79927398710", False),
     ("18", True), ("", False), ("12a4", False)],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


def test_caller_digits() -> None:
    assert caller_digits("+98 912 123 4567") == "989121234567"
    assert caller_digits("anonymous") == ""


# -- hang-ups anywhere ---------------------------------------------------------

HANG_UP_POINTS: list[tuple[str, list[Any], dict[str, Any]]] = [
    ("language", [], {}),
    ("main", ["2"], {"language": "en"}),
    ("category", ["2", "1"], {"language": "en"}),
    ("urgency", ["2", "1", "5"], {"category": "delivery"}),
    ("care", ["2", "1", "5", "1"], {"category": "delivery", "urgent": True}),
    ("account", ["2", "1", "5", "1", "2"], {"vulnerable": True, "care": "disability"}),
    # typed, checked and read back but not yet confirmed: kept (as on a timeout there)
    ("account", ["2", "1", "5", "1", "2", ACCOUNT + "#"], {"account": ACCOUNT, "care": "disability"}),
    ("status-reference", ["2", "2"], {"language": "en"}),
    ("status", ["2", "2", "12345#", "1"], {"reference": "12345"}),
    ("after-status", ["2", "2", "12345#", "1", ("status", "closed")],
     {"reference": "12345", "complaint_status": "closed"}),
    ("voicemail", ["2", "4"], {"recording": None}),
    ("callback", ["2", "5"], {"callback_number": None}),
    ("callback-number", ["2", "5", "2", "0218"], {"callback_number": None}),
]


@pytest.mark.parametrize(
    ("menu", "script", "kept"), HANG_UP_POINTS, ids=[f"{p[0]}-{len(p[1])}" for p in HANG_UP_POINTS]
)
def test_a_hang_up_in_any_menu_keeps_what_was_entered(menu: str, script: list[Any], kept: dict[str, Any]) -> None:
    call = Call()
    call.feed(*script)
    assert call.step.state.menu == menu
    call.feed("H")
    outcome = call.outcome
    assert call.commands == (Finish(outcome),)
    assert outcome.requested is Request.HUNG_UP_IN_IVR
    assert outcome.ended is EndReason.HUNG_UP
    assert outcome.path[-1] == menu
    assert outcome.ended_at == call.now
    for field_name, value in kept.items():
        assert getattr(outcome, field_name) == value, field_name


def test_hanging_up_to_end_a_voicemail_keeps_the_voicemail() -> None:
    call = Call()
    call.feed("1", "4", ("rec", True, True))
    assert call.commands == (Finish(call.outcome),)
    assert call.outcome.requested is Request.VOICEMAIL
    assert call.outcome.ended is EndReason.HUNG_UP
    assert call.outcome.recording == VM_NAME


def test_a_hang_up_during_hold_message_is_not_a_call_for_an_agent() -> None:
    call = Call()
    call.feed("1", "3")
    assert call.outcome.requested is Request.AGENT
    call.feed("H")
    assert call.outcome.requested is Request.HUNG_UP_IN_IVR
    assert call.outcome.ended is EndReason.HUNG_UP
    call.feed("H")
    assert call.commands == ()


def test_a_hang_up_during_goodbye_keeps_the_callback() -> None:
    call = Call()
    call.feed("1", "5", "1", "H")
    assert call.outcome.requested is Request.CALLBACK
    assert call.outcome.callback_number == CALLER


def test_an_agi_failure_hands_the_call_to_an_agent() -> None:
    call = Call()
    call.feed("1", "1", "F")
    assert call.outcome.requested is Request.AGENT
    assert call.outcome.ended is EndReason.FAILED
    assert call.outcome.path == ("language", "main", "category")


def test_step_never_changes_the_state_it_is_given() -> None:
    call = Call()
    call.feed("2", "1")
    before = replace(call.step.state)
    MACHINE.step(call.step.state, Digits(1.0, "3"))
    MACHINE.step(call.step.state, HungUp(1.0))
    assert call.step.state == before


# -- property: anything a caller does ends in a defined outcome ------------

EVENTS = st.one_of(
    st.text(alphabet="0123456789*#", min_size=1, max_size=20).map(lambda d: ("D", d)),
    st.just(("T",)),
    st.just(("H",)),
    st.sampled_from(["received", "in_progress", "resolved", "closed", "bogus", None, "!"]).map(
        lambda s: ("L", s)
    ),
    st.tuples(st.just("R"), st.booleans(), st.booleans()),
    st.just(("F",)),
)


def _event(spec: tuple[Any, ...], now: float) -> Input:
    match spec[0]:
        case "D":
            return Digits(now, spec[1])
        case "T":
            return Timeout(now)
        case "H":
            return HungUp(now)
        case "L":
            return LookupResult(now, None if spec[1] == "!" else spec[1], failed=spec[1] == "!")
        case "R":
            return Recorded(now, ok=spec[1], caller_hung_up=spec[2], name=VM_NAME if spec[1] else None)
    return Failed(now, "random")


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, max_size=80), st.sampled_from(["", CALLER]), st.sampled_from([{}, {"SHENAVA_LANG": "en"}]))
def test_any_sequence_of_inputs_ends_in_a_defined_outcome(
    events: list[tuple[Any, ...]], caller: str, variables: dict[str, str]
) -> None:
    step = MACHINE.start(Start(0.0, caller, "c1", variables))
    outcome: Outcome | None = None
    for index, spec in enumerate([*events, ("H",)]):
        assert step.commands, "the machine must always say what it waits for"
        assert isinstance(step.commands[-1], AWAITING)
        assert all(not isinstance(c, AWAITING) for c in step.commands[:-1])
        outcome = step.outcome
        if outcome is not None:
            break
        step = MACHINE.step(step.state, _event(spec, float(index + 1)))
        if not step.commands:  # an input the runner never sends in this phase: ignored
            step = Step(step.state, _waiting_for(step.state))
    if outcome is None:
        outcome = step.outcome
    assert outcome is not None
    assert isinstance(outcome.requested, Request)
    assert isinstance(outcome.ended, EndReason)
    assert outcome.path and outcome.path[0] in ("language", "main")
    assert outcome.language in ("fa", "en")
    assert outcome.started_at <= outcome.ended_at
    if outcome.account is not None:
        assert luhn_valid(outcome.account) and 6 <= len(outcome.account) <= 16


def _waiting_for(state: Any) -> tuple[Command, ...]:
    """Stand in for the command the machine is still waiting on."""
    return (LookupComplaint("x"),) if state.phase == "lookup" else (Collect(None, "fa", 1.0, 1),)


def test_a_step_copies_every_field_of_the_state_as_replace_did() -> None:
    """``MenuMachine.step`` copies the state without ``dataclasses.replace`` (#16):
    the copy has every field, and a field added later is copied too."""
    import dataclasses

    from ivr.machine import Phase, State, _copy_state, state_from_dict, state_to_dict

    values: dict[str, object] = {}
    for n, spec in enumerate(dataclasses.fields(State)):
        values[spec.name] = {
            "phase": Phase.CONFIRM, "path": ("main", "category"), "outcome": None,
            "started_at": 12.5, "urgent": True, "vulnerable": True,
        }.get(spec.name, n if "int" in str(spec.type) else f"v{n}")
    state = State(**values)  # type: ignore[arg-type]
    copy = _copy_state(state)
    assert copy == dataclasses.replace(state) and copy is not state
    assert all(getattr(copy, f.name) == values[f.name] for f in dataclasses.fields(State))
    assert state_from_dict(state_to_dict(state)) == state
    done = dataclasses.replace(state, outcome=Outcome(
        call_id="c", caller_number="1", language="fa", requested=Request.AGENT,
        ended=EndReason.COMPLETED, started_at=1.0, ended_at=2.0, path=("main",)))
    assert state_from_dict(state_to_dict(done)) == done

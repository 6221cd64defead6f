"""The IVR end to end: scripted callers on the test PBX, the whole daemon, virtual time.

Each test places callers who press keys at the prompts (one ``answers`` entry
per ``GET DATA``), as a real caller would, and checks the outcome the call flow
hands on and the commands the daemon sent to the PBX.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed

from ivr.machine import EndReason
from ivr.menu_schema import Request
from routing.events import CallQueued
from shenava.demo import luhn_complete
from testpbx.scripts import CallerScript
from tests.e2e_harness import E2E, e2e_config

ACCOUNT = luhn_complete("123456789")  # 1234567897: passes the default menus' Luhn check
NUMBER = "09121234567"
LANG_KEY = {"fa": "1", "en": "2"}
BOTH = pytest.mark.parametrize("lang", ["fa", "en"])


@pytest.fixture
def h(tmp_path: Path) -> Iterator[E2E]:
    harness = E2E.build(tmp_path)
    yield harness
    harness.stop()


def caller(lang: str, *answers: str, **kw: Any) -> CallerScript:
    """A caller who picks ``lang`` at the first prompt, then gives ``answers``."""
    return CallerScript(number=NUMBER, language=lang, answers=(LANG_KEY[lang], *answers), **kw)


# -- every path, in both languages -------------------------------------------------


@BOTH
def test_new_complaint_records_every_field_and_joins_the_line(h: E2E, lang: str) -> None:
    # 1 new complaint, 3 billing, 1 urgent, 2 disability, account#, 1 confirm
    call = h.call(caller(lang, "1", "3", "1", "2", ACCOUNT + "#", "1"))
    outcome = h.wait_outcome(call)
    assert outcome.requested is Request.AGENT
    assert outcome.ended is EndReason.COMPLETED
    assert outcome.language == lang
    assert (outcome.category, outcome.urgent, outcome.vulnerable, outcome.care) == (
        "billing", True, True, "disability",
    )
    assert outcome.account == ACCOUNT
    assert outcome.caller_number == NUMBER
    assert outcome.path == ("language", "main", "category", "urgency", "care", "account", "agent")
    # the account is read back before it is confirmed, in the caller's language
    commands = h.agi_commands(call)
    assert f"SAY DIGITS {ACCOUNT} 0123456789*#" in commands
    heard = h.heard(call)
    start = heard.index(f"{lang}/shenava/you-entered") + 1
    assert heard[start: start + len(ACCOUNT)] == [f"{lang}/digits/{d}" for d in ACCOUNT]
    h.queued(call)
    (queued,) = h.events(CallQueued, call)
    assert (queued.language, queued.category) == (lang, "billing")
    waiting = h.app.router.line.get(call.uniqueid)  # no agent logged in: it waits
    assert waiting is not None
    assert waiting.vulnerable and waiting.skill == "billing"


@BOTH
def test_new_complaint_not_urgent_no_care(h: E2E, lang: str) -> None:
    call = h.call(caller(lang, "1", "5", "2", "3", ACCOUNT + "#", "1"))
    outcome = h.wait_outcome(call)
    assert (outcome.category, outcome.urgent, outcome.vulnerable, outcome.care) == (
        "delivery", False, False, None,
    )
    assert outcome.account == ACCOUNT


@BOTH
def test_status_of_a_complaint(h: E2E, lang: str) -> None:
    looked_up: list[str] = []

    def lookup(reference: str) -> object:
        looked_up.append(reference)
        return succeed("in_progress")

    h.app.callflow.lookup_complaint = lookup  # type: ignore[assignment]
    # 2 status, reference#, 1 confirm, then silence at "anything else?"
    call = h.call(caller(lang, "2", "1234567#", "1", ""))
    outcome = h.wait_outcome(call)
    assert looked_up == ["1234567"]
    assert outcome.requested is Request.STATUS
    assert outcome.reference == "1234567"
    assert outcome.complaint_status == "in_progress"
    assert "status-in-progress" in h.prompts(call)
    assert h.agi_commands(call)[-1] == "HANGUP"
    h.advance(2.0)
    assert not h.alive(call)


def test_status_not_found_then_ask_for_an_agent(h: E2E) -> None:
    call = h.call(caller("fa", "2", "55555#", "1", "1"))
    outcome = h.wait_outcome(call)
    assert "status-not-found" in h.prompts(call)
    assert outcome.requested is Request.AGENT
    assert outcome.reference == "55555"
    h.queued(call)


@BOTH
def test_agent(h: E2E, lang: str) -> None:
    call = h.call(caller(lang, "3"))
    outcome = h.wait_outcome(call)
    assert outcome.requested is Request.AGENT
    assert outcome.path == ("language", "main", "agent")
    assert outcome.language == lang
    h.queued(call)
    # on hold: music under AsyncAGI
    h.run_until(lambda: any(c.startswith("EXEC MusicOnHold") for c in h.agi_commands(call)))


@BOTH
def test_voicemail(h: E2E, lang: str) -> None:
    call = h.call(caller(lang, "4"))
    outcome = h.wait_outcome(call)
    assert outcome.requested is Request.VOICEMAIL
    assert outcome.ended is EndReason.COMPLETED
    assert outcome.recording == "shenava-vm/e2e-1"
    assert any(c.startswith("RECORD FILE shenava-vm/e2e-1 wav") for c in h.agi_commands(call))
    assert "message-saved" not in h.prompts(call)  # handed on (kept) before the caller is told
    h.run_until(lambda: not h.alive(call))
    assert "message-saved" in h.prompts(call)
    assert not h.events(CallQueued, call)


@BOTH
def test_callback_on_the_calling_number(h: E2E, lang: str) -> None:
    call = h.call(caller(lang, "5", "1"))
    outcome = h.wait_outcome(call)
    assert outcome.requested is Request.CALLBACK
    assert outcome.callback_number == NUMBER
    assert f"SAY DIGITS {NUMBER} 0123456789*#" in h.agi_commands(call)
    assert "callback-booked" not in h.prompts(call)  # handed on (kept) before the caller is told
    h.run_until(lambda: not h.alive(call))
    assert "callback-booked" in h.prompts(call)


def test_callback_on_another_number(h: E2E) -> None:
    call = h.call(caller("en", "5", "2", "02188776655#", "1"))
    outcome = h.wait_outcome(call)
    assert outcome.requested is Request.CALLBACK
    assert outcome.callback_number == "02188776655"


def test_dialplan_language_skips_the_language_menu(h: E2E) -> None:
    call = h.call(CallerScript(number=NUMBER, variables={"SHENAVA_LANG": "en"}, answers=("3",)))
    outcome = h.wait_outcome(call)
    assert outcome.language == "en"
    assert outcome.path[0] != "language"
    assert "choose-language" not in h.prompts(call)


# -- timeouts, invalid keys, type-ahead -----------------------------------------------


def test_silence_at_the_language_menu_means_persian(h: E2E) -> None:
    call = h.call(CallerScript(number=NUMBER, answers=("", "3")))
    outcome = h.wait_outcome(call)
    assert outcome.language == "fa"
    assert outcome.requested is Request.AGENT


def test_timeouts_reprompt_then_go_to_the_default(h: E2E) -> None:
    call = h.call(caller("en", "", "", ""))
    outcome = h.wait_outcome(call)
    prompts = h.prompts(call)
    assert prompts.count("main-menu") == 3  # asked three times
    assert prompts.count("no-input") == 2  # told twice that nothing was heard
    assert outcome.requested is Request.AGENT
    assert outcome.ended is EndReason.TIMEOUTS


def test_one_timeout_then_an_answer(h: E2E) -> None:
    call = h.call(caller("fa", "", "4"))
    outcome = h.wait_outcome(call)
    assert h.prompts(call).count("main-menu") == 2
    assert outcome.requested is Request.VOICEMAIL


def test_invalid_digit_reprompts_then_accepts(h: E2E) -> None:
    call = h.call(caller("en", "9", "3"))
    outcome = h.wait_outcome(call)
    assert h.prompts(call).count("invalid-option") == 1
    assert h.prompts(call).count("main-menu") == 2
    assert outcome.requested is Request.AGENT
    assert outcome.ended is EndReason.COMPLETED


def test_invalid_digits_until_the_limit_go_to_an_agent(h: E2E) -> None:
    call = h.call(caller("fa", "9", "7", "8"))
    outcome = h.wait_outcome(call)
    assert h.prompts(call).count("invalid-option") >= 2
    assert outcome.requested is Request.AGENT
    assert outcome.ended is EndReason.INVALID_INPUT


def test_bad_account_number_is_refused_and_asked_again(h: E2E) -> None:
    bad = ACCOUNT[:-1] + str((int(ACCOUNT[-1]) + 1) % 10)  # wrong check digit
    call = h.call(caller("en", "1", "1", "2", "3", bad + "#", ACCOUNT + "#", "1"))
    outcome = h.wait_outcome(call)
    assert "invalid-account" in h.prompts(call)
    assert outcome.account == ACCOUNT


def test_account_re_entered_after_saying_no(h: E2E) -> None:
    other = luhn_complete("55555555")
    call = h.call(caller("fa", "1", "1", "2", "3", ACCOUNT + "#", "2", other + "#", "1"))
    outcome = h.wait_outcome(call)
    assert outcome.account == other


def test_type_ahead_skips_the_prompts(h: E2E) -> None:
    # English, agent: both keys pressed during the welcome, before any menu asks
    call = h.call(CallerScript(number=NUMBER, timed_digits=((0.5, "2"), (1.0, "3"))))
    outcome = h.wait_outcome(call)
    assert outcome.language == "en"
    assert outcome.requested is Request.AGENT
    assert "choose-language" not in h.prompts(call)  # the caller was ahead of it
    assert outcome.ended_at - outcome.started_at < 5.0


def test_type_ahead_of_a_whole_complaint(h: E2E) -> None:
    keys = "2" + "1" + "3" + "2" + "3" + ACCOUNT + "#" + "1"
    call = h.call(CallerScript(number=NUMBER, timed_digits=((0.3, keys),), digit_gap_s=0.15))
    outcome = h.wait_outcome(call)
    assert (outcome.language, outcome.category, outcome.urgent, outcome.vulnerable) == (
        "en", "billing", False, False,
    )
    assert outcome.account == ACCOUNT
    assert outcome.requested is Request.AGENT


# -- hanging up in every menu keeps what was entered -------------------------------------


A = ACCOUNT + "#"


@pytest.mark.parametrize(
    ("prompt", "answers", "expected"),
    [
        ("choose-language", (), {"path": ("language",)}),
        ("main-menu", ("2",), {"language": "en"}),
        ("category-menu", ("2", "1"), {"language": "en"}),
        ("urgency-menu", ("2", "1", "3"), {"category": "billing"}),
        ("care-menu", ("2", "1", "3", "1"), {"category": "billing", "urgent": True}),
        ("enter-account", ("2", "1", "3", "1", "2"),
         {"category": "billing", "urgent": True, "vulnerable": True, "care": "disability"}),
        ("confirm-number", ("2", "1", "3", "2", "1", A),
         {"category": "billing", "urgent": False, "vulnerable": True, "care": "elderly",
          "account": ACCOUNT}),
        ("enter-reference", ("1", "2"), {"language": "fa"}),
        ("after-status-menu", ("1", "2", "12345#", "1"), {"reference": "12345"}),
        ("callback-confirm", ("1", "5"), {"language": "fa"}),
        ("enter-callback-number", ("2", "5", "2"), {"language": "en"}),
    ],
)
def test_hang_up_in_every_menu_keeps_what_was_entered(
    h: E2E, prompt: str, answers: tuple[str, ...], expected: dict[str, object]
) -> None:
    call = h.call(CallerScript(number=NUMBER, answers=answers))
    h.hang_up_at(call, prompt)
    outcome = h.wait_outcome(call, limit_s=30.0)
    assert outcome.requested is Request.HUNG_UP_IN_IVR
    assert outcome.ended is EndReason.HUNG_UP
    assert outcome.caller_number == NUMBER
    for field, value in expected.items():
        assert getattr(outcome, field) == value, field
    assert not h.events(CallQueued, call)
    assert h.app.callflow.in_ivr == 0


def test_hang_up_while_recording_is_a_voicemail(h: E2E) -> None:
    call = h.call(caller("fa", "4"))
    h.run_until(lambda: any(c.startswith("RECORD FILE") for c in h.agi_commands(call)))
    h.advance(0.3)  # speaking; the caller ends the message by hanging up
    call.hang_up()
    outcome = h.wait_outcome(call, limit_s=30.0)
    assert outcome.requested is Request.VOICEMAIL
    assert outcome.ended is EndReason.HUNG_UP
    assert outcome.recording == "shenava-vm/e2e-1"


def test_hang_up_after_choosing_an_agent_before_joining(h: E2E) -> None:
    call = h.call(caller("en", "3"))
    h.hang_up_at(call, "transfer-agent")
    h.advance(5.0)
    # the caller was gone before the line: never left waiting nor counted as an answer
    assert h.app.dispatcher.waiting == 0
    assert h.app.counts.in_progress == 0


def test_prompts_come_from_the_configured_sound_folder(tmp_path: Path) -> None:
    base = e2e_config()
    config = dataclasses.replace(base, ivr=dataclasses.replace(base.ivr, sound_folder="site-7"))
    h = E2E.build(tmp_path, config=config)
    try:
        call = h.call(caller("en", "3"))  # nobody logged in: the caller holds
        h.run_until(lambda: any("hold-options" in c for c in h.agi_commands(call)), limit_s=200.0)
        played = [c.split()[2] for c in h.agi_commands(call) if c.startswith(("STREAM FILE", "GET DATA"))]
        # a bilingual prompt may name its language's folder first (fa/site-7/welcome)
        assert played and all(p.removeprefix("fa/").startswith("site-7/") for p in played)
        assert all(f.split("/")[1] == "site-7" for f in h.heard(call) if "/digits/" not in f)
    finally:
        h.stop()


# -- AGI round trips per caller (#16 item 3) ----------------------------------------


@BOTH
def test_a_complaint_takes_fewer_agi_commands_and_sounds_as_before(h: E2E, lang: str) -> None:
    """The outcome's seven channel variables go in one ``EXEC MSet``, and the
    channel's language is not set to the one it has; ``SHENAVA_LANG`` comes
    with ``AsyncAGIStart`` (manager.conf's ``channelvars``), not from a ``GET
    VARIABLE``; the bilingual language menu plays its prompts by their
    language's folder instead of switching ``CHANNEL(language)`` twice: 15
    commands in Persian, 14 in English, where there were 24 in both, then 18
    and 17 (#16 item 3). The hold starts with its music, not with setting the
    language again. What the caller hears (the files Asterisk finds, in
    order), the keys and what the channel carries are unchanged."""
    call = h.call(caller(lang, "1", "3", "1", "2", ACCOUNT + "#", "1"))
    h.wait_outcome(call)
    h.queued(call)
    commands = h.agi_commands(call)
    ivr = commands[: commands.index('STREAM FILE shenava/transfer-agent ""') + 1]
    assert len(ivr) == {"fa": 15, "en": 14}[lang]
    assert not [c for c in ivr if c.startswith("GET VARIABLE")]
    languages = [c.rsplit(" ", 1)[-1] for c in ivr if c.startswith("SET VARIABLE CHANNEL(language)")]
    assert languages == {"fa": ['"fa"'], "en": []}[lang]  # the English channel needs none
    assert not [c for c in ivr if c.startswith("SET VARIABLE SHENAVA_")]
    assert [c for c in ivr if c.startswith("EXEC")] == [
        f"EXEC MSet SHENAVA_LANG={lang},SHENAVA_REQUEST=agent,SHENAVA_CATEGORY=billing,"
        f"SHENAVA_URGENT=1,SHENAVA_VULNERABLE=1,SHENAVA_CARE=disability,SHENAVA_ACCOUNT={ACCOUNT}"
    ]
    # the same prompts, digits and keys as before
    assert h.prompts(call)[:12] == [
        "welcome", "choose-language", "welcome", "choose-language", "main-menu",
        "category-menu", "urgency-menu", "care-menu", "enter-account", "you-entered",
        "confirm-number", "transfer-agent",
    ]
    assert f"SAY DIGITS {ACCOUNT} 0123456789*#" in ivr
    # ... and the same files, in the same languages: what the caller hears
    assert h.heard(call)[:22] == [
        "fa/shenava/welcome", "fa/shenava/choose-language",
        "en/shenava/welcome", "en/shenava/choose-language",
        *(f"{lang}/shenava/{p}" for p in (
            "main-menu", "category-menu", "urgency-menu", "care-menu", "enter-account", "you-entered",
        )),
        *(f"{lang}/digits/{d}" for d in ACCOUNT),
        f"{lang}/shenava/confirm-number", f"{lang}/shenava/transfer-agent",
    ]
    variables = call.agi_channel.variables
    assert {k: v for k, v in variables.items() if k.startswith("SHENAVA_")} == {
        "SHENAVA_LANG": lang, "SHENAVA_REQUEST": "agent", "SHENAVA_CATEGORY": "billing",
        "SHENAVA_URGENT": "1", "SHENAVA_VULNERABLE": "1", "SHENAVA_CARE": "disability",
        "SHENAVA_ACCOUNT": ACCOUNT,
    }
    assert variables.get("CHANNEL(language)", call.agi_channel.language) == lang
    # the IVR left the channel in the caller's language: the hold goes straight to music
    assert commands[len(ivr)] == "EXEC MusicOnHold default,30"


@pytest.mark.parametrize("set_language", [True, False])
def test_the_hold_sets_the_language_unless_the_channel_has_it(set_language: bool) -> None:
    """A caller joined by other means (a take-over) may have any language on
    the channel: the hold sets it before the music; after the IVR it need not."""
    from ami_bridge.agi import parse_result
    from routing.hold import HoldConfig, HoldLoop

    sent: list[str] = []

    def agi(channel: str, command: str) -> Any:
        sent.append(command)
        return succeed(parse_result("200 result=0")) if not command.startswith("EXEC") else Deferred()

    HoldLoop(agi, "Local/s@x;1", "en", HoldConfig(), position=lambda: 1,
             on_choice=lambda key: None, set_language=set_language).start()
    expected = ["SET VARIABLE CHANNEL(language) en"] if set_language else []
    assert sent == [*expected, "EXEC MusicOnHold default,45"]

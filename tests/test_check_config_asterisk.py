"""check-config reads manager.conf and extensions.conf the way Asterisk 22 does.

Each case names the Asterisk function it imitates (main/manager.c get_perm(),
manager_add_filter(), should_send_event(); main/pbx.c _extension_match_core()).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shenava.asterisk_conf import ConfItem, Origin
from shenava.check_config import (
    EventFilter,
    Finding,
    Severity,
    check_config,
    event_passes,
    exit_code,
    extension_matches,
    parse_classes,
)
from shenava.check_config.event_filters import _parse_filter

ALL = {"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf", "reporting",
       "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security", "message", "all"}


@pytest.fixture
def setup(tmp_path: Path, shipped_etc: Path) -> tuple[Path, Path]:
    config = tmp_path / "shenava.toml"
    shutil.copy(shipped_etc / "shenava.example.toml", config)
    asterisk = tmp_path / "asterisk"
    shutil.copytree(shipped_etc / "asterisk", asterisk)
    return config, asterisk


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def codes(findings: list[Finding], severity: Severity) -> set[str]:
    return {f.code for f in findings if f.severity is severity}


# -- read/write: manager.c get_perm() and ast_instring() -------------------------


@pytest.mark.parametrize(
    ("value", "granted"),
    [
        ("call,agi,dtmf,system", {"call", "agi", "dtmf", "system"}),
        ("call, agi", {"call"}),  # " agi" is not "agi"
        ("call ,agi", {"agi"}),  # "call " is not a prefix of "call"
        ("Call,AGI", set()),  # case counts
        ("all", {"all"}),  # "all" (INT_MAX) stands for every class
        ("none", set()),
        ("sys,call", {"system", "call"}),  # a token before a comma matches as a prefix
        ("call,sys", {"call"}),  # ...the last one must be whole
        ("call,,agi", ALL),  # an empty token is a prefix of every name, "all" included
        ("", set()),
    ],
)
def test_classes_are_read_like_asterisk(value: str, granted: set[str]) -> None:
    assert parse_classes(value) == granted


def test_spaces_in_class_lists_are_an_error_with_a_hint(setup: tuple[Path, Path]) -> None:
    config, asterisk = setup
    edit(asterisk / "manager.conf", "read = call,agi,dtmf,system", "read = call, agi, dtmf, system")
    findings = check_config(config, asterisk)
    error = next(f for f in findings if f.code == "manager.read_classes")
    assert "lacks agi, dtmf" in error.message and "no spaces" in error.message
    assert "manager.read_unknown_class" in codes(findings, Severity.WARNING)


def test_read_needs_only_call_agi_dtmf(setup: tuple[Path, Path]) -> None:
    config, asterisk = setup
    edit(asterisk / "manager.conf", "read = call,agi,dtmf,system", "read = dtmf,agi,call")
    findings = check_config(config, asterisk)
    assert "manager.read" in codes(findings, Severity.OK)
    assert exit_code(findings) == 0


def test_write_system_instead_of_reporting_works_but_is_warned(setup: tuple[Path, Path]) -> None:
    config, asterisk = setup
    edit(asterisk / "manager.conf", "write = call,agi,originate,reporting", "write = call,agi,originate,system")
    findings = check_config(config, asterisk)
    assert "manager.write" in codes(findings, Severity.OK)
    assert "manager.write_system" in codes(findings, Severity.WARNING)
    assert exit_code(findings) == 0


def test_user_names_ignore_case_like_asterisk(setup: tuple[Path, Path]) -> None:
    config, asterisk = setup
    edit(asterisk / "manager.conf", "[shenava]", "[Shenava]")
    findings = check_config(config, asterisk)
    assert "manager.user" in codes(findings, Severity.OK)


def test_session_options(setup: tuple[Path, Path]) -> None:
    config, asterisk = setup
    edit(asterisk / "manager.conf", "writetimeout = 5000", "writetimeout = 50\nallowmultiplelogin = no")
    findings = check_config(config, asterisk)
    assert {"manager.writetimeout", "manager.single_login"} <= codes(findings, Severity.WARNING)


def test_all_defaults_bind_every_address(setup: tuple[Path, Path]) -> None:
    config, asterisk = setup
    edit(asterisk / "manager.conf", "bindaddr = 127.0.0.1 ", "")
    assert "manager.bindaddr" in codes(check_config(config, asterisk), Severity.OK)


# -- eventfilter: manager_add_filter() and should_send_event() -------------------


def item(name: str, value: str) -> ConfItem:
    return ConfItem(name, value, Origin(Path("manager.conf"), 1))


def flt(name: str, value: str = "") -> EventFilter:
    parsed = _parse_filter(item(name, value))
    assert isinstance(parsed, EventFilter), parsed
    return parsed


def test_legacy_exclude_is_a_search_in_the_whole_event() -> None:
    dial = flt("eventfilter", "!Event: Dial")
    assert dial.exclude and dial.matches("DialBegin") and dial.matches("DialEnd")
    request = flt("eventfilter", "!Event: HangupRequest")
    assert request.matches("HangupRequest") and request.matches("Hangup") is False
    assert event_passes("Hangup", [request]) is True
    assert event_passes("DialEnd", [dial]) is False


def test_legacy_pattern_on_other_headers_cannot_be_judged() -> None:
    local = flt("eventfilter", "!Channel: Local/")
    assert local.matches("Newchannel") is None
    assert event_passes("Newchannel", [local]) is None


def test_include_filters_admit_only_what_they_match() -> None:
    only = [flt("eventfilter", "Event: Newchannel")]
    assert event_passes("Newchannel", only) is True
    assert event_passes("Hangup", only) is False
    both = [*only, flt("eventfilter", "!Event: Newchannel")]
    assert event_passes("Newchannel", both) is False


def test_advanced_filters() -> None:
    by_name = flt("eventfilter(action(exclude),name(VarSet))")
    assert by_name.exclude and by_name.matches("VarSet") and by_name.matches("Hangup") is False
    # the name is compared exactly (a hash of it): name(varset) is not VarSet
    assert flt("eventfilter(action(exclude),name(varset))").matches("VarSet") is False
    # "!" before the pattern excludes too, unless action() says otherwise
    assert flt("eventfilter(name(VarSet))", "!").exclude
    assert not flt("eventfilter(action(include),name(VarSet))", "!").exclude
    header = flt("eventfilter(action(exclude),name(Hangup),header(Cause),method(exact))", "16")
    assert header.matches("Hangup") is None and header.matches("Newstate") is False


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("eventfilter(name(VarSet))", "X", "needs a method"),
        ("eventfilter(action(exclude)", "", "no name or header"),  # as manager.c's own test
        ("eventfilter(action(exclude)),name(X", "", "not formatted"),
        ("eventfilter(nme(VarSet))", "", "unknown"),
        ("eventfilter(name(VarSet),method(regex))", "", "needs a pattern"),
        ("eventfilter", "", "needs a pattern"),
        ("eventfilter", "!Event: [", "does not compile"),
    ],
)
def test_filters_asterisk_refuses(name: str, value: str, why: str) -> None:
    parsed = _parse_filter(item(name, value))
    assert isinstance(parsed, str) and why in parsed


def test_ignored_and_unverifiable_filters_are_warned(setup: tuple[Path, Path]) -> None:
    config, asterisk = setup
    edit(asterisk / "manager.conf", "eventfilter = !Event: VarSet",
         "eventfilter(name(VarSet)) = X\neventfilter = !Channel: Local/")
    findings = check_config(config, asterisk)
    assert {"manager.filter_ignored", "manager.filter_unverified"} <= codes(findings, Severity.WARNING)
    assert exit_code(findings) == 0


def test_list_answers_are_not_subject_to_filters(setup: tuple[Path, Path]) -> None:
    """CoreShowChannel/Status events are written straight to the session (astman_append):
    include filters that only admit call events are fine."""
    config, asterisk = setup
    names = ("Newchannel|Newstate|Hangup|NewCallerid|Rename|DialBegin|DialEnd|BridgeEnter|BridgeLeave|"
             "OriginateResponse|DTMFEnd|AsyncAGIStart|AsyncAGIExec|AsyncAGIEnd")
    edit(asterisk / "manager.conf", "eventfilter = !Event: VarSet", f"eventfilter = ^Event: ({names})")
    findings = check_config(config, asterisk)
    assert codes(findings, Severity.ERROR) == set(), "\n".join(map(str, findings))


# -- dialplan: pbx.c _extension_match_core() -------------------------------------


@pytest.mark.parametrize(
    ("pattern", "number", "matches"),
    [
        ("_[+0-9]X.", "+989121234567", True),
        ("_[+0-9]X.", "09121234567", True),
        ("_[+0-9]X.", "123", True),
        ("_[+0-9]X.", "12", False),  # "." needs at least one more character
        ("_X.", "+989121234567", False),
        ("_X.", "101", True),
        ("_X.", "7", False),
        ("_0[1-9]XX", "0912", True),
        ("_0[1-9]XX", "0012", False),
        ("_NXX", "212", True),
        ("_NXX", "112", False),
        ("_ZX!", "12", True),
        ("_ZX!", "1", False),
        ("_Z!", "1", True),
        ("101", "101", True),
        ("101", "1010", False),
        ("_[]X", "5", True),  # an empty set is skipped
    ],
)
def test_extension_matching(pattern: str, number: str, matches: bool) -> None:
    assert extension_matches(pattern, number) is matches


def test_the_connect_context_is_optional(setup: tuple[Path, Path]) -> None:
    config, asterisk = setup
    edit(asterisk / "extensions.conf", "[shenava-connect]", "[unused]")
    findings = check_config(config, asterisk)
    assert "dialplan.connect_absent" in codes(findings, Severity.OK)
    assert exit_code(findings) == 0


def test_a_broken_connect_context_is_only_warned(setup: tuple[Path, Path]) -> None:
    config, asterisk = setup
    edit(asterisk / "extensions.conf", "Dial(PJSIP/${EXTEN},20,gm)\n same => n,AGI(agi:async)",
         "Dial(PJSIP/${EXTEN},20)\n same => n,Playback(bye)")
    findings = check_config(config, asterisk)
    assert {"dialplan.connect_no_g", "dialplan.connect_no_m", "dialplan.connect_no_agi"} <= codes(
        findings, Severity.WARNING)
    assert exit_code(findings) == 0


def test_the_callback_context_is_the_one_configured(setup: tuple[Path, Path]) -> None:
    """site.callback_context names the context check-config looks for."""
    config, asterisk = setup
    edit(asterisk / "extensions.conf", "[shenava-callback]", "[site-callbacks]")
    findings = check_config(config, asterisk)
    assert "dialplan.callback_missing" in codes(findings, Severity.ERROR)
    edit(config, 'callback_context = "shenava-callback"', 'callback_context = "site-callbacks"')
    findings = check_config(config, asterisk)
    assert "dialplan.callback_missing" not in codes(findings, Severity.ERROR)
    assert exit_code(findings) == 0

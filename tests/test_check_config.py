"""check-config against the shipped Asterisk snippets and broken variants of them."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from shenava.asterisk_conf import AsteriskConfError, read_asterisk_conf
from shenava.check_config import (
    EXIT_CONFIG_INVALID,
    EXIT_ERRORS,
    EXIT_OK,
    Finding,
    Severity,
    check_config,
    dial_options,
    exit_code,
    run_check,
)
from tests.paths import ASTERISK_CONF

REAL_CONF = ASTERISK_CONF


@pytest.fixture
def setup(tmp_path: Path, shipped_etc: Path) -> tuple[Path, Path]:
    """A copy of the example config and the shipped Asterisk files, to break."""
    config = tmp_path / "shenava.toml"
    shutil.copy(shipped_etc / "shenava.example.toml", config)
    # the example's state folder, /var/lib/shenava, is this machine's: a test's own
    # (another process emptying or re-making the machine's failed a check under load)
    edit(config, 'folder = "/var/lib/shenava"', f'folder = "{tmp_path / "state"}"')
    asterisk = tmp_path / "asterisk"
    shutil.copytree(shipped_etc / "asterisk", asterisk)
    return config, asterisk


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


USERS_FILE_CODES = {"http.no_users", "http.users_unreadable", "http.users_file_mode",
                    "http.unknown_agents", "http.no_supervisor", "http.users"}
"""About the example's users_file, /etc/shenava/users.json: this machine's own (or none)."""


def codes(findings: list[Finding], severity: Severity | None = None) -> set[str]:
    return {f.code for f in findings
            if (severity is None or f.severity is severity) and f.code not in USERS_FILE_CODES}


def test_shipped_files_are_clean(shipped_etc: Path) -> None:
    findings = check_config(shipped_etc / "shenava.example.toml", shipped_etc / "asterisk")
    assert codes(findings, Severity.ERROR) == set()
    assert codes(findings, Severity.WARNING) == {"config.secret_placeholder"}
    assert {"manager.user", "manager.secret", "manager.read", "manager.write", "manager.filters",
            "dialplan.support", "dialplan.callback", "dialplan.connect"} <= codes(findings, Severity.OK)
    assert exit_code(findings) == EXIT_OK


def test_report_and_exit_code(shipped_etc: Path) -> None:
    out = io.StringIO()
    assert run_check(shipped_etc / "shenava.example.toml", shipped_etc / "asterisk", out) == EXIT_OK
    report = out.getvalue()
    assert report.strip().endswith("all good: 0 error(s), 1 warning(s)") or (
        "[http.no_users]" in report and report.strip().endswith("all good: 0 error(s), 2 warning(s)"))
    assert "manager.conf:" in report and "change-me" not in report


def test_invalid_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[ami]\nsecret = "x"\nport = "x"\n', encoding="utf-8")
    out = io.StringIO()
    assert run_check(bad, None, out) == EXIT_CONFIG_INVALID
    assert 'ami.port: expected an integer from 1 to 65535, got "x"' in out.getvalue()


def test_without_asterisk_dir_only_the_config_is_checked(shipped_etc: Path) -> None:
    findings = check_config(shipped_etc / "shenava.example.toml")
    assert codes(findings) == {"config.valid", "config.secret_placeholder"}


def test_embedded_redis_is_an_error_for_production(setup: tuple[Path, Path]) -> None:
    config, asterisk = setup
    edit(config, 'url = "redis://127.0.0.1:6379/0"', 'url = ""')
    assert "config.redis_embedded" in codes(check_config(config, asterisk), Severity.ERROR)


BROKEN = [
    # (file, old text, new text, expected error code)
    ("manager.conf", "[shenava]", "[someone-else]", "manager.user_missing"),
    ("manager.conf", "secret = change-me", "secret = other", "manager.secret_mismatch"),
    ("manager.conf", "secret = change-me", "", "manager.secret_missing"),
    ("manager.conf", "write = call,agi,originate,reporting", "write = call,agi,reporting", "manager.write_classes"),
    ("manager.conf", "write = call,agi,originate,reporting", "write = call,agi,originate", "manager.write_classes"),
    ("manager.conf", "write = call,agi,originate,reporting", "write = call, agi, originate, reporting",
     "manager.write_classes"),
    ("manager.conf", "read = call,agi,dtmf,system", "read = call,system", "manager.read_classes"),
    ("manager.conf", "read = call,agi,dtmf,system", "read = Call,agi,dtmf", "manager.read_classes"),
    ("manager.conf", "read = call,agi,dtmf,system", "read = call,agi,dtmf ,system", "manager.read_classes"),
    ("manager.conf", "enabled = yes", "enabled = no", "manager.disabled"),
    ("manager.conf", "port = 5038", "port = 5039", "manager.port_mismatch"),
    ("manager.conf", "bindaddr = 127.0.0.1", "bindaddr = 10.1.2.3", "manager.bind_mismatch"),
    ("manager.conf", "eventfilter = !Event: DialState", "eventfilter = !Event: Dial", "manager.filter_drops_needed"),
    ("manager.conf", "eventfilter = !Event: HangupRequest", "eventfilter = !Event: Hangup", "manager.filter_drops_needed"),
    ("manager.conf", "eventfilter = !Event: VarSet", "eventfilter = Event: VarSet", "manager.filter_drops_needed"),
    ("manager.conf", "eventfilter = !Event: VarSet",
     "eventfilter(action(exclude),name(AsyncAGIExec)) =", "manager.filter_drops_needed"),
    ("manager.conf", "eventfilter = !Event: VarSet", "eventfilter(name(Rename)) = !", "manager.filter_drops_needed"),
    ("manager.conf", "eventfilter = !Event: VarSet", "eventfilter = ^Event: (Newchannel|Hangup)",
     "manager.filter_drops_needed"),
    ("manager.conf", "[general]", "[general\n", "asterisk.unparsable"),
    ("extensions.conf", "[shenava-complaints]", "[other]", "dialplan.support_missing"),
    ("extensions.conf", " same => n,AGI(agi:async)\n same => n,Hangup()\n\n[shenava-connect]",
     " same => n,Hangup()\n\n[shenava-connect]", "dialplan.support_no_agi"),
    ("extensions.conf", "[shenava-callback]", "[callback-typo]", "dialplan.callback_missing"),
    ("extensions.conf", "exten => _[+0-9]X.,1,Set", "exten => _X.,1,Set", "dialplan.callback_no_match"),
    ("extensions.conf", " same => n,Dial(PJSIP/${EXTEN}@trunk,30)", " same => n,NoOp()", "dialplan.callback_no_dial"),
]


@pytest.mark.parametrize(("file", "old", "new", "code"), BROKEN, ids=[b[3] + ":" + b[2][:20] for b in BROKEN])
def test_broken_variants_are_reported(setup: tuple[Path, Path], file: str, old: str, new: str, code: str) -> None:
    config, asterisk = setup
    edit(asterisk / file, old, new)
    findings = check_config(config, asterisk)
    assert code in codes(findings, Severity.ERROR), "\n".join(map(str, findings))
    assert exit_code(findings) == EXIT_ERRORS


def test_a_missing_secret_is_never_printed(setup: tuple[Path, Path]) -> None:
    config, asterisk = setup
    edit(asterisk / "manager.conf", "secret = change-me", "secret = the-real-one")
    out = io.StringIO()
    assert run_check(config, asterisk, out) == EXIT_ERRORS
    assert "the-real-one" not in out.getvalue() and "change-me" not in out.getvalue()


def test_secret_file_is_compared(setup: tuple[Path, Path]) -> None:
    config, asterisk = setup
    (config.parent / "ami.secret").write_text("from-file\n", encoding="utf-8")
    edit(config, 'secret = "change-me"', 'secret_file = "ami.secret"')
    findings = check_config(config, asterisk)
    mismatch = [f for f in findings if f.code == "manager.secret_mismatch"]
    assert mismatch and "ami.secret_file" in mismatch[0].message
    edit(asterisk / "manager.conf", "secret = change-me", "secret = from-file")
    assert exit_code(check_config(config, asterisk)) == EXIT_OK


def test_missing_files_and_folder(setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, asterisk = setup
    (asterisk / "manager.conf").unlink()
    assert "asterisk.file_missing" in codes(check_config(config, asterisk), Severity.ERROR)
    assert "asterisk.dir_missing" in codes(check_config(config, tmp_path / "nowhere"), Severity.ERROR)


def test_warnings_for_missing_music_and_answer_and_noise(setup: tuple[Path, Path]) -> None:
    config, asterisk = setup
    edit(asterisk / "extensions.conf", "20,gm)", "20,g)")
    edit(asterisk / "extensions.conf", " same => n,Answer()\n", "")
    edit(asterisk / "manager.conf", "eventfilter = !Event: Newexten\n", "")
    edit(asterisk / "manager.conf", "read = call,agi,dtmf,system", "read = all")
    findings = check_config(config, asterisk)
    assert {"dialplan.connect_no_m", "dialplan.support_no_answer", "manager.filter_missing"} <= codes(
        findings, Severity.WARNING
    )
    assert exit_code(findings) == EXIT_OK


def test_the_real_capture_setup(shipped_etc: Path) -> None:
    """The Asterisk 22 used for the captures: read/write all, no filters, other contexts."""
    findings = check_config(shipped_etc / "shenava.example.toml", REAL_CONF)
    assert codes(findings, Severity.ERROR) == {
        "manager.secret_mismatch", "dialplan.support_missing", "dialplan.callback_missing"}
    assert {"manager.write_all", "manager.filter_missing"} <= codes(findings, Severity.WARNING)
    assert {"manager.read", "dialplan.connect"} <= codes(findings, Severity.OK)  # Dial(Local/...,20,gm), AGI


# -- pyst2's quirks, handled by shenava.asterisk_conf ---------------------------


def test_templates_includes_comments_and_escapes(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    config, _ = setup
    asterisk = tmp_path / "pbx"
    (asterisk / "manager.d").mkdir(parents=True)
    (asterisk / "manager.conf").write_text(
        "[general]\nenabled = yes\nbindaddr = 0.0.0.0\n"
        ";-- a block comment\nport = 9999\n--;\n"
        '#include "manager.d/*.conf"\n'
        "#exec /usr/local/bin/more-users\n",
        encoding="utf-8",
    )
    (asterisk / "manager.d" / "shenava.conf").write_text(
        "[ami-user](!)\nread = call,agi,dtmf,system,reporting\nwrite = call,agi,originate,system\n"
        + "".join(f"eventfilter = !Event: {e}\n" for e in (
            "Newexten", "VarSet", "DeviceStateChange", "NewConnectedLine", "NewAccountCode", "HangupRequest",
            "SoftHangupRequest", "DialState", "AGIExecStart", "AGIExecEnd", "DTMFBegin", "RTCPSent",
            "RTCPReceived", "ChannelTalkingStart", "ChannelTalkingStop"))
        + "[shenava](ami-user)\nsecret = change-me ; a comment\n",
        encoding="utf-8",
    )
    shutil.copy(setup[1] / "extensions.conf", asterisk / "extensions.conf")
    findings = check_config(config, asterisk)
    assert codes(findings, Severity.ERROR) == set(), "\n".join(map(str, findings))
    assert "asterisk.not_followed" in codes(findings, Severity.WARNING)  # the #exec
    user = read_asterisk_conf(asterisk / "manager.conf").section("shenava")
    assert user is not None and user.get("read") is not None
    assert str(user.get("secret").origin) == "shenava.conf:20"  # type: ignore[union-attr]


def test_escaped_semicolon_and_append_category(tmp_path: Path) -> None:
    path = tmp_path / "x.conf"
    path.write_text("[a]\nv = one\\;two ; comment\n[b]\n[a](+)\nw = 2\n", encoding="utf-8")
    conf = read_asterisk_conf(path)
    section = conf.section("a")
    assert section is not None
    assert [(i.name, i.value) for i in section.items] == [("v", "one;two"), ("w", "2")]
    assert conf.names() == ["a", "b"]


def test_parse_errors_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "inc.conf").write_text("ok = 1\nthis line has no equals sign\n", encoding="utf-8")
    path = tmp_path / "x.conf"
    path.write_text("[a]\n#include inc.conf\n", encoding="utf-8")
    with pytest.raises(AsteriskConfError, match=r"inc.conf:2: cannot parse: Item must be in name = value pairs"):
        read_asterisk_conf(path)


def test_missing_include_is_an_error_tryinclude_is_not(tmp_path: Path) -> None:
    path = tmp_path / "x.conf"
    path.write_text("[a]\n#tryinclude absent.conf\nk = v\n", encoding="utf-8")
    assert read_asterisk_conf(path).section("a") is not None
    path.write_text("[a]\n#include absent.conf\n", encoding="utf-8")
    with pytest.raises(AsteriskConfError, match="x.conf:2: #include absent.conf: no such file"):
        read_asterisk_conf(path)


def test_nested_includes_are_relative_to_the_config_folder(tmp_path: Path) -> None:
    """main/config.c config_text_file_load(): a relative #include is taken
    from Asterisk's config folder, not from the folder of the including file."""
    (tmp_path / "manager.d").mkdir()
    (tmp_path / "manager.d" / "users.conf").write_text("#include shared.conf\n", encoding="utf-8")
    (tmp_path / "shared.conf").write_text("[shenava]\nread = call\n", encoding="utf-8")
    (tmp_path / "manager.d" / "shared.conf").write_text("[wrong]\nread = all\n", encoding="utf-8")
    path = tmp_path / "manager.conf"
    path.write_text("#include manager.d/users.conf\n", encoding="utf-8")
    conf = read_asterisk_conf(path)
    assert conf.names() == ["shenava"]


def test_lines_before_any_section_are_noted(tmp_path: Path) -> None:
    path = tmp_path / "x.conf"
    path.write_text("stray = 1\n[a]\n", encoding="utf-8")
    notes = read_asterisk_conf(path).notes
    assert len(notes) == 1 and "outside any [section]" in notes[0].message


@pytest.mark.parametrize(
    ("args", "letters"),
    [
        ("PJSIP/101,20,gm", {"g", "m"}),
        ("PJSIP/101,20,m(default)g", {"m", "g"}),
        ("PJSIP/101,20,U(sub^a^b)m", {"U", "m"}),
        ("${IF($[${X}=1]?PJSIP/1:PJSIP/2)},20,g", {"g"}),
        ("PJSIP/101", set()),
    ],
)
def test_dial_options(args: str, letters: set[str]) -> None:
    assert dial_options(args) == letters


# -- --sounds-dir ---------------------------------------------------------------------


def _config_with_languages(tmp_path: Path, languages: str) -> Path:
    config = tmp_path / "shenava.toml"
    config.write_text(f'[ami]\nsecret = "x"\n[redis]\nurl = "redis://127.0.0.1:6379/0"\n'
                      f'[site]\nlanguages = {languages}\n')
    return config


def test_menu_prompts_are_the_ones_the_shipped_menus_name() -> None:
    from ivr.menu_schema import load_menus
    from shenava.check_config import menu_prompts

    names = menu_prompts(load_menus())
    assert {"welcome", "main-menu", "invalid-option"} <= names
    assert any(name.startswith("status-") for name in names)


def test_an_empty_sounds_folder_names_what_is_missing(tmp_path: Path) -> None:
    from shenava.check_config import check_config

    sounds = tmp_path / "sounds"
    sounds.mkdir()
    findings = check_config(_config_with_languages(tmp_path, '["fa", "en"]'), sounds_dir=sounds)
    codes = [f.code for f in findings]
    assert codes.count("sounds.missing") == 2 and codes.count("sounds.no_beep") == 2
    missing = next(f for f in findings if f.code == "sounds.missing")
    assert "shenava/after-status-menu" in missing.message and "more" in missing.message


@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                    reason="espeak-ng and sox (Debian packages) are not installed")
def test_what_prompts_build_makes_is_what_check_config_wants(tmp_path: Path) -> None:
    from shenava.check_config import check_config
    from shenava.cli import prompts_main as build

    config = _config_with_languages(tmp_path, '["en"]')
    sounds = tmp_path / "sounds"
    assert build([str(sounds), "-c", str(config)]) == 0
    findings = check_config(config, sounds_dir=sounds)
    sounds_findings = [f for f in findings if f.code.startswith("sounds.")]
    assert [f.code for f in sounds_findings if f.severity.value != "ok"] == []
    assert any(f.code == "sounds.complete" for f in findings)

    (sounds / "en" / "shenava" / "main-menu.wav").unlink()
    (sounds / "en" / "beep.wav").unlink()
    (sounds / "beep.wav").unlink()
    findings = check_config(config, sounds_dir=sounds)
    assert [(f.code, "shenava/main-menu" in f.message) for f in findings
            if f.severity.value == "error" and f.code.startswith("sounds.")] == [
        ("sounds.missing", True), ("sounds.no_beep", False)]


def test_flow_prompts_are_every_prompt_the_hold_loop_and_call_flow_play() -> None:
    import re

    from shenava.check_config import FLOW_PROMPTS

    root = Path(__file__).resolve().parent.parent
    text = "".join((root / part).read_text(encoding="utf-8")
                   for part in ("routing/hold.py", "shenava/callflow.py"))
    played = set(re.findall(r"sound_folder\}/([a-z0-9-]+)", text))
    assert played and played <= set(FLOW_PROMPTS)


def test_who_can_sign_in_is_checked(setup: tuple[Path, Path], tmp_path: Path) -> None:
    import os

    from complaints.roles import Role
    from shenava.http.demo_door import DEMO_HASHER
    from shenava.users import FileUserStore, make_user

    config, _asterisk = setup
    users = tmp_path / "users.json"
    edit(config, 'users_file = "/etc/shenava/users.json"', f'users_file = "{users}"')

    def found() -> dict[str, str]:
        return {f.code: f.message for f in check_config(config) if f.code.startswith("http.")}

    assert "does not exist yet" in found()["http.no_users"]
    assert f"shenava users -c {config} add" in found()["http.no_users"]
    users.write_text("", encoding="utf-8")  # as the README's install makes it
    os.chmod(users, 0o640)
    assert "has nobody in it" in found()["http.no_users"]
    store = FileUserStore(users)
    store.put(make_user("a1", Role.AGENT, "1234", 0.0, DEMO_HASHER))
    store.put(make_user("a9", Role.AGENT, "1234", 0.0, DEMO_HASHER))
    assert set(found()) == {"http.unknown_agents", "http.no_supervisor", "http.users"}
    assert found()["http.unknown_agents"].endswith(": a9")
    store.remove("a9")
    store.put(make_user("sara", Role.SUPERVISOR, "a-long-password", 0.0, DEMO_HASHER))
    assert set(found()) == {"http.users"}
    os.chmod(users, 0o644)
    assert set(found()) == {"http.users", "http.users_file_mode"}

"""AGI round trips per caller (#16 item 3): what the daemon no longer asks or sends.

1. ``SHENAVA_LANG`` comes with ``AsyncAGIStart`` when manager.conf's
   ``channelvars`` names it (``ChanVariable: SHENAVA_LANG=en``); without the
   header the daemon asks with ``GET VARIABLE`` as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from ami_bridge.message import Message
from ami_bridge.tracker import CallTracker
from shenava.check_config import manager_channelvars
from testpbx.options import PbxOptions
from testpbx.scripts import CallerScript
from testpbx.world import PbxWorld
from tests.e2e_harness import E2E, SHIPPED_MANAGER_CONF

NUMBER = "09121234567"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[E2E]:
    harness = E2E.build(tmp_path)
    yield harness
    harness.stop()


def _without_channelvars(tmp_path: Path) -> E2E:
    probe = E2E.build(tmp_path / "probe", connect=False)
    options = dataclasses.replace(probe.world.options, channelvars=())
    probe.stop()
    return E2E.build(tmp_path, pbx=options)


def _agi_starts(h: E2E) -> list[Message]:
    return [m for m in h.server_sent() if m.event == "AsyncAGIStart"]


# -- 1. SHENAVA_LANG from AsyncAGIStart ----------------------------------------------


def test_the_shipped_manager_conf_names_shenava_lang_in_channelvars() -> None:
    assert manager_channelvars(SHIPPED_MANAGER_CONF) == ("SHENAVA_LANG",)


def test_channelvars_is_read_from_general_the_last_line_winning(tmp_path: Path) -> None:
    conf = tmp_path / "manager.conf"
    conf.write_text(
        "[general]\nenabled = yes\nchannelvars = A\nchannelvars = B, SHENAVA_LANG\n\n"
        "[shenava]\nsecret = x\nchannelvars = NOT_HERE\n",
        encoding="utf-8",
    )
    assert manager_channelvars(conf) == ("B", "SHENAVA_LANG")
    conf.write_text("[general]\nenabled = yes\n", encoding="utf-8")
    assert manager_channelvars(conf) == ()


def test_check_config_warns_when_channelvars_does_not_name_shenava_lang(tmp_path: Path) -> None:
    from shenava.asterisk_conf import read_asterisk_conf
    from shenava.check_config import Severity, check_manager
    from tests.e2e_harness import e2e_config

    def finding(path: Path) -> object:
        found = [f for f in check_manager(e2e_config(), read_asterisk_conf(path)) if f.code == "manager.channelvars"]
        assert len(found) == 1
        return found[0].severity

    assert finding(SHIPPED_MANAGER_CONF) is Severity.OK
    conf = tmp_path / "manager.conf"
    conf.write_text(SHIPPED_MANAGER_CONF.read_text(encoding="utf-8").replace(
        "channelvars = SHENAVA_LANG", "channelvars = OTHER"), encoding="utf-8")
    assert finding(conf) is Severity.WARNING


def test_the_test_pbx_sends_chanvariable_on_channel_events_when_configured(tmp_path: Path) -> None:
    from testpbx.channel import Channel
    from testpbx.formatting import channel_event, dial_event

    world = PbxWorld(Clock(), PbxOptions(recordings_root=tmp_path, channelvars=("SHENAVA_LANG", "X")))
    ch = world.add_channel(Channel("Local/s@a-1;1", "Local", "1.1", "1.1", 0.0, "ctx", "s"))
    ch.variables["SHENAVA_LANG"] = "en"
    headers = channel_event("Newstate", ch)
    assert [v for k, v in headers if k == "ChanVariable"] == ["SHENAVA_LANG=en", "X="]
    # after the snapshot's own fields, as ast_manager_build_channel_state_string
    names = [k for k, _ in headers]
    assert names.index("ChanVariable") == names.index("Linkedid") + 1
    dest = dial_event("DialBegin", ch, None)
    assert ("DestChanVariable", "SHENAVA_LANG=en") in dest
    plain = PbxWorld(Clock(), PbxOptions(recordings_root=tmp_path))
    other = plain.add_channel(Channel("Local/s@a-2;1", "Local", "1.2", "1.2", 0.0, "ctx", "s"))
    assert not [k for k, _ in channel_event("Newstate", other) if k == "ChanVariable"]


def test_the_tracker_keeps_the_chanvariables_of_asyncagistart() -> None:
    tracker = CallTracker()
    base = [
        ("Channel", "Local/s@ivr-1;1"), ("ChannelState", "6"), ("ChannelStateDesc", "Up"),
        ("CallerIDNum", NUMBER), ("CallerIDName", "x"), ("Context", "complaints-ivr"),
        ("Exten", "s"), ("Uniqueid", "1.5"), ("Linkedid", "1.5"),
    ]
    tracker.handle(Message([("Event", "Newchannel"), *base]), 1.0)
    tracker.handle(Message([
        ("Event", "AsyncAGIStart"), *base, ("ChanVariable", "SHENAVA_LANG=en"),
        ("ChanVariable", "OTHER=a=b"), ("ChanVariable", "EMPTY="), ("Env", "agi_request%3A%20async%0A%0A"),
    ]), 2.0)
    channel = tracker.channel("1.5")
    assert channel is not None
    assert channel.variables == {"SHENAVA_LANG": "en", "OTHER": "a=b", "EMPTY": ""}


def test_shenava_lang_comes_with_asyncagistart_and_is_not_asked(h: E2E) -> None:
    call = h.call(CallerScript(number=NUMBER, variables={"SHENAVA_LANG": "en"}, answers=("3",)))
    outcome = h.wait_outcome(call)
    assert outcome.language == "en"
    assert outcome.path[0] != "language"  # the dialplan's language was used
    (start,) = _agi_starts(h)
    assert "SHENAVA_LANG=en" in start.get_all("ChanVariable")
    assert not [c for c in h.agi_commands(call) if c.startswith("GET VARIABLE")]


def test_an_empty_chanvariable_means_unset_and_is_not_asked_either(h: E2E) -> None:
    call = h.call(CallerScript(number=NUMBER, language="en", answers=("2", "3")))
    outcome = h.wait_outcome(call)
    (start,) = _agi_starts(h)
    assert start.get_all("ChanVariable") == ["SHENAVA_LANG="]
    assert outcome.path[:2] == ("language", "main")  # the language menu was played
    assert outcome.language == "en"
    assert not [c for c in h.agi_commands(call) if c.startswith("GET VARIABLE")]


@pytest.mark.parametrize("preset", [True, False])
def test_without_channelvars_the_daemon_asks_as_before(tmp_path: Path, preset: bool) -> None:
    h = _without_channelvars(tmp_path)
    try:
        variables = {"SHENAVA_LANG": "en"} if preset else {}
        call = h.call(CallerScript(number=NUMBER, variables=variables, answers=("3",) if preset else ("2", "3")))
        outcome = h.wait_outcome(call)
        (start,) = _agi_starts(h)
        assert start.get_all("ChanVariable") == []
        assert h.agi_commands(call)[0] == "GET VARIABLE SHENAVA_LANG"
        assert outcome.language == "en"
        assert (outcome.path[0] == "language") is not preset
    finally:
        h.stop()


# -- 3. the hold announcement as one Playback ----------------------------------------


def test_the_hold_announces_the_position_in_one_playback() -> None:
    """"Your position is" and its digits are one ``EXEC Playback`` (neither
    could be interrupted before); the options stay a ``GET DATA`` of their
    own, where a key counts."""
    from twisted.internet.defer import Deferred, succeed

    from ami_bridge.agi import parse_result
    from routing.hold import HoldConfig, HoldLoop

    sent: list[str] = []
    musics: list[Deferred[object]] = []

    def agi(channel: str, command: str) -> object:
        sent.append(command)
        if command.startswith("EXEC MusicOnHold"):
            d: Deferred[object] = Deferred()
            musics.append(d)
            return d
        if command.startswith("GET DATA"):
            return succeed(parse_result("200 result= (timeout)"))
        return succeed(parse_result("200 result=0"))

    loop = HoldLoop(agi, "Local/s@x;1", "fa", HoldConfig(announce_every_s=30.0), position=lambda: 12,  # type: ignore[arg-type]
                    on_choice=lambda key: None, set_language=False)
    loop.start()
    assert sent == ["EXEC MusicOnHold default,30"]
    musics[0].callback(parse_result("200 result=0"))
    assert sent[1:] == [
        "EXEC Playback shenava/hold-position&digits/1&digits/2",
        "GET DATA shenava/hold-options 3000 1",
        "EXEC MusicOnHold default,30",
    ]
    loop.stop()


def test_a_hold_announcement_takes_three_commands_on_the_test_pbx(h: E2E) -> None:
    call = h.call(CallerScript(number=NUMBER, answers=("1", "3", "")))  # silence at the options
    h.queued(call)

    def musics() -> list[int]:
        return [i for i, c in enumerate(h.agi_commands(call)) if c.startswith("EXEC MusicOnHold")]

    h.run_until(lambda: len(musics()) >= 2, limit_s=200.0)
    first, second = musics()[:2]
    cycle = h.agi_commands(call)[first + 1: second + 1]
    assert cycle == [
        "EXEC Playback shenava/hold-position&digits/1",
        "GET DATA shenava/hold-options 3000 1",
        "EXEC MusicOnHold default,30",
    ]
    assert h.alive(call)


def test_a_sound_named_with_its_language_folder_lasts_as_long_as_the_same_file(tmp_path: Path) -> None:
    from testpbx.agi_commands import heard_as
    from testpbx.audio import prompt_seconds

    options = PbxOptions(recordings_root=tmp_path, prompt_lengths_s={"shenava/welcome": 0.5})
    assert prompt_seconds(options, "fa/shenava/welcome") == prompt_seconds(options, "shenava/welcome") == 0.5
    langs = options.sound_languages
    # what Asterisk plays for each (main/file.c fileexists_core, languageprefix = yes)
    assert heard_as("shenava/welcome", "fa", langs) == "fa/shenava/welcome"
    assert heard_as("fa/shenava/welcome", "en", langs) == "fa/shenava/welcome"
    assert heard_as("fa/shenava/welcome", "fa_IR", langs) == "fa/shenava/welcome"
    assert heard_as("shenava/welcome", "fa_IR", langs) == "fa/shenava/welcome"
    assert heard_as("shenava/welcome", "de", langs) == "en/shenava/welcome"  # the default language
    assert heard_as("digits/7", "en", langs) == "en/digits/7"


# -- 2. the language menu without CHANNEL(language) switches ---------------------------


@pytest.mark.parametrize(
    ("channel_language", "key", "expected"),
    [
        ("en", "1", [  # a Persian choice on an English channel: one switch, after the choice
            "STREAM FILE fa/shenava/welcome 0123456789*#",
            "STREAM FILE fa/shenava/choose-language 0123456789*#",
            "STREAM FILE shenava/welcome 0123456789*#",
            "GET DATA shenava/choose-language 5000 1",
            'SET VARIABLE CHANNEL(language) "fa"',
            "GET DATA shenava/main-menu 5000 1",
        ]),
        ("en", "2", [
            "STREAM FILE fa/shenava/welcome 0123456789*#",
            "STREAM FILE fa/shenava/choose-language 0123456789*#",
            "STREAM FILE shenava/welcome 0123456789*#",
            "GET DATA shenava/choose-language 5000 1",
            "GET DATA shenava/main-menu 5000 1",
        ]),
        ("fa", "1", [  # a Persian channel: the English half by its folder
            "STREAM FILE shenava/welcome 0123456789*#",
            "STREAM FILE shenava/choose-language 0123456789*#",
            "STREAM FILE en/shenava/welcome 0123456789*#",
            "GET DATA en/shenava/choose-language 5000 1",
            "GET DATA shenava/main-menu 5000 1",
        ]),
        ("fa", "2", [
            "STREAM FILE shenava/welcome 0123456789*#",
            "STREAM FILE shenava/choose-language 0123456789*#",
            "STREAM FILE en/shenava/welcome 0123456789*#",
            "GET DATA en/shenava/choose-language 5000 1",
            'SET VARIABLE CHANNEL(language) "en"',
            "GET DATA shenava/main-menu 5000 1",
        ]),
    ],
)
def test_the_language_menu_switches_the_language_only_for_the_choice(
    channel_language: str, key: str, expected: list[str]
) -> None:
    """Before, ``SET VARIABLE CHANNEL(language)`` came before each half of the
    menu and after the choice: two or three per caller."""
    from twisted.internet.defer import succeed

    from ami_bridge.agi import parse_result
    from ivr.machine import MenuMachine
    from ivr.menu_schema import load_menus
    from ivr.runner import IVRRunner

    sent: list[str] = []
    keys = [key, "3"]

    class Channel:
        def execute(self, command: str) -> object:
            sent.append(command)
            if command.startswith("GET DATA"):
                return succeed(parse_result(f"200 result={keys.pop(0)}" if keys else "200 result= (timeout)"))
            return succeed(parse_result("200 result=0 endpos=8000"))

    class Sink:
        def on_outcome(self, outcome: object) -> None:
            return None

    machine = MenuMachine(load_menus())
    runner = IVRRunner(machine, Channel(), Clock(), Sink(), lambda ref: succeed(None),  # type: ignore[arg-type]
                       channel_language=channel_language)
    runner.run("c", NUMBER)
    assert sent[: len(expected)] == expected

"""Unit tests of the test PBX: one AMI session on a StringTransport and a Clock."""

from __future__ import annotations

import wave
from pathlib import Path
from urllib.parse import unquote

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ami_bridge.codec import AMIDecoder, Message, encode_action
from testpbx import (
    AfterSpeaking,
    AmiRights,
    AmiServerProtocol,
    CallerScript,
    PbxOptions,
    PbxWorld,
    PhoneMode,
    PhoneScript,
)
from testpbx.options import BUSY_FAR, BUSY_LEG, BUSY_RESPONSE
from testpbx.server import md5_key
from tests.paths import SAMPLE_RECORDING

SAMPLE_WAV = SAMPLE_RECORDING


def advance(clock: Clock, seconds: float) -> None:
    until = clock.seconds() + seconds
    while True:
        due = [c.getTime() for c in clock.getDelayedCalls() if c.active()]
        if not due or min(due) > until:
            break
        clock.advance(max(0.0, min(due) - clock.seconds()))
    clock.advance(max(0.0, until - clock.seconds()))


class Client:
    """A fake AMI client: actions in, decoded messages out."""

    def __init__(self, world: PbxWorld) -> None:
        self.protocol = AmiServerProtocol(world)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.decoder = AMIDecoder()
        self.seen: list[Message] = []
        self._n = 0

    def read(self) -> list[Message]:
        data = self.transport.value()
        self.transport.clear()
        messages = self.decoder.feed(data)
        self.seen += messages
        return messages

    def send(self, action: str, **headers: str) -> list[Message]:
        self.read()
        self._n += 1
        headers.setdefault("ActionID", f"a{self._n}")
        self.protocol.dataReceived(encode_action(action, list(headers.items())))
        return self.read()

    def login(self, events: str = "on") -> None:
        replies = self.send("Login", Username="shenava", Secret="s3cret", Events=events)
        assert replies[0].get("Message") == "Authentication accepted"

    def events(self, name: str) -> list[Message]:
        self.read()
        return [m for m in self.seen if m.event == name]

    def results(self) -> list[str]:
        return [unquote(m["Result"]) for m in self.events("AsyncAGIExec")]


@pytest.fixture
def clock() -> Clock:
    c = Clock()
    c.advance(1795339000.0)
    return c


@pytest.fixture
def world(clock: Clock, tmp_path: Path) -> PbxWorld:
    return PbxWorld(clock, PbxOptions(recordings_root=tmp_path))


def agi(client: Client, channel: str, command: str, command_id: str) -> None:
    reply = client.send("AGI", Channel=channel, Command=command, CommandID=command_id)
    assert reply[0].get("Message") == "Added AGI command to queue", reply[0].headers


# -- login ----------------------------------------------------------------------


def test_banner_and_plain_login(world: PbxWorld) -> None:
    client = Client(world)
    assert client.transport.value().startswith(b"Asterisk Call Manager/11.0.0\r\n")
    client.login()
    assert client.events("FullyBooted")


def test_md5_login(world: PbxWorld) -> None:
    client = Client(world)
    challenge = client.send("Challenge", AuthType="MD5")[0]["Challenge"]
    reply = client.send("Login", AuthType="MD5", Username="shenava", Key=md5_key(challenge, "s3cret"))
    assert reply[0]["Response"] == "Success"
    pong = client.send("Ping")[0]
    assert pong["Ping"] == "Pong" and pong["ActionID"] == "a3" and "Timestamp" in pong


def test_bad_secret_errors_after_a_delay_then_closes(world: PbxWorld, clock: Clock) -> None:
    client = Client(world)
    assert client.send("Login", Username="shenava", Secret="wrong") == []
    advance(clock, 0.5)
    assert client.read() == [] and not client.transport.disconnecting
    advance(clock, 0.6)
    reply = client.read()
    assert [(m["Response"], m["Message"]) for m in reply] == [("Error", "Authentication failed")]
    assert client.transport.disconnecting


def test_actions_before_login_are_refused(world: PbxWorld) -> None:
    client = Client(world)
    reply = client.send("Ping")[0]
    assert (reply["Response"], reply["Message"]) == ("Error", "Permission denied")


def test_logoff_says_goodbye_and_closes(world: PbxWorld) -> None:
    client = Client(world)
    client.login()
    reply = client.send("Logoff")[0]
    assert reply["Response"] == "Goodbye" and client.transport.disconnecting


# -- AsyncAGI -------------------------------------------------------------------


def test_agi_on_a_missing_channel(world: PbxWorld) -> None:
    client = Client(world)
    client.login()
    reply = client.send("AGI", Channel="Local/s@caller-sim-00000099;1", Command="ANSWER")[0]
    assert reply["Message"] == "Channel Local/s@caller-sim-00000099;1 does not exist."


def test_get_data_answers_per_prompt(world: PbxWorld, clock: Clock) -> None:
    client = Client(world)
    client.login()
    call = world.place_call(CallerScript(answers=("2", "1", "12345#")))
    start = client.events("AsyncAGIStart")
    assert start and start[0]["Channel"] == call.agi_channel.name
    assert call.agi_channel.name.startswith("Local/s@caller-sim-") and call.agi_channel.name.endswith(";1")
    assert unquote(start[0]["Env"]).startswith("agi_request: async\nagi_channel: Local/s@caller-sim-")
    name = call.agi_channel.name
    for i, command in enumerate(["GET DATA lang 4000 1", "GET DATA menu 4000 1", "GET DATA ref 4000 10"]):
        agi(client, name, command, f"c{i}")
        advance(clock, 8.0)
    assert client.results() == ["200 result=2\n", "200 result=1\n", "200 result=12345\n"]
    assert [m["CommandId"] for m in client.events("AsyncAGIExec")] == ["c0", "c1", "c2"]
    assert "".join(m["Digit"] for m in client.events("DTMFEnd")) == "2112345#"


def test_a_new_session_takes_over_a_caller_in_agi(world: PbxWorld, clock: Clock) -> None:
    """Transcript 45: B gets no AsyncAGIStart, finds the caller at the AGI step
    (the listing shows the last EXECed app), queues behind A's command and sees
    A's result too."""
    first = Client(world)
    first.login()
    call = world.place_call(CallerScript(answers=("",)))
    name = call.agi_channel.name
    assert first.events("AsyncAGIStart")
    agi(first, name, "EXEC MusicOnHold default,3", "moh-a")
    advance(clock, 0.5)
    first.protocol.connectionLost()

    second = Client(world)
    second.login()
    listing = [m for m in second.send("CoreShowChannels") if m.event == "CoreShowChannel"]
    mine = next(m for m in listing if m["Channel"] == name)
    assert (mine["Context"], mine["Exten"], mine["Priority"]) == ("complaints-ivr", "s", "3")
    assert (mine["Application"], mine["ApplicationData"]) == ("MusicOnHold", "default,3")
    agi(second, name, 'STREAM FILE beep ""', "take-1")
    advance(clock, 1.0)
    assert second.results() == []  # queued behind A's music
    advance(clock, 3.0)
    assert [m["CommandId"] for m in second.events("AsyncAGIExec")] == ["moh-a", "take-1"]
    assert second.events("AsyncAGIStart") == []
    [status] = [m for m in second.send("Status", Channel=name) if m.event == "Status"]
    assert (status["Application"], status["Data"], status["Priority"]) == (
        "MusicOnHold", "default,3", "3"
    )


def test_get_data_times_out(world: PbxWorld, clock: Clock) -> None:
    client = Client(world)
    client.login()
    call = world.place_call(CallerScript(answers=("",)))
    agi(client, call.agi_channel.name, "GET DATA beep 3000 1", "t1")
    advance(clock, 2.0)
    assert client.results() == []
    advance(clock, 2.0)
    assert client.results() == ["200 result= (timeout)\n"]


def test_type_ahead_digits_are_not_delivered(world: PbxWorld, clock: Clock) -> None:
    client = Client(world)
    client.login()
    call = world.place_call(CallerScript(timed_digits=[(0.5, "9")]))
    advance(clock, 1.0)
    assert [m["Digit"] for m in client.events("DTMFEnd")] == ["9"]
    agi(client, call.agi_channel.name, "GET DATA beep 2000 1", "t1")
    advance(clock, 3.0)
    assert client.results() == ["200 result= (timeout)\n"]


def test_record_file_writes_a_wav(world: PbxWorld, clock: Clock, tmp_path: Path) -> None:
    client = Client(world)
    client.login()
    script = CallerScript(audio=SAMPLE_WAV, speak_after_s=0.5, after_speaking=AfterSpeaking.PRESS_HASH)
    call = world.place_call(script)
    agi(client, call.agi_channel.name, "RECORD FILE shenava-vm/msg-1 wav # 20000", "r1")
    advance(clock, 10.0)
    [result] = client.results()
    assert result.startswith("200 result=35 (dtmf) endpos=")
    endpos = int(result.split("endpos=")[1])
    with wave.open(str(tmp_path / "shenava-vm" / "msg-1.wav"), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() == endpos > 6 * 8000


def test_record_file_stops_at_max_duration(world: PbxWorld, clock: Clock, tmp_path: Path) -> None:
    client = Client(world)
    client.login()
    call = world.place_call(CallerScript(audio=SAMPLE_WAV, speak_after_s=0.0))
    agi(client, call.agi_channel.name, "RECORD FILE short wav # 2000", "r1")
    advance(clock, 5.0)
    [result] = client.results()
    assert result.startswith("200 result=0 (timeout) endpos=")
    with wave.open(str(tmp_path / "short.wav"), "rb") as wav:
        assert 15000 <= wav.getnframes() <= 16100


def test_record_file_refuses_paths_outside_the_root(world: PbxWorld, clock: Clock) -> None:
    client = Client(world)
    client.login()
    call = world.place_call(CallerScript())
    agi(client, call.agi_channel.name, "RECORD FILE ../../etc/evil wav # 1000", "r1")
    advance(clock, 1.0)
    assert client.results() == ["200 result=-1 (writefile)\n"]


def test_caller_hangs_up_mid_command(world: PbxWorld, clock: Clock) -> None:
    client = Client(world)
    client.login()
    call = world.place_call(CallerScript(hangup_after_s=1.0))
    agi(client, call.agi_channel.name, 'STREAM FILE vm-intro ""', "s1")
    advance(clock, 2.0)
    client.read()
    line = call.agi_channel.name
    names = [m.event for m in client.seen
             if m.get("Channel") == line and m.event in ("AsyncAGIExec", "AsyncAGIEnd", "Hangup")]
    assert names == ["AsyncAGIExec", "AsyncAGIEnd", "Hangup"]
    assert client.results()[0].startswith("200 result=-1 endpos=")
    assert len(client.events("Hangup")) == 2
    reply = client.send("AGI", Channel=call.agi_channel.name, Command="HANGUP")[0]
    assert reply["Message"] == f"Channel {call.agi_channel.name} does not exist."


def test_unknown_agi_command_gives_510(world: PbxWorld, clock: Clock) -> None:
    client = Client(world)
    client.login()
    call = world.place_call(CallerScript())
    agi(client, call.agi_channel.name, "FROBNICATE now", "u1")
    advance(clock, 0.1)
    assert client.results() == ["510 Invalid or unknown command\n"]


# -- originate, bridge, redirect ------------------------------------------------


def _originate(client: Client, channel: str, **extra: str) -> None:
    reply = client.send("Originate", Channel=channel, Application="Wait", Data="60",
                        Async="true", ActionID="orig", **extra)
    assert reply[0]["Message"] == "Originate successfully queued"


def test_originate_no_answer_is_reason_3(world: PbxWorld, clock: Clock) -> None:
    world.register_phone("PJSIP/103", PhoneScript(mode=PhoneMode.NO_ANSWER))
    client = Client(world)
    client.login()
    _originate(client, "PJSIP/103", Timeout="5000")
    advance(clock, 6.0)
    [resp] = client.events("OriginateResponse")
    assert (resp["Response"], resp["Reason"], resp["ActionID"]) == ("Failure", "3", "orig")
    assert client.events("Hangup")[0]["Cause"] == "19"


@pytest.mark.parametrize("dial", ["PJSIP/104", "Local/104@agent-leg"])
def test_originate_busy_is_reason_5(world: PbxWorld, clock: Clock, dial: str) -> None:
    world.register_phone("PJSIP/104", PhoneScript(mode=PhoneMode.BUSY))
    client = Client(world)
    client.login()
    _originate(client, dial)
    advance(clock, 1.0)
    [resp] = client.events("OriginateResponse")
    assert (resp["Response"], resp["Reason"]) == ("Failure", "5")


@pytest.mark.parametrize("order", [
    (BUSY_RESPONSE, BUSY_LEG, BUSY_FAR),
    (BUSY_LEG, BUSY_RESPONSE, BUSY_FAR),
    (BUSY_FAR, BUSY_LEG, BUSY_RESPONSE),
])
def test_busy_behind_a_local_channel_ends_in_the_chosen_order(
    clock: Clock, order: tuple[str, str, str]
) -> None:
    """Transcript 46: Reason 5 with the ChannelId, DialEnd BUSY, ;1 Cause 0, ;2 Cause 17."""
    world = PbxWorld(clock, PbxOptions(busy_orders=(order,)))
    client = Client(world)
    client.login()
    _originate(client, "Local/105@agent-busy", ChannelId="leg-1", OtherChannelId="leg-2")
    advance(clock, 0.1)
    client.read()
    tail = [m for m in client.seen if m.event in ("OriginateResponse", "Hangup")]
    names = {"OriginateResponse": BUSY_RESPONSE}
    got = tuple(names.get(m.event or "") or (BUSY_LEG if m["Uniqueid"] == "leg-1" else BUSY_FAR)
                for m in tail)
    assert got == order
    response = next(m for m in tail if m.event == "OriginateResponse")
    assert (response["Response"], response["Reason"], response["Uniqueid"]) == ("Failure", "5", "leg-1")
    assert response["Channel"] == "Local/105@agent-busy"
    causes = {m["Uniqueid"]: m["Cause"] for m in tail if m.event == "Hangup"}
    assert causes == {"leg-1": "0", "leg-2": "17"}
    [dial_end] = client.events("DialEnd")
    assert dial_end["DialStatus"] == "BUSY"


def test_busy_orders_are_drawn_from_a_seeded_generator(clock: Clock) -> None:
    def orders(seed: int) -> list[tuple[str, str, str]]:
        world = PbxWorld(clock, PbxOptions(seed=seed))
        return [world.busy_order() for _ in range(40)]

    assert orders(1) == orders(1)
    assert len(set(orders(1))) > 1
    assert orders(1).count((BUSY_RESPONSE, BUSY_LEG, BUSY_FAR)) > 10  # the usual one


def test_originate_unknown_endpoint_is_reason_0(world: PbxWorld, clock: Clock) -> None:
    client = Client(world)
    client.login()
    _originate(client, "PJSIP/999")
    advance(clock, 0.1)
    [resp] = client.events("OriginateResponse")
    assert (resp["Response"], resp["Reason"], resp["Uniqueid"]) == ("Failure", "0", "<unknown>")


def test_originate_splits_each_variable_header_at_commas_as_asterisk_does(
    world: PbxWorld, clock: Clock
) -> None:
    """manager.c man_do_variable_value: "A=1,B=2" in one header is two variables."""
    world.register_phone("PJSIP/101", PhoneScript(answer_after_s=1.0, talk_s=30.0))
    client = Client(world)
    client.login()
    _originate(client, "PJSIP/101", ChannelId="agent-0002", Variable="SHENAVA_CALL=c-1,SHENAVA_X=2")
    advance(clock, 1.5)
    [resp] = client.events("OriginateResponse")
    agent = resp["Channel"]
    values = [
        client.send("Getvar", Channel=agent, Variable=name)[0]["Value"]
        for name in ("SHENAVA_CALL", "SHENAVA_X")
    ]
    assert values == ["c-1", "2"]


def test_bridge_then_agent_hangs_up_hangs_up_the_caller(world: PbxWorld, clock: Clock) -> None:
    world.register_phone("PJSIP/101", PhoneScript(answer_after_s=2.0, talk_s=5.0))
    client = Client(world)
    client.login()
    call = world.place_call(CallerScript())
    agi(client, call.agi_channel.name, "EXEC MusicOnHold default,0", "moh")
    advance(clock, 0.5)
    assert client.events("MusicOnHoldStart")
    _originate(client, "PJSIP/101", ChannelId="agent-0001")
    advance(clock, 2.5)
    [resp] = client.events("OriginateResponse")
    assert (resp["Reason"], resp["Uniqueid"]) == ("4", "agent-0001")
    agent = resp["Channel"]
    assert agent.startswith("PJSIP/101-")
    reply = client.send("Bridge", Channel1=call.agi_channel.name, Channel2=agent, Tone="no")
    assert reply[0]["Message"] == "Channels have been bridged"
    assert [m.event for m in client.seen[-4:]] == ["BridgeCreate", "MusicOnHoldStop", "BridgeEnter", "BridgeEnter"]
    advance(clock, 6.0)
    hung = {m["Channel"] for m in client.events("Hangup")}
    assert {call.agi_channel.name, call.caller_channel.name, agent} <= hung
    assert not client.events("AsyncAGIExec") and not client.events("AsyncAGIEnd")


def test_redirect_to_connect_context_returns_to_agi(world: PbxWorld, clock: Clock) -> None:
    world.register_phone("PJSIP/101", PhoneScript(answer_after_s=1.0, talk_s=4.0))
    client = Client(world)
    client.login()
    call = world.place_call(CallerScript())
    agi(client, call.agi_channel.name, "EXEC MusicOnHold default,0", "moh")
    advance(clock, 0.5)
    reply = client.send("Redirect", Channel=call.agi_channel.name, Context="shenava-connect",
                        Exten="101", Priority="1")
    assert reply[0]["Message"] == "Redirect successful"
    advance(clock, 2.0)
    assert client.results() == ["200 result=-1\n"]
    assert [m["DialStatus"] for m in client.events("DialEnd")][-1] == "ANSWER"
    advance(clock, 5.0)
    starts = client.events("AsyncAGIStart")
    assert len(starts) == 2 and starts[1]["Context"] == "shenava-connect"
    agi(client, call.agi_channel.name, "HANGUP", "bye")
    advance(clock, 0.1)
    assert client.results()[-1] == "200 result=1\n"


def test_status_and_variables(world: PbxWorld) -> None:
    client = Client(world)
    client.login()
    call = world.place_call(CallerScript(language="en"))
    name = call.agi_channel.name
    assert client.send("Getvar", Channel=name, Variable="CALLER_LANG")[0]["Value"] == "en"
    assert client.send("Setvar", Channel=name, Variable="REF", Value="C-1")[0]["Message"] == "Variable Set"
    assert client.send("Getvar", Channel=name, Variable="REF")[0]["Value"] == "C-1"
    listing = client.send("CoreShowChannels", ActionID="csc")
    assert listing[0]["EventList"] == "start" and listing[-1]["ListItems"] == "2"
    assert all(m["ActionID"] == "csc" for m in listing)
    status = client.send("Status", Channel=name)
    assert [m.event for m in status] == [None, "Status", "StatusComplete"]
    assert client.send("Getvar", Channel="nope", Variable="X")[0]["Message"] == "No such channel"


def test_rights_decide_which_events_and_actions_a_user_gets(clock: Clock, tmp_path: Path) -> None:
    """manager.c: read classes must hold all of an event's classes, exclude
    filters drop by regex on the event's text, write needs one of an action's
    classes; the answers to an action are never filtered."""
    rights = AmiRights.of(["call", "agi"], ["call", "agi"], exclude=["Event: Newstate"])
    world = PbxWorld(clock, PbxOptions(recordings_root=tmp_path, rights={"shenava": rights}))
    client = Client(world)
    client.login()
    world.place_call(CallerScript())
    advance(clock, 1.0)
    seen = {m.event for m in client.events("Newchannel") + client.seen}
    assert {"Newchannel", "AsyncAGIStart"} <= seen
    assert "Newstate" not in seen  # filtered out
    assert "FullyBooted" not in seen  # system is not in read
    denied = client.send("Originate", Channel="PJSIP/101", Application="Wait", Data="1")
    assert denied[0]["Message"] == "Permission denied"
    assert client.send("Ping")[0]["Ping"] == "Pong"  # no class needed
    listing = client.send("CoreShowChannels")
    assert listing[0]["Message"] == "Permission denied"  # needs system or reporting
    assert client.send("Hangup", Channel="nope")[0]["Message"] == "No such channel"  # call is enough


def test_list_answers_pass_filters_that_would_drop_them_as_events(clock: Clock, tmp_path: Path) -> None:
    rights = AmiRights.of(["call"], ["reporting"], exclude=["Event: CoreShowChannel"])
    world = PbxWorld(clock, PbxOptions(recordings_root=tmp_path, rights={"shenava": rights}))
    client = Client(world)
    client.login()
    world.place_call(CallerScript())
    advance(clock, 0.5)
    listing = client.send("CoreShowChannels", ActionID="csc")
    assert [m.event for m in listing][1] == "CoreShowChannel"
    assert listing[-1]["ListItems"] == "2"


# -- sessions ---------------------------------------------------------------------


def test_every_client_gets_events_unless_events_off(world: PbxWorld) -> None:
    one, two, quiet = Client(world), Client(world), Client(world)
    one.login()
    two.login()
    quiet.login(events="off")
    world.place_call(CallerScript())
    assert one.events("AsyncAGIStart") and two.events("AsyncAGIStart")
    assert quiet.read() == [] and not quiet.events("FullyBooted")


def test_the_standalone_test_pbx_serves_the_shipped_support_line(tmp_path: Path) -> None:
    """``shenava testpbx`` callers enter the context of etc/asterisk/extensions.conf,
    the daemon's default ``site.support_context``, not the captures' name."""
    from twisted.internet.testing import MemoryReactorClock

    from shenava.config import default_config
    from testpbx.service import start_testpbx

    reactor = MemoryReactorClock()
    world, _port = start_testpbx(reactor, "127.0.0.1", 0, "shenava", "s3cret", tmp_path)
    assert world.options.support_context == default_config().site.support_context
    shipped = (Path(__file__).resolve().parent.parent / "etc/asterisk/extensions.conf").read_text()
    assert f"[{world.options.support_context}]" in shipped
    custom, _ = start_testpbx(reactor, "127.0.0.1", 0, "shenava", "s3cret", tmp_path,
                              support_context="my-line")
    assert custom.options.support_context == "my-line"


def test_exec_mset_sets_several_variables_as_asterisk_does(world: PbxWorld, clock: Clock) -> None:
    """``EXEC MSet`` (``pbx_builtin_setvar_multiple``): pairs split at commas
    outside quotes and brackets, each at its first "="; an entry with no "="
    is skipped; quotes and backslashes are removed; result 0."""
    client = Client(world)
    client.login()
    call = world.place_call(CallerScript())
    name = call.agi_channel.name
    agi(client, name, r'EXEC MSet "A=1,B=x=y,NOEQ,C=\"q,r\",D=f(a,b),E="', "m1")
    advance(clock, 1.0)
    assert client.results() == ["200 result=0\n"]
    values = {v: client.send("Getvar", Channel=name, Variable=v)[0]["Value"] for v in "ABCDE"}
    assert values == {"A": "1", "B": "x=y", "C": "q,r", "D": "f(a,b)", "E": ""}
    assert "NOEQ" not in call.agi_channel.variables


def test_separate_args_follows_ast_app_separate_args() -> None:
    from testpbx.agi_commands import separate_args

    assert separate_args("a,b,,c") == ["a", "b", "", "c"]
    assert separate_args("a,") == ["a", ""]
    assert separate_args('"a,b",c') == ["a,b", "c"]
    assert separate_args(r"a\,b,c") == ["a,b", "c"]
    assert separate_args("x(1,2),[3,4],y") == ["x(1,2)", "[3,4]", "y"]
    assert separate_args("k=v=w", "=", 2) == ["k", "v=w"]


def test_the_scenario_report_reads_a_reference_played_either_way(world: PbxWorld) -> None:
    from testpbx.scenario import Scenario, ScenarioRun

    run = ScenarioRun(world, Scenario(), None)
    call: dict[str, object] = {"commands": 0, "queued_at": None, "references": [], "saved": False}
    run._command(call, "EXEC Playback shenava/your-reference&digits/7&digits/4&digits/0")
    run._command(call, 'STREAM FILE shenava/your-reference ""')
    run._command(call, 'SAY DIGITS 1234 ""')
    assert call["references"] == ["740", "1234"]


def test_playback_of_digit_files_lasts_as_say_digits_does(world: PbxWorld, clock: Clock) -> None:
    client = Client(world)
    client.login()
    call = world.place_call(CallerScript())
    name = call.agi_channel.name
    agi(client, name, 'SAY DIGITS 74 ""', "s")
    agi(client, name, "EXEC Playback digits/7&digits/4", "p")
    advance(clock, 1.0)  # SAY DIGITS: 1.2 s
    assert client.results() == []
    advance(clock, 0.3)
    assert client.results() == ["200 result=0\n"]
    advance(clock, 1.1)
    assert client.results() == ["200 result=0\n"]
    advance(clock, 0.3)
    assert client.results() == ["200 result=0\n", "200 result=0\n"]

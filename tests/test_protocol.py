"""AMIProtocol against StringTransport, task.Clock and the real captured bytes."""

from __future__ import annotations

import random
from typing import Any, TypeVar, cast

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from ami_bridge.agi import AGIResult
from ami_bridge.codec import AMIDecoder, Message
from ami_bridge.errors import (
    ActionFailedError,
    ActionTimeoutError,
    AGICommandError,
    AuthenticationError,
    ChannelGoneError,
    ConnectionLostError,
    HeaderInjectionError,
)
from ami_bridge.protocol import AMIProtocol, EventList, ListResponse, agi_verb, md5_key
from tests.paths import TRANSCRIPTS

BANNER = b"Asterisk Call Manager/11.0.0\r\n"

T = TypeVar("T")


def transcript(name: str, ids: dict[str, str] | None = None) -> bytes:
    """The bytes Asterisk sent in a scenario, its ActionIDs swapped for ours."""
    data = next(TRANSCRIPTS.glob(f"{name}-*.ami")).read_bytes()
    for theirs, ours in (ids or {}).items():
        data = data.replace(f"ActionID: {theirs}\r\n".encode(), f"ActionID: {ours}\r\n".encode())
    return data


def connect(
    prefix: str = "t", *, timeout: float = 5.0, max_bytes: int | None = None
) -> tuple[AMIProtocol, StringTransportWithDisconnection, Clock, list[dict[str, Any]]]:
    clock = Clock()
    kwargs: dict[str, Any] = {"action_timeout": timeout, "action_id_prefix": prefix}
    if max_bytes is not None:
        kwargs["max_message_bytes"] = max_bytes
    proto = AMIProtocol(clock, **kwargs)
    logged: list[dict[str, Any]] = []
    proto.log = Logger(namespace="test", observer=cast(Any, logged.append))
    transport = StringTransportWithDisconnection()
    transport.protocol = cast(Any, proto)
    proto.makeConnection(transport)
    return proto, transport, clock, logged


def sent(transport: StringTransportWithDisconnection) -> list[Message]:
    messages = AMIDecoder(expect_banner=False).feed(transport.value())
    transport.clear()
    return messages


def _peek(d: Deferred[Any]) -> object:
    """The Deferred's current result, left in place (a Failure is then handled)."""
    results: list[Any] = []

    def keep(result: object) -> object:
        results.append(result)
        return None if isinstance(result, Failure) else result

    d.addBoth(keep)
    assert results, "Deferred has not fired"
    return results[0]


def result_of(d: Deferred[T]) -> T:
    result = _peek(d)
    if isinstance(result, Failure):
        result.raiseException()
    return result  # type: ignore[return-value]


def failure_of(d: Deferred[Any]) -> Failure:
    result = _peek(d)
    assert isinstance(result, Failure), f"Deferred succeeded with {result!r}"
    return result


def no_result(d: Deferred[Any]) -> None:
    results: list[Any] = []

    def keep(result: object) -> object:
        results.append(result)
        return result

    d.addBoth(keep)
    assert not results, f"Deferred fired with {results[0]!r}"


def feed_in_chunks(proto: AMIProtocol, data: bytes, seed: int = 1) -> None:
    rng = random.Random(seed)
    i = 0
    while i < len(data):
        n = rng.randint(1, 700)
        proto.dataReceived(data[i : i + n])
        i += n


def test_banner_fires_when_ready() -> None:
    proto, _, _, _ = connect()
    ready = proto.when_ready()
    no_result(ready)
    proto.dataReceived(BANNER[:10])
    proto.dataReceived(BANNER[10:])
    assert result_of(proto.when_ready()) == "Asterisk Call Manager/11.0.0"


def test_md5_login_as_in_transcript_01() -> None:
    proto, transport, _, logged = connect("t")
    proto.dataReceived(BANNER)
    done = proto.login("shenava", "s3cret")
    [challenge] = sent(transport)
    assert challenge.headers == (("Action", "Challenge"), ("AuthType", "MD5"), ("ActionID", "t-1"))
    proto.dataReceived(b"Response: Success\r\nActionID: t-1\r\nChallenge: 518301919\r\n\r\n")
    [login] = sent(transport)
    assert login.headers == (
        ("Action", "Login"),
        ("AuthType", "MD5"),
        ("Username", "shenava"),
        ("Key", "9ea65c615f5a68ccd0dffa5fb0787aec"),
        ("Events", "on"),
        ("ActionID", "t-2"),
    )
    assert md5_key("518301919", "s3cret") == "9ea65c615f5a68ccd0dffa5fb0787aec"
    no_result(done)
    proto.dataReceived(
        b"Response: Success\r\nActionID: t-2\r\nMessage: Authentication accepted\r\n\r\n"
    )
    assert result_of(done) is None
    assert "s3cret" not in repr(logged)


def test_plain_login_with_events_off() -> None:
    proto, transport, _, _ = connect("t")
    done = proto.login("shenava", "s3cret", md5=False, events=False)
    [login] = sent(transport)
    assert login.headers == (
        ("Action", "Login"),
        ("Username", "shenava"),
        ("Secret", "s3cret"),
        ("Events", "off"),
        ("ActionID", "t-1"),
    )
    proto.dataReceived(
        BANNER + b"Response: Success\r\nActionID: t-1\r\nMessage: Authentication accepted\r\n\r\n"
    )
    assert result_of(done) is None


def test_failed_login_as_in_transcript_02_never_logs_the_secret() -> None:
    proto, transport, clock, logged = connect("login")
    done = proto.login("shenava", "wrong-secret-x", md5=False)
    assert b"wrong-secret-x" in transport.value()  # only on the wire
    clock.advance(1.0)  # Asterisk answers a bad login after a delay
    proto.dataReceived(transcript("02"))
    error = failure_of(done).value
    assert isinstance(error, AuthenticationError)
    assert "Authentication failed" in str(error)
    assert "wrong-secret-x" not in str(error)
    assert "wrong-secret-x" not in repr(logged)
    # Asterisk then closes the socket; nothing is left pending.
    transport.loseConnection()
    assert proto.pending_count == 0


def test_md5_login_refused_is_an_authentication_error() -> None:
    proto, transport, _, logged = connect("t")
    done = proto.login("shenava", "s3cret")
    proto.dataReceived(BANNER + b"Response: Success\r\nActionID: t-1\r\nChallenge: 1\r\n\r\n")
    proto.dataReceived(
        b"Response: Error\r\nActionID: t-2\r\nMessage: Authentication failed\r\n\r\n"
    )
    assert isinstance(failure_of(done).value, AuthenticationError)
    assert "s3cret" not in repr(logged)


def test_ping_logoff_and_events_of_transcript_01() -> None:
    proto, transport, _, _ = connect("p")
    seen: list[Message] = []
    proto.add_event_observer(seen.append)
    ping = proto.ping()
    bye = proto.logoff()
    assert [m["Action"] for m in sent(transport)] == ["Ping", "Logoff"]
    feed_in_chunks(proto, transcript("01", {"p1": "p-1", "bye": "p-2"}))
    assert result_of(ping)["Ping"] == "Pong"
    assert result_of(bye).response == "Goodbye"
    assert [m.event for m in seen] == ["FullyBooted"]


def test_error_response_carries_asterisks_message() -> None:
    proto, transport, _, _ = connect("x")
    unknown = proto.send_action("NoSuchAction")
    originate = proto.send_action("Originate")
    getvar = proto.send_action(
        "Getvar", [("Variable", "NOPE"), ("Channel", "Local/none@nowhere-1;1")]
    )
    feed_in_chunks(proto, transcript("03", {"x1": "x-1", "x2": "x-2", "x3": "x-3"}))
    error = failure_of(unknown).value
    assert isinstance(error, ActionFailedError)
    assert error.message.startswith("Invalid/unknown command: NoSuchAction.")
    assert error.response is not None and error.response["ActionID"] == "x-1"
    assert failure_of(originate).value.message == "Channel not specified"
    assert failure_of(getvar).value.message == "No such channel"
    assert sent(transport)[2]["Channel"] == "Local/none@nowhere-1;1"


def test_action_timeout_and_late_response_ignored() -> None:
    proto, transport, clock, logged = connect("t", timeout=5.0)
    seen: list[Message] = []
    proto.add_event_observer(seen.append)
    slow = proto.send_action("Ping")
    quick = proto.send_action("Ping", timeout=1.0)
    clock.advance(1.0)
    error = failure_of(quick).value
    assert isinstance(error, ActionTimeoutError)
    assert (error.action, error.action_id, error.timeout) == ("Ping", "t-2", 1.0)
    no_result(slow)
    clock.advance(4.0)
    assert isinstance(failure_of(slow).value, ActionTimeoutError)
    proto.dataReceived(BANNER + b"Response: Success\r\nActionID: t-2\r\nPing: Pong\r\n\r\n")
    assert seen == []
    assert any(e["log_level"] == LogLevel.debug and "late" in e["log_format"] for e in logged)
    assert proto.pending_count == 0
    assert not clock.getDelayedCalls()


def test_cancelled_action_forgets_its_timeout() -> None:
    proto, _, clock, _ = connect()
    d = proto.send_action("Ping")
    d.cancel()
    failure_of(d)
    assert proto.pending_count == 0
    # the one deadline timer is kept until due (the next action's deadline is
    # likely later); when it comes it fires nothing and is not set again
    clock.advance(proto.action_timeout)
    assert not clock.getDelayedCalls()


def test_header_injection_refused_before_anything_is_written() -> None:
    proto, transport, clock, _ = connect()
    d = proto.send_action("Originate", [("CallerID", '"x" <1>\r\nAction: Hangup')])
    assert isinstance(failure_of(d).value, HeaderInjectionError)
    assert transport.value() == b""
    assert proto.pending_count == 0
    assert not clock.getDelayedCalls()
    agi = proto.agi("Local/s@x-1;1", "GET DATA beep\r\nAction: Logoff")
    assert isinstance(failure_of(agi).value, HeaderInjectionError)
    assert transport.value() == b""
    assert proto.pending_count == 0


def test_event_lists_of_transcript_30() -> None:
    proto, transport, _, _ = connect("t")
    seen: list[Message] = []
    proto.add_event_observer(seen.append)
    channels = proto.send_list_action("CoreShowChannels")
    getvar = proto.send_action("Getvar", [("Channel", "x"), ("Variable", "COMPLAINT_REF")])
    status = proto.send_action("Status", [("Channel", "Local/s@caller-queue-00000008;1")])
    data = transcript("30", {"csc-1": "t-1", "gv-1": "t-2", "st-1": "t-3"})
    feed_in_chunks(proto, data, seed=7)
    result = result_of(channels)
    assert isinstance(result, EventList)
    assert result.response["Message"] == "Channels will follow"
    assert [e["Uniqueid"] for e in result.events] == ["1795339020.17", "1795339020.16"]
    assert result.complete.event == "CoreShowChannelsComplete"
    assert result.complete["ListItems"] == "2"
    assert result_of(getvar)["Value"] == "C-9"
    # Status was sent with send_action: detected as a list from "EventList: start".
    status_response = result_of(status)
    assert isinstance(status_response, ListResponse)
    assert status_response["Message"] == "Channel status will follow"
    assert [e.event for e in status_response.event_list.events] == ["Status"]
    assert status_response.event_list.complete.event == "StatusComplete"
    # List items are the caller's, not the observers'.
    names = {m.event for m in seen}
    assert not names & {"CoreShowChannel", "CoreShowChannelsComplete", "Status", "StatusComplete"}
    assert "Newchannel" in names and "VarSet" in names


def test_queue_lists_of_transcript_20_in_one_read() -> None:
    proto, _, _, _ = connect("t")
    status = proto.send_list_action("QueueStatus")
    summary = proto.send_list_action("QueueSummary")
    proto.dataReceived(transcript("20", {"qs-1": "t-1", "qsum-1": "t-2"}))
    assert result_of(status).complete.event == "QueueStatusComplete"
    assert {e.event for e in result_of(status).events} == {"QueueParams", "QueueMember"}
    assert [e.event for e in result_of(summary).events] == ["QueueSummary"]


def test_list_timeout_drops_late_items() -> None:
    proto, _, clock, _ = connect("t")
    seen: list[Message] = []
    proto.add_event_observer(seen.append)
    channels = proto.send_list_action("CoreShowChannels", timeout=0.5)
    clock.advance(0.5)
    assert isinstance(failure_of(channels).value, ActionTimeoutError)
    proto.dataReceived(transcript("30", {"csc-1": "t-1"}))
    assert not {m.event for m in seen} & {"CoreShowChannel", "CoreShowChannelsComplete"}
    assert "Newchannel" in {m.event for m in seen}


def test_list_action_error_response() -> None:
    proto, _, _, _ = connect("t")
    d = proto.send_list_action("Status", [("Channel", "nope")])
    proto.dataReceived(
        BANNER + b"Response: Error\r\nActionID: t-1\r\nMessage: No such channel\r\n\r\n"
    )
    assert failure_of(d).value.message == "No such channel"
    assert proto.pending_count == 0


def test_asyncagi_commands_of_transcript_10_in_every_chunking() -> None:
    channel = "Local/s@caller-sim-00000027;1"
    commands = [
        "GET DATA beep 4000 1",
        "GET DATA beep 4000 1",
        "RECORD FILE shenava-vm/ivr-test wav # 8000",
        'SET VARIABLE COMPLAINT_REF "C-000123"',
        'STREAM FILE vm-goodbye ""',
        "HANGUP",
    ]
    data = transcript("10", {"login-1": "other-1", "orig-1": "other-2"})
    for seed in range(5):
        proto, transport, _, _ = connect("agi")
        results = [
            proto.agi(channel, command, command_id=f"cmd-{i}")
            for i, command in enumerate(commands, start=1)
        ]
        written = sent(transport)
        assert [m["ActionID"] for m in written] == [f"agi-{i}" for i in range(1, 7)]
        assert written[0].headers == (
            ("Action", "AGI"),
            ("Channel", channel),
            ("Command", "GET DATA beep 4000 1"),
            ("CommandID", "cmd-1"),
            ("ActionID", "agi-1"),
        )
        if seed:
            feed_in_chunks(proto, data, seed=seed)
        else:
            proto.dataReceived(data)
        got: list[AGIResult] = [result_of(d) for d in results]
        assert [r.digits for r in got[:2]] == ["2", "1"]
        assert got[2].timed_out and got[2].endpos == 54173
        assert all(r.ok for r in got)
        assert got[5].result == "1"
        assert proto.pending_count == 0


def test_caller_hangs_up_during_prompt_transcript_11() -> None:
    proto, _, _, _ = connect("t")
    channel = "Local/s@caller-sim-00000001;1"
    prompt = proto.agi(channel, 'STREAM FILE vm-intro ""', command_id="cmd-1")
    data = transcript("11", {"agi-1": "t-1", "agi-late": "t-2"})
    cut = data.index(b"Response: Error\r\nActionID: t-2")
    proto.dataReceived(data[:cut])
    assert result_of(prompt).hung_up
    late = proto.agi(channel, "HANGUP", command_id="cmd-late")
    proto.dataReceived(data[cut:])
    error = failure_of(late).value
    assert isinstance(error, ChannelGoneError)
    assert "does not exist" in str(error)


def test_hangup_during_exec_musiconhold_transcript_43() -> None:
    proto, _, _, _ = connect("t")
    channel = "Local/s@caller-queue-00000023;1"
    moh = proto.agi(channel, "EXEC MusicOnHold default,30", command_id="moh-1")
    data = transcript("43", {"agi-moh": "t-1"})
    cut = data.index(b"Event: Hangup\r\n")
    proto.dataReceived(data[:cut])
    no_result(moh)
    proto.dataReceived(data[cut:])
    error = failure_of(moh).value
    assert isinstance(error, ChannelGoneError)
    assert "EXEC MusicOnHold" in str(error) and "Hangup" in str(error)
    assert proto.pending_count == 0


def test_asyncagi_end_fails_the_running_command() -> None:
    proto, _, _, _ = connect("t")
    d = proto.agi("SIP/a-1", "GET DATA x")
    proto.dataReceived(BANNER + b"Event: AsyncAGIEnd\r\nChannel: SIP/a-1\r\nUniqueid: 1.1\r\n\r\n")
    assert isinstance(failure_of(d).value, ChannelGoneError)


def test_agi_refused_for_another_reason_and_agi_timeout() -> None:
    proto, _, clock, _ = connect("t")
    refused = proto.agi("SIP/a-1", "NOPE", command_id="c1")
    proto.dataReceived(
        BANNER + b"Response: Error\r\nActionID: t-1\r\nMessage: Permission denied\r\n\r\n"
    )
    error = failure_of(refused).value
    assert isinstance(error, AGICommandError) and not isinstance(error, ChannelGoneError)
    slow = proto.agi("SIP/a-1", "GET DATA beep 4000 1 digits", command_id="c2", timeout=30.0)
    proto.dataReceived(b"Response: Success\r\nActionID: t-2\r\nMessage: Added\r\n\r\n")
    clock.advance(30.0)
    timeout = failure_of(slow).value
    assert isinstance(timeout, ActionTimeoutError)
    assert timeout.action == "AGI GET DATA" and timeout.action_id == "c2"
    unbounded = proto.agi("SIP/a-1", "EXEC MusicOnHold default", command_id="c3")
    proto.dataReceived(b"Response: Success\r\nActionID: t-3\r\nMessage: Added\r\n\r\n")
    clock.advance(3600.0)
    no_result(unbounded)
    duplicate = proto.agi("SIP/a-1", "HANGUP", command_id="c3")
    assert isinstance(failure_of(duplicate).value, AGICommandError)


def test_an_agi_action_never_answered_fails_its_command_once() -> None:
    """The ``Action: AGI`` has no Deferred of its own: its time-out fails the command."""
    proto, transport, clock, _ = connect("t", timeout=5.0)
    d = proto.agi("SIP/a-1", "ANSWER", command_id="c1")
    [action] = sent(transport)
    assert action["Action"] == "AGI" and action["CommandID"] == "c1"
    clock.advance(5.0)
    error = failure_of(d).value
    assert isinstance(error, ActionTimeoutError)
    assert error.action == "AGI" and error.action_id == "t-1"
    assert proto.pending_count == 0
    # its late answer and result are dropped quietly
    proto.dataReceived(
        BANNER + b"Response: Success\r\nActionID: t-1\r\nMessage: Added\r\n\r\n"
        b"Event: AsyncAGIExec\r\nChannel: SIP/a-1\r\nCommandId: c1\r\n"
        b"Result: 200%20result%3D0%0A\r\n\r\n"
    )
    assert proto.pending_count == 0


def test_agi_verb_leaves_out_arguments() -> None:
    assert agi_verb('SAY DIGITS 09121234567 ""') == "SAY DIGITS"
    assert agi_verb("EXEC MusicOnHold default,30") == "EXEC MusicOnHold"
    assert agi_verb("HANGUP") == "HANGUP"


def test_connection_lost_fails_everything_pending() -> None:
    proto, transport, clock, _ = connect("t")
    ready = proto.when_ready()
    action = proto.send_action("Ping")
    listing = proto.send_list_action("CoreShowChannels")
    agi = proto.agi("SIP/a-1", "GET DATA x", timeout=60.0)
    lost = proto.when_lost()
    proto.connectionLost(Failure(ConnectionDone("bye")))
    for d in (ready, action, listing, agi):
        assert isinstance(failure_of(d).value, ConnectionLostError)
    assert result_of(lost) is None
    assert proto.pending_count == 0
    assert not clock.getDelayedCalls()
    after = proto.send_action("Ping")
    assert isinstance(failure_of(after).value, ConnectionLostError)
    assert transport.value().count(b"Action:") == 3


def test_oversized_message_closes_the_connection() -> None:
    proto, transport, _, logged = connect("t", max_bytes=2048)
    seen: list[Message] = []
    proto.add_event_observer(seen.append)
    pending = proto.send_action("Ping")
    proto.dataReceived(
        BANNER + b"Event: Small\r\nA: b\r\n\r\nEvent: Huge\r\n" + b"X: " + b"y" * 4096
    )
    assert [m.event for m in seen] == ["Small"]
    assert not transport.connected
    assert isinstance(failure_of(pending).value, ConnectionLostError)
    assert any(e["log_level"] == LogLevel.error for e in logged)
    proto.dataReceived(b"\r\n\r\nEvent: After\r\n\r\n")
    assert [m.event for m in seen] == ["Small"]


def test_observer_exception_is_logged_and_dispatch_goes_on() -> None:
    proto, _, _, logged = connect("t")
    seen: list[str | None] = []

    def broken(message: Message) -> None:
        raise RuntimeError("observer bug")

    proto.add_event_observer(broken)
    proto.add_event_observer(lambda m: seen.append(m.event))
    ping = proto.ping()
    proto.dataReceived(
        BANNER
        + b"Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n"
        + b"Response: Success\r\nActionID: t-1\r\nPing: Pong\r\n\r\n"
        + b"Event: Newchannel\r\nUniqueid: 1.1\r\n\r\n"
    )
    assert seen == ["FullyBooted", "Newchannel"]
    assert result_of(ping)["Ping"] == "Pong"
    failures = [e for e in logged if "log_failure" in e]
    assert [e["event"] for e in failures] == ["FullyBooted", "Newchannel"]
    assert all(e["log_failure"].check(RuntimeError) for e in failures)
    proto.remove_event_observer(broken)
    proto.dataReceived(b"Event: Hangup\r\nChannel: x\r\n\r\n")
    assert seen[-1] == "Hangup"
    assert len([e for e in logged if "log_failure" in e]) == 2


def test_originate_response_event_goes_to_observers_not_to_the_action() -> None:
    proto, _, _, _ = connect("t")
    seen: list[Message] = []
    proto.add_event_observer(seen.append)
    originate = proto.send_action("Originate", [("Channel", "Local/102@agent-leg-noanswer")])
    proto.dataReceived(transcript("41", {"orig-agent-na": "t-1"}))
    assert result_of(originate)["Message"] == "Originate successfully queued"
    [response] = [m for m in seen if m.event == "OriginateResponse"]
    assert response["Reason"] == "3" and response["ActionID"] == "t-1"


def test_protocol_assigns_the_actionid() -> None:
    proto, transport, _, _ = connect()
    d = proto.send_action("Ping", [("ActionID", "mine")])
    with pytest.raises(ValueError):
        result_of(d)
    assert transport.value() == b""

"""Malformed AsyncAGI results: the parser is total and nobody is left in silence.

A fuzz run found ``result=²`` and ``result=99999999`` raising ``ValueError``
out of ``AGIResult`` and ending the caller's IVR in silence. Now the parser
returns a result whose every property reads without raising, or raises
``AGIResultError`` (``ami.agi_bad_result``); the protocol hands that to the
waiter, and the runner takes a prompt as played and a ``GET DATA`` as silence.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import Logger
from twisted.python.failure import Failure

from ami_bridge.agi import KEY_CODE_VERBS, KEYS_READ_VERBS, AGIResult, decode_result, parse_result
from ami_bridge.codec import AMIDecoder, Message
from ami_bridge.errors import AGICommandError, AGIResultError
from ami_bridge.protocol import AMIProtocol, agi_verb
from ivr.machine import EndReason, MenuMachine, Outcome
from ivr.menu_schema import Request, load_menus
from ivr.runner import IVRRunner

VERBS = [None, "SET VARIABLE", "EXEC MusicOnHold", *sorted(KEY_CODE_VERBS), *sorted(KEYS_READ_VERBS)]
MALFORMED = ["200 result=99999999", "200 result=²", "200 result=٣", "garbage", "", "200 endpos=5"]


def read_everything(result: AGIResult) -> None:
    for name in ("ok", "hung_up", "timed_out", "digits", "dtmf", "endpos"):
        getattr(result, name)


AGI_TEXT = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda code, sep, parts: f"{code}{sep}{' '.join(parts)}",
        st.sampled_from(["200", "510", "520", "2OO", "²00", "20"]),
        st.sampled_from([" ", "-", ""]),
        st.lists(
            st.one_of(
                st.builds(lambda v: f"result={v}", st.text(max_size=12)),
                st.builds(lambda v: f"endpos={v}", st.text(max_size=12)),
                st.builds(lambda v: f"({v})", st.text(max_size=12)),
                st.text(max_size=8),
            ),
            max_size=5,
        ),
    ),
)


@settings(max_examples=500, deadline=None)
@given(text=AGI_TEXT, verb=st.sampled_from(VERBS))
@example(text="200 result=99999999", verb="STREAM FILE")
@example(text="200 result=² endpos=²", verb=None)
@example(text="200 result=1 endpos=99999999999999999999999", verb="STREAM FILE")
def test_the_result_parser_returns_a_result_or_its_typed_error(text: str, verb: str | None) -> None:
    for attempt in (lambda: parse_result(text, verb=verb), lambda: decode_result(quote(text), verb=verb),
                    lambda: decode_result(text, verb=verb)):
        try:
            result = attempt()
        except AGIResultError as error:
            assert error.code == "ami.agi_bad_result"
            assert isinstance(error, AGICommandError)
            continue
        read_everything(result)


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_results_are_typed_errors(text: str) -> None:
    with pytest.raises(AGIResultError):
        read_everything(parse_result(text, verb="STREAM FILE"))


def test_missing_result_header_is_a_typed_error() -> None:
    with pytest.raises(AGIResultError):
        decode_result(None)


def test_well_formed_results_still_parse() -> None:
    assert parse_result("200 result=50 endpos=1234", verb="STREAM FILE").dtmf == "2"
    assert parse_result("200 result=-1 endpos=7360", verb="STREAM FILE").hung_up
    assert parse_result("200 result=99999999", verb="GET DATA").digits == "99999999"
    assert parse_result("200 result= (timeout)", verb="GET DATA").timed_out
    assert parse_result("200 result=1 (fa)", verb="GET VARIABLE").data == "fa"
    assert parse_result("200 result=-2", verb="EXEC Nope").result == "-2"
    # Without a verb a number past any key is kept, but it is no key.
    assert parse_result("200 result=99999999").dtmf == ""


# --- through the protocol ------------------------------------------------------

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def connect() -> tuple[AMIProtocol, StringTransportWithDisconnection, Clock, list[dict[str, Any]]]:
    clock = Clock()
    clock.advance(1000.0)
    proto = AMIProtocol(clock, action_id_prefix="t")
    logged: list[dict[str, Any]] = []
    proto.log = Logger(namespace="test", observer=cast(Any, logged.append))
    transport = StringTransportWithDisconnection()
    transport.protocol = cast(Any, proto)
    proto.makeConnection(transport)
    proto.dataReceived(BANNER)
    return proto, transport, clock, logged


def sent(transport: StringTransportWithDisconnection) -> list[Message]:
    messages = AMIDecoder(expect_banner=False).feed(transport.value())
    transport.clear()
    return messages


def answer(proto: AMIProtocol, action: Message, result: str | None) -> None:
    """Asterisk's answer to an ``AGI`` action: the response, then ``AsyncAGIExec``."""
    lines = [
        f"Response: Success\r\nActionID: {action['ActionID']}\r\nMessage: Added AGI command to queue\r\n\r\n",
        f"Event: AsyncAGIExec\r\nChannel: {action['Channel']}\r\nCommandId: {action['CommandID']}\r\n",
    ]
    if result is not None:
        lines.append(f"Result: {quote(result)}\r\n")
    lines.append("\r\n")
    proto.dataReceived("".join(lines).encode())


@pytest.mark.parametrize("result", [*MALFORMED, None])
def test_the_protocol_fails_the_command_with_the_typed_error(result: str | None) -> None:
    proto, transport, _, logged = connect()
    d = proto.agi("PJSIP/100-1", "STREAM FILE shenava/welcome 0123456789*#")
    [action] = sent(transport)
    answer(proto, action, result)
    failures: list[Failure] = []
    d.addErrback(failures.append)
    assert failures and isinstance(failures[0].value, AGIResultError)
    assert failures[0].value.verb == "STREAM FILE"
    assert proto.pending_count == 0
    assert any(e.get("code") == "ami.agi_bad_result" for e in logged)


# --- through the runner -----------------------------------------------------------

class ProtocolChannel:
    def __init__(self, proto: AMIProtocol) -> None:
        self.proto = proto

    def execute(self, command: str) -> Deferred[AGIResult]:
        return self.proto.agi("PJSIP/100-1", command)


class Sink:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def on_outcome(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


def drive(bad: dict[str, str | None], keys: list[str]) -> tuple[Outcome, list[str]]:
    """Run a whole IVR session over a real protocol; ``bad`` maps a verb to its first reply."""
    proto, transport, clock, _ = connect()
    sink = Sink()
    runner = IVRRunner(
        MenuMachine(load_menus()), ProtocolChannel(proto), clock, sink,
        lambda ref: succeed(None), channel_language="en",
        recording_name=lambda: "shenava-vm/vm-test",
    )
    outcomes: list[object] = []
    runner.run("1795.1", "09121234567").addBoth(outcomes.append)
    commands: list[str] = []
    for _ in range(200):
        if outcomes:
            break
        actions = sent(transport)
        if not actions:
            clock.advance(1.0)
            continue
        for action in actions:
            command = action["Command"]
            commands.append(command)
            verb = agi_verb(command)
            if verb in bad:
                answer(proto, action, bad.pop(verb))
            elif verb == "GET DATA":
                answer(proto, action, f"200 result={keys.pop(0)}" if keys else "200 result= (timeout)")
            elif verb in ("STREAM FILE", "SAY DIGITS"):
                answer(proto, action, "200 result=0 endpos=8000")
            else:
                answer(proto, action, "200 result=1")
    assert outcomes, "the IVR never ended"
    if isinstance(outcomes[0], Failure):
        outcomes[0].raiseException()
    assert sink.outcomes == outcomes
    return cast(Outcome, outcomes[0]), commands


@pytest.mark.parametrize("result", ["200 result=99999999", "200 result=²"])
def test_an_unreadable_prompt_result_counts_as_played(result: str) -> None:
    outcome, commands = drive({"STREAM FILE": result}, ["2", "3"])
    # The first welcome's result was unreadable: the IVR went on to the menus.
    assert outcome.requested is Request.AGENT and outcome.ended is EndReason.COMPLETED
    assert outcome.language == "en"
    assert "GET DATA shenava/main-menu 5000 1" in commands


def test_an_unreadable_get_data_counts_as_silence() -> None:
    outcome, commands = drive({"GET DATA": "200 result=²"}, ["3"])
    # Silence at the language menu means Persian (the menu's own rule); the
    # caller then chose an agent from the main menu.
    assert outcome.ended is EndReason.COMPLETED and outcome.requested is Request.AGENT
    assert outcome.language == "fa"
    first = commands.index("GET DATA shenava/choose-language 5000 1")
    assert "GET DATA shenava/main-menu 5000 1" in commands[first + 1:]


def test_an_unreadable_set_variable_is_a_failed_command_and_the_caller_goes_to_an_agent() -> None:
    outcome, _ = drive({"SET VARIABLE": "garbage"}, [])
    assert outcome.requested is Request.AGENT and outcome.ended is EndReason.FAILED

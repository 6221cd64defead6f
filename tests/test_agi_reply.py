"""The IVR's AGI commands without a Deferred each (issue #16, per-call CPU).

``AMIProtocol.agi_reply`` tells one callable the end of a command (its result
or its typed error) and ``forget_agi`` drops it; ``AMIProtocol.agi`` is a
Deferred over the same. The runner drives its session by those replies: a
hang-up mid-command forgets the command and ends the call, a late result is
dropped, a lost link sends the command again once it is back, and a whole
call runs with no Deferred made per command.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ami_bridge.agi import AGIResult, parse_result
from ami_bridge.connection import AMIConnection, AMICredentials
from ami_bridge.errors import (
    ActionTimeoutError,
    AGICommandError,
    ChannelGoneError,
    ConnectionLostError,
)
from ami_bridge.protocol import AMIProtocol
from ivr.machine import EndReason, MenuMachine, Outcome
from ivr.menu_schema import Request, load_menus
from ivr.runner import IVRRunner

MACHINE = MenuMachine(load_menus())
CHANNEL = "Local/s@caller-ivr-00000001;1"


def _connected() -> tuple[AMIProtocol, StringTransport, Clock]:
    clock = Clock()
    proto = AMIProtocol(clock, action_timeout=5.0, action_id_prefix="t")
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
    return proto, transport, clock


def _exec(command_id: str, result: str = "200%20result%3D0%0A", action_id: str = "t-2") -> bytes:
    return (
        f"Response: Success\r\nActionID: {action_id}\r\n\r\n"
        f"Event: AsyncAGIExec\r\nChannel: {CHANNEL}\r\nCommandId: {command_id}\r\n"
        f"Result: {result}\r\n\r\n"
    ).encode()


# -- the protocol ----------------------------------------------------------------


def test_agi_reply_tells_the_result_once_and_makes_no_deferred(monkeypatch: Any) -> None:
    proto, transport, _ = _connected()
    made: list[Any] = []
    real_init = Deferred.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Deferred, "__init__", counting)
    told: list[Any] = []
    command_id = proto.agi_reply(CHANNEL, "GET DATA shenava/main-menu 5000 1", told.append)
    assert command_id == "t-agi-1"
    assert b"CommandID: t-agi-1\r\n" in transport.value()
    proto.dataReceived(_exec(command_id, "200%20result%3D2%0A"))
    proto.dataReceived(_exec(command_id, "200%20result%3D3%0A"))  # a second one: not ours any more
    assert [r.result for r in told] == ["2"]
    assert made == [] and proto.pending_count == 0


def test_agi_reply_is_told_the_typed_errors() -> None:
    proto, _, clock = _connected()
    told: list[Any] = []
    refused = proto.agi_reply(CHANNEL, "ANSWER", told.append)
    proto.dataReceived(
        f"Response: Error\r\nActionID: t-2\r\nMessage: Channel {CHANNEL} does not exist.\r\n\r\n".encode()
    )
    gone = proto.agi_reply(CHANNEL, "GET DATA x 5000 1", told.append)
    proto.dataReceived(f"Event: Hangup\r\nChannel: {CHANNEL}\r\nUniqueid: 1.1\r\n\r\n".encode())
    proto.agi_reply(CHANNEL, "NOOP", told.append, command_id=refused, timeout=2.0)
    proto.agi_reply(CHANNEL, "NOOP", told.append, command_id="late", timeout=2.0)
    proto.agi_reply(CHANNEL, "NOOP", told.append, command_id="late")  # its CommandID runs already
    clock.advance(2.0)
    assert [type(e) for e in told] == [
        ChannelGoneError, ChannelGoneError, AGICommandError, ActionTimeoutError, ActionTimeoutError,
    ]
    assert gone in str(told[1]) and told[2].code == AGICommandError.code
    proto.connectionLost()
    lost: list[Any] = []
    proto.agi_reply(CHANNEL, "NOOP", lost.append)  # not connected: told at once
    assert [type(e) for e in lost] == [ConnectionLostError]


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "\r\nAction: Logoff"])
@pytest.mark.parametrize("where", ["channel", "command", "command_id"])
def test_a_line_end_or_nul_in_any_value_is_refused_before_a_byte_is_written(
    bad: str, where: str
) -> None:
    proto, transport, clock = _connected()
    values = {"channel": CHANNEL, "command": "GET DATA beep 5000 1", "command_id": "c-1"}
    values[where] += bad
    told: list[Any] = []
    proto.agi_reply(values["channel"], values["command"], told.append, command_id=values["command_id"])
    assert [type(e).__name__ for e in told] == ["HeaderInjectionError"]
    assert transport.value() == b"" and proto.pending_count == 0 and not clock.getDelayedCalls()


def test_a_forgotten_command_is_never_told_and_its_late_result_is_dropped() -> None:
    proto, _, _ = _connected()
    told: list[Any] = []
    command_id = proto.agi_reply(CHANNEL, "GET DATA x 5000 1", told.append, timeout=3.0)
    proto.forget_agi(command_id)
    proto.dataReceived(_exec(command_id))
    proto.connectionLost()
    assert told == [] and proto.pending_count == 0


def test_a_reply_that_raises_does_not_lose_the_rest_of_the_read() -> None:
    proto, _, _ = _connected()
    told: list[Any] = []

    def broken(_outcome: Any) -> None:
        raise RuntimeError("a bug in a reply")

    first = proto.agi_reply(CHANNEL, "NOOP", broken)
    second = proto.agi_reply(CHANNEL, "NOOP", told.append)
    proto.dataReceived(_exec(first, action_id="t-2") + _exec(second, action_id="t-4"))
    assert [r.result for r in told] == ["0"]


def test_agi_is_a_deferred_over_the_reply_and_cancelling_forgets_the_command() -> None:
    proto, _, _ = _connected()
    d = proto.agi(CHANNEL, "GET DATA x 5000 1")
    failures: list[Any] = []
    d.addErrback(failures.append)
    d.cancel()
    assert failures[0].check(CancelledError)
    assert proto.pending_count == 1  # only the action's Response is awaited
    answered = proto.agi(CHANNEL, "NOOP")
    results: list[Any] = []
    answered.addCallback(results.append)
    proto.dataReceived(_exec("t-agi-3", action_id="t-4"))
    assert [r.result for r in results] == ["0"]


def test_the_connection_tells_a_reply_at_once_without_a_link_or_the_lead() -> None:
    connection = AMIConnection(object(), Clock(), AMICredentials("u", "s"))  # never started
    told: list[Any] = []
    assert connection.agi_reply(CHANNEL, "NOOP", told.append) == ""
    connection.forget_agi("")  # nothing to forget
    proto, _, _ = _connected()
    connection._current = proto  # as once logged in
    connection.may_act = lambda: False  # a deposed leader
    connection.agi_reply(CHANNEL, "NOOP", told.append)
    connection.may_act = None
    command_id = connection.agi_reply(CHANNEL, "NOOP", told.append)
    connection.forget_agi(command_id)
    assert [type(e) for e in told] == [ConnectionLostError, ConnectionLostError]
    assert "not the leader" in str(told[1])
    assert proto.pending_count == 1  # the action's Response only: the command is dropped


# -- the runner ------------------------------------------------------------------


class ReplyChannel:
    """A channel with ``start``/``forget`` only: answers like Asterisk, at once or
    (``held``) when the test says so. ``execute`` must not be used."""

    def __init__(self, keys: list[str], held: set[str] | None = None) -> None:
        self.keys = deque(keys)
        self.held = held or set()
        self.commands: list[str] = []
        self.waiting: dict[str, tuple[str, Any]] = {}
        self.forgotten: list[str] = []
        self.refuse: deque[BaseException] = deque()

    def execute(self, command: str) -> Deferred[AGIResult]:
        raise AssertionError("the runner made a Deferred for an AGI command")

    def start(self, command: str, reply: Any) -> str:
        self.commands.append(command)
        command_id = f"c{len(self.commands)}"
        if self.refuse:
            reply(self.refuse.popleft())
            return command_id
        if any(command.startswith(prefix) for prefix in self.held):
            self.waiting[command_id] = (command, reply)
            return command_id
        reply(self.answer(command))
        return command_id

    def answer(self, command: str) -> AGIResult:
        if command.startswith("GET DATA"):
            key = self.keys.popleft() if self.keys else "T"
            return parse_result("200 result= (timeout)" if key == "T" else f"200 result={key}")
        if command.startswith("STREAM FILE"):
            return parse_result("200 result=0 endpos=16000")
        return parse_result("200 result=1")

    def forget(self, command_id: str) -> None:
        self.forgotten.append(command_id)
        self.waiting.pop(command_id, None)

    def release(self) -> None:
        waiting, self.waiting = self.waiting, {}
        for command, reply in waiting.values():
            reply(self.answer(command))


class Sink:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def on_outcome(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


def _runner(channel: ReplyChannel, clock: Clock, link_back: Any = None) -> tuple[IVRRunner, Sink]:
    clock.advance(1000.0)
    sink = Sink()
    runner = IVRRunner(
        MACHINE, channel, clock, sink, lambda ref: succeed("in_progress"), channel_language="en",
        recording_name=lambda: "vm-0", link_back=link_back,
    )
    return runner, sink


def _result(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the session has not ended"
    return box[0]


def test_a_whole_call_runs_on_replies_alone() -> None:
    channel = ReplyChannel(keys=["2", "1", "3", "1", "3", "79927398713", "1"])
    runner, sink = _runner(channel, Clock())
    outcome = _result(runner.run("1795.82", "09121234567"))
    assert outcome.requested is Request.AGENT and outcome.ended is EndReason.COMPLETED
    assert outcome.account == "79927398713" and sink.outcomes == [outcome]
    assert channel.commands[0] == "STREAM FILE fa/shenava/welcome 0123456789*#"
    assert not channel.forgotten


def test_a_hang_up_mid_command_forgets_it_and_drops_its_late_result() -> None:
    channel = ReplyChannel(keys=["1"], held={"GET DATA"})
    clock = Clock()
    runner, sink = _runner(channel, clock)
    done = runner.run("c", "0912")
    [(command_id, (command, late_reply))] = channel.waiting.items()
    assert command.startswith("GET DATA")
    clock.advance(7.0)
    runner.channel_hung_up()
    outcome = _result(done)
    assert outcome.requested is Request.HUNG_UP_IN_IVR and outcome.ended_at == 1007.0
    assert channel.forgotten == [command_id] and sink.outcomes == [outcome]
    late_reply(parse_result("200 result=1"))  # a channel that tells it anyway: ignored
    runner.channel_hung_up()
    assert sink.outcomes == [outcome] and channel.commands[-1] == command


def test_a_command_cut_off_by_a_lost_link_is_sent_again_once_it_is_back() -> None:
    channel = ReplyChannel(keys=["1", "3"])
    channel.refuse.append(ConnectionLostError("AGI: not connected to Asterisk"))
    clock = Clock()
    back: Deferred[object] = Deferred()
    runner, sink = _runner(channel, clock, link_back=lambda: back)
    done = runner.run("c", "0912")
    assert channel.commands == ["STREAM FILE fa/shenava/welcome 0123456789*#"]
    clock.advance(0)  # the turn of the clock before asking for the link
    back.callback(object())
    outcome = _result(done)
    assert outcome.requested is Request.AGENT and outcome.ended is EndReason.COMPLETED
    assert channel.commands[:2] == ["STREAM FILE fa/shenava/welcome 0123456789*#"] * 2


def test_a_hang_up_while_the_link_is_away_ends_the_call() -> None:
    channel = ReplyChannel(keys=[])
    channel.refuse.append(ConnectionLostError("AGI: connection lost"))
    clock = Clock()
    never: Deferred[object] = Deferred()
    runner, sink = _runner(channel, clock, link_back=lambda: never)
    done = runner.run("c", "0912")
    clock.advance(0)
    runner.channel_hung_up()
    outcome = _result(done)
    assert outcome.requested is Request.HUNG_UP_IN_IVR
    assert len(channel.commands) == 1 and sink.outcomes == [outcome]


@pytest.mark.parametrize("error", [ChannelGoneError("gone"), AGICommandError("refused")])
def test_an_error_reply_ends_as_the_deferred_did(error: Exception) -> None:
    channel = ReplyChannel(keys=["1"])
    channel.refuse.extend([error])
    runner, _ = _runner(channel, Clock())
    outcome = _result(runner.run("c", "0912"))
    if isinstance(error, ChannelGoneError):
        assert outcome.requested is Request.HUNG_UP_IN_IVR
    else:
        assert outcome.requested is Request.AGENT and outcome.ended is EndReason.FAILED


def test_cancelling_the_session_drops_its_command_and_fails_it() -> None:
    channel = ReplyChannel(keys=[], held={"STREAM FILE"})
    runner, sink = _runner(channel, Clock())
    done = runner.run("c", "0912")
    done.cancel()
    failure = _result(done)
    assert failure.check(CancelledError)
    assert channel.forgotten == ["c1"] and not channel.waiting and sink.outcomes == []


class LateSink(Sink):
    """Takes the outcome when the test says so (as the call flow's Redis writes do)."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: Deferred[None] = Deferred()

    def on_outcome(self, outcome: Outcome) -> Deferred[None]:  # type: ignore[override]
        super().on_outcome(outcome)
        return self.taken


@pytest.mark.parametrize("refused", [False, True])
def test_the_session_ends_once_the_sink_has_taken_the_outcome(refused: bool) -> None:
    channel = ReplyChannel(keys=["1", "3"])
    clock = Clock()
    clock.advance(1000.0)
    sink = LateSink()
    runner = IVRRunner(MACHINE, channel, clock, sink, lambda ref: succeed(None), channel_language="en")
    done = runner.run("c", "0912")
    ended: list[Any] = []
    done.addBoth(ended.append)
    assert ended == [] and len(sink.outcomes) == 1
    runner.channel_hung_up()  # while the outcome is handed on: it carries on
    if refused:
        sink.taken.errback(RuntimeError("redis away"))
        assert ended[0].value.code == "ivr.outcome_not_delivered"
    else:
        sink.taken.callback(None)
        assert ended == sink.outcomes and ended[0].requested is Request.AGENT


def test_cancelling_the_session_while_it_looks_up_a_complaint_stops_it() -> None:
    channel = ReplyChannel(keys=["1", "2", "12345", "1"])
    clock = Clock()
    clock.advance(1000.0)
    sink = Sink()
    answer: Deferred[str | None] = Deferred()
    runner = IVRRunner(MACHINE, channel, clock, sink, lambda ref: answer, channel_language="en")
    done = runner.run("c", "0912")
    sent = list(channel.commands)
    done.cancel()
    answer.callback("in_progress")  # comes anyway: nothing more is sent
    clock.advance(10.0)
    assert _result(done).check(CancelledError)
    assert channel.commands == sent and sink.outcomes == []


class CancellingSink(Sink):
    def __init__(self, channel: ReplyChannel) -> None:
        super().__init__()
        self.channel = channel
        self.session: Deferred[Any] | None = None
        self.sent_then = -1

    def on_outcome(self, outcome: Outcome) -> None:
        super().on_outcome(outcome)
        assert self.session is not None
        self.sent_then = len(self.channel.commands)
        self.session.cancel()  # from inside the session's own step


def test_a_session_cancelled_from_inside_its_own_step_stops() -> None:
    # a callback is handed on before "callback booked" is played: cancelled
    # there, the session sends nothing more
    channel = ReplyChannel(keys=["1", "5", "1"], held={"GET DATA shenava/main-menu"})
    clock = Clock()
    sink = CancellingSink(channel)
    runner = IVRRunner(MACHINE, channel, clock, sink, lambda ref: succeed(None), channel_language="en")
    sink.session = runner.run("c", "0912")
    channel.release()
    assert _result(sink.session).check(CancelledError)
    assert [o.requested for o in sink.outcomes] == [Request.CALLBACK]
    assert len(channel.commands) == sink.sent_then and not channel.waiting


def test_a_session_cancelled_as_its_reply_comes_sends_nothing_more() -> None:
    channel = ReplyChannel(keys=["2", "1", "3"], held={"GET DATA shenava/main-menu"})
    runner, sink = _runner(channel, Clock())
    session = runner.run("c", "0912")
    real_answer = channel.answer

    def answer(command: str) -> AGIResult:
        session.cancel()  # the reply's consequences cancel the session
        return real_answer(command)

    channel.answer = answer  # type: ignore[method-assign]
    sent = len(channel.commands)
    channel.release()
    assert _result(session).check(CancelledError)
    assert len(channel.commands) == sent and sink.outcomes == []

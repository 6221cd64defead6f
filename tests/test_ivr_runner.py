"""The AsyncAGI runner against a scripted fake channel and task.Clock."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from ami_bridge.agi import AGIResult, parse_result
from ami_bridge.errors import AGICommandError, ChannelGoneError
from ivr.errors import OutcomeNotDeliveredError
from ivr.machine import EndReason, MenuMachine, Outcome
from ivr.menu_schema import Request, load_menus
from ivr.runner import IVRRunner

MACHINE = MenuMachine(load_menus())
ACCOUNT = "79927398713"
VM_NAME = "/var/spool/shenava/voicemail/vm-20260101-093000-0123456789ab"
Reply = AGIResult | BaseException | Deferred[AGIResult]


class FakeChannel:
    """Answers AGI commands like Asterisk: GET DATA takes its keys from a queue.

    ``replies`` maps a command prefix to replies used (in order) before the defaults.
    """

    def __init__(self, keys: list[str] | None = None, replies: dict[str, list[Reply]] | None = None) -> None:
        self.keys: deque[str] = deque(keys or [])
        self.replies = {prefix: deque(items) for prefix, items in (replies or {}).items()}
        self.commands: list[str] = []
        self.on_execute: Callable[[str], None] | None = None

    def execute(self, command: str) -> Deferred[AGIResult]:
        self.commands.append(command)
        if self.on_execute is not None:
            self.on_execute(command)
        for prefix, queue in self.replies.items():
            if command.startswith(prefix) and queue:
                reply = queue.popleft()
                if isinstance(reply, Deferred):
                    return reply
                if isinstance(reply, BaseException):
                    return fail(reply)
                return succeed(reply)
        if command.startswith("GET DATA"):
            key = self.keys.popleft() if self.keys else "T"
            text = "200 result= (timeout)" if key == "T" else f"200 result={key}"
            return succeed(parse_result(text))
        if command.startswith("STREAM FILE"):
            return succeed(parse_result("200 result=0 endpos=16000"))
        if command.startswith("SAY DIGITS"):
            return succeed(parse_result("200 result=0"))
        return succeed(parse_result("200 result=1"))

    def sent(self, verb: str) -> list[str]:
        return [c for c in self.commands if c.startswith(verb)]


class Sink:
    def __init__(self, error: Exception | None = None) -> None:
        self.outcomes: list[Outcome] = []
        self.error = error

    def on_outcome(self, outcome: Outcome) -> Deferred[None] | None:
        self.outcomes.append(outcome)
        if self.error is not None:
            return fail(self.error)
        return None


class Lookups:
    def __init__(self, answer: str | None | Deferred[str | None] = "in_progress") -> None:
        self.answer = answer
        self.asked: list[str] = []

    def __call__(self, reference: str) -> Deferred[str | None]:
        self.asked.append(reference)
        if isinstance(self.answer, Deferred):
            return self.answer
        return succeed(self.answer)


def make(channel: FakeChannel, lookups: Lookups | None = None, sink: Sink | None = None,
         clock: Clock | None = None) -> tuple[IVRRunner, Sink, Clock]:
    clock = clock or Clock()
    clock.advance(1000.0)
    sink = sink or Sink()
    runner = IVRRunner(
        MACHINE, channel, clock, sink, lookups or Lookups(), channel_language="en",
        recording_name=lambda: VM_NAME,
    )
    return runner, sink, clock


def result_of(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


def test_a_whole_call_becomes_agi_commands_and_an_outcome() -> None:
    channel = FakeChannel(keys=["2", "1", "3", "1", "3", ACCOUNT, "1"])
    runner, sink, _ = make(channel)
    outcome: Outcome = result_of(runner.run("1795.82", "09121234567"))
    assert outcome.requested is Request.AGENT and outcome.ended is EndReason.COMPLETED
    assert (outcome.language, outcome.category, outcome.urgent, outcome.account) == ("en", "billing", True, ACCOUNT)
    assert outcome.started_at == 1000.0
    assert sink.outcomes == [outcome]
    # The bilingual language menu on an English channel: its Persian prompts
    # by their language's folder, no CHANNEL(language) switches.
    assert channel.commands[:4] == [
        "STREAM FILE fa/shenava/welcome 0123456789*#",
        "STREAM FILE fa/shenava/choose-language 0123456789*#",
        "STREAM FILE shenava/welcome 0123456789*#",
        "GET DATA shenava/choose-language 5000 1",
    ]
    assert "GET DATA shenava/main-menu 5000 1" in channel.commands
    assert "GET DATA shenava/enter-account 5000 16" in channel.commands
    assert f'SAY DIGITS {ACCOUNT} 0123456789*#' in channel.commands
    # English chosen while the channel is already English: no SET VARIABLE
    # before the main menu; the outcome's variables in one command.
    assert channel.commands[4] == "GET DATA shenava/main-menu 5000 1"
    assert not channel.sent("SET VARIABLE CHANNEL(language)")
    assert channel.commands[-2] == (
        "EXEC MSet SHENAVA_LANG=en,SHENAVA_REQUEST=agent,SHENAVA_CATEGORY=billing,"
        f"SHENAVA_URGENT=1,SHENAVA_VULNERABLE=0,SHENAVA_ACCOUNT={ACCOUNT}"
    )
    assert not channel.sent("SET VARIABLE SHENAVA_")
    assert channel.commands[-1] == 'STREAM FILE shenava/transfer-agent ""'
    assert len(channel.commands) == 14
    assert "HANGUP" not in channel.commands  # the caller stays on the line for the agent


def test_silence_re_prompts_and_then_goes_to_an_agent() -> None:
    channel = FakeChannel(keys=["1", "T", "T", "T"])
    runner, _, _ = make(channel)
    outcome: Outcome = result_of(runner.run("c", "0912"))
    assert outcome.ended is EndReason.TIMEOUTS and outcome.requested is Request.AGENT
    assert channel.sent("GET DATA shenava/main-menu") == ["GET DATA shenava/main-menu 5000 1"] * 3
    assert channel.sent("STREAM FILE shenava/no-input") == ['STREAM FILE shenava/no-input 0123456789*#'] * 2


def test_an_invalid_key_plays_the_invalid_prompt() -> None:
    channel = FakeChannel(keys=["1", "9", "3"])
    runner, _, _ = make(channel)
    result_of(runner.run("c", "0912"))
    assert "STREAM FILE shenava/invalid-option 0123456789*#" in channel.commands


def test_a_key_that_cuts_a_prompt_short_answers_the_next_menu() -> None:
    # "2" (ASCII 50) pressed during the first welcome: the rest of the greeting is skipped.
    channel = FakeChannel(keys=["3"], replies={"STREAM FILE fa/shenava/welcome": [parse_result("200 result=50 endpos=800")]})
    runner, _, _ = make(channel)
    outcome: Outcome = result_of(runner.run("c", "0912"))
    assert outcome.language == "en" and outcome.requested is Request.AGENT
    assert channel.commands[:2] == [
        "STREAM FILE fa/shenava/welcome 0123456789*#",
        "GET DATA shenava/main-menu 5000 1",  # the English channel needs no switch
    ]
    assert "GET DATA shenava/choose-language 5000 1" not in channel.commands
    assert channel.sent("GET DATA") == ["GET DATA shenava/main-menu 5000 1"]


def test_keys_pressed_between_commands_are_type_ahead() -> None:
    held: Deferred[AGIResult] = Deferred()
    channel = FakeChannel(keys=["1", "1", "3"], replies={"SET VARIABLE CHANNEL(language)": [held]})
    runner, _, _ = make(channel)
    # The dialplan chose Persian on an English channel: the language is set first.
    done = runner.run("c", "0912", {"SHENAVA_LANG": "fa"})
    # While SET VARIABLE runs, Asterisk would drop keys: DTMFEnd is how they are kept.
    runner.dtmf_received("1")
    held.callback(parse_result("200 result=1"))
    outcome: Outcome = result_of(done)
    assert outcome.language == "fa" and outcome.category == "service_quality"
    assert "GET DATA shenava/main-menu 5000 1" not in channel.commands  # answered ahead
    assert channel.sent("GET DATA")[0] == "GET DATA shenava/category-menu 5000 1"


def test_dtmf_seen_while_get_data_runs_is_not_counted_twice() -> None:
    held: Deferred[AGIResult] = Deferred()
    channel = FakeChannel(keys=["3"], replies={"GET DATA shenava/choose-language": [held]})
    runner, _, _ = make(channel)
    done = runner.run("c", "0912")
    runner.dtmf_received("1")  # the DTMFEnd of the key GET DATA is about to return
    held.callback(parse_result("200 result=1"))
    outcome: Outcome = result_of(done)
    assert outcome.language == "fa" and outcome.requested is Request.AGENT
    assert "GET DATA shenava/main-menu 5000 1" in channel.commands


def test_a_number_typed_ahead_in_part_is_finished_with_silence() -> None:
    held: Deferred[AGIResult] = Deferred()
    channel = FakeChannel(keys=["7398713", "1"], replies={"SET VARIABLE CHANNEL(language)": [held]})
    runner, _, _ = make(channel)
    done = runner.run("c", "0912", {"SHENAVA_LANG": "fa"})
    for key in "1113" + "7992":  # new complaint, service, urgent, no care; half an account
        runner.dtmf_received(key)
    held.callback(parse_result("200 result=1"))
    outcome: Outcome = result_of(done)
    assert channel.sent("GET DATA")[0] == "GET DATA silence/1 5000 12"
    assert outcome.account == ACCOUNT and outcome.requested is Request.AGENT


def test_get_data_stopping_early_ends_the_number() -> None:
    channel = FakeChannel(keys=["2", "2", "12345", "1"], replies={})
    runner, _, _ = make(channel, Lookups("resolved"))
    channel.keys.append("1")  # after-status: agent
    outcome: Outcome = result_of(runner.run("c", "0912"))
    assert outcome.reference == "12345" and outcome.complaint_status == "resolved"
    assert "GET DATA shenava/enter-reference 5000 10" in channel.commands
    assert 'SAY DIGITS 12345 0123456789*#' in channel.commands
    assert "STREAM FILE shenava/status-resolved \"\"" in channel.commands


@pytest.mark.parametrize(
    "reply",
    [parse_result("200 result=-1"), ChannelGoneError("Channel Local/x does not exist.")],
    ids=["result -1", "channel gone"],
)
def test_a_hang_up_keeps_what_was_entered(reply: Reply) -> None:
    channel = FakeChannel(keys=["2", "1", "4"], replies={"GET DATA shenava/urgency-menu": [reply]})
    runner, sink, clock = make(channel)
    outcome: Outcome = result_of(runner.run("c", "0912"))
    assert outcome.requested is Request.HUNG_UP_IN_IVR and outcome.ended is EndReason.HUNG_UP
    assert (outcome.language, outcome.category) == ("en", "staff_conduct")
    assert outcome.path[-1] == "urgency"
    assert sink.outcomes == [outcome]
    assert channel.commands[-1] == "GET DATA shenava/urgency-menu 5000 1"


def test_hang_up_notice_while_waiting_ends_at_once_and_ignores_the_late_reply() -> None:
    held: Deferred[AGIResult] = Deferred()
    channel = FakeChannel(keys=["1"], replies={"GET DATA shenava/main-menu": [held]})
    runner, sink, clock = make(channel)
    done = runner.run("c", "0912")
    clock.advance(7.0)
    runner.channel_hung_up()
    outcome: Outcome = result_of(done)
    assert outcome.requested is Request.HUNG_UP_IN_IVR and outcome.ended_at == 1007.0
    held.errback(ChannelGoneError("AsyncAGIEnd"))  # arrives later; nothing unhandled
    runner.dtmf_received("1")
    assert sink.outcomes == [outcome]


def test_a_prompt_that_cannot_be_played_does_not_end_the_call() -> None:
    channel = FakeChannel(
        keys=["1", "3"],
        replies={"STREAM FILE fa/shenava/welcome": [parse_result("200 result=-1 endpos=0")]},
    )
    runner, _, _ = make(channel)
    outcome: Outcome = result_of(runner.run("c", "0912"))
    assert outcome.requested is Request.AGENT


def test_a_prompt_cut_by_a_hang_up_ends_the_call() -> None:
    channel = FakeChannel(replies={"STREAM FILE fa/shenava/welcome": [parse_result("200 result=-1 endpos=7360")]})
    runner, _, _ = make(channel)
    outcome: Outcome = result_of(runner.run("c", "0912"))
    assert outcome.requested is Request.HUNG_UP_IN_IVR
    assert channel.commands == ["STREAM FILE fa/shenava/welcome 0123456789*#"]


def test_a_hang_up_during_the_hold_message_is_not_queued_for_an_agent() -> None:
    channel = FakeChannel(keys=["1", "3"], replies={"STREAM FILE shenava/transfer-agent": [parse_result("200 result=-1 endpos=300")]})
    runner, sink, _ = make(channel)
    outcome: Outcome = result_of(runner.run("c", "0912"))
    assert outcome.requested is Request.HUNG_UP_IN_IVR
    assert outcome.path[-1] == "agent"


def test_voicemail_records_and_a_hang_up_ends_the_message() -> None:
    channel = FakeChannel(keys=["2", "4"], replies={"RECORD FILE": [parse_result("200 result=-1 (hangup) endpos=54173")]})
    runner, sink, _ = make(channel)
    outcome: Outcome = result_of(runner.run("1795339506.82", "0912"))
    assert outcome.requested is Request.VOICEMAIL and outcome.ended is EndReason.HUNG_UP
    assert outcome.recording == VM_NAME
    assert 'STREAM FILE shenava/leave-message ""' in channel.commands
    assert channel.sent("RECORD FILE") == [f"RECORD FILE {VM_NAME} wav # 180000 0 BEEP s=5"]


def test_voicemail_ended_with_hash_thanks_and_hangs_up() -> None:
    channel = FakeChannel(keys=["2", "4"], replies={"RECORD FILE": [parse_result("200 result=35 (dtmf) endpos=9000")]})
    runner, _, _ = make(channel)
    outcome: Outcome = result_of(runner.run("c", "0912"))
    assert outcome.requested is Request.VOICEMAIL and outcome.ended is EndReason.COMPLETED
    assert channel.commands[-2:] == ['STREAM FILE shenava/message-saved ""', "HANGUP"]
    runner.channel_hung_up()  # our own HANGUP: nothing changes


def test_a_status_lookup_that_never_answers_times_out() -> None:
    channel = FakeChannel(keys=["1", "2", "12345", "1"])
    never: Deferred[str | None] = Deferred()
    lookups = Lookups(never)
    runner, _, clock = make(channel, lookups)
    done = runner.run("c", "0912")
    assert lookups.asked == ["12345"]
    clock.advance(5.0)
    outcome: Outcome = result_of(done)
    assert 'STREAM FILE shenava/status-unavailable ""' in channel.commands
    assert outcome.requested is Request.AGENT and outcome.reference == "12345"


def test_a_callback_reads_the_callers_number_and_hangs_up() -> None:
    channel = FakeChannel(keys=["1", "5", "1"])
    runner, _, _ = make(channel)
    outcome: Outcome = result_of(runner.run("c", "09121234567"))
    assert outcome.requested is Request.CALLBACK and outcome.callback_number == "09121234567"
    assert "SAY DIGITS 09121234567 0123456789*#" in channel.commands
    assert channel.commands[-1] == "HANGUP"


def test_an_agi_error_hands_the_call_to_an_agent() -> None:
    channel = FakeChannel(keys=["1"], replies={"GET DATA shenava/main-menu": [AGICommandError("boom")]})
    runner, sink, _ = make(channel)
    outcome: Outcome = result_of(runner.run("c", "0912"))
    assert outcome.requested is Request.AGENT and outcome.ended is EndReason.FAILED
    assert sink.outcomes == [outcome]


def test_a_non_200_reply_is_a_failure() -> None:
    channel = FakeChannel(replies={"STREAM FILE shenava/welcome": [parse_result("510 Invalid or unknown command")]})
    runner, _, _ = make(channel)
    outcome: Outcome = result_of(runner.run("c", "0912"))
    assert outcome.ended is EndReason.FAILED


def test_an_outcome_the_sink_refuses_is_not_lost() -> None:
    channel = FakeChannel(keys=["1", "3"])
    runner, _, _ = make(channel, sink=Sink(error=RuntimeError("redis down")))
    with pytest.raises(OutcomeNotDeliveredError) as caught:
        result_of(runner.run("c", "0912"))
    assert caught.value.outcome.requested is Request.AGENT
    assert caught.value.code == "ivr.outcome_not_delivered"


def test_the_dialplan_language_skips_the_language_menu() -> None:
    channel = FakeChannel(keys=["3"])
    runner, _, _ = make(channel)
    outcome: Outcome = result_of(runner.run("c", "0912", {"SHENAVA_LANG": "fa"}))
    assert outcome.path == ("main", "agent")
    assert channel.commands[:2] == ['SET VARIABLE CHANNEL(language) "fa"', "GET DATA shenava/main-menu 5000 1"]


def test_a_channel_already_in_the_callers_language_is_not_set_again() -> None:
    # agi_language says the channel is English already (the runner is made with "en")
    channel = FakeChannel(keys=["3"])
    runner, _, _ = make(channel)
    outcome: Outcome = result_of(runner.run("c", "0912", {"SHENAVA_LANG": "en"}))
    assert outcome.path == ("main", "agent")
    assert not channel.sent("SET VARIABLE CHANNEL(language)")
    assert channel.commands[0] == "GET DATA shenava/main-menu 5000 1"


def test_variables_msets_cannot_carry_are_set_one_by_one() -> None:
    from ivr.machine import SetVariable
    from ivr.runner import _batched

    plain = [SetVariable("A", "1"), SetVariable("B", "x_y/z-2")]
    (batch,) = _batched((*plain,))
    assert type(batch).__name__ == "_SetVariables"
    odd = [SetVariable("A", "1"), SetVariable("B", "a,b"), SetVariable("C", "2")]
    assert _batched((*odd,)) == odd  # a comma would split MSet's pairs
    lang = [SetVariable("CHANNEL(language)", "fa"), SetVariable("A", "1")]
    assert _batched((*lang,)) == lang  # MSet takes no functions


def test_an_asterisk_without_mset_gets_the_variables_one_by_one() -> None:
    no_app = parse_result("200 result=-2")
    channel = FakeChannel(keys=["1", "3"], replies={"EXEC MSet": [no_app]})
    runner, _, _ = make(channel)
    result_of(runner.run("c", "0912"))
    assert len(channel.sent("EXEC MSet")) == 1
    assert channel.sent("SET VARIABLE SHENAVA_") == [
        'SET VARIABLE SHENAVA_LANG "fa"', 'SET VARIABLE SHENAVA_REQUEST "agent"',
        'SET VARIABLE SHENAVA_VULNERABLE "0"',
    ]


def test_the_recording_name_comes_from_the_allocator_never_from_the_call() -> None:
    names = iter(["/vm/vm-20260101-093000-000000000001", "/vm/vm-20260101-093000-000000000002"])
    for call_id in ("1795339506.82", "../../etc/passwd"):
        channel = FakeChannel(keys=["2", "4"], replies={"RECORD FILE": [parse_result("200 result=35 (dtmf) endpos=9000")]})
        runner = IVRRunner(MACHINE, channel, Clock(), Sink(), Lookups(), channel_language="en",
                           recording_name=lambda: next(names))
        outcome: Outcome = result_of(runner.run(call_id, "0912"))
        (record,) = channel.sent("RECORD FILE")
        assert call_id not in record and outcome.recording is not None
        assert record.startswith(f"RECORD FILE {outcome.recording} wav ")
    assert next(names, None) is None  # one fresh name per recording


@pytest.mark.parametrize("allocator", [None, lambda: "bad name", lambda: ""])
def test_without_a_usable_recording_name_nothing_is_recorded_and_the_caller_gets_an_agent(allocator: Any) -> None:
    channel = FakeChannel(keys=["2", "4"])
    runner = IVRRunner(MACHINE, channel, Clock(), Sink(), Lookups(), channel_language="en",
                       recording_name=allocator)
    outcome: Outcome = result_of(runner.run("c", "0912"))
    assert channel.sent("RECORD FILE") == []
    assert outcome.requested is Request.AGENT and outcome.recording is None

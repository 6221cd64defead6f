"""Callback flags, pure: sources, merging, calling hours, attempts and backoff."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.callbacks import (
    AttemptAlreadyEndedError,
    AttemptInProgressError,
    AttemptOutcome,
    CallbackConfigError,
    CallingHours,
    DialPolicy,
    FlagClosedError,
    InvalidNumberError,
    NoteRequiredError,
    ReasonKind,
    Resolution,
    abandon_reason,
    acknowledge,
    attach_transcript,
    cancel,
    dial_gate,
    flag_from_dict,
    flag_to_dict,
    follow_up_reason,
    interrupt_stale_attempt,
    is_due,
    ivr_request_reason,
    merge_reason,
    new_flag,
    next_attempt_at,
    next_dial_at,
    normalize_number,
    record_outcome,
    start_attempt,
    unresolved_complaint_reason,
    voicemail_reason,
)

TEHRAN = ZoneInfo("Asia/Tehran")
T0 = datetime(2025, 3, 1, 10, 0, tzinfo=TEHRAN).timestamp()  # a Saturday
POLICY = DialPolicy(max_attempts=3, backoff_s=(300.0, 900.0, 3600.0))
ALWAYS = CallingHours.always(TEHRAN)
NUMBER = "0912 123-4567"


def tehran(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=TEHRAN).timestamp()


# -- sources -----------------------------------------------------------------------


def test_every_source_makes_a_reason() -> None:
    abandon = abandon_reason("call-1", T0, waited_s=42, policy=POLICY)
    assert abandon is not None and abandon.kind is ReasonKind.ABANDONED and abandon.due_at == T0
    ivr = ivr_request_reason("call-2", T0, turn_due_at=T0 + 180)
    assert ivr.kind is ReasonKind.IVR_REQUEST and ivr.due_at == T0 + 180
    vm = voicemail_reason("rec-1", T0, transcript="my bill is wrong")
    assert vm.kind is ReasonKind.VOICEMAIL and vm.transcript == "my bill is wrong"
    fu = follow_up_reason("a1", T0, due_at=T0 + 86400, note="call after the refund")
    assert fu.kind is ReasonKind.FOLLOW_UP and fu.raised_by == "a1" and fu.due_at == T0 + 86400
    stale = unresolved_complaint_reason("41415926", T0, age_s=8 * 86400)
    assert stale.kind is ReasonKind.UNRESOLVED_COMPLAINT and stale.complaint_ref == "41415926"


def test_short_abandon_raises_no_flag() -> None:
    assert abandon_reason("call-1", T0, waited_s=4.9, policy=POLICY) is None
    assert abandon_reason("call-1", T0, waited_s=5.0, policy=POLICY) is not None


def test_ivr_request_is_never_due_in_the_past() -> None:
    assert ivr_request_reason("c", T0, turn_due_at=T0 - 60).due_at == T0


def test_numbers_are_normalised_and_anonymous_refused() -> None:
    assert normalize_number("0912 123-4567") == "09121234567"
    assert normalize_number("+98 (912) 123 4567") == "+989121234567"
    for bad in ("", None, "anonymous", "sip:bob@x", "12"):
        with pytest.raises(InvalidNumberError):
            normalize_number(bad)


# -- merging -------------------------------------------------------------------------


def test_reasons_merge_into_one_flag_due_at_the_earliest() -> None:
    flag = new_flag("cb-1", NUMBER, follow_up_reason("a1", T0, T0 + 3600), T0)
    assert flag.number == "09121234567" and flag.due_at == T0 + 3600
    flag = merge_reason(flag, voicemail_reason("rec-1", T0 + 10), T0 + 10)
    assert [r.kind for r in flag.reasons] == [ReasonKind.FOLLOW_UP, ReasonKind.VOICEMAIL]
    assert flag.due_at == T0 + 10
    assert [h.event for h in flag.history] == ["reason", "reason"]


def test_the_same_reason_twice_is_merged_once() -> None:
    flag = new_flag("cb-1", NUMBER, unresolved_complaint_reason("41415926", T0, 1), T0)
    again = merge_reason(flag, unresolved_complaint_reason("41415926", T0 + 99, 1), T0 + 99)
    assert again is flag


def test_transcript_arrives_after_the_flag() -> None:
    flag = new_flag("cb-1", NUMBER, voicemail_reason("rec-1", T0), T0)
    flag = attach_transcript(flag, "rec-1", "the meter is broken", T0 + 30)
    assert flag.transcripts == ("the meter is broken",)


def test_closed_flags_take_no_reasons() -> None:
    flag = cancel(new_flag("cb-1", NUMBER, voicemail_reason("r", T0), T0), T0, by="s1", note="served")
    with pytest.raises(FlagClosedError):
        merge_reason(flag, voicemail_reason("r2", T0), T0)


def test_a_customer_reason_starts_a_new_round_of_attempts() -> None:
    flag = new_flag("cb-1", NUMBER, voicemail_reason("rec-1", T0), T0)
    for i in range(2):
        flag = start_attempt(flag, T0 + i * 5000, "a1")
        flag = record_outcome(flag, i + 1, AttemptOutcome.NO_ANSWER, T0 + i * 5000 + 30, POLICY, by="a1")
    assert len(flag.round_attempts) == 2
    again = abandon_reason("call-9", T0 + 9000, 60, POLICY)
    assert again is not None
    flag = merge_reason(flag, again, T0 + 9000)
    assert flag.round_attempts == () and next_attempt_at(flag, POLICY) == T0  # backoff cleared
    # an agent's follow-up does not start a new round
    flag2 = start_attempt(flag, T0 + 9100, "a1")
    flag2 = record_outcome(flag2, 3, AttemptOutcome.BUSY, T0 + 9130, POLICY, by="a1")
    flag2 = merge_reason(flag2, follow_up_reason("a2", T0 + 9200, T0 + 9200), T0 + 9200)
    assert len(flag2.round_attempts) == 1


# -- attempts, backoff, outcomes -------------------------------------------------------


def test_backoff_after_each_failed_attempt_then_unreachable() -> None:
    flag = new_flag("cb-1", NUMBER, voicemail_reason("rec-1", T0), T0)
    now = T0
    for attempt, (outcome, wait) in enumerate(
        [(AttemptOutcome.NO_ANSWER, 300.0), (AttemptOutcome.BUSY, 900.0)], start=1
    ):
        assert is_due(flag, now, POLICY, ALWAYS)
        flag = start_attempt(flag, now, "a1")
        assert next_attempt_at(flag, POLICY) is None  # being dialled
        flag = record_outcome(flag, attempt, outcome, now + 20, POLICY, by="a1")
        assert flag.is_open and next_attempt_at(flag, POLICY) == now + 20 + wait
        assert not is_due(flag, now + 20 + wait - 1, POLICY, ALWAYS)
        now = now + 20 + wait
    flag = start_attempt(flag, now, "a1")
    flag = record_outcome(flag, 3, AttemptOutcome.NO_ANSWER, now + 20, POLICY, by="a1")
    assert not flag.is_open and flag.resolution is Resolution.UNREACHABLE
    assert flag.needs_attention  # surfaced to supervisors, never dropped
    assert [a.outcome for a in flag.attempts] == ["no_answer", "busy", "no_answer"]
    seen = acknowledge(flag, now + 60, by="sup1")
    assert not seen.needs_attention and seen.history[-1].event == "acknowledged"


def test_answered_closes_and_wrong_number_closes_for_a_supervisor() -> None:
    flag = start_attempt(new_flag("cb-1", NUMBER, voicemail_reason("r", T0), T0), T0, "a1")
    done = record_outcome(flag, 1, AttemptOutcome.ANSWERED, T0 + 300, POLICY, by="a1", note="refund agreed")
    assert done.resolution is Resolution.ANSWERED and not done.needs_attention
    wrong = record_outcome(flag, 1, AttemptOutcome.WRONG_NUMBER, T0 + 30, POLICY, by="a1")
    assert wrong.resolution is Resolution.WRONG_NUMBER and wrong.needs_attention


def test_answered_with_follow_up_keeps_the_flag_open() -> None:
    flag = start_attempt(new_flag("cb-1", NUMBER, voicemail_reason("r", T0), T0), T0, "a1")
    flag = record_outcome(
        flag, 1, AttemptOutcome.ANSWERED, T0 + 60, POLICY, by="a1", follow_up_at=T0 + 86400
    )
    assert flag.is_open and flag.reasons[-1].kind is ReasonKind.FOLLOW_UP
    assert next_attempt_at(flag, POLICY) == T0  # earliest reason; the voicemail was answered
    assert flag.round_attempts == ()


def test_agent_leg_failures_do_not_count() -> None:
    flag = new_flag("cb-1", NUMBER, voicemail_reason("r", T0), T0)
    for i in range(5):
        flag = start_attempt(flag, T0 + i, "a1")
        flag = record_outcome(flag, i + 1, AttemptOutcome.AGENT_UNAVAILABLE, T0 + i + 0.5, POLICY, by="a1")
    assert flag.is_open and next_attempt_at(flag, POLICY) == T0 and len(flag.attempts) == 5


def test_never_two_attempts_at_once_and_outcomes_are_final() -> None:
    flag = start_attempt(new_flag("cb-1", NUMBER, voicemail_reason("r", T0), T0), T0, "a1")
    with pytest.raises(AttemptInProgressError):
        start_attempt(flag, T0 + 1, "a2")
    with pytest.raises(AttemptInProgressError):
        cancel(flag, T0, by="s", note="x")
    flag = record_outcome(flag, 1, AttemptOutcome.BUSY, T0 + 5, POLICY, by="a1")
    with pytest.raises(AttemptAlreadyEndedError):
        record_outcome(flag, 1, AttemptOutcome.ANSWERED, T0 + 6, POLICY, by="a1")


def test_an_interrupted_attempt_counts_and_a_late_outcome_replaces_it() -> None:
    flag = start_attempt(new_flag("cb-1", NUMBER, voicemail_reason("r", T0), T0), T0, "a1")
    flag = interrupt_stale_attempt(flag, T0 + 200, POLICY)
    assert flag.attempts[0].outcome is AttemptOutcome.INTERRUPTED and len(flag.round_attempts) == 1
    late = record_outcome(flag, 1, AttemptOutcome.ANSWERED, T0 + 210, POLICY, by="a1")
    assert late.resolution is Resolution.ANSWERED and late.history[-2].event == "late_outcome"


def test_cancel_needs_a_note() -> None:
    flag = new_flag("cb-1", NUMBER, voicemail_reason("r", T0), T0)
    with pytest.raises(NoteRequiredError):
        cancel(flag, T0, by="s1", note=" ")
    assert cancel(flag, T0, by="s1", note="called in").resolution is Resolution.CANCELLED


def test_flags_round_trip_through_json() -> None:
    flag = new_flag("cb-1", NUMBER, voicemail_reason("r", T0, "سلام"), T0)
    flag = start_attempt(flag, T0, "a1")
    flag = record_outcome(flag, 1, AttemptOutcome.BUSY, T0 + 1, POLICY, by="a1")
    assert flag_from_dict(flag_to_dict(flag)) == flag


# -- calling hours --------------------------------------------------------------------

HOURS = CallingHours.from_mapping(
    {
        "timezone": "Asia/Tehran",
        "windows": {"daily": ["09:00-21:00"], "thu": ["09:00-13:00", "22:00-02:00"], "fri": []},
    }
)


def test_inside_and_outside_calling_hours() -> None:
    assert HOURS.is_open(tehran(2025, 3, 1, 9, 0))  # Saturday 09:00
    assert not HOURS.is_open(tehran(2025, 3, 1, 21, 0))  # end is exclusive
    assert HOURS.next_allowed(tehran(2025, 3, 1, 21, 30)) == tehran(2025, 3, 2, 9, 0)
    assert HOURS.next_allowed(tehran(2025, 3, 1, 12, 0)) == tehran(2025, 3, 1, 12, 0)


def test_a_window_across_midnight_belongs_to_the_day_it_starts() -> None:
    # Thursday 6 March 2025: 22:00 to Friday 02:00; Friday has no window of its own
    assert HOURS.is_open(tehran(2025, 3, 7, 1, 59))
    assert not HOURS.is_open(tehran(2025, 3, 7, 2, 0))
    assert HOURS.next_allowed(tehran(2025, 3, 6, 14, 0)) == tehran(2025, 3, 6, 22, 0)
    # from Friday 02:00 the next window is Saturday 09:00
    assert HOURS.next_allowed(tehran(2025, 3, 7, 2, 0)) == tehran(2025, 3, 8, 9, 0)


def test_calling_hours_follow_the_site_zone_not_utc() -> None:
    london = CallingHours.from_mapping({"timezone": "Europe/London", "windows": {"daily": ["09:00-17:00"]}})
    # 08:30 London on 30 March 2025 is after the spring change (BST, UTC+1)
    at = datetime(2025, 3, 30, 8, 30, tzinfo=ZoneInfo("Europe/London")).timestamp()
    opens = datetime(2025, 3, 30, 9, 0, tzinfo=ZoneInfo("Europe/London")).timestamp()
    assert london.next_allowed(at) == opens and opens - at == 1800
    # the same instant is 12:00 in Tehran: open there
    assert HOURS.is_open(at)


def test_next_dial_time_combines_backoff_and_calling_hours() -> None:
    late = tehran(2025, 3, 1, 20, 57)
    flag = start_attempt(new_flag("cb-1", NUMBER, voicemail_reason("r", late), late), late, "a1")
    flag = record_outcome(flag, 1, AttemptOutcome.NO_ANSWER, late + 60, POLICY, by="a1")
    assert next_dial_at(flag, POLICY, HOURS) == tehran(2025, 3, 2, 9, 0)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"timezone": "Mars/Olympus", "windows": {"daily": ["09:00-10:00"]}}, "timezone"),
        ({"windows": {"someday": ["09:00-10:00"]}}, "windows.someday"),
        ({"windows": {"mon": ["9-10"]}}, "windows.mon[0]"),
        ({"windows": {"mon": ["09:00-09:00"]}}, "windows.mon[0]"),
        ({"windows": {"mon": ["25:00-26:00"]}}, "windows.mon[0]"),
        ({"windows": {"daily": []}}, "windows"),
        ({"windows": {}}, "windows"),
        ({"windows": {"mon": ["09:00-10:00"]}, "tz": "UTC"}, "tz"),
    ],
)
def test_bad_calling_hours_name_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(CallbackConfigError) as err:
        CallingHours.from_mapping(data)
    assert err.value.key == f"callbacks.calling_hours.{key}"


def test_all_day_window() -> None:
    hours = CallingHours.from_mapping({"windows": {"daily": ["00:00-24:00"]}})
    assert hours.is_open(T0) and hours.next_allowed(T0) == T0


@given(
    st.floats(min_value=1.7e9, max_value=1.8e9),
    st.lists(st.sampled_from(["08:00-12:00", "22:00-02:00", "13:30-18:15", "23:59-00:01"]), min_size=1),
)
def test_next_allowed_is_open_and_nothing_earlier_is(now: float, windows: list[str]) -> None:
    hours = CallingHours.from_mapping({"timezone": "Asia/Tehran", "windows": {"wed": windows}})
    at = hours.next_allowed(now)
    assert at >= now and hours.is_open(at)
    if at > now:  # every minute before it is closed
        t = now
        while t < at:
            assert not hours.is_open(t)
            t += 3600.0


# -- the dial gate ----------------------------------------------------------------------


def test_dial_gate_needs_hours_agent_and_headroom() -> None:
    noon = tehran(2025, 3, 1, 12, 0)
    ok = dial_gate(noon, HOURS, POLICY, free_agents=1, waiting_calls=0, service_level=0.9)
    assert ok.open
    assert not dial_gate(tehran(2025, 3, 1, 23, 0), HOURS, POLICY, free_agents=3, waiting_calls=0, service_level=None).open
    assert not dial_gate(noon, HOURS, POLICY, free_agents=0, waiting_calls=0, service_level=None).open
    assert not dial_gate(noon, HOURS, POLICY, free_agents=2, waiting_calls=1, service_level=None).open
    low = dial_gate(noon, HOURS, POLICY, free_agents=2, waiting_calls=0, service_level=0.7)
    assert not low.open and "service level" in low.reason


def test_policy_is_validated() -> None:
    with pytest.raises(CallbackConfigError):
        DialPolicy(max_attempts=0)
    with pytest.raises(CallbackConfigError):
        DialPolicy(backoff_s=())
    assert DialPolicy(backoff_s=(60.0,)).backoff_after(5) == 60.0


def test_dial_gate_names_the_gate_that_says_no() -> None:
    noon = tehran(2025, 3, 1, 12, 0)
    night = tehran(2025, 3, 1, 23, 0)
    gate = lambda now, **kw: dial_gate(now, HOURS, POLICY, **{  # noqa: E731
        "free_agents": 1, "waiting_calls": 0, "service_level": None, **kw}).gate
    assert gate(night) == "calling_hours"
    assert gate(noon, free_agents=0) == "free_agents"
    assert gate(noon, waiting_calls=1) == "waiting_calls"
    assert gate(noon, service_level=0.5) == "service_level"
    assert gate(noon) == ""


def test_dial_gate_with_one_agent_dials_when_nobody_waits_and_the_staffed_sl_holds() -> None:
    # One agent staffed: with one fewer (none) Erlang C predicts 0 % whatever the
    # traffic, so the headroom test alone would never dial under a 0.8 target.
    noon = tehran(2025, 3, 1, 12, 0)
    one = dial_gate(noon, HOURS, POLICY, free_agents=1, waiting_calls=0,
                    service_level=0.0, staffed_service_level=1.0)
    assert one.open and "nobody waiting" in one.reason
    busy = dial_gate(noon, HOURS, POLICY, free_agents=1, waiting_calls=0,
                     service_level=0.0, staffed_service_level=0.6)
    assert not busy.open and busy.gate == "service_level" and "60%" in busy.reason
    lenient = DialPolicy(max_waiting_calls=2)
    waiting = dial_gate(noon, HOURS, lenient, free_agents=1, waiting_calls=1,
                        service_level=0.0, staffed_service_level=1.0)
    assert not waiting.open and waiting.gate == "service_level"


def test_a_late_answer_kept_while_a_later_attempt_ran_closes_the_flag_when_that_one_ends() -> None:
    """Two daemons of a site: one lost its lease mid-dial (paused, or Redis away), the
    other marked the attempt interrupted and dialled again; the first one's outcome,
    answered, lands while the second attempt rings. Before, it was kept in the attempt
    but the flag stayed open: the customer was called a third time."""
    flag = start_attempt(new_flag("cb-1", NUMBER, voicemail_reason("r", T0), T0), T0, "a1")
    flag = interrupt_stale_attempt(flag, T0 + 200, POLICY)
    flag = start_attempt(flag, T0 + 200, "a2")
    flag = record_outcome(flag, 1, AttemptOutcome.ANSWERED, T0 + 210, POLICY, by="a1")
    assert flag.is_open and flag.attempt_in_progress is not None
    flag = record_outcome(flag, 2, AttemptOutcome.NO_ANSWER, T0 + 230, POLICY, by="a2")
    assert flag.resolution is Resolution.ANSWERED
    assert len(flag.round_attempts) == 2  # each attempt counted once


def test_a_late_answer_after_the_interruption_exhausted_the_round_closes_it_answered() -> None:
    policy = DialPolicy(max_attempts=1, backoff_s=(300.0,))
    flag = start_attempt(new_flag("cb-1", NUMBER, voicemail_reason("r", T0), T0), T0, "a1")
    flag = interrupt_stale_attempt(flag, T0 + 200, policy)
    assert flag.resolution is Resolution.UNREACHABLE and flag.needs_attention
    flag = record_outcome(flag, 1, AttemptOutcome.ANSWERED, T0 + 210, policy, by="a1")
    assert flag.resolution is Resolution.ANSWERED and not flag.needs_attention


def test_a_late_failure_changes_nothing_it_should_not() -> None:
    flag = start_attempt(new_flag("cb-1", NUMBER, voicemail_reason("r", T0), T0), T0, "a1")
    flag = interrupt_stale_attempt(flag, T0 + 200, POLICY)
    flag = start_attempt(flag, T0 + 200, "a2")
    flag = record_outcome(flag, 1, AttemptOutcome.BUSY, T0 + 210, POLICY, by="a1")
    flag = record_outcome(flag, 2, AttemptOutcome.NO_ANSWER, T0 + 230, POLICY, by="a2")
    assert flag.is_open and len(flag.round_attempts) == 2

"""Service level by hand for every option, app_queue's figures, buckets, incremental = scratch."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_stats.errors import InvalidCallRecordError, InvalidConfigError
from agent_stats.sla import (
    BucketKind,
    CallRecord,
    ChoiceCounting,
    ClockStart,
    Outcome,
    SLAConfig,
    SLATally,
    SLCounts,
    compute,
    day_start,
    delta,
    interval_start,
    rolling_window_start,
    slot_start,
)

OUT = Outcome
ARR = ClockStart.ARRIVAL
CC = ChoiceCounting

# One call: arrives at 0, joins the line at 10 (10 s in the IVR), outcome at `at`.
# Expected: offered, in_sl, answered, answered_in_sl, abandoned (long), abandoned_short,
#           aq_completed, aq_completed_in_sl, aq_abandoned, aq_abandoned_in_sl
# fmt: off
CASES: list[tuple[str, dict[str, Any], Outcome, float, tuple[int, ...]]] = [
    ("answered at T exactly", {}, OUT.ANSWERED, 30, (1, 1, 1, 1, 0, 0, 1, 1, 0, 0)),
    ("answered just after T", {}, OUT.ANSWERED, 30.5, (1, 0, 1, 0, 0, 0, 1, 0, 0, 0)),
    ("clock at arrival: 30 s", {"clock_start": ARR}, OUT.ANSWERED, 30, (1, 0, 1, 0, 0, 0, 1, 1, 0, 0)),
    ("clock at arrival: 20 s", {"clock_start": ARR}, OUT.ANSWERED, 20, (1, 1, 1, 1, 0, 0, 1, 1, 0, 0)),
    ("T = 10 s, at 10 s", {"threshold_s": 10}, OUT.ANSWERED, 20, (1, 1, 1, 1, 0, 0, 1, 1, 0, 0)),
    ("T = 10 s, at 11 s", {"threshold_s": 10}, OUT.ANSWERED, 21, (1, 0, 1, 0, 0, 0, 1, 0, 0, 0)),
    ("app_queue servicelevel 30", {"app_queue_servicelevel_s": 30}, OUT.ANSWERED, 35, (1, 0, 1, 0, 0, 0, 1, 1, 0, 0)),
    ("short abandon at 4 s", {}, OUT.ABANDONED, 14, (0, 0, 0, 0, 0, 1, 0, 0, 1, 1)),
    ("abandon at 5 s is not short", {}, OUT.ABANDONED, 15, (1, 0, 0, 0, 1, 0, 0, 0, 1, 1)),
    ("no short-abandon exclusion", {"short_abandon_s": 0}, OUT.ABANDONED, 14, (1, 0, 0, 0, 1, 0, 0, 0, 1, 1)),
    ("abandon, clock at arrival", {"clock_start": ARR}, OUT.ABANDONED, 14, (1, 0, 0, 0, 1, 0, 0, 0, 1, 1)),
    ("abandon after T", {}, OUT.ABANDONED, 40, (1, 0, 0, 0, 1, 0, 0, 0, 1, 0)),
    ("voicemail within T", {}, OUT.VOICEMAIL, 25, (1, 1, 0, 0, 0, 0, 0, 0, 0, 0)),
    ("voicemail after T", {}, OUT.VOICEMAIL, 35, (1, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    ("voicemail, clock at arrival", {"clock_start": ARR}, OUT.VOICEMAIL, 25, (1, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    ("callback as answered", {"choice_counting": CC.ANSWERED}, OUT.CALLBACK, 35, (1, 1, 0, 0, 0, 0, 0, 0, 0, 0)),
    ("callback as abandon, short", {"choice_counting": CC.ABANDONED}, OUT.CALLBACK, 12, (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    ("callback as abandon", {"choice_counting": CC.ABANDONED}, OUT.CALLBACK, 25, (1, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    ("voicemail excluded", {"choice_counting": CC.EXCLUDED}, OUT.VOICEMAIL, 25, (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
]
# fmt: on


@pytest.mark.parametrize(
    ("name", "options", "outcome", "at", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_one_call_by_hand(
    name: str, options: dict[str, Any], outcome: Outcome, at: float, expected: tuple[int, ...]
) -> None:
    config = SLAConfig(**options)
    call = CallRecord("q", arrived_at=0, joined_at=10, outcome=outcome, outcome_at=at)
    d = delta(call, config)
    got = (
        d.offered, d.in_sl, d.answered, d.answered_in_sl, d.abandoned, d.abandoned_short,
        d.aq_completed, d.aq_completed_in_sl, d.aq_abandoned, d.aq_abandoned_in_sl,
    )  # fmt: skip
    assert got == expected
    report = compute([call], config, "q", 0, 100)
    assert (report.offered, report.in_sl, report.answered, report.answered_in_sl) == expected[:4]
    assert (report.abandoned, report.abandoned_short) == expected[4:6]


def _batch() -> list[CallRecord]:
    def call(outcome: Outcome, wait: float, name: str) -> CallRecord:
        return CallRecord("q", 1000, 1000, outcome, 1000 + wait, call_id=name)

    return [
        call(OUT.ANSWERED, 5, "A"),  # in SL
        call(OUT.ANSWERED, 20, "B"),  # in SL (inclusive)
        call(OUT.ANSWERED, 45, "C"),
        call(OUT.ABANDONED, 3, "D"),  # short: left out; app_queue: abandoned in SL
        call(OUT.ABANDONED, 30, "E"),
        call(OUT.ABANDONED, 25, "F"),
        call(OUT.VOICEMAIL, 10, "G"),  # in SL by default
        call(OUT.CALLBACK, 60, "H"),
    ]


def test_mixed_batch_by_hand() -> None:
    config = SLAConfig()
    tally = SLATally(config)
    for c in _batch():
        tally.add(c)
    counts = tally.day("q", 1000)
    # offered = 3 answered + 2 long abandons + 2 choices; in SL = A, B, G
    assert (counts.offered, counts.in_sl) == (7, 3)
    assert Fraction(counts.in_sl, counts.offered) == Fraction(3, 7)
    assert counts.service_level == pytest.approx(3 / 7)
    # app_queue: completed A B C (A, B in SL); abandoned D E F (D in SL)
    assert counts.servicelevel_perf == pytest.approx(2 / 3)
    assert counts.servicelevel_perf2 == pytest.approx((1 + 2) / (3 + 3))
    assert (counts.voicemail, counts.callback, counts.choices_in_sl, counts.choices_late) == (
        1,
        1,
        1,
        1,
    )
    assert counts.average_answer_wait_s == pytest.approx((5 + 20 + 45) / 3)
    report = compute(_batch(), config, "q", 0, 10**6)
    assert report.service_level == counts.service_level
    assert report.servicelevel_perf == counts.servicelevel_perf
    assert report.servicelevel_perf2 == counts.servicelevel_perf2


def test_mixed_batch_with_other_options() -> None:
    arrival = SLAConfig(choice_counting=CC.EXCLUDED, short_abandon_s=0)
    report = compute(_batch(), arrival, "q", 0, 10**6)
    # offered = 3 answered + 3 abandons; in SL = A, B
    assert (report.offered, report.in_sl) == (6, 2)
    assert report.service_level == pytest.approx(1 / 3)


def test_empty_figures_are_none() -> None:
    counts = SLCounts()
    assert counts.service_level is None
    assert counts.servicelevel_perf is None
    assert counts.servicelevel_perf2 is None
    assert counts.average_answer_wait_s is None


def test_counters_round_trip_through_hash_fields() -> None:
    tally = SLATally(SLAConfig())
    for c in _batch():
        tally.add(c)
    counts = tally.day("q", 1000)
    fields = {k.encode(): str(v).encode() for k, v in counts.to_fields().items()}
    back = SLCounts.from_fields({**fields, b"future_field": b"4"})
    assert back.to_fields() == counts.to_fields()
    assert back.extra == {"future_field": 4}


def test_buckets_follow_local_days_and_quarter_hours() -> None:
    tehran = SLAConfig(utc_offset_s=12600)  # UTC+03:30
    t = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC = 2023-11-15 01:43:20 in Tehran
    assert day_start(t, tehran) == 1_699_993_800.0  # 2023-11-14 20:30 UTC, Tehran midnight
    assert interval_start(t, tehran) == 1_699_999_200.0  # 01:30 Tehran
    assert day_start(t, SLAConfig()) == 1_699_920_000.0
    tally = SLATally(tehran)
    keys = tally.add(CallRecord("q", t - 30, t - 30, OUT.ANSWERED, t))
    assert [k.kind for k in keys] == [BucketKind.SLOT, BucketKind.INTERVAL, BucketKind.DAY]
    assert keys[1].to_str() == "q:interval:1699999200"
    intervals = tally.intervals("q", t)
    assert len(intervals) == 96
    assert [start for start, c in intervals if c.offered] == [1_699_999_200.0]


def test_rolling_window_is_slot_aligned() -> None:
    config = SLAConfig(window_s=300, slot_s=60)
    tally = SLATally(config)
    for at in (1000, 1140, 1199, 1200, 1259):
        tally.add(CallRecord("q", at - 10, at - 10, OUT.ANSWERED, at))
    # five slots: the current one (1200-1259) and the four full ones before it
    assert rolling_window_start(1259, config) == 960
    assert tally.rolling("q", 1259).answered == 5
    assert rolling_window_start(1260, config) == 1020
    assert tally.rolling("q", 1260).answered == 4  # 1000 is out
    assert tally.rolling("q", 1379).answered == 4  # window from 1080
    assert tally.rolling("q", 1439).answered == 4  # window from 1140
    assert tally.rolling("q", 1499).answered == 2  # window from 1200
    assert tally.rolling("q", 1500).answered == 0
    tally.prune(1379)
    assert (
        tally.bucket(next(iter(tally.add(CallRecord("q", 0, 0, OUT.ANSWERED, 1380))))).answered == 1
    )


def test_invalid_records_and_config_are_refused() -> None:
    with pytest.raises(InvalidCallRecordError):
        CallRecord("q", arrived_at=10, joined_at=5, outcome=OUT.ANSWERED, outcome_at=20)
    with pytest.raises(InvalidCallRecordError):
        CallRecord("q", arrived_at=0, joined_at=5, outcome=OUT.ANSWERED, outcome_at=4)
    with pytest.raises(ValueError):
        CallRecord("q", 0, 0, "hung up", 4)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError) as err:
        SLAConfig(interval_s=7)
    assert err.value.key == "interval_s"
    with pytest.raises(InvalidConfigError):
        SLAConfig(target=80)


configs = st.builds(
    SLAConfig,
    threshold_s=st.sampled_from([0.0, 10.0, 20.0, 30.0]),
    short_abandon_s=st.sampled_from([0.0, 5.0, 10.0]),
    clock_start=st.sampled_from(list(ClockStart)),
    choice_counting=st.sampled_from(list(ChoiceCounting)),
    window_s=st.sampled_from([60.0, 600.0, 1800.0]),
    slot_s=st.sampled_from([10.0, 60.0]),
    utc_offset_s=st.sampled_from([0.0, 12600.0, -18000.0]),
)
calls = st.lists(
    st.builds(
        lambda q, arr, ivr, wait, outcome: CallRecord(q, arr, arr + ivr, outcome, arr + ivr + wait),
        st.sampled_from(["q1", "q2"]),
        st.integers(0, 3 * 86400),
        st.integers(0, 40),
        st.integers(0, 60),
        st.sampled_from(list(Outcome)),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(config=configs, records=calls, now=st.integers(0, 3 * 86400 + 200))
def test_incremental_counters_match_the_scratch_computation(
    config: SLAConfig, records: list[CallRecord], now: int
) -> None:
    tally = SLATally(config)
    for c in records:
        tally.add(c)
    for q in ("q1", "q2"):
        checks = [
            # live, no outcome is later than now; here the whole current slot counts
            (
                tally.rolling(q, now),
                rolling_window_start(now, config),
                slot_start(now, config) + config.slot_s,
            ),
            (tally.day(q, now), day_start(now, config), day_start(now, config) + 86400),
            (
                tally.interval(q, now),
                interval_start(now, config),
                interval_start(now, config) + 900,
            ),
        ]
        for counts, start, end in checks:
            report = compute(records, config, q, start, end)
            assert (counts.offered, counts.in_sl, counts.answered) == (
                report.offered,
                report.in_sl,
                report.answered,
            )
            assert (counts.abandoned, counts.abandoned_short) == (
                report.abandoned,
                report.abandoned_short,
            )
            assert counts.service_level == report.service_level
            assert counts.servicelevel_perf == report.servicelevel_perf
            assert counts.servicelevel_perf2 == report.servicelevel_perf2

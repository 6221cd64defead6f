"""The calling hours answer from windows computed once and kept for a few hours (the callback
gate asks for every call), exactly as the definition computed afresh for each ``now`` does:
random windows, time zones with daylight saving (Tehran until 2022, New York, Lord Howe's
half hour) and a skipped date (Apia, 2011-12-30), times stepping forwards and back."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from routing.callbacks import CallingHours, Window
from routing.callbacks.flags import MINUTES_PER_DAY

ZONES = ("UTC", "Asia/Tehran", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia")
STARTS = (
    datetime(2011, 12, 28, tzinfo=UTC).timestamp(),  # Apia skips the 30th
    datetime(2021, 3, 19, tzinfo=UTC).timestamp(),  # Tehran springs forward at midnight
    datetime(2021, 9, 19, tzinfo=UTC).timestamp(),  # and falls back at midnight
    datetime(2026, 11, 1, tzinfo=UTC).timestamp(),  # New York falls back
)


def fresh_is_open(hours: CallingHours, now: float) -> bool:
    return any(start <= now < end for start, end in hours._intervals(now))


def fresh_next_allowed(hours: CallingHours, now: float) -> float:
    starts = []
    for start, end in hours._intervals(now):
        if start <= now < end:
            return now
        if start > now:
            starts.append(start)
    return min(starts)


windows = st.lists(
    st.tuples(st.integers(0, MINUTES_PER_DAY - 1), st.integers(1, MINUTES_PER_DAY)).filter(
        lambda w: w[0] != w[1] % MINUTES_PER_DAY or w[1] == MINUTES_PER_DAY),
    min_size=1, max_size=2)
# mostly days without a window: the next start is then up to a week away
sparse_days = st.lists(st.one_of(st.just([]), st.just([]), st.just([]), windows),
                       min_size=7, max_size=7).filter(any)


@settings(max_examples=500)
@given(
    zone=st.sampled_from(ZONES),
    days=sparse_days,
    start=st.sampled_from(STARTS),
    steps=st.lists(st.integers(-4 * 3600, 9 * 3600), min_size=1, max_size=40),
)
def test_kept_windows_answer_as_the_definition(
    zone: str, days: list[list[tuple[int, int]]], start: float, steps: list[int]
) -> None:
    hours = CallingHours(ZoneInfo(zone), {
        i: tuple(Window(a, b) for a, b in day) for i, day in enumerate(days)})
    now = start
    for step in steps:
        now += step
        assert hours.is_open(now) is fresh_is_open(hours, now)
        assert hours.next_allowed(now) == fresh_next_allowed(hours, now)


def test_the_windows_are_computed_once_for_many_calls() -> None:
    hours = CallingHours.always(ZoneInfo("Asia/Tehran"))
    now = STARTS[1]
    hours.is_open(now)
    kept = hours._kept[1]
    for i in range(1000):
        assert hours.is_open(now + i)
    assert hours._kept[1] is kept
    assert hours == CallingHours.always(ZoneInfo("Asia/Tehran"))  # what is kept is not compared


def test_a_sweep_hour_by_hour_with_one_window_a_week() -> None:
    """The hard case: the next start is a week away (and, at Apia, a day is skipped)."""
    cases = [("Pacific/Apia", STARTS[0]), ("Asia/Tehran", STARTS[1]), ("Asia/Tehran", STARTS[2]),
             ("America/New_York", STARTS[3])]
    for zone, start in cases:
        for weekday in range(7):
            for phase in range(0, 6 * 3600, 7200):
                hours = CallingHours(ZoneInfo(zone), {weekday: (Window(0, 30),)})
                for hour in range(10 * 24):
                    now = start + phase + hour * 3600.0
                    assert hours.is_open(now) is fresh_is_open(hours, now)
                    assert hours.next_allowed(now) == fresh_next_allowed(hours, now)

"""Gregorian <-> Jalali, held to known dates and to a round trip over three centuries."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from agent_stats.jalali import (
    JalaliDate,
    JalaliRangeError,
    is_leap,
    parse_jalali,
    to_gregorian,
    to_jalali,
)

KNOWN = [
    (date(2025, 3, 21), (1404, 1, 1)),  # Nowruz 1404
    (date(2025, 3, 20), (1403, 12, 30)),  # 1403 is a leap year
    (date(2024, 3, 20), (1403, 1, 1)),
    (date(2021, 3, 21), (1400, 1, 1)),
    (date(2021, 3, 20), (1399, 12, 30)),
    (date(2026, 3, 21), (1405, 1, 1)),
    (date(2026, 3, 20), (1404, 12, 29)),
    (date(2000, 1, 1), (1378, 10, 11)),
    (date(1979, 2, 11), (1357, 11, 22)),  # 22 Bahman
    (date(2026, 11, 2), (1405, 8, 11)),
    (date(2025, 9, 22), (1404, 6, 31)),  # last day of a 31-day month
    (date(2025, 9, 23), (1404, 7, 1)),
]


@pytest.mark.parametrize(("gregorian", "jalali"), KNOWN)
def test_known_dates(gregorian: date, jalali: tuple[int, int, int]) -> None:
    assert to_jalali(gregorian) == JalaliDate(*jalali)
    assert to_gregorian(*jalali) == gregorian


def test_round_trip_every_day_1900_to_2100() -> None:
    d = date(1900, 1, 1)
    while d < date(2100, 1, 1):
        j = to_jalali(d)
        assert to_gregorian(j.year, j.month, j.day) == d
        d += timedelta(days=1)


def test_leap_years_and_text_forms() -> None:
    assert [y for y in range(1395, 1410) if is_leap(y)] == [1395, 1399, 1403, 1408]
    j = to_jalali(date(2025, 3, 21))
    assert (j.isoformat(), j.persian(), j.long_persian()) == (
        "1404/01/01", "۱۴۰۴/۰۱/۰۱", "۱ فروردین ۱۴۰۴")
    assert parse_jalali("۱۴۰۵/۰۸/۱۱") == parse_jalali("1405-08-11") == date(2026, 11, 2)
    with pytest.raises(JalaliRangeError):
        to_gregorian(1404, 12, 30)  # 1404 is not a leap year
    with pytest.raises(JalaliRangeError):
        parse_jalali("14/3")

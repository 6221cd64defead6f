"""Gregorian <-> Jalali (Solar Hijri) dates, pure, for Persian reports and the wallboard.

The arithmetic is Kazimierz Borkowski's, as in the ``jalaali-js`` library: the
Jalali leap years follow the 2820-year-free "breaks" table, which matches the
astronomical calendar Iran uses for Jalali years -61 .. 3177. ``1404/01/01``
(Nowruz) is ``2025-03-21``. No dependency: Python's proleptic Gregorian ordinal
stands in for the Julian day number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

_BREAKS = (
    -61, 9, 38, 199, 426, 686, 756, 818, 1111, 1181, 1210, 1635, 2060, 2097, 2192,
    2262, 2324, 2394, 2456, 3178,
)

MONTHS_FA = (
    "فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور",
    "مهر", "آبان", "آذر", "دی", "بهمن", "اسفند",
)
PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


class JalaliRangeError(ValueError):
    code = "agent_stats.jalali_range"


@dataclass(frozen=True, slots=True, order=True)
class JalaliDate:
    year: int
    month: int
    day: int

    def isoformat(self) -> str:
        """``1404/01/01``: the way Iranian forms write it."""
        return f"{self.year:04d}/{self.month:02d}/{self.day:02d}"

    def persian(self) -> str:
        """``۱۴۰۴/۰۱/۰۱``."""
        return self.isoformat().translate(PERSIAN_DIGITS)

    def long_persian(self) -> str:
        """``۱ فروردین ۱۴۰۴``."""
        return f"{self.day} {MONTHS_FA[self.month - 1]} {self.year}".translate(PERSIAN_DIGITS)


def _div(a: int, b: int) -> int:
    """Division truncated toward zero, as in the reference algorithm."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _mod(a: int, b: int) -> int:
    return a - _div(a, b) * b


def _year_facts(jy: int) -> tuple[int, int, int]:
    """``(leap, gregorian year of Nowruz, day of March of Nowruz)``; ``leap`` 0 = leap year."""
    if not _BREAKS[0] <= jy < _BREAKS[-1]:
        raise JalaliRangeError(f"Jalali year {jy} is outside {_BREAKS[0]}..{_BREAKS[-1] - 1}")
    gy = jy + 621
    leap_j = -14
    jp = _BREAKS[0]
    jump = 0
    for jm in _BREAKS[1:]:
        jump = jm - jp
        if jy < jm:
            break
        leap_j += _div(jump, 33) * 8 + _div(_mod(jump, 33), 4)
        jp = jm
    n = jy - jp
    leap_j += _div(n, 33) * 8 + _div(_mod(n, 33) + 3, 4)
    if _mod(jump, 33) == 4 and jump - n == 4:
        leap_j += 1
    leap_g = _div(gy, 4) - _div((_div(gy, 100) + 1) * 3, 4) - 150
    march = 20 + leap_j - leap_g
    if jump - n < 6:
        n = n - jump + _div(jump + 4, 33) * 33
    leap = _mod(_mod(n + 1, 33) - 1, 4)
    if leap == -1:
        leap = 4
    return leap, gy, march


def is_leap(jy: int) -> bool:
    return _year_facts(jy)[0] == 0


def to_jalali(d: date) -> JalaliDate:
    jy = d.year - 621
    leap, gy, march = _year_facts(jy)
    k = d.toordinal() - date(gy, 3, march).toordinal()
    if k >= 0:
        if k <= 185:
            return JalaliDate(jy, 1 + _div(k, 31), _mod(k, 31) + 1)
        k -= 186
    else:
        jy -= 1
        k += 179
        if leap == 1:
            k += 1
    return JalaliDate(jy, 7 + _div(k, 30), _mod(k, 30) + 1)


def to_gregorian(jy: int, jm: int, jd: int) -> date:
    if not 1 <= jm <= 12 or not 1 <= jd <= (31 if jm <= 6 else 30):
        raise JalaliRangeError(f"no Jalali date {jy}/{jm}/{jd}")
    if jm == 12 and jd == 30 and not is_leap(jy):
        raise JalaliRangeError(f"{jy} is not a leap year: no {jy}/12/30")
    _, gy, march = _year_facts(jy)
    days = (jm - 1) * 31 - _div(jm, 7) * (jm - 7) + jd - 1
    return date.fromordinal(date(gy, 3, march).toordinal() + days)


def parse_jalali(text: str) -> date:
    """``1404/01/01`` (or with ``-``) to the Gregorian date."""
    parts = text.translate(str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789")).replace("-", "/").split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise JalaliRangeError(f"not a Jalali date (YYYY/MM/DD): {text!r}")
    return to_gregorian(int(parts[0]), int(parts[1]), int(parts[2]))

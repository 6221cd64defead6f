"""How often and when a customer may be called: the dial policy and the calling hours."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from routing.callbacks.errors import CallbackConfigError
from routing.callbacks.flags import (
    DEFAULT_BACKOFF_S,
    DEFAULT_LEASE_MS,
    DEFAULT_MAX_ATTEMPTS,
    MINUTES_PER_DAY,
    SHORT_ABANDON_S,
)


@dataclass(frozen=True, slots=True)
class DialPolicy:
    """How callbacks are dialled; validated when built (config ``[callbacks]``).

    After the n-th failed attempt of a round the next waits ``backoff_s[n-1]``
    (the last value repeats). Dialling needs at least ``min_free_agents`` free
    agents, no more than ``max_waiting_calls`` inbound calls waiting, and the
    live service level at or above ``min_service_level`` (``None``: nothing
    offered yet, which is headroom).
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_s: tuple[float, ...] = DEFAULT_BACKOFF_S
    short_abandon_s: float = SHORT_ABANDON_S
    abandon_delay_s: float = 0.0
    min_free_agents: int = 1
    max_waiting_calls: int = 0
    min_service_level: float = 0.8
    lease_ms: int = DEFAULT_LEASE_MS

    def __post_init__(self) -> None:
        prefix = "callbacks."
        if self.max_attempts < 1:
            raise CallbackConfigError(prefix + "max_attempts", "must be at least 1")
        if not self.backoff_s or any(not 0 <= s < 7 * 86400 for s in self.backoff_s):
            raise CallbackConfigError(prefix + "backoff_s", "expected 1+ delays from 0 s to a week")
        if self.short_abandon_s < 0 or self.abandon_delay_s < 0:
            raise CallbackConfigError(prefix + "short_abandon_s", "must not be negative")
        if self.min_free_agents < 1:
            raise CallbackConfigError(prefix + "min_free_agents", "must be at least 1")
        if self.max_waiting_calls < 0:
            raise CallbackConfigError(prefix + "max_waiting_calls", "must not be negative")
        if not 0.0 <= self.min_service_level <= 1.0:
            raise CallbackConfigError(prefix + "min_service_level", "expected 0..1")
        if self.lease_ms < 1000:
            raise CallbackConfigError(prefix + "lease_ms", "must be at least 1000")

    def backoff_after(self, failed_in_round: int) -> float:
        return self.backoff_s[min(failed_in_round, len(self.backoff_s)) - 1]


SPANS_KEPT_S = 6 * 3600.0
"""How long the calling hours' windows, once computed, answer (``CallingHours._spans``)."""
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Config names of the days, in ``date.weekday()`` order."""
_WINDOW_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class Window:
    """Local minutes from midnight; ``end <= start`` means it ends the next day."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str, key: str) -> Window:
        match = _WINDOW_RE.match(text.strip())
        if not match:
            raise CallbackConfigError(key, f"expected HH:MM-HH:MM, got {text!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            raise CallbackConfigError(key, f"not a time of day in {text!r}")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start == end % MINUTES_PER_DAY and end != MINUTES_PER_DAY:
            raise CallbackConfigError(key, f"empty window {text!r} (use 00:00-24:00 for all day)")
        return cls(start, end)

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def on(self, day: date, tz: ZoneInfo) -> tuple[float, float]:
        """The window on local ``day`` as ``[start, end)`` POSIX seconds."""
        midnight = datetime(day.year, day.month, day.day)
        end = self.end + (MINUTES_PER_DAY if self.crosses_midnight else 0)
        return (
            (midnight + timedelta(minutes=self.start)).replace(tzinfo=tz).timestamp(),
            (midnight + timedelta(minutes=end)).replace(tzinfo=tz).timestamp(),
        )


@dataclass(frozen=True, slots=True)
class CallingHours:
    """When customers may be called, per local weekday, in the site's time zone.

    Config: ``{"timezone": "Asia/Tehran", "windows": {"sat": ["09:00-21:00"],
    "fri": ["22:00-02:00"], "daily": ["10:00-18:00"]}}``. ``daily`` applies to
    every day not named. A window that crosses midnight belongs to the day it
    starts on. Local times that a DST change skips are read with the offset in
    force before the change (zoneinfo's ``fold=0``).
    """

    tz: ZoneInfo
    windows: Mapping[int, tuple[Window, ...]] = field(default_factory=dict)
    _kept: list[Any] = field(default_factory=list, init=False, compare=False, repr=False)
    """``[computed at, spans]`` of the last :meth:`_spans` (the gate asks for every call)."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], key: str = "callbacks.calling_hours") -> CallingHours:
        unknown = set(data) - {"timezone", "windows"}
        if unknown:
            raise CallbackConfigError(f"{key}.{sorted(unknown)[0]}", "unknown key")
        tz_name = data.get("timezone", "UTC")
        try:
            tz = ZoneInfo(str(tz_name))
        except (ZoneInfoNotFoundError, ValueError):
            raise CallbackConfigError(f"{key}.timezone", f"unknown time zone {tz_name!r}") from None
        raw = data.get("windows")
        if not isinstance(raw, Mapping) or not raw:
            raise CallbackConfigError(f"{key}.windows", "expected a table of days with windows")
        named: dict[str, tuple[Window, ...]] = {}
        for day, texts in raw.items():
            day_key = f"{key}.windows.{day}"
            if day not in (*WEEKDAYS, "daily"):
                raise CallbackConfigError(day_key, f"expected one of {', '.join(WEEKDAYS)}, daily")
            if isinstance(texts, str) or not isinstance(texts, Iterable):
                raise CallbackConfigError(day_key, "expected an array of HH:MM-HH:MM")
            named[day] = tuple(
                Window.parse(str(t), f"{day_key}[{i}]") for i, t in enumerate(texts)
            )
        daily = named.get("daily", ())
        windows = {i: named.get(name, daily) for i, name in enumerate(WEEKDAYS)}
        if not any(windows.values()):
            raise CallbackConfigError(f"{key}.windows", "no window on any day: no callback could ever be dialled")
        return cls(tz, windows)

    @classmethod
    def always(cls, tz: ZoneInfo | None = None) -> CallingHours:
        all_day = (Window(0, MINUTES_PER_DAY),)
        return cls(tz or ZoneInfo("UTC"), {i: all_day for i in range(7)})

    def _intervals(self, now: float, days: int = 10) -> list[tuple[float, float]]:
        """The windows of ``days`` local days from the day before ``now``'s, sorted."""
        today = datetime.fromtimestamp(now, self.tz).date()
        spans: list[tuple[float, float]] = []
        for offset in range(-1, days - 1):
            day = today + timedelta(days=offset)
            spans.extend(w.on(day, self.tz) for w in self.windows.get(day.weekday(), ()))
        return sorted(spans)

    def _spans(self, now: float) -> tuple[tuple[float, float], ...]:
        """:meth:`_intervals` with one day more, kept for ``SPANS_KEPT_S`` from when computed.

        Both answers read the same from them as from ``_intervals(now)``: a window
        holding ``now`` starts on ``now``'s local day or the day before, and the next
        start comes within the 7 days after it; within six hours of the computation
        ``now``'s day is at most two days on (a date line skip), so both are in.
        Without it, about ten ``Window.on`` per call."""
        kept = self._kept
        if kept and kept[0] <= now < kept[0] + SPANS_KEPT_S:
            spans: tuple[tuple[float, float], ...] = kept[1]
            return spans
        spans = tuple(self._intervals(now, days=11))
        kept[:] = [now, spans]
        return spans

    def is_open(self, now: float) -> bool:
        return any(start <= now < end for start, end in self._spans(now))

    def next_allowed(self, now: float) -> float:
        """``now`` if customers may be called now, else the start of the next window."""
        starts = []
        for start, end in self._spans(now):
            if start <= now < end:
                return now
            if start > now:
                starts.append(start)
        if not starts:  # only reachable if built by hand without any window
            raise CallbackConfigError("callbacks.calling_hours.windows", "no window on any day")
        return min(starts)

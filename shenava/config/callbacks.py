"""``[callbacks]``: its typed section and its parser."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from complaints.service import RegisterPolicy
from routing.callbacks import WEEKDAYS, CallingHours, DialPolicy
from shenava.config.checks import _build
from shenava.config.site import SiteConfig, _timezone
from shenava_base.config_table import Table

DEFAULT_CALLING_WINDOWS: Mapping[str, tuple[str, ...]] = {"daily": ("08:00-21:00",)}
"""When ``callbacks.calling_hours.windows`` is not given: every day 08:00-21:00, site time."""


def default_calling_hours(timezone: str = "UTC") -> CallingHours:
    return CallingHours.from_mapping(
        {"timezone": timezone, "windows": {k: list(v) for k, v in DEFAULT_CALLING_WINDOWS.items()}}
    )


@dataclass(frozen=True)
class CallbacksConfig:
    """``[callbacks]``: how callbacks are dialled, when customers may be called, how long kept."""

    policy: DialPolicy = field(default_factory=DialPolicy)
    hours: CallingHours = field(default_factory=default_calling_hours)
    retention_s: float = RegisterPolicy().retention_s
    """A closed callback flag's transcripts are purged this long after closing."""


def parse_calling_hours(t: Table, site: SiteConfig) -> CallingHours:
    timezone = t.get_str("timezone", site.timezone, check=_timezone)
    windows: dict[str, list[str]] = {k: list(v) for k, v in DEFAULT_CALLING_WINDOWS.items()}
    if t.has("windows"):
        w = t.get_table("windows")
        for day in w.data:
            if day not in (*WEEKDAYS, "daily"):
                raise w.error(day, f"unknown day (expected {', '.join(WEEKDAYS)} or daily)")
        windows = {day: list(w.get_str_list(day)) for day in w.data}
        w.finish()
    return _build(t, lambda: CallingHours.from_mapping({"timezone": timezone, "windows": windows}, t.path))


def parse_callbacks(t: Table, site: SiteConfig, complaints: RegisterPolicy) -> CallbacksConfig:
    d = DialPolicy()
    backoff = t.get_float_list("backoff_s", d.backoff_s, non_empty=True, minimum=0, maximum=7 * 86400 - 1)
    policy = _build(t, lambda: DialPolicy(
        max_attempts=t.get_int("max_attempts", d.max_attempts, minimum=1, maximum=100),
        backoff_s=backoff,
        short_abandon_s=t.get_float("short_abandon_s", d.short_abandon_s, minimum=0, maximum=3600),
        abandon_delay_s=t.get_float("abandon_delay_s", d.abandon_delay_s, minimum=0, maximum=86400),
        min_free_agents=t.get_int("min_free_agents", d.min_free_agents, minimum=1, maximum=10000),
        max_waiting_calls=t.get_int("max_waiting_calls", d.max_waiting_calls, minimum=0, maximum=100000),
        min_service_level=t.get_float("min_service_level", d.min_service_level, minimum=0, maximum=1),
        lease_ms=t.get_int("lease_ms", d.lease_ms, minimum=1000, maximum=86400 * 1000),
    ))
    return CallbacksConfig(
        policy=policy,
        hours=t.section("calling_hours", lambda h: parse_calling_hours(h, site)),
        retention_s=t.get_float("retention_s", complaints.retention_s, positive=True),
    )

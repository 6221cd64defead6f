"""``[sla]``: its typed section and its parser."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from agent_stats.sla import ChoiceCounting, ClockStart, SLAConfig
from shenava.config.checks import _build, _optional_int
from shenava.config.site import SiteConfig
from shenava_base.config_table import Table


def utc_offset_s(timezone: str, at: datetime | None = None) -> float:
    """The zone's offset from UTC in seconds, now (or ``at``): aligns SLA days to local midnight.

    A fixed offset is what :class:`~agent_stats.sla.SLAConfig` takes. In a zone
    with daylight saving time, days are aligned with the offset in force when
    the daemon started, until it restarts (15-minute intervals stay aligned:
    every zone's offset is a whole number of quarter hours).
    """
    tz = ZoneInfo(timezone)
    offset = (at.astimezone(tz) if at is not None else datetime.now(tz)).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def parse_sla(t: Table, site: SiteConfig) -> SLAConfig:
    """``[sla]``; ``utc_offset_s`` is not a key, it comes from ``site.timezone``."""
    d = SLAConfig()
    threshold = t.get_float("threshold_s", d.threshold_s, minimum=0, maximum=3600)
    servicelevel = _optional_int(t, "app_queue_servicelevel_s", minimum=0, maximum=3600)
    return _build(t, lambda: SLAConfig(
        threshold_s=threshold,
        short_abandon_s=t.get_float("short_abandon_s", d.short_abandon_s, minimum=0, maximum=3600),
        clock_start=ClockStart(t.get_choice("clock_start", [c.value for c in ClockStart], d.clock_start.value)),
        choice_counting=ChoiceCounting(
            t.get_choice("choice_counting", [c.value for c in ChoiceCounting], d.choice_counting.value)
        ),
        target=t.get_float("target", d.target, minimum=0, maximum=1),
        window_s=t.get_float("window_s", d.window_s, positive=True, maximum=86400),
        slot_s=t.get_float("slot_s", d.slot_s, positive=True, maximum=86400),
        interval_s=t.get_float("interval_s", d.interval_s, positive=True, maximum=86400),
        utc_offset_s=utc_offset_s(site.timezone),
        app_queue_servicelevel_s=None if servicelevel is None else float(servicelevel),
    ))

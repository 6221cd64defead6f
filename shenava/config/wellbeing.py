"""``[wellbeing]``: its typed section and its parser."""

from __future__ import annotations

from agent_stats.wellbeing import WellbeingConfig
from shenava.config.checks import _build, _optional_int
from shenava_base.config_table import Table


def parse_wellbeing(t: Table) -> WellbeingConfig:
    d = WellbeingConfig()
    return _build(t, lambda: WellbeingConfig(
        max_without_break_s=t.get_float("max_without_break_s", d.max_without_break_s, minimum=0, maximum=86400),
        min_rest_s=t.get_float("min_rest_s", d.min_rest_s, minimum=0, maximum=86400),
        occupancy_window_s=t.get_float("occupancy_window_s", d.occupancy_window_s, positive=True, maximum=86400),
        occupancy_limit=t.get_float("occupancy_limit", d.occupancy_limit, minimum=0, maximum=1),
        occupancy_min_staffed_s=t.get_float(
            "occupancy_min_staffed_s", d.occupancy_min_staffed_s, minimum=0, maximum=86400
        ),
        hard_calls_limit=t.get_int("hard_calls_limit", d.hard_calls_limit, minimum=1, maximum=1000),
        hard_calls_window_s=t.get_float("hard_calls_window_s", d.hard_calls_window_s, positive=True, maximum=86400),
        long_call_s=t.get_float("long_call_s", d.long_call_s, positive=True, maximum=86400),
        consecutive_calls_limit=_optional_int(t, "consecutive_calls_limit", minimum=1, maximum=1000),
    ))

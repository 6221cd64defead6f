"""``[metrics]``: its typed section and its parser."""

from __future__ import annotations

from dataclasses import dataclass

from shenava_base.config_table import Table


@dataclass(frozen=True)
class MetricsConfig:
    """``/metrics``: what Prometheus gets."""

    per_agent: bool = False
    """Series labelled by agent id (occupancy, time since a break, calls answered).
    Off by default: they name people, and each agent adds series."""


def parse_metrics(t: Table) -> MetricsConfig:
    return MetricsConfig(per_agent=t.get_bool("per_agent", MetricsConfig().per_agent))

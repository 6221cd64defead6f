"""``[log]``: its typed section and its parser."""

from __future__ import annotations

from dataclasses import dataclass

from shenava.config.checks import LOG_LEVELS
from shenava_base.config_table import Table


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"


def parse_log(t: Table) -> LogConfig:
    return LogConfig(level=t.get_choice("level", LOG_LEVELS, LogConfig().level))

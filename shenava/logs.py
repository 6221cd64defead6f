"""Log output for the command line: twisted.logger events, filtered by level."""

from __future__ import annotations

from typing import TextIO

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "warning": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}


def start_logging(level: str, stream: TextIO) -> None:
    """Send log events at ``level`` and above to ``stream`` (once per process)."""
    predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS.get(level.lower(), LogLevel.info))
    observer = FilteringLogObserver(textFileLogObserver(stream), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)

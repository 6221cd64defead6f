"""Log output for the command line: twisted.logger events, filtered by level.

Three shapes, one per audience:

- ``text`` on a terminal: a time stamp, the level and namespace, the message;
- ``text`` under systemd (``JOURNAL_STREAM`` set: stderr goes to the journal,
  which adds its own time stamps): ``<N>`` syslog priority prefixes, which
  journald turns into the entry's priority (``journalctl -p warning``);
- ``json``: one object per line (``time``, ``level``, ``namespace``,
  ``message`` and the event's own named fields), for a log shipper.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
    textFileLogObserver,
)
from zope.interface import provider

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "warning": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}

FORMATS = ("text", "json")

SYSLOG_PRIORITY = {
    LogLevel.debug: 7,
    LogLevel.info: 6,
    LogLevel.warn: 4,
    LogLevel.error: 3,
    LogLevel.critical: 2,
}
"""sd-daemon(3) prefixes: ``<7>`` debug ... ``<2>`` critical."""


def under_journald(environ: Mapping[str, str], stream: TextIO | None = None) -> bool:
    """systemd sets ``JOURNAL_STREAM=device:inode`` when stdout or stderr goes to the journal.

    As sd_journal_stream_fd(3) advises, it counts only if ``stream`` is that
    very file (a shell started from a service inherits the variable, not the
    journal); a stream with no file descriptor is taken at its word."""
    value = environ.get("JOURNAL_STREAM")
    if not value:
        return False
    try:
        fd = stream.fileno() if stream is not None else None
    except (OSError, ValueError, AttributeError):
        fd = None
    if fd is None:
        return True
    try:
        device, inode = (int(part) for part in value.split(":", 1))
        info = os.fstat(fd)
    except (OSError, ValueError):
        return False
    return (info.st_dev, info.st_ino) == (device, inode)


_CONTROL = {c: "?" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
"""Control characters (a line break, a terminal's escape, C1 controls) as ``?``."""


def _plain_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event with control characters in its string fields (a complaint's category, a
    forwarded address: anything someone else typed) made ``?``: a line break there would
    start a line the journal takes for an entry of its own, with any priority and name the
    typist chose; an escape sequence would rewrite a terminal. The format, and a
    failure's traceback, keep their own line breaks. An event with no such character (every
    control character is unprintable) is given back as it is, not copied."""
    for key, value in event.items():
        if isinstance(value, str) and not value.isprintable() and not key.startswith("log_"):
            return {key: value.translate(_CONTROL) if isinstance(value, str) and not key.startswith("log_")
                    else value for key, value in event.items()}
    return event if type(event) is dict else dict(event)


def format_message(event: Mapping[str, Any]) -> str:
    """``twisted.logger.formatEvent``'s text, made by ``str.format_map`` when that can.

    Twisted formats through ``string.Formatter`` in Python (about 5-10 µs an event)
    for its one addition to ``str.format``, a field ending in ``()`` (called). A plain
    ``str`` format without one formats the same with ``str.format_map`` (``Formatter``
    is that method written in Python); anything else (a ``()`` field, a missing
    name, a flattened or a bytes format, a field that fails) goes to ``formatEvent``,
    whose text, error text included, is then the one given."""
    format = event.get("log_format")
    if type(format) is str and "()" not in format and "log_flattened" not in event:
        try:
            return format.format_map(event)
        except Exception:
            pass
    return formatEvent(event if type(event) is dict else dict(event))


def _message(event: Mapping[str, Any]) -> str:
    text = format_message(_plain_fields(event))
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback().rstrip()
    return text


def journald_observer(stream: TextIO) -> ILogObserver:
    """``<N>namespace: message`` lines; a multi-line message keeps its priority on each line."""

    @provider(ILogObserver)
    def observe(event: Mapping[str, Any]) -> None:
        level = event.get("log_level", LogLevel.info)
        prefix = f"<{SYSLOG_PRIORITY.get(level, 6)}>"
        namespace = event.get("log_namespace", "-")
        lines = _message(event).splitlines() or [""]
        stream.write("".join(f"{prefix}{namespace}: {line}\n" for line in lines))
        stream.flush()

    return observe


def _plain(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def json_record(event: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object for one event: its message and its named fields (plain values only)."""
    level = event.get("log_level", LogLevel.info)
    when = event.get("log_time")
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
        if isinstance(when, int | float) else None,
        "level": level.name,
        "namespace": event.get("log_namespace", "-"),
        "message": format_message(event),
    }
    for key, value in event.items():
        if key.startswith("log_") or key in record or key in ("format", "message"):
            continue
        if _plain(value):
            record[key] = value
        elif isinstance(value, list | tuple) and all(_plain(v) for v in value):
            record[key] = list(value)
    failure = event.get("log_failure")
    if failure is not None:
        record["error"] = failure.getErrorMessage()
        record["traceback"] = failure.getTraceback()
    return record


def json_observer(stream: TextIO) -> ILogObserver:
    @provider(ILogObserver)
    def observe(event: Mapping[str, Any]) -> None:
        stream.write(json.dumps(json_record(event), ensure_ascii=False, default=str) + "\n")
        stream.flush()

    return observe


def make_observer(
    fmt: str, stream: TextIO, environ: Mapping[str, str] | None = None
) -> ILogObserver:
    """The observer for ``--log-format`` ``fmt`` (``text`` picks journald's shape under systemd)."""
    if fmt == "json":
        return json_observer(stream)
    if fmt != "text":
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if under_journald(os.environ if environ is None else environ, stream):
        return journald_observer(stream)
    plain = textFileLogObserver(stream)

    @provider(ILogObserver)
    def observe(event: Mapping[str, Any]) -> None:
        plain(_plain_fields(event))

    return observe


def filtered(
    observer: ILogObserver, level: str, predicate: LogLevelFilterPredicate | None = None
) -> ILogObserver:
    if predicate is None:
        predicate = level_filter(level)
    return FilteringLogObserver(observer, [predicate])


def level_filter(level: str) -> LogLevelFilterPredicate:
    return LogLevelFilterPredicate(defaultLogLevel=LEVELS.get(level.lower(), LogLevel.info))


def start_logging(level: str, stream: TextIO, fmt: str = "text") -> LogLevelFilterPredicate:
    """Send log events at ``level`` and above to ``stream`` (once per process).

    Returns the level filter: the demo raises it for its own teardown."""
    predicate = level_filter(level)
    observer = filtered(make_observer(fmt, stream), level, predicate)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    return predicate

"""One warning per Redis outage for a per-caller look-up, and failures that are not Redis's still loud."""

from __future__ import annotations

from typing import Any

from redis.exceptions import BusyLoadingError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from twisted.logger import Logger, LogLevel

from shenava_base.outage import OutageNote


class Events:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def at(self, level: LogLevel) -> list[dict[str, Any]]:
        return [e for e in self.events if e["log_level"] is level]


def test_an_outage_is_said_once_with_its_count_when_it_ends() -> None:
    events, now = Events(), [100.0]
    note = OutageNote("caller facts", "callers wait without them", Logger(observer=events), lambda: now[0])
    note.ok()  # nothing going on: nothing said
    assert events.events == []
    for error in [RedisConnectionError("Connection refused")] * 86 + [BusyLoadingError("LOADING")]:
        assert note.expected(error)
        note.failed(error)
        now[0] += 0.25
    [warning] = events.at(LogLevel.warn)
    assert "ConnectionError: Connection refused" in warning["log_format"].format(**warning)
    assert not any("log_failure" in e for e in events.events)  # no traceback
    note.ok()
    [back] = events.at(LogLevel.info)
    assert back["count"] == 87 and back["seconds"] == 87 * 0.25
    note.ok()
    note.failed(RedisConnectionError("again"))  # the next outage is said again
    assert len(events.at(LogLevel.warn)) == 2 and note.outages == 2


def test_errors_that_are_not_redis_being_away_are_not_counted_as_an_outage() -> None:
    note = OutageNote("caller facts", "-", Logger(observer=Events()), lambda: 0.0)
    assert not note.expected(KeyError("open_complaint"))  # a bug: the caller logs it as a failure
    assert not note.expected(ResponseError("WRONGTYPE Operation against a key"))

"""Log shapes for operators (text, journald, JSON) and the routing steps at info."""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.logger import LogLevel, globalLogPublisher

from ami_bridge.events import BridgeJoined, ChannelHungUp
from routing.events import CallAbandoned, CallAnswered, CallOffered, CallQueued
from shenava.logs import filtered, journald_observer, json_record, make_observer
from shenava.routing_log import RoutingLog


def _event(level: LogLevel = LogLevel.info, **fields: Any) -> dict[str, Any]:
    return {
        "log_format": "call {call_id} answered after {wait_s:.1f} s",
        "log_level": level,
        "log_namespace": "shenava.routing",
        "log_time": 1796516137.25,
        "call_id": "1796516137.0",
        "wait_s": 4.04,
        **fields,
    }


def test_json_record_has_the_message_and_the_named_fields() -> None:
    record = json_record(_event(agent_id="a1", obj=object()))
    assert record["message"] == "call 1796516137.0 answered after 4.0 s"
    assert record["level"] == "info"
    assert record["namespace"] == "shenava.routing"
    assert record["time"] == "2026-12-06T00:15:37.250+00:00"
    assert record["call_id"] == "1796516137.0" and record["wait_s"] == 4.04
    assert record["agent_id"] == "a1"
    assert "obj" not in record  # only plain values
    assert not any(key.startswith("log_") for key in record)


def test_json_observer_writes_one_object_per_line() -> None:
    out = io.StringIO()
    observer = make_observer("json", out, environ={})
    observer(_event())
    observer(_event(LogLevel.warn))
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["level"] for line in lines] == ["info", "warn"]


def test_text_under_systemd_has_syslog_priority_prefixes() -> None:
    out = io.StringIO()
    observer = make_observer("text", out, environ={"JOURNAL_STREAM": "8:12345"})
    observer(_event())
    observer(_event(LogLevel.error, log_format="first\nsecond"))
    assert out.getvalue().splitlines() == [
        "<6>shenava.routing: call 1796516137.0 answered after 4.0 s",
        "<3>shenava.routing: first",
        "<3>shenava.routing: second",
    ]


def test_journal_stream_counts_only_for_the_file_it_names(tmp_path: Any) -> None:
    import os

    from shenava.logs import under_journald

    with open(tmp_path / "log", "w") as stream:
        info = os.fstat(stream.fileno())
        assert under_journald({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}, stream)
        # a shell started from a service inherits the variable, not the journal
        assert not under_journald({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino + 1}"}, stream)
        assert not under_journald({}, stream)


def test_text_on_a_terminal_has_time_stamps() -> None:
    out = io.StringIO()
    make_observer("text", out, environ={})(_event())
    assert out.getvalue().startswith("2026-12-06T")
    assert "<6>" not in out.getvalue()


def test_the_level_filter_applies_to_every_format() -> None:
    out = io.StringIO()
    observer = filtered(journald_observer(out), "warn")
    observer(_event(LogLevel.info))
    observer(_event(LogLevel.warn))
    assert out.getvalue().startswith("<4>") and out.getvalue().count("\n") == 1


class _Source:
    def __init__(self) -> None:
        self.observers: list[Any] = []

    def subscribe(self, observer: Any) -> None:
        self.observers.append(observer)

    def emit(self, event: object) -> None:
        for observer in self.observers:
            observer(event)


def test_one_info_line_per_routing_step_with_call_id_and_wait() -> None:
    dispatcher, tracker = _Source(), _Source()
    RoutingLog().attach(dispatcher, tracker)
    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        dispatcher.emit(CallQueued("c1", 100.0, 90.0, "fa", "billing", "09121234567"))
        dispatcher.emit(CallOffered("c1", 103.0, "a1"))
        dispatcher.emit(CallAnswered("c1", 106.5, "a1", 100.0, False))
        tracker.emit(BridgeJoined(106.7, "c1", "c1", "PJSIP/trunk-1", "b1", 2))
        tracker.emit(BridgeJoined(106.8, "c1", "c1", "PJSIP/trunk-1", "b1", 2))  # once only
        dispatcher.emit(CallQueued("c2", 110.0, 105.0, "en", "general", "09121234568"))
        dispatcher.emit(CallAbandoned("c2", 122.0, 110.0, "09121234568", "a2"))
        tracker.emit(ChannelHungUp(123.0, "c1", "c1", "PJSIP/trunk-1", 16, "Normal"))
    finally:
        globalLogPublisher.removeObserver(seen.append)
    steps = [e for e in seen if e.get("log_namespace") == "shenava.routing"]
    assert [e["step"] for e in steps] == ["joined", "agent_rung", "answered", "bridged", "joined",
                                          "abandoned"]
    assert all(e["log_level"] is LogLevel.info for e in steps)
    assert [e["call_id"] for e in steps] == ["c1"] * 4 + ["c2"] * 2
    assert [round(e["wait_s"], 1) for e in steps] == [0.0, 3.0, 6.5, 6.5, 0.0, 12.0]
    text = "\n".join(json_record(e)["message"] for e in steps)
    assert "0912" not in text  # never the caller's number
    assert "abandoned after 12.0 s waiting (agent a2 was being rung)" in text


def test_a_field_someone_typed_cannot_start_a_log_line_or_drive_a_terminal() -> None:
    """A complaint's category (any text, from the API) went into the journal as typed: a
    line break in it made a line of its own, with the priority and name the typist chose
    ("<2>shenava.audit: ..."); in text on a terminal, an escape sequence ran."""
    forged = "billing\n<2>shenava.audit: audit: sara (admin) signed in\x1b[2J\x9b"
    event = _event(log_format="complaint opened ({category})", category=forged)
    out = io.StringIO()
    make_observer("text", out, environ={"JOURNAL_STREAM": "8:12345"})(event)
    assert out.getvalue().splitlines() == [
        "<6>shenava.routing: complaint opened (billing?<2>shenava.audit: audit: sara (admin) "
        "signed in?[2J?)"]
    out = io.StringIO()
    make_observer("text", out, environ={})(event)
    assert "\x1b" not in out.getvalue() and "\x9b" not in out.getvalue()
    assert out.getvalue().count("\n") == 1
    # JSON escapes them itself, and keeps the field as it was
    assert json_record(event)["category"] == forged

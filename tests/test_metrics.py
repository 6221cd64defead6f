"""Prometheus text exposition of the live figures, and the /metrics resource."""

from __future__ import annotations

import re

import pytest_twisted
from redis.asyncio import Redis
from twisted.web.test.requesthelper import DummyRequest

from agent_stats.metrics import Family, MetricsResource, escape_help, escape_label, families, render
from agent_stats.states import NotReadyReason
from routing.dispatch import CallAnswered, CallQueued
from tests.stats_helpers import T0, clock_at, make_service, step_to

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? '
                    r"(NaN|[+-]Inf|-?[0-9.e+-]+)$")


def test_escaping_and_values() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_help("x\\y\nz") == "x\\\\y\\nz"
    family = Family("m", "help", "gauge")
    family.add(None, queue='q"1')
    family.add(0.5)
    family.add(3)
    assert render([family]) == '# HELP m help\n# TYPE m gauge\nm{queue="q\\"1"} NaN\nm 0.5\nm 3\n'


@pytest_twisted.ensureDeferred
async def test_metrics_of_a_live_service(redis_client: Redis) -> None:
    clock = clock_at(T0)
    roster, service = make_service(redis_client, clock)
    await service.start()
    for agent in ("a1", "a2"):
        roster.log_in(agent, T0)
    service.on_routing_event(CallQueued("c1", T0, T0, "fa", "billing", "0912"))
    step_to(clock, T0 + 12)
    service.on_routing_event(CallAnswered("c1", T0 + 12, "a1", T0, False))
    roster.ringing("a1", "c1", T0 + 12)
    roster.answered("a1", False, T0 + 12)
    service.request_break("a2", NotReadyReason.PERSONAL)

    request = DummyRequest([b""])
    body = MetricsResource(service).render_GET(request).decode()  # type: ignore[arg-type]
    assert request.responseHeaders.getRawHeaders(b"content-type") == [
        b"text/plain; version=0.0.4; charset=utf-8"]
    lines = body.splitlines()
    names = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert len(names) == len(set(names)) == len(families(service.snapshot()))
    for line in lines:
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line), line
    assert 'shenava_service_level{queue="complaints",window="day"} 1.0' in lines
    assert 'shenava_calls{queue="complaints",window="day",kind="answered"} 1' in lines
    assert 'shenava_agents{state="on_call"} 1' in lines
    assert 'shenava_agents_not_ready{reason="personal"} 1' in lines
    assert "shenava_break_line_length 0" in lines
    await service.stop()

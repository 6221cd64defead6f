"""``/metrics`` through prometheus_client: live gauges, counters, histograms, the write queue."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest_twisted
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from twisted.internet import reactor as global_reactor
from twisted.internet.threads import deferToThread
from twisted.web.server import Site

from agent_stats.metrics import (
    AGI_BUCKETS,
    DECISION_BUCKETS,
    WAIT_BUCKETS,
    MetricsResource,
    ShenavaMetrics,
)
from agent_stats.states import NotReadyReason
from agent_stats.writer import StoreWriter
from routing.calls import QUEUE
from routing.events import (
    CallAbandoned,
    CallAnswered,
    CallCompleted,
    CallLeftForChoice,
    CallOffered,
    CallQueued,
)
from testpbx.scripts import CallerScript, PhoneScript
from tests.e2e_harness import E2E
from tests.stats_helpers import T0, clock_at, make_service, step_to


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, parsed by prometheus_client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def _busy_service(redis_client: Redis) -> Any:
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
    return service


@pytest_twisted.ensureDeferred
async def test_live_figures_are_gauges_and_per_agent_series_are_off_by_default(
    redis_client: Redis,
) -> None:
    service = await _busy_service(redis_client)
    try:
        got = samples(ShenavaMetrics(service, writer=service.writer).render_text())
        q = ("queue", "complaints")
        assert got[("shenava_service_level", (q, ("window", "day")))] == 1.0
        assert got[("shenava_calls", (("kind", "answered"), q, ("window", "day")))] == 1
        assert got[("shenava_agents", (("state", "on_call"),))] == 1
        assert got[("shenava_agents_not_ready", (("reason", "personal"),))] == 1
        assert got[("shenava_break_line_length", ())] == 0
        assert ("shenava_stats_write_queue_depth", ()) in got
        assert not any(dict(labels).get("agent") for _, labels in got)

        service.tick()  # the wellbeing signals behind the per-agent series
        with_agents = samples(ShenavaMetrics(service, per_agent=True).render_text())
        assert ("shenava_agent_since_break_seconds", (("agent", "a1"),)) in with_agents
    finally:
        await service.stop()


def test_counters_and_histograms_from_routing_events() -> None:
    metrics = ShenavaMetrics(_NoSnapshot(), per_agent=True)
    metrics.on_routing_event(CallQueued("c1", 100.0, 90.0, "fa", "billing", "0912"))
    metrics.on_routing_event(CallAnswered("c1", 118.0, "a1", 100.0, False))
    metrics.on_routing_event(CallQueued("c2", 100.0, 90.0, "fa", "billing", "0912"))
    metrics.on_routing_event(CallAbandoned("c2", 130.0, 100.0, "0912", None))
    metrics.on_routing_event(CallCompleted("c1", 140.0, "a1", 118.0))
    metrics.on_agi("STREAM FILE shenava/welcome \"\"", 2.2)
    metrics.on_agi("ANSWER", 0.004)
    got = samples(metrics.render_text())
    q = (("queue", "complaints"),)
    assert got[("shenava_calls_offered_total", q)] == 2
    assert got[("shenava_calls_answered_total", q)] == 1
    assert got[("shenava_calls_abandoned_total", q)] == 1
    assert got[("shenava_agent_calls_answered_total", (("agent", "a1"),))] == 1
    bucket = "shenava_wait_until_answer_seconds_bucket"
    assert got[(bucket, (("le", "15.0"), ("queue", "complaints")))] == 0
    assert got[(bucket, (("le", "20.0"), ("queue", "complaints")))] == 1
    assert got[("shenava_wait_until_abandon_seconds_sum", q)] == 30.0
    assert got[("shenava_agi_turnaround_seconds_count", (("command", "STREAM"),))] == 1
    assert got[("shenava_agi_turnaround_seconds_bucket", (("command", "ANSWER"), ("le", "0.005")))] == 1


def _without_created_values(text: bytes) -> list[str]:
    """The exposition's lines, each ``_created`` sample's value (a wall-clock time) blanked."""
    lines = []
    for line in text.decode().splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        lines.append(line.rsplit(" ", 1)[0] + " T" if name.endswith("_created") else line)
    return lines


def test_the_plain_counters_expose_what_prometheus_clients_own_would() -> None:
    """The counters and histograms are plain numbers in the daemon, turned into families at
    scrape time: the text must be the one prometheus_client's Counter and Histogram give for
    the same events (names, labels, buckets, values, ``_created`` series, order)."""
    times = [0.5, 0.50002, 1.0, 1.003, 2.0, 2.0]
    ticks = iter(times)

    class Router:
        def on_call_joined(self) -> None: ...
        def on_agent_ready(self) -> None: ...

    metrics = ShenavaMetrics(_NoSnapshot(), per_agent=True)
    router = Router()
    metrics.time_router(router, timer=lambda: next(ticks))

    r = CollectorRegistry()  # the reference: prometheus_client's own, fed the same
    offered = Counter("shenava_calls_offered", "Calls that joined the waiting line.", ["queue"], registry=r)
    answered = Counter("shenava_calls_answered", "Waiting calls an agent answered.", ["queue"], registry=r)
    abandoned = Counter("shenava_calls_abandoned", "Waiting calls the caller hung up.", ["queue"], registry=r)
    left = Counter("shenava_calls_left_for_choice",
                   "Callers who left the line for a callback or a voicemail.", ["queue", "choice"], registry=r)
    rung = Counter("shenava_agent_rings", "Agents' phones rung for a waiting call.", ["queue"], registry=r)
    wait_answered = Histogram("shenava_wait_until_answer_seconds",
                              "How long answered callers waited in the line.", ["queue"],
                              buckets=WAIT_BUCKETS, registry=r)
    wait_abandoned = Histogram("shenava_wait_until_abandon_seconds",
                               "How long callers who hung up had waited in the line.", ["queue"],
                               buckets=WAIT_BUCKETS, registry=r)
    agi = Histogram("shenava_agi_turnaround_seconds",
                    "From sending an AGI command to its result (a prompt's playing time included), "
                    "by command.", ["command"], buckets=AGI_BUCKETS, registry=r)
    decision = Histogram("shenava_routing_decision_seconds",
                         "The router's time to decide on one event (CPU, not waiting).", ["event"],
                         buckets=DECISION_BUCKETS, registry=r)
    agent_answered = Counter("shenava_agent_calls_answered", "Calls an agent answered.", ["agent"],
                             registry=r)
    decision.labels("on_call_joined")
    decision.labels("on_agent_ready")

    assert _without_created_values(metrics.render_text()).count("# TYPE shenava_calls_offered_total counter")
    events = [
        CallQueued("c1", 100.0, 90.0, "fa", "billing", "0912"),
        CallOffered("c1", 101.0, "a1"),
        CallAnswered("c1", 120.0, "a1", 100.0, False),  # 20 s: on the SL bucket's edge
        CallQueued("c2", 100.0, 90.0, "fa", "billing", "0912"),
        CallAbandoned("c2", 700.5, 100.0, "0912", None),  # past the last bucket
        CallQueued("c3", 100.0, 90.0, "en", "billing", "0913"),
        CallAnswered("c3", 99.0, "a2", 100.0, False),  # a clock step back: 0
        CallLeftForChoice("c4", 140.0, 100.0, "callback", "0914", 3, "PJSIP/x", "fa"),
        CallLeftForChoice("c5", 140.0, 100.0, "voicemail", "0915", None, "PJSIP/y", "en"),
    ]
    for event in events:
        metrics.on_routing_event(event)
        if isinstance(event, CallQueued):
            offered.labels(QUEUE).inc()
        elif isinstance(event, CallOffered):
            rung.labels(QUEUE).inc()
        elif isinstance(event, CallAnswered):
            answered.labels(QUEUE).inc()
            wait_answered.labels(QUEUE).observe(max(0.0, event.at - event.joined_at))
            agent_answered.labels(event.agent_id).inc()
        elif isinstance(event, CallAbandoned):
            abandoned.labels(QUEUE).inc()
            wait_abandoned.labels(QUEUE).observe(max(0.0, event.at - event.joined_at))
        elif isinstance(event, CallLeftForChoice):
            left.labels(QUEUE, event.choice).inc()
    for command, seconds in [("ANSWER", 0.005), ("ANSWER", 0.0050001), ("STREAM FILE a \"\"", 2.2),
                             ("GET VARIABLE X", -0.001), ("", 0.2), ("stream file b \"\"", 61.0),
                             ("EXEC MSet A=1", 0.0)]:
        metrics.on_agi(command, seconds)
        agi.labels(command.split(" ", 1)[0].upper() or "?").observe(max(0.0, seconds))
    router.on_call_joined()
    router.on_agent_ready()
    router.on_agent_ready()
    decision.labels("on_call_joined").observe(times[1] - times[0])
    decision.labels("on_agent_ready").observe(times[3] - times[2])
    decision.labels("on_agent_ready").observe(times[5] - times[4])

    ours = _without_created_values(metrics.render_text())
    reference = _without_created_values(generate_latest(r))
    assert ours[:len(reference)] == reference
    assert any(line.startswith("shenava_service_level") or line.startswith("# HELP shenava_agents ")
               for line in ours[len(reference):])


def test_routing_decisions_are_timed_on_the_router() -> None:
    class Router:
        def on_call_joined(self, call: str, now: float) -> list[str]:
            return [call]

    ticks = iter([1.0, 1.00025])
    router = Router()
    metrics = ShenavaMetrics(_NoSnapshot())
    metrics.time_router(router, timer=lambda: next(ticks))
    assert router.on_call_joined("c1", 0.0) == ["c1"]
    got = samples(metrics.render_text())
    event = (("event", "on_call_joined"),)
    assert got[("shenava_routing_decision_seconds_count", event)] == 1
    assert abs(got[("shenava_routing_decision_seconds_sum", event)] - 0.00025) < 1e-9


def test_the_write_queue_is_bounded_and_its_depth_shown() -> None:
    class Store:
        async def apply(self, ops: list[Any]) -> None:
            raise AssertionError("paused: nothing is written")

    writer = StoreWriter(Store(), clock_at(0.0), paused=True, max_pending=3)
    for i in range(5):
        writer.submit(("op", i))  # type: ignore[arg-type]
    assert (writer.pending, writer.dropped) == (3, 2)
    got = samples(ShenavaMetrics(_NoSnapshot(), writer=writer).render_text())
    assert got[("shenava_stats_write_queue_depth", ())] == 3
    assert got[("shenava_stats_write_dropped_total", ())] == 2
    assert got[("shenava_stats_write_spilled_total", ())] == 0


def test_operations_past_the_cap_kept_in_the_journal_are_shown() -> None:
    class Store:
        async def apply(self, ops: list[Any]) -> None:
            raise AssertionError("paused: nothing is written")

    kept: list[Any] = []

    class Spill:
        holding = False
        spilled = 0

        def __call__(self, ops: list[Any]) -> bool:
            kept.extend(ops)
            self.spilled += len(ops)
            return True

    writer = StoreWriter(Store(), clock_at(0.0), paused=True, max_pending=10)
    writer.spill = Spill()
    for i in range(12):
        writer.submit(("op", i))  # type: ignore[arg-type]
    # the 11th: one over the cap, and a tenth of it more, go (the oldest)
    assert writer.dropped == 0 and kept == [("op", 0), ("op", 1)]
    got = samples(ShenavaMetrics(_NoSnapshot(), writer=writer).render_text())
    assert got[("shenava_stats_write_spilled_total", ())] == 2
    assert got[("shenava_stats_write_queue_depth", ())] == 10


@pytest_twisted.ensureDeferred
async def test_get_metrics_over_http_is_prometheus_text(redis_client: Redis) -> None:
    service = await _busy_service(redis_client)
    port = global_reactor.listenTCP(0, Site(MetricsResource(service)),  # type: ignore[attr-defined]
                                    interface="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{port.getHost().port}/metrics"

        def scrape() -> tuple[int, str, bytes]:  # as Prometheus does, from another process
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.status, response.headers["content-type"], response.read()

        code, content_type, body = await deferToThread(scrape)
        assert code == 200
        assert content_type.startswith("text/plain; version=")
        assert ("shenava_service_level",
                (("queue", "complaints"), ("window", "day"))) in samples(body)
    finally:
        await port.stopListening()
        await service.stop()


@pytest_twisted.ensureDeferred
async def test_a_call_through_the_daemon_is_counted_timed_and_histogrammed(
    redis_client: Redis, tmp_path: Path
) -> None:
    h = E2E.build(tmp_path, redis=redis_client)
    try:
        h.phone("PJSIP/101", PhoneScript(answer_after_s=2.0, talk_s=10.0))
        h.log_in("a1")
        h.call(CallerScript(number="09120000001", answers=("1", "3")))
        await h.run_until_async(
            lambda: any(isinstance(e, CallCompleted) for e in h.routing), limit_s=300.0)
        metrics = h.app.agent_stats.metrics
        got = samples(metrics.render_text())
        q = (("queue", "complaints"),)
        assert got[("shenava_calls_offered_total", q)] == 1
        assert got[("shenava_calls_answered_total", q)] == 1
        assert got[("shenava_wait_until_answer_seconds_count", q)] == 1
        agi = sum(v for (name, _), v in got.items() if name == "shenava_agi_turnaround_seconds_count")
        assert agi >= 3  # ANSWER, the language menu, the main menu ...
        decisions = sum(v for (name, _), v in got.items()
                        if name == "shenava_routing_decision_seconds_count")
        assert decisions >= 1
    finally:
        h.stop()


class _NoSnapshot:
    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        return {"queues": {}, "states": {}, "not_ready_reasons": {}, "occupancy_now": None,
                "agents": [], "break_line": [], "breaks_granted": 0, "fairness_today": 1.0,
                "alerts": [], "alerts_today": 0}


def test_a_scrape_renders_the_numbers_copied_on_the_reactor_thread() -> None:
    """The pool thread renders the copy ``take_snapshot`` made on the reactor thread (as the
    live figures), never the numbers the reactor is changing meanwhile."""
    metrics = ShenavaMetrics(_NoSnapshot())
    metrics.on_agi("ANSWER", 0.004)
    metrics.take_snapshot()  # on the reactor thread, as MetricsResource.render does
    metrics.on_agi("ANSWER", 0.004)  # while the pool thread renders
    got = samples(generate_latest(metrics.registry))
    assert got[("shenava_agi_turnaround_seconds_count", (("command", "ANSWER"),))] == 1
    assert got[("shenava_agi_turnaround_seconds_sum", (("command", "ANSWER"),))] == 0.004
    assert samples(metrics.render_text())[
        ("shenava_agi_turnaround_seconds_count", (("command", "ANSWER"),))] == 2

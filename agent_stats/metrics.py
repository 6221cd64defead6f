"""``/metrics``: Prometheus exposition through ``prometheus_client``.

Two kinds of series, in one registry per daemon (never the library's global
one: tests and the demo run several daemons in a process):

- the live figures, read from ``StatsService.snapshot()`` when Prometheus
  scrapes (gauges: day totals reset at local midnight, so they are not
  counters): service levels, call outcomes per window, agents by state, the
  break line, wellbeing alerts, the statistics write queue;
- what happened since the daemon started, counted as it happens: calls
  offered, answered, abandoned (counters), the wait until answer or abandon,
  the AGI turnaround and the routing decision time (histograms).

The counters and histograms are plain numbers kept by this module
(:class:`Counts`, :class:`Buckets`: a dict entry per label set, a list of
bucket counts per histogram series), not prometheus_client's ``Counter`` and
``Histogram``: those take a lock and look up their labels on every event, and
the daemon counts about 17 events per call (most of them AGI results). A
collector turns the numbers into the same metric families at scrape time (the
same names, labels, values and ``_created`` series as prometheus_client's
own), from a copy taken on the reactor thread with the snapshot, so a scrape
never sees a histogram's count and sum from two different moments.

Per-agent series (``agent`` label) appear only with ``[metrics] per_agent =
true``: they name people and grow with the team.

The resource is ``prometheus_client.twisted.MetricsResource`` (a WSGI app on
the reactor's thread pool). The snapshot is taken on the reactor thread when
the request arrives, so the pool thread never reads the roster while the
reactor changes it.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import prometheus_client.metrics as _prometheus_metrics
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from twisted.web.resource import Resource
from twisted.web.server import Request

from agent_stats.host import StatsHost
from routing.calls import QUEUE
from routing.events import (
    CallAbandoned,
    CallAnswered,
    CallLeftForChoice,
    CallOffered,
    CallQueued,
    RoutingEvent,
)

WAIT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0,
                600.0)
"""Seconds a caller waits: the SL threshold (20 s by default) falls on a bucket edge."""
AGI_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""An AGI command's round trip: milliseconds for ANSWER, seconds for STREAM FILE."""
DECISION_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
                    0.1)
"""The router's work per event: microseconds normally."""
ROUTER_DECISIONS = ("on_call_joined", "on_agent_ready", "on_agents_ready",
                    "on_agent_unavailable", "on_connect_failed", "on_call_left")

_WINDOWS = ("rolling", "interval", "day")
_QUEUE: tuple[str] = (QUEUE,)


class SnapshotSource(Protocol):
    def snapshot(self, now: float | None = None) -> dict[str, Any]: ...


@dataclass
class WriteQueue:
    """The statistics writer's figures (``agent_stats.writer.StoreWriter``)."""

    pending: int = 0
    dropped: int = 0
    failures: int = 0
    spilled: int = 0
    """Past the cap, kept in the journal (``agent_stats.spill``) instead of dropped."""


def snapshot_families(
    snapshot: dict[str, Any], *, per_agent: bool = False, queue: WriteQueue | None = None
) -> list[Metric]:
    """Gauge families of one ``StatsService.snapshot()`` (and the write queue's figures)."""
    sl = GaugeMetricFamily("shenava_service_level",
                           "Answered within the threshold over offered (docs/design.md).",
                           labels=["queue", "window"])
    sl1 = GaugeMetricFamily("shenava_servicelevel_perf",
                            "Asterisk app_queue ServicelevelPerf: completed in SL over completed.",
                            labels=["queue", "window"])
    sl2 = GaugeMetricFamily("shenava_servicelevel_perf2",
                            "Asterisk app_queue ServicelevelPerf2: (abandoned in SL + completed "
                            "in SL) over (abandoned + completed).", labels=["queue", "window"])
    calls = GaugeMetricFamily("shenava_calls", "Call outcomes in the window, by kind.",
                              labels=["queue", "window", "kind"])
    for queue_name, windows in sorted(snapshot["queues"].items()):
        for window in _WINDOWS:
            c = windows[window]
            for family, key in ((sl, "sl"), (sl1, "sl1"), (sl2, "sl2")):
                family.add_metric([queue_name, window], _number(c[key]))
            for kind in ("offered", "answered", "answered_in_sl", "abandoned", "abandoned_short",
                         "voicemail", "callback"):
                calls.add_metric([queue_name, window, kind], c[kind])
    agents = GaugeMetricFamily("shenava_agents", "Agents in each state now.", labels=["state"])
    for state, n in sorted(snapshot["states"].items()):
        agents.add_metric([state], n)
    reasons = GaugeMetricFamily("shenava_agents_not_ready", "Agents not ready now, by reason.",
                                labels=["reason"])
    for reason, n in sorted(snapshot["not_ready_reasons"].items()):
        reasons.add_metric([reason], n)
    occupancy = GaugeMetricFamily("shenava_occupancy",
                                  "Agents on a call or in wrap-up over agents taking calls, now.")
    occupancy.add_metric([], _number(snapshot["occupancy_now"]))
    line = GaugeMetricFamily("shenava_break_line_length", "Break requests waiting for headroom.")
    line.add_metric([], len(snapshot["break_line"]))
    oldest = GaugeMetricFamily("shenava_break_line_oldest_wait_seconds",
                               "How long the longest-waiting break request has waited.")
    oldest.add_metric([], max((r["waited_s"] for r in snapshot["break_line"]), default=0.0))
    granted = GaugeMetricFamily("shenava_breaks_granted", "Break grants since the daemon started.")
    granted.add_metric([], snapshot["breaks_granted"])
    fairness = GaugeMetricFamily("shenava_break_fairness_index",
                                 "Jain's index of taken/earned break time across agents, today "
                                 "(1 all equal, 1/n one agent has it all).")
    fairness.add_metric([], _number(snapshot["fairness_today"]))
    active = GaugeMetricFamily("shenava_alerts_active", "Wellbeing alerts active now, by kind.",
                               labels=["kind"])
    by_kind: dict[str, int] = {}
    for alert in snapshot["alerts"]:
        by_kind[alert["kind"]] = by_kind.get(alert["kind"], 0) + 1
    for kind, n in sorted(by_kind.items()):
        active.add_metric([kind], n)
    today = GaugeMetricFamily("shenava_alerts_today", "Wellbeing alerts raised today.")
    today.add_metric([], snapshot["alerts_today"])
    out: list[Metric] = [sl, sl1, sl2, calls, agents, reasons, occupancy, line, oldest, granted,
                         fairness, active, today]
    if per_agent:
        agent_occupancy = GaugeMetricFamily(
            "shenava_agent_occupancy", "An agent's occupancy over the last hour (wellbeing window).",
            labels=["agent"])
        since_break = GaugeMetricFamily(
            "shenava_agent_since_break_seconds", "Seconds since the agent's last rest (0 while resting).",
            labels=["agent"])
        for agent in snapshot["agents"]:
            if agent["occupancy"] is not None:
                agent_occupancy.add_metric([agent["agent_id"]], agent["occupancy"])
            if agent["since_break_s"] is not None:
                since_break.add_metric([agent["agent_id"]], agent["since_break_s"])
        out += [agent_occupancy, since_break]
    if queue is not None:
        depth = GaugeMetricFamily("shenava_stats_write_queue_depth",
                                  "Statistics operations waiting to be written to Redis.")
        depth.add_metric([], queue.pending)
        dropped = CounterMetricFamily("shenava_stats_write_dropped",
                                      "Statistics operations dropped because the write queue "
                                      "was full (Redis away too long).")
        dropped.add_metric([], queue.dropped)
        failures = CounterMetricFamily("shenava_stats_write_failures",
                                       "Statistics batches that Redis did not take (retried).")
        failures.add_metric([], queue.failures)
        spilled = CounterMetricFamily("shenava_stats_write_spilled",
                                      "Statistics operations past the write queue's cap kept in "
                                      "the journal instead of dropped (Redis away long).")
        spilled.add_metric([], queue.spilled)
        out += [depth, dropped, spilled, failures]
    return out + journal_families(snapshot.get("journal"))


def journal_families(journal: dict[str, Any] | None) -> list[Metric]:
    """The durable journal (``shenava.journal``): records kept on this host until Redis has them."""
    if not journal:
        return []
    depth = GaugeMetricFamily("shenava_journal_depth",
                              "Records kept in the local journal, not yet in Redis.")
    depth.add_metric([], journal["depth"])
    age = GaugeMetricFamily("shenava_journal_oldest_age_seconds",
                            "Age of the oldest record not yet in Redis (0 when none).")
    age.add_metric([], journal["oldest_age_s"])
    applied = CounterMetricFamily("shenava_journal_applied",
                                  "Journal records stored in Redis since the start.")
    applied.add_metric([], journal["applied"])
    rejected = CounterMetricFamily("shenava_journal_rejected",
                                   "Journal records that could not be applied (set aside in "
                                   "journal.rejected).")
    rejected.add_metric([], journal["rejected"])
    away = GaugeMetricFamily("shenava_redis_away", "1 while Redis does not answer the journal's writes.")
    away.add_metric([], 0 if journal["redis_away_since"] is None else 1)
    found = [depth, age, applied, rejected, away]
    replication = journal.get("replication")
    if replication:
        unreplicated = CounterMetricFamily(
            "shenava_journal_unreplicated",
            "Journal records stored on the master only: fewer replicas attached than "
            "redis.wait_replicas (lost if the master is lost before a replica attaches).")
        unreplicated.add_metric([], replication["unreplicated"])
        missing = GaugeMetricFamily(
            "shenava_redis_replicas_missing",
            "1 while fewer replicas are attached to the master than redis.wait_replicas.")
        missing.add_metric([], 0 if replication["replicas_missing_since"] is None else 1)
        found += [unreplicated, missing]
    return found


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


LabelValues = tuple[str, ...]


def _use_created() -> bool:
    """prometheus_client's switch for the ``_created`` series (``PROMETHEUS_DISABLE_CREATED_SERIES``,
    ``disable_created_metrics()``): followed, so the exposition stays the library's."""
    return bool(getattr(_prometheus_metrics, "_use_created", True))


class Counts:
    """A labelled counter as plain numbers: label values -> total, counted on the reactor thread.

    A label set appears at its first ``inc`` (as a prometheus_client child
    does at its first ``labels()``), with its creation time for ``_created``."""

    __slots__ = ("name", "documentation", "labelnames", "values", "created", "_now")

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...],
                 now: Callable[[], float] = time.time) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.values: dict[LabelValues, float] = {}
        self.created: dict[LabelValues, float] = {}
        self._now = now

    def inc(self, labels: LabelValues) -> None:
        value = self.values.get(labels)
        if value is None:
            self.created[labels] = self._now()
            self.values[labels] = 1.0
        else:
            self.values[labels] = value + 1.0

    def copy(self) -> tuple[dict[LabelValues, float], dict[LabelValues, float]]:
        return dict(self.values), dict(self.created)

    def family(self, taken: tuple[dict[LabelValues, float], dict[LabelValues, float]]) -> Metric:
        """The family prometheus_client's ``Counter`` would give for these numbers."""
        name, (values, created) = self.name, taken
        metric = Metric(name, self.documentation, "counter")
        with_created = _use_created()
        for labels, value in values.items():
            series = dict(zip(self.labelnames, labels, strict=True))
            metric.add_sample(name + "_total", series, value)
            if with_created:
                metric.add_sample(name + "_created", dict(series), created[labels])
        return metric


class Series:
    """One histogram series: a count per bucket (the last one ``+Inf``) and the sum."""

    __slots__ = ("bounds", "counts", "sum", "created")

    def __init__(self, bounds: tuple[float, ...], created: float) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.created = created

    def observe(self, value: float) -> None:
        # the first bucket whose upper bound is >= value (Prometheus' ``le``)
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class Buckets:
    """A labelled histogram as plain numbers: label values -> :class:`Series`."""

    __slots__ = ("name", "documentation", "labelnames", "bounds", "series", "_now", "_le")

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...],
                 bounds: tuple[float, ...], now: Callable[[], float] = time.time) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.bounds = tuple(float(b) for b in bounds)
        self.series: dict[LabelValues, Series] = {}
        self._now = now
        self._le = [floatToGoString(b) for b in self.bounds] + ["+Inf"]

    def labels(self, labels: LabelValues) -> Series:
        """The series of these label values (made, with zero counts, on first use)."""
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = Series(self.bounds, self._now())
        return series

    def copy(self) -> list[tuple[LabelValues, list[int], float, float]]:
        return [(labels, list(s.counts), s.sum, s.created) for labels, s in list(self.series.items())]

    def family(self, taken: list[tuple[LabelValues, list[int], float, float]]) -> Metric:
        """The family prometheus_client's ``Histogram`` would give for these numbers."""
        name = self.name
        metric = Metric(name, self.documentation, "histogram")
        with_created = _use_created()
        for labels, counts, total, created in taken:
            series = list(zip(self.labelnames, labels, strict=True))
            acc = 0.0
            for le, n in zip(self._le, counts, strict=True):
                acc += n
                metric.add_sample(name + "_bucket", dict([*series, ("le", le)]), acc)
            metric.add_sample(name + "_count", dict(series), acc)
            if self.bounds[0] >= 0:
                metric.add_sample(name + "_sum", dict(series), total)
            if with_created:
                metric.add_sample(name + "_created", dict(series), created)
        return metric


class _CountsCollector(Collector):
    """Yields the counters and histograms, from the copy taken last on the reactor thread
    (or a copy made now, when none was taken: a direct ``generate_latest``)."""

    def __init__(self, metrics: ShenavaMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        metrics = self._metrics
        taken = metrics.taken_counts
        if taken is None:
            taken = metrics.copy_counts()
        return [kept.family(numbers) for kept, numbers in zip(metrics.kept(), taken, strict=True)]


class _SnapshotCollector(Collector):
    """Yields the families of the snapshot taken last on the reactor thread."""

    def __init__(self, metrics: ShenavaMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        taken = self._metrics.taken
        if taken is None:
            return []
        snapshot, queue = taken
        return snapshot_families(snapshot, per_agent=self._metrics.per_agent, queue=queue)


@dataclass
class ShenavaMetrics:
    """The registry of one daemon, its counters and histograms, and the snapshot source."""

    service: SnapshotSource
    per_agent: bool = False
    writer: Any = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    taken: tuple[dict[str, Any], WriteQueue | None] | None = None
    taken_counts: list[Any] | None = None
    """The counters' and histograms' numbers as ``take_snapshot`` copied them."""

    def __post_init__(self) -> None:
        self.offered = Counts("shenava_calls_offered", "Calls that joined the waiting line.",
                              ("queue",))
        self.answered = Counts("shenava_calls_answered", "Waiting calls an agent answered.",
                               ("queue",))
        self.abandoned = Counts("shenava_calls_abandoned", "Waiting calls the caller hung up.",
                                ("queue",))
        self.left = Counts("shenava_calls_left_for_choice",
                           "Callers who left the line for a callback or a voicemail.",
                           ("queue", "choice"))
        self.rung = Counts("shenava_agent_rings", "Agents' phones rung for a waiting call.",
                           ("queue",))
        self.wait_answered = Buckets("shenava_wait_until_answer_seconds",
                                     "How long answered callers waited in the line.",
                                     ("queue",), WAIT_BUCKETS)
        self.wait_abandoned = Buckets("shenava_wait_until_abandon_seconds",
                                      "How long callers who hung up had waited in the line.",
                                      ("queue",), WAIT_BUCKETS)
        self.agi = Buckets("shenava_agi_turnaround_seconds",
                           "From sending an AGI command to its result (a prompt's playing "
                           "time included), by command.", ("command",), AGI_BUCKETS)
        self._agi_by_verb: dict[str, Series] = {}
        self.decision = Buckets("shenava_routing_decision_seconds",
                                "The router's time to decide on one event (CPU, not waiting).",
                                ("event",), DECISION_BUCKETS)
        self.agent_answered = (
            Counts("shenava_agent_calls_answered", "Calls an agent answered.", ("agent",))
            if self.per_agent else None
        )
        self.registry.register(_CountsCollector(self))
        self.registry.register(_SnapshotCollector(self))

    def kept(self) -> list[Counts | Buckets]:
        """The counters and histograms, in the order they are exposed."""
        kept: list[Counts | Buckets] = [
            self.offered, self.answered, self.abandoned, self.left, self.rung,
            self.wait_answered, self.wait_abandoned, self.agi, self.decision,
        ]
        if self.agent_answered is not None:
            kept.append(self.agent_answered)
        return kept

    def copy_counts(self) -> list[Any]:
        """The counters' and histograms' numbers now (on the reactor thread, which counts)."""
        return [kept.copy() for kept in self.kept()]

    # -- feeding -----------------------------------------------------------------------

    def on_routing_event(self, event: RoutingEvent) -> None:
        if isinstance(event, CallQueued):
            self.offered.inc(_QUEUE)
        elif isinstance(event, CallOffered):
            self.rung.inc(_QUEUE)
        elif isinstance(event, CallAnswered):
            self.answered.inc(_QUEUE)
            self.wait_answered.labels(_QUEUE).observe(max(0.0, event.at - event.joined_at))
            if self.agent_answered is not None:
                self.agent_answered.inc((event.agent_id,))
        elif isinstance(event, CallAbandoned):
            self.abandoned.inc(_QUEUE)
            self.wait_abandoned.labels(_QUEUE).observe(max(0.0, event.at - event.joined_at))
        elif isinstance(event, CallLeftForChoice):
            self.left.inc((QUEUE, event.choice))

    def on_agi(self, command: str, seconds: float) -> None:
        verb = command.partition(" ")[0].upper() or "?"
        series = self._agi_by_verb.get(verb)
        if series is None:
            series = self._agi_by_verb[verb] = self.agi.labels((verb,))
        series.observe(seconds if seconds > 0.0 else 0.0)

    def time_router(self, router: Any, timer: Callable[[], float] = time.perf_counter) -> None:
        """Measure the router's decisions by wrapping its entry points on this instance."""
        for name in ROUTER_DECISIONS:
            method = getattr(router, name, None)
            if method is not None:
                setattr(router, name, _timed(method, self.decision.labels((name,)), timer))

    def take_snapshot(self) -> None:
        """On the reactor thread, before the scrape is rendered on the thread pool."""
        writer = self.writer
        queue = (
            WriteQueue(writer.pending, getattr(writer, "dropped", 0), writer.failures,
                       getattr(getattr(writer, "spill", None), "spilled", 0))
            if writer is not None else None
        )
        self.taken = (self.service.snapshot(), queue)
        self.taken_counts = self.copy_counts()

    def render_text(self) -> bytes:
        """The exposition now, for tests and tools (the HTTP path is the resource)."""
        from prometheus_client import generate_latest

        self.take_snapshot()
        return generate_latest(self.registry)


def _timed(method: Callable[..., Any], series: Series, timer: Callable[[], float]) -> Any:
    observe = series.observe

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = timer()
        try:
            return method(*args, **kwargs)
        finally:
            observe(timer() - started)

    return timed


class MetricsResource(Resource):
    """``GET /metrics``: takes the snapshot, then hands the request to prometheus_client's resource."""

    isLeaf = True

    def __init__(self, service: SnapshotSource, metrics: ShenavaMetrics | None = None) -> None:
        super().__init__()
        if metrics is None:
            metrics = getattr(service, "metrics", None) or ShenavaMetrics(service)
        self.metrics = metrics
        from prometheus_client.twisted import MetricsResource as PrometheusResource

        self._inner: Any = PrometheusResource(metrics.registry)

    def render(self, request: Request) -> Any:
        self.metrics.take_snapshot()
        return self._inner.render(request)


def install(app: StatsHost, service: Any) -> ShenavaMetrics:
    """The daemon's metrics: subscribed to routing events and AGI results, timing the router."""
    metrics = ShenavaMetrics(service, per_agent=app.config.metrics.per_agent,
                             writer=getattr(service, "writer", None))
    app.dispatcher.subscribe(metrics.on_routing_event)
    app.connection.add_agi_observer(metrics.on_agi)
    metrics.time_router(app.router)
    return metrics


__all__ = ["Buckets", "Counts", "MetricsResource", "ShenavaMetrics", "install", "snapshot_families"]


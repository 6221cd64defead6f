"""Prometheus text exposition (format 0.0.4) of the live figures, and the /metrics resource.

Written by hand, no client library: each family is ``# HELP``, ``# TYPE``, then
its samples; label values escape ``\\``, ``"`` and newlines, help texts escape
``\\`` and newlines; an undefined ratio (nothing offered yet) is ``NaN``.
Day totals reset at local midnight, so they are gauges, not counters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.web.resource import Resource
from twisted.web.server import Request

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float | int | None) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


@dataclass
class Family:
    name: str
    help: str
    type: str = "gauge"
    samples: list[tuple[Mapping[str, str], float | int | None]] = field(default_factory=list)

    def add(self, value: float | int | None, **labels: str) -> None:
        self.samples.append((labels, value))

    def render(self) -> str:
        lines = [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.type}"]
        for labels, value in self.samples:
            if labels:
                text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
                lines.append(f"{self.name}{{{text}}} {format_value(value)}")
            else:
                lines.append(f"{self.name} {format_value(value)}")
        return "\n".join(lines) + "\n"


def render(families: Iterable[Family]) -> str:
    return "".join(f.render() for f in families)


_WINDOWS = ("rolling", "interval", "day")


def families(snapshot: Mapping[str, Any]) -> list[Family]:
    """Metric families from a ``StatsService.snapshot()``."""
    sl = Family("shenava_service_level", "Answered within the threshold over offered (DESIGN.md).")
    sl1 = Family("shenava_servicelevel_perf",
                 "Asterisk app_queue ServicelevelPerf: completed in SL over completed.")
    sl2 = Family("shenava_servicelevel_perf2",
                 "Asterisk app_queue ServicelevelPerf2: (abandoned in SL + completed in SL) "
                 "over (abandoned + completed).")
    calls = Family("shenava_calls", "Call outcomes in the window, by kind.")
    for queue, windows in sorted(snapshot["queues"].items()):
        for window in _WINDOWS:
            c = windows[window]
            sl.add(c["sl"], queue=queue, window=window)
            sl1.add(c["sl1"], queue=queue, window=window)
            sl2.add(c["sl2"], queue=queue, window=window)
            for kind in ("offered", "answered", "answered_in_sl", "abandoned", "abandoned_short",
                         "voicemail", "callback"):
                calls.add(c[kind], queue=queue, window=window, kind=kind)
    agents = Family("shenava_agents", "Agents in each state now.")
    for state, n in sorted(snapshot["states"].items()):
        agents.add(n, state=state)
    reasons = Family("shenava_agents_not_ready", "Agents not ready now, by reason.")
    for reason, n in sorted(snapshot["not_ready_reasons"].items()):
        reasons.add(n, reason=reason)
    occupancy = Family("shenava_occupancy",
                       "Agents on a call or in wrap-up over agents taking calls, now.")
    occupancy.add(snapshot["occupancy_now"])
    agent_occupancy = Family("shenava_agent_occupancy",
                             "An agent's occupancy over the last hour (wellbeing window).")
    since_break = Family("shenava_agent_since_break_seconds",
                         "Seconds since the agent's last rest (0 while resting).")
    for agent in snapshot["agents"]:
        if agent["occupancy"] is not None:
            agent_occupancy.add(agent["occupancy"], agent=agent["agent_id"])
        if agent["since_break_s"] is not None:
            since_break.add(agent["since_break_s"], agent=agent["agent_id"])
    line = Family("shenava_break_line_length", "Break requests waiting for headroom.")
    line.add(len(snapshot["break_line"]))
    oldest = Family("shenava_break_line_oldest_wait_seconds",
                    "How long the longest-waiting break request has waited.")
    oldest.add(max((r["waited_s"] for r in snapshot["break_line"]), default=0.0))
    granted = Family("shenava_breaks_granted", "Break grants since the daemon started.")
    granted.add(snapshot["breaks_granted"])
    fairness = Family("shenava_break_fairness_index",
                      "Jain's index of taken/earned break time across agents, today.")
    fairness.add(snapshot["fairness_today"])
    active = Family("shenava_alerts_active", "Wellbeing alerts active now, by kind.")
    by_kind: dict[str, int] = {}
    for alert in snapshot["alerts"]:
        by_kind[alert["kind"]] = by_kind.get(alert["kind"], 0) + 1
    for kind, n in sorted(by_kind.items()):
        active.add(n, kind=kind)
    today = Family("shenava_alerts_today", "Wellbeing alerts raised today.")
    today.add(snapshot["alerts_today"])
    out = [sl, sl1, sl2, calls, agents, reasons, occupancy, agent_occupancy, since_break,
           line, oldest, granted, fairness, active, today]
    return out + journal_families(snapshot.get("journal"))


def journal_families(journal: Mapping[str, Any] | None) -> list[Family]:
    """The durable journal (``shenava.journal``): records kept on this host until Redis has them."""
    if not journal:
        return []
    depth = Family("shenava_journal_depth", "Records kept in the local journal, not yet in Redis.")
    depth.add(journal["depth"])
    age = Family("shenava_journal_oldest_age_seconds",
                 "Age of the oldest record not yet in Redis (0 when none).")
    age.add(journal["oldest_age_s"])
    applied = Family("shenava_journal_applied", "Journal records stored in Redis since the start.",
                     type="counter")
    applied.add(journal["applied"])
    rejected = Family("shenava_journal_rejected",
                      "Journal records that could not be applied (set aside in journal.rejected).",
                      type="counter")
    rejected.add(journal["rejected"])
    away = Family("shenava_redis_away", "1 while Redis does not answer the journal's writes.")
    away.add(0 if journal["redis_away_since"] is None else 1)
    return [depth, age, applied, rejected, away]


class SnapshotSource(Protocol):
    def snapshot(self, now: float | None = None) -> dict[str, Any]: ...


class MetricsResource(Resource):
    """``GET /metrics``: the service's live figures in Prometheus text format."""

    isLeaf = True

    def __init__(self, service: SnapshotSource) -> None:
        super().__init__()
        self._service = service

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE)
        return render(families(self._service.snapshot())).encode("utf-8")

"""What a Prometheus scrape of ``/metrics`` costs, and what counting a routing event costs.

    .venv/bin/python benchmarks/metrics_scrape.py [--agents 500] [--calls 10000] [--scrapes 50]

A registry as the daemon builds it (``agent_stats.metrics.ShenavaMetrics``)
with a snapshot of ``--agents`` agents, fed ``--calls`` calls (queued and
answered: the counters and the wait histogram), is rendered ``--scrapes``
times, without and with the per-agent series (``[metrics] per_agent``). The
render is what runs on the reactor's thread pool at each scrape (the snapshot
itself is the statistics service's and not timed here). ``agi_result_us``:
counting one AGI result in the turnaround histogram (about 13 a call), CPU
time like ``routing_event_us``.

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_stats.metrics import ShenavaMetrics  # noqa: E402
from routing.events import CallAnswered, CallQueued

WINDOW = {"sl": 0.8, "sl1": 0.9, "sl2": 0.8, "offered": 10, "answered": 9, "answered_in_sl": 8,
          "abandoned": 1, "abandoned_short": 0, "voicemail": 0, "callback": 0}


class Snapshot:
    def __init__(self, agents: int) -> None:
        self._agents = agents

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        return {
            "queues": {"complaints": {"rolling": WINDOW, "interval": WINDOW, "day": WINDOW}},
            "states": {"ready": self._agents // 5, "on_call": self._agents - self._agents // 5},
            "not_ready_reasons": {"break": 3}, "occupancy_now": 0.8,
            "agents": [{"agent_id": f"a{i}", "occupancy": 0.5, "since_break_s": 100.0}
                       for i in range(self._agents)],
            "break_line": [], "breaks_granted": 3, "fairness_today": 0.9, "alerts": [],
            "alerts_today": 0,
        }


def run(agents: int, calls: int, scrapes: int, per_agent: bool) -> dict[str, Any]:
    metrics = ShenavaMetrics(Snapshot(agents), per_agent=per_agent)
    started = time.process_time()
    for i in range(calls):
        metrics.on_routing_event(CallQueued(f"c{i}", 1.0, 0.0, "fa", "general", "0912"))
        metrics.on_routing_event(CallAnswered(f"c{i}", 1.0 + i % 60, f"a{i % agents}", 1.0, False))
    event_us = (time.process_time() - started) / (2 * calls) * 1e6
    commands = ("ANSWER", 'STREAM FILE shenava/welcome ""', "GET VARIABLE SHENAVA_LANG",
                "EXEC MSet SHENAVA_LANG=fa")
    started = time.process_time()
    for i in range(4 * calls):
        metrics.on_agi(commands[i % 4], 0.001 * (i % 3000))
    agi_us = (time.process_time() - started) / (4 * calls) * 1e6
    started = time.perf_counter()
    for _ in range(scrapes):
        body = metrics.render_text()
    return {"scrape_ms": round((time.perf_counter() - started) / scrapes * 1000, 3),
            "bytes": len(body), "routing_event_us": round(event_us, 3),
            "agi_result_us": round(agi_us, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args(argv)
    plain = run(args.agents, args.calls, args.scrapes, per_agent=False)
    per_agent = run(args.agents, args.calls, args.scrapes, per_agent=True)
    print(f"without per-agent series: {plain}")
    print(f"with per-agent series:    {per_agent}")
    print(json.dumps({"bench": "metrics_scrape", "agents": args.agents, "calls": args.calls,
                      "scrapes": args.scrapes, "scrape_ms": plain["scrape_ms"],
                      "scrape_ms_per_agent": per_agent["scrape_ms"], "bytes": plain["bytes"],
                      "bytes_per_agent": per_agent["bytes"],
                      "routing_event_us": plain["routing_event_us"],
                      "agi_result_us": plain["agi_result_us"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

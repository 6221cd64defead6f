"""Per-timer and per-read costs under Twisted's asyncio reactor: Twisted's own against Shenava's.

    .venv/bin/python benchmarks/reactor_costs.py [--n 20000] [--repeat 3]

Three things the daemon does many times a call, each timed (process CPU) on
Twisted's ``AsyncioSelectorReactor`` (``stock``) and on
``shenava_base.reactor.AsyncioReactor`` (``ours``, what ``shenava run``
installs), neither running, each on a fresh asyncio loop, with one unrelated
timer a second away (the daemon always has some):

- ``deadline_us``: an AMI action's deadline set and its answer come, through
  ``ami_bridge.deadlines.Deadlines`` (the protocol goes idle after each
  answer, as it does about ten times a call at 50 calls/s); Twisted's
  ``runUntilCurrent`` every 50 actions stands for the timers that fire;
- ``calllater_us``: a bare ``callLater(10)`` and its ``cancel`` (what a
  deadline cost when every idle spell cancelled its timer and the next action
  set a new one);
- ``read_layer_us``: what the reactor wraps around each read's ``doRead``
  (``callWithLogger`` and the legacy log context on stock; nothing on ours),
  against calling ``_readOrWrite`` itself;
- ``message_us``: a log line's text, for the four lines a call writes at
  info (the IVR's start and end, the call entering the IVR, a complaint
  opened): Twisted's ``formatEvent`` (stock) against ``shenava.logs.format_message``
  (ours, what the journald and JSON shapes use).

The last line is one JSON object: per reactor, the best round's µs of each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet.asyncioreactor import AsyncioSelectorReactor  # noqa: E402
from twisted.logger import LogLevel, formatEvent  # noqa: E402
from twisted.python.log import callWithLogger  # noqa: E402

from ami_bridge.deadlines import Deadlines  # noqa: E402
from shenava.logs import format_message  # noqa: E402
from shenava_base.reactor import AsyncioReactor  # noqa: E402


class _Reader:
    """A selectable whose read does nothing: only the layers around it are timed."""

    def fileno(self) -> int:
        return 0

    def doRead(self) -> None:
        return None

    def logPrefix(self) -> str:
        return "AMIConnection,client"


_LINES = [
    ("IVR started for call {call_id}", {"call_id": "1796516137.42"}),
    ("IVR ended for call {call_id}: {requested} ({ended}) via {path}",
     {"call_id": "1796516137.42", "requested": "complaint", "ended": "done", "path": "2/1/3"}),
    ("call {call} from {caller} {how} the IVR", {"call": "1796516137.42", "caller": "0912***4567",
                                                 "how": "entered"}),
    ("complaint {reference} opened ({category}) for {caller}{repeat}",
     {"reference": "C-7K3M-9Q", "category": "billing", "caller": "0912***4567", "repeat": ""}),
]
"""The per-call info lines' formats (ivr/runner.py, shenava/callflow.py, complaints/service.py)."""


def _per(n: int, started: float) -> float:
    return (time.process_time() - started) / n * 1e6


def _set_and_cancel(reactor: Any, call_later: Any, n: int) -> float:
    """µs per timer set (10 s away) and cancelled at once; Twisted's timers run every 50."""
    started = time.process_time()
    for i in range(n):
        call_later(10.0, _noop).cancel()
        if i % 50 == 49:
            reactor.runUntilCurrent()
    return _per(n, started)


def one_round(kind: str, n: int) -> dict[str, float]:
    loop = asyncio.new_event_loop()
    try:
        reactor: Any = (AsyncioReactor if kind == "ours" else AsyncioSelectorReactor)(loop)
        reactor.callLater(1.0, lambda: None)
        deadline_us = _set_and_cancel(reactor, Deadlines(reactor).call_later, n)
        calllater_us = _set_and_cancel(reactor, reactor.callLater, n)
        reader = _Reader()
        read = reactor._readOrWrite
        started = time.process_time()
        if kind == "ours":
            for _ in range(n):
                read(reader, True)
        else:
            for _ in range(n):
                callWithLogger(reader, read, reader, True)
        wrapped = _per(n, started)
        started = time.process_time()
        for _ in range(n):
            read(reader, True)
        bare = _per(n, started)
        events = [{"log_format": f, "log_level": LogLevel.info, "log_namespace": "ivr.runner",
                   "log_time": 1796516137.25, **fields} for f, fields in _LINES]
        fmt = format_message if kind == "ours" else formatEvent
        started = time.process_time()
        for _ in range(n // len(events)):
            for event in events:
                fmt(event)
        message_us = _per(n // len(events) * len(events), started)
        return {"deadline_us": round(deadline_us, 3), "calllater_us": round(calllater_us, 3),
                "read_layer_us": round(max(0.0, wrapped - bare), 3),
                "message_us": round(message_us, 3)}
    finally:
        loop.close()


def _noop() -> None:
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="operations per measure")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, alternating; the best is kept")
    args = parser.parse_args(argv)
    rounds: dict[str, list[dict[str, float]]] = {"stock": [], "ours": []}
    for _ in range(args.repeat):
        for kind in rounds:
            rounds[kind].append(one_round(kind, args.n))
    best = {kind: {key: min(r[key] for r in rs) for key in rs[0]} for kind, rs in rounds.items()}
    for kind, b in best.items():
        print(f"{kind:5} " + "  ".join(f"{k} {v:.2f}" for k, v in b.items()), file=sys.stderr)
    print(json.dumps({"bench": "reactor_costs", "n": args.n, "repeat": args.repeat,
                      "python": platform.python_version(), "load_average": os.getloadavg(),
                      "best": best, "rounds": rounds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

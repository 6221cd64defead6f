"""What the callback dialler's check "is this customer on a call?" costs per call.

    .venv/bin/python benchmarks/live_numbers.py [--calls 2000] [--repeat 5]

The call tracker fed the AMI events of ``benchmarks/ami_calls.py``'s call
(decoded before timing), once with no subscriber and once with
:class:`routing.live_numbers.LiveNumbers` subscribed, as the dialler subscribes
it; rounds alternate, CPU time of this process, the best of each counts. The
last line is one JSON object: microseconds per call with and without, and the
difference.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ami_bridge.codec import AMIDecoder, Message  # noqa: E402
from ami_bridge.tracker import CallTracker  # noqa: E402
from benchmarks.ami_calls import call_traffic  # noqa: E402
from routing.live_numbers import LiveNumbers  # noqa: E402


def events_of(calls: int) -> list[Message]:
    """Every event of ``calls`` calls, in order (responses left out: the tracker sees events)."""
    decoder = AMIDecoder()
    decoder.feed(b"Asterisk Call Manager/11.0.0\r\n")
    out: list[Message] = []
    for n in range(1, calls + 1):
        for _channel, _command, data in call_traffic(n, 1):
            out += [m for m in decoder.feed(data) if m.event is not None]
    return out


def run_round(events: list[Message], *, live: bool) -> float:
    tracker = CallTracker()
    numbers = LiveNumbers(caller_of=lambda uid: getattr(tracker.channel(uid), "caller_num", None))
    if live:
        tracker.subscribe(numbers.on_tracker_event)
    handle = tracker.handle
    started = time.process_time()
    for message in events:
        handle(message, 0.0)
    took = time.process_time() - started
    if tracker.channels or len(numbers):
        raise SystemExit("channels left behind: the traffic is not what the tracker expects")
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    events = events_of(args.calls)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(args.repeat):
        for live in (False, True):
            best[live] = min(best[live], run_round(events, live=live))
    per_call = {live: took * 1e6 / args.calls for live, took in best.items()}
    out: dict[str, Any] = {
        "bench": "live_numbers",
        "calls": args.calls,
        "events_per_call": round(len(events) / args.calls, 1),
        "tracker_us_per_call": round(per_call[False], 1),
        "tracker_with_live_numbers_us_per_call": round(per_call[True], 1),
        "live_numbers_us_per_call": round(per_call[True] - per_call[False], 1),
        "python": platform.python_version(),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

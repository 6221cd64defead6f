"""What keeping joins durable while the call-state write lags costs.

    .venv/bin/python benchmarks/call_state_lag.py [--rate 20] [--seconds 4] [--lag-s 2]

A real ``redis-server`` on a free loopback port, the daemon's
``CallStateRecorder`` (its 0.1 s write interval, its ``LAG_S``, the host's
file in a temporary folder written in the reactor's thread pool, real
fsyncs on whatever disk ``$TMPDIR`` is). Callers join at ``--rate`` a second
(a waiting record each, about the size the daemon writes), side by side in one
run:

1. ``healthy``: Redis answers; counts the host-file saves (each one fsync of
   the file and one of its folder) per join: 0 expected.
2. ``lagging``: Redis pauses writes (``CLIENT PAUSE ... WRITE``) for
   ``--lag-s`` while callers keep joining: saves per join and per second, the
   time each save took (its thread's wall time, records in the file), and
   whether every join is in Redis or the file at the end of the stall (what a
   ``kill -9`` then would leave: ``joins_uncovered`` must be 0 apart from the
   last ``LAG_S`` + 0.1 s of joins, counted as ``joins_in_window``).
3. ``fsync_per_join``: for scale, what one 1 KB append plus ``fsync`` costs on
   the same disk (the price per caller of journalling each join on its own).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shenava_base.aio import install_asyncio_reactor  # noqa: E402

reactor: Any = install_asyncio_reactor()

from twisted.internet.defer import ensureDeferred  # noqa: E402
from twisted.internet.task import deferLater  # noqa: E402

from shenava.call_state import LAG_S, CallStateRecorder, CallStateStore  # noqa: E402
from shenava.call_state_spool import CallStateSpool, lay_over  # noqa: E402
from shenava.redis_server import start_redis_server  # noqa: E402
from shenava.takeover import CALL_STATE_WRITE_S, _thread_runner  # noqa: E402
from shenava_base.aio import as_deferred  # noqa: E402


def waiting_record(n: int, now: float) -> dict[str, Any]:
    return {
        "phase": "waiting", "channel": f"PJSIP/trunk-{n:08x}", "caller_number": f"0912{n:07d}",
        "arrived_at": now - 40.0, "joined_at": now, "language": "fa", "category": "billing",
        "facts": {"urgency": "normal", "vulnerable": False, "open_complaint": False, "recent_call": False,
                  "callback_flag": False, "abusive_caller": False, "urgent_words": []},
        "agent_id": None, "leg_id": None,
    }


class TimedSpool(CallStateSpool):
    """The daemon's spool, timing each save (in its worker thread)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.times: list[float] = []
        self.sizes: list[int] = []

    def save(self, entries: Any) -> None:
        started = time.perf_counter()
        super().save(entries)
        if entries:
            self.times.append(time.perf_counter() - started)
            self.sizes.append(len(entries))


async def joins(recorder: CallStateRecorder, live: dict[str, dict[str, Any]], first: int,
                count: int, rate: float) -> list[tuple[str, float]]:
    joined: list[tuple[str, float]] = []
    for n in range(first, first + count):
        call_id = f"c{n}"
        live[call_id] = waiting_record(n, reactor.seconds())
        recorder.mark(call_id)
        joined.append((call_id, time.monotonic()))
        await deferLater(reactor, 1.0 / rate, lambda: None)
    return joined


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="call-state-lag-"))
    server = start_redis_server(folder / "redis", extra_args=("--appendfsync", "everysec"))
    from redis.asyncio import Redis

    client: Any = Redis.from_url(server.url, socket_timeout=60)
    try:
        live: dict[str, dict[str, Any]] = {}
        store = CallStateStore(client, "bench")
        recorder = CallStateRecorder(store, reactor, [live.get], min_interval_s=CALL_STATE_WRITE_S,
                                     run_in_thread=_thread_runner(reactor))
        spool = TimedSpool(folder / "state")
        recorder.spool = spool
        count = int(args.rate * args.seconds)

        await joins(recorder, live, 0, count, args.rate)
        await recorder.flushed()
        healthy = {"joins": count, "saves": recorder.spool_saves, "writes": recorder.writes}

        saves_before = recorder.spool_saves
        await as_deferred(client.execute_command("CLIENT", "PAUSE", str(int(args.lag_s * 1000)), "WRITE"))
        stall_started = time.monotonic()
        lag_count = int(args.rate * args.lag_s)
        joined = await joins(recorder, live, count, lag_count, args.rate)
        await deferLater(reactor, 0.05, lambda: None)  # the last save's thread
        reader: Any = Redis.from_url(server.url)  # reads are not paused
        raw = await as_deferred(reader.hkeys("bench:{calls}:live"))
        in_redis: dict[str, dict[str, Any]] = {k.decode(): {} for k in raw}
        await as_deferred(reader.aclose())
        covered = set(lay_over(in_redis, spool.load())[0])
        window_from = time.monotonic() - LAG_S - CALL_STATE_WRITE_S
        uncovered = [c for c, at in joined if c not in covered and at < window_from]
        in_window = sum(1 for c, at in joined if c not in covered and at >= window_from)
        stalled_s = time.monotonic() - stall_started
        lag_saves = recorder.spool_saves - saves_before
        await as_deferred(client.execute_command("CLIENT", "UNPAUSE"))
        await recorder.flushed()
        for _ in range(20):
            if not spool.path.exists():
                break
            await deferLater(reactor, 0.05, lambda: None)
        lagging = {
            "joins": lag_count, "stalled_s": round(stalled_s, 2), "saves": lag_saves,
            "saves_per_join": round(lag_saves / max(1, lag_count), 3),
            "saves_per_s": round(lag_saves / max(1e-9, stalled_s), 2),
            "save_ms_median": round(1000 * statistics.median(spool.times), 2) if spool.times else None,
            "save_ms_max": round(1000 * max(spool.times), 2) if spool.times else None,
            "records_per_save_max": max(spool.sizes) if spool.sizes else 0,
            "joins_uncovered": len(uncovered), "joins_in_window": in_window,
            "file_removed_after": not spool.path.exists(),
        }
        recorder.stop()

        fsync_times = []
        path = folder / "fsync-probe"
        for _ in range(50):
            started = time.perf_counter()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, b"x" * 1024)
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_times.append(time.perf_counter() - started)
        return {
            "bench": "call_state_lag", "rate": args.rate, "lag_s_setting": LAG_S,
            "healthy": healthy, "lagging": lagging,
            "fsync_per_join_ms_median": round(1000 * statistics.median(fsync_times), 3),
        }
    finally:
        await as_deferred(client.aclose())
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="joins per second")
    parser.add_argument("--seconds", type=float, default=4.0, help="healthy phase length")
    parser.add_argument("--lag-s", type=float, default=2.0, help="how long Redis pauses writes")
    args = parser.parse_args()
    result: dict[str, Any] = {}

    def done(r: dict[str, Any]) -> None:
        result.update(r)

    d = ensureDeferred(run(args))
    d.addCallback(done)
    d.addErrback(lambda f: (f.printTraceback(), result.update(error=f.getErrorMessage())))
    d.addBoth(lambda _: reactor.stop())
    reactor.run()
    print(json.dumps(result))
    if "error" in result:
        sys.exit(1)


if __name__ == "__main__":
    main()

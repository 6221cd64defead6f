"""What one refresh of the centre's figures costs a daemon, by the number of sites.

Every daemon of a centre refreshes every 5 s (``agent_stats.centre.REFRESH_S``): it
reads its own site's service-level counters, publishes them with its figures of the
moment, and reads every registered site's. This counts the Redis commands the server
executes for one refresh (``INFO commandstats``, a redis-server of its own) and times it,
with N sites registered, each with one queue and calls counted, every site's daemon
having refreshed just before (all reporting). ``not_reporting`` is the read when no
other site has published (their daemons stopped): their counters are read instead.

    .venv/bin/python benchmarks/centre_read.py [--sites 2,10,50] [--repeat 5] [--before PATH]

``--before PATH``: another checkout (``git archive main | tar -x -C PATH``) measured
too, in a subprocess just before, with the same sites.

Last line: one JSON object, ``{"sites": {"N": {"redis_commands_per_refresh",
"refresh_ms_median", "centre_commands_per_s", ...}}, ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# ``--code PATH`` (the ``--before`` run's subprocess): that checkout's packages
_code = sys.argv[sys.argv.index("--code") + 1] if "--code" in sys.argv else None
sys.path.insert(0, str(Path(_code).resolve() if _code else Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis  # noqa: E402

from agent_stats.centre import REFRESH_S, CentreBoard, SiteNow, read_centre  # noqa: E402
from agent_stats.sla import CallRecord, Outcome, SLAConfig  # noqa: E402
from agent_stats.store import OutcomeWrite, StatsStore  # noqa: E402
from shenava.redis_server import start_redis_server  # noqa: E402


class _Clock:
    def seconds(self) -> float:
        return time.time()


async def _commands(client: Redis) -> int:
    stats: dict[str, Any] = await client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


async def measure(count: int, repeat: int) -> dict[str, Any]:
    server = start_redis_server(Path(tempfile.mkdtemp(prefix="shenava-centre-")))
    client = Redis.from_url(server.url, decode_responses=True)
    try:
        boards = []
        for i in range(count):
            site, now = f"s{i}", time.time()
            call = CallRecord("complaints", now - 30, now - 30, Outcome.ANSWERED, now - 20, f"c{i}")
            await StatsStore(client, SLAConfig(), site=site).apply([OutcomeWrite(call, agent_id=f"a{i}")])
            board = CentreBoard(client, "shenava", site, SLAConfig(), _Clock(), name=site, timezone="UTC")

            async def figures(now: float, sites: list[str]) -> SiteNow:
                return SiteNow(now, waiting=1, longest_wait_s=2.0, ready=3, busy=4, not_ready=5)

            board.site_now = figures
            await board.refresh()  # registered, published
            boards.append(board)
        commands, times = [], []
        for _ in range(repeat):
            before = await _commands(client)
            started = time.perf_counter()
            await boards[0].refresh()
            times.append((time.perf_counter() - started) * 1000)
            commands.append(await _commands(client) - before - 1)  # less the INFO itself
        latest = await boards[0].refresh()
        per_refresh = max(commands)
        result: dict[str, Any] = {
            "redis_commands_per_refresh": per_refresh,
            "refresh_ms_median": round(statistics.median(times), 2),
            "centre_commands_per_s": round(per_refresh * count / REFRESH_S, 1),
            "centre_day_offered": latest.day.offered,
        }
        if "published" not in inspect.signature(read_centre).parameters:
            return result  # an earlier checkout (--before): every refresh read every site
        # no other site reporting: their daemons stopped, their counters read instead
        before = await _commands(client)
        started = time.perf_counter()
        stale = await read_centre(client, "shenava", SLAConfig(), time.time() + 60, published={})
        stale_ms = (time.perf_counter() - started) * 1000
        stale_commands = await _commands(client) - before - 1
        result["not_reporting"] = {"redis_commands": stale_commands, "ms": round(stale_ms, 2),
                                   "centre_day_offered": stale.day.offered}
        return result
    finally:
        await client.aclose()
        server.stop()


def before_run(code: str, sites: str, repeat: int) -> dict[str, Any]:
    """This benchmark with another checkout's packages, in a subprocess."""
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--code", code, "--sites", sites, "--repeat",
         str(repeat)], check=True, capture_output=True, text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])["sites"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", default="2,10", help="numbers of sites, comma-separated (e.g. 2,10,50)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", metavar="PATH", help="another checkout, measured too, just before")
    parser.add_argument("--code", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    before = before_run(args.before, args.sites, args.repeat) if args.before else None
    results: dict[str, Any] = {}
    for count in (int(n) for n in args.sites.split(",")):
        results[str(count)] = asyncio.run(measure(count, args.repeat))
        if before is not None:
            results[str(count)]["before"] = before[str(count)]
        print(f"{count} sites: {results[str(count)]}", file=sys.stderr)
    print(json.dumps({"benchmark": "centre_read", "refresh_s": REFRESH_S, "sites": results}))


if __name__ == "__main__":
    main()

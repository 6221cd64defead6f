"""What one refresh of the centre's figures costs a daemon, by the number of sites.

Every daemon of a centre refreshes every 5 s (``agent_stats.centre.REFRESH_S``): it
publishes its own site's figures of the moment and reads every registered site's
service-level counters and figures. This counts the Redis commands the server executes
for one refresh (``INFO commandstats``, a redis-server of its own) and times it, with
N sites registered, each with one queue and calls counted.

    .venv/bin/python benchmarks/centre_read.py [--sites 2,10] [--repeat 5]

Last line: one JSON object, ``{"sites": {"N": {"redis_commands_per_refresh",
"refresh_ms_median"}}, ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis  # noqa: E402

from agent_stats.centre import REFRESH_S, CentreBoard, SiteNow  # noqa: E402
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
        per_refresh = max(commands)
        return {
            "redis_commands_per_refresh": per_refresh,
            "refresh_ms_median": round(statistics.median(times), 2),
            "centre_commands_per_s": round(per_refresh * count / REFRESH_S, 1),
        }
    finally:
        await client.aclose()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", default="2,10", help="numbers of sites, comma-separated (e.g. 2,10,50)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for count in (int(n) for n in args.sites.split(",")):
        results[str(count)] = asyncio.run(measure(count, args.repeat))
        print(f"{count} sites: {results[str(count)]}", file=sys.stderr)
    print(json.dumps({"benchmark": "centre_read", "refresh_s": REFRESH_S, "sites": results}))


if __name__ == "__main__":
    main()

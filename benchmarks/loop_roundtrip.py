"""The event loop and the AMI write path per round trip: stdlib asyncio or uvloop, write-behind or send-now.

    .venv/bin/python benchmarks/loop_roundtrip.py [--sessions 1,40] [--round-trips 5000]
                                                  [--redis-every 2] [--repeat 2]

What the daemon does for every AGI step, without the IVR: an action written to
the AMI connection, its answer read, sometimes a Redis command (redis.asyncio
through ``as_deferred``) before the next action. ``--sessions`` such loops run
at once on one AMI connection: 1, one round trip at a time (a quiet daemon:
each read one answer, each write its own loop turn); 40, many (a busy one: a
read brings several answers and several actions are written while handling
it). ``--redis-every N``: a Redis ``GET`` after every Nth answer (0: none).

The peer is the test PBX in another process (Twisted's default reactor,
``TCP_NODELAY``), answering ``Ping``; a real ``redis-server`` on loopback. Each
contender runs in a fresh process (one reactor per process), contenders
alternating, ``--repeat`` rounds; the CPU time (user + system) of that process
over the round trips is what is measured, so the peer and Redis are not.

Contenders: the loop under Twisted's ``AsyncioSelectorReactor`` (``asyncio``,
the standard library's selector loop, or ``uvloop``) and the AMI write path
(``behind``: the protocol on Twisted's transport, each write sent by
``doWrite`` a loop turn later, between an ``addWriter`` and a
``removeWriter``; ``now``: ``ami_bridge.connection.SendNow``, as the daemon
runs). Besides the CPU, exact counts per round trip (``benchmarks._loop_counts``):
loop iterations (stdlib loop only), AMI reads and sends, ``addWriter`` calls.

The last line is one JSON object: per session count and contender, the best
round's CPU µs per round trip and its counts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HOST = "127.0.0.1"
USER, SECRET = "bench", "bench-secret"
CONTENDERS = ("asyncio/behind", "asyncio/now", "asyncio/soon", "uvloop/behind", "uvloop/now", "uvloop/soon")


def peer_child(conn: Connection) -> None:
    """The test PBX on Twisted's default reactor; sends its port, runs until killed."""
    from twisted.internet import reactor as global_reactor

    from testpbx.options import PbxOptions
    from testpbx.server import listen_testpbx
    from testpbx.world import PbxWorld

    reactor: Any = global_reactor
    world = PbxWorld(reactor, PbxOptions(users={USER: SECRET}, seed=1))
    port: Any = listen_testpbx(reactor, 0, world, interface=HOST, no_delay=True)
    conn.send(port.getHost().port)
    reactor.run()


def contender(args: argparse.Namespace) -> dict[str, Any]:
    """One contender in this process: ``args.child`` is ``LOOP/WRITE``."""
    loop_kind, write = args.child.split("/")
    from shenava_base.aio import as_deferred, install_asyncio_reactor

    reactor: Any = install_asyncio_reactor(loop_kind)
    import redis.asyncio as aioredis
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.task import deferLater

    from ami_bridge.connection import _Guard, set_no_delay
    from ami_bridge.protocol import AMIProtocol
    from benchmarks._loop_counts import LoopCounts

    result: dict[str, Any] = {}

    async def run() -> None:
        ami = AMIProtocol(reactor)
        endpoint = TCP4ClientEndpoint(reactor, HOST, args.port)
        if write in ("now", "soon"):
            _Guard.flush_soon = write == "soon"
            await connectProtocol(endpoint, _Guard(ami, ami))
        else:
            await connectProtocol(endpoint, ami)
            set_no_delay(ami.transport)
        await ami.when_ready()
        await ami.login(USER, SECRET)
        client = aioredis.Redis.from_url(args.redis)
        await as_deferred(client.set("k", "v"))
        counts = LoopCounts(reactor, ami.transport)

        async def session(n: int) -> None:
            for i in range(n):
                await ami.send_action("Ping")
                if args.redis_every and i % args.redis_every == 0:
                    await as_deferred(client.get("k"))

        await deferLater(reactor, 0.2, lambda: None)
        mark = counts.mark()
        sessions = int(args.sessions)
        per = args.round_trips // sessions
        cpu0, wall0 = time.process_time(), time.perf_counter()
        from twisted.internet.defer import gatherResults

        await gatherResults([ensureDeferred(session(per)) for _ in range(sessions)])
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        trips = per * sessions
        result.update(
            contender=args.child,
            cpu_us_per_round_trip=round(cpu * 1e6 / trips, 1),
            wall_us_per_round_trip=round(wall * 1e6 / trips, 1),
            per_round_trip=counts.per_call(mark, trips),
        )
        await as_deferred(client.aclose())

    def done(outcome: Any) -> None:
        if not result:
            result["error"] = str(outcome)
        reactor.stop()

    reactor.callWhenRunning(lambda: ensureDeferred(run()).addBoth(done))
    reactor.callLater(300, reactor.stop)
    reactor.run()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,40", help="session counts, one run each")
    parser.add_argument("--round-trips", type=int, default=5_000)
    parser.add_argument("--redis-every", type=int, default=2, metavar="N")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(contender(args)), flush=True)
        return 0
    import multiprocessing

    from shenava.redis_server import start_redis_server

    root = Path(tempfile.mkdtemp(prefix="shenava-bench-loop-"))
    server = start_redis_server(root / "redis")
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    peer = ctx.Process(target=peer_child, args=(child,), daemon=True)
    peer.start()
    rounds: dict[str, list[dict[str, Any]]] = {}
    try:
        if not parent.poll(60):
            raise SystemExit("the test PBX child did not start")
        port = parent.recv()
        for _, sessions, name in [(r, s, n) for r in range(args.repeat)
                                  for s in args.sessions.split(",")
                                  for n in args.contenders.split(",")]:
            out = subprocess.run(
                [sys.executable, __file__, "--child", name, "--port", str(port),
                 "--redis", server.url, "--sessions", sessions,
                 "--round-trips", str(args.round_trips), "--redis-every", str(args.redis_every)],
                capture_output=True, text=True, timeout=330, env=dict(os.environ),
            )
            line = (out.stdout.strip().splitlines() or ["{}"])[-1]
            got = json.loads(line)
            if "cpu_us_per_round_trip" not in got:
                raise SystemExit(f"{name} failed: {got} {out.stderr[-2000:]}")
            print(json.dumps(got), file=sys.stderr, flush=True)
            rounds.setdefault(f"{sessions}x {name}", []).append(got)
    finally:
        peer.terminate()
        peer.join(5)
        server.stop()
    best = {name: min(rs, key=lambda r: r["cpu_us_per_round_trip"]) for name, rs in rounds.items()}
    for name, r in best.items():
        print(f"{name:20} {r['cpu_us_per_round_trip']:7.1f} µs CPU per round trip "
              f"(all rounds: {[x['cpu_us_per_round_trip'] for x in rounds[name]]}); "
              f"{json.dumps(r['per_round_trip'])}", file=sys.stderr)
    print(json.dumps({
        "bench": "loop_roundtrip", "sessions": [int(x) for x in args.sessions.split(",")], "round_trips": args.round_trips,
        "redis_every": args.redis_every, "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "best": {name: {"cpu_us_per_round_trip": r["cpu_us_per_round_trip"],
                        **r["per_round_trip"]} for name, r in best.items()},
        "rounds_cpu_us": {name: [x["cpu_us_per_round_trip"] for x in rs] for name, rs in rounds.items()},
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

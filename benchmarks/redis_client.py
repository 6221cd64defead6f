"""The Redis client's own CPU per command: hiredis or not, one turn's commands batched or not.

    .venv/bin/python benchmarks/redis_client.py [--calls 1500] [--concurrency 8] [--repeat 3]

A real ``redis-server`` on a free loopback port; this process drives the
daemon's client (``shenava.redis_client.make_redis_client``) through a fixed
mix of commands modelled on what the daemon sends per call (from a profile of
``benchmarks/system.py``): the caller's facts (a plain pipeline of four
reads, then an ``MGET``), a complaint opened by ``EVALSHA``, three writes
issued together (``HSET``, ``ZADD``, ``RPUSH``), a ``MULTI``/``EXEC`` of two
``HINCRBY``, a ``GET`` then a ``SET``, a lease released by ``EVALSHA``: 16
commands per call, ``--concurrency`` calls in flight at once (a call starts
as another ends, so they drift out of step; how many commands share a turn
depends on that model: the daemon's own counts are ``benchmarks/system.py``'s).

Each variant runs in a child process of its own (``hiredis`` is kept out by
blocking its import there), the variants in turn, ``--repeat`` times, so a
machine loaded by other work slows them alike; the figures are the medians:

- ``cpu_us_per_call`` / ``cpu_us_per_command``: the child's CPU time
  (``time.process_time``) over the calls, loop and client included;
- ``round_trips_per_call``: writes to Redis (``StreamWriter.writelines``),
  an exact count;
- ``connections``: connections the pool opened.

Variants: ``redis-py`` (the client as built before: ``redis.asyncio.Redis``
on a ``BlockingConnectionPool``, redis-py's pure-Python parser and packer),
``redis-py+hiredis`` (the same with hiredis's C parser and packer),
``shenava-redis-py-wire`` (``make_redis_client`` with redis-py's own parser
and packer put back: the client before ``shenava.redis_wire``),
``shenava`` (``make_redis_client``: one turn's commands as one pipeline, a
checkout without ``connect()``, a write without ``wait_for``, replies parsed
from whole chunks by ``WireParser``, commands packed by
``shenava.redis_wire``; no hiredis) and ``shenava+hiredis`` (the same: the
client parses and packs without hiredis wherever it is installed). The daemon runs ``shenava``: hiredis is not a
dependency, as it cost CPU here instead of saving it (docs/scaling.md);
the hiredis variants run only where ``pip install hiredis`` was done. The
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "redis-py": {"hiredis": False, "ours": False, "wire": False},
    "redis-py+hiredis": {"hiredis": True, "ours": False, "wire": False},
    "shenava-redis-py-wire": {"hiredis": False, "ours": True, "wire": False},
    "shenava": {"hiredis": False, "ours": True, "wire": True},
    "shenava+hiredis": {"hiredis": True, "ours": True, "wire": True},
}
COMMANDS_PER_CALL = 16
OPEN_LUA = "redis.call('HSET', KEYS[1], 'ref', ARGV[1], 'at', ARGV[2]) return redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])"
RELEASE_LUA = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def child(url: str, calls: int, concurrency: int, ours: bool, wire: bool = True) -> dict[str, Any]:
    """One variant, in this process: the figures as a dict."""
    import asyncio
    import time

    if ours and not wire:  # the client as it was before shenava.redis_wire: redis-py's parser and packer
        from shenava import redis_client

        del redis_client._QuickRead.read_response, redis_client._QuickRead.pack_command
        redis_client._QuickRead.__init__ = lambda self, *a, **k: super(  # type: ignore[method-assign]
            redis_client._QuickRead, self).__init__(*a, **k)

    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.utils import HIREDIS_AVAILABLE

    from shenava.config import RedisConfig
    from shenava.redis_client import client_options, make_redis_client

    sends = [0]
    original = asyncio.StreamWriter.writelines

    def counted(self: Any, data: Any) -> None:  # every command write goes through here
        sends[0] += 1
        original(self, data)

    asyncio.StreamWriter.writelines = counted  # type: ignore[method-assign]

    async def one_call(client: Any, scripts: tuple[Any, Any], i: int) -> None:
        number, open_script, release_script = f"0912{i:07d}", *scripts
        pipe = client.pipeline(transaction=False)
        pipe.zrange(f"b:{{c}}:num:{number}", 0, -1).hget("b:{cb}:open", number)
        pipe.hexists("b:{cb}:open", number).get(f"b:{{vm}}:urgent:{number}")
        await pipe.execute()
        await client.mget(f"b:{{c}}:a:{i}", f"b:{{c}}:b:{i}")
        await open_script(keys=[f"b:{{c}}:c:{i}", f"b:{{c}}:num:{number}"], args=[f"R{i}", time.time()])
        await asyncio.gather(
            client.hset("b:{calls}:live", f"call-{i}", json.dumps({"n": number, "ivr": {"step": 3}})),
            client.zadd("b:{stats}:waits", {f"call-{i}": float(i)}),
            client.rpush("b:{stats}:intervals", f"{i}|answered|12.5"),
        )
        tx = client.pipeline(transaction=True)
        tx.hincrby("b:{stats}:day", "answered", 1).hincrby("b:{stats}:day", "talk_s", 30)
        await tx.execute()
        if await client.get(f"b:{{cb}}:lease:{i}") is None:
            await client.set(f"b:{{cb}}:lease:{i}", "me", px=60_000)
        await release_script(keys=[f"b:{{cb}}:lease:{i}"], args=["me"])

    async def run() -> dict[str, Any]:
        config = RedisConfig(url=url)
        if ours:
            client: Any = make_redis_client(config, decode_responses=True)
        else:  # as shenava.redis_client built it before
            client = Redis.from_pool(BlockingConnectionPool.from_url(
                url, max_connections=config.max_connections, timeout=config.pool_timeout_s,
                decode_responses=True, **client_options(config)))
        scripts = (client.register_script(OPEN_LUA), client.register_script(RELEASE_LUA))
        try:
            await client.flushdb()
            await asyncio.gather(*(one_call(client, scripts, -1 - k) for k in range(concurrency)))  # warm
            sends[0] = 0
            cpu0 = time.process_time()
            slots = asyncio.Semaphore(concurrency)

            async def paced(i: int) -> None:
                async with slots:  # a call starts as one ends: the calls drift out of step
                    await one_call(client, scripts, i)

            await asyncio.gather(*(paced(i) for i in range(calls)))
            cpu = time.process_time() - cpu0
            pool = client.connection_pool
            connections = len(pool._available_connections) + len(pool._in_use_connections)
            parser = type(next(iter(pool._available_connections))._parser).__name__
        finally:
            await client.aclose()
        return {
            "hiredis": HIREDIS_AVAILABLE, "shenava": ours,
            "cpu_us_per_call": round(1e6 * cpu / calls, 1),
            "cpu_us_per_command": round(1e6 * cpu / calls / COMMANDS_PER_CALL, 2),
            "round_trips_per_call": round(sends[0] / calls, 2),
            "connections": connections,
            "parser": parser,
        }

    return asyncio.run(run())


def run_variant(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    command = [sys.executable, __file__, "--child", url, "--calls", str(args.calls),
               "--concurrency", str(args.concurrency)]
    if VARIANTS[name]["ours"]:
        command.append("--ours")
    if not VARIANTS[name]["wire"]:
        command.append("--redis-py-wire")
    if not VARIANTS[name]["hiredis"]:
        command.append("--no-hiredis")
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True, cwd=ROOT)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight at once")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every variant, alternating")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--ours", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-hiredis", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--redis-py-wire", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.no_hiredis:
            sys.modules["hiredis"] = None  # type: ignore[assignment]  # redis-py then parses in Python
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child(args.child, args.calls, args.concurrency, args.ours, not args.redis_py_wire)))
        return

    sys.path.insert(0, str(ROOT))
    import importlib.util
    import tempfile

    from shenava.redis_server import start_redis_server

    have_hiredis = importlib.util.find_spec("hiredis") is not None
    names = [name for name in VARIANTS if have_hiredis or not VARIANTS[name]["hiredis"]]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="bench-redis-client-") as folder:
        server = start_redis_server(Path(folder))
        try:
            for _ in range(args.repeat):
                for name in names:
                    runs[name].append(run_variant(name, server.url, args))
                    print(name, runs[name][-1], file=sys.stderr, flush=True)
        finally:
            server.stop()
    result: dict[str, Any] = {"bench": "redis_client", "calls": args.calls, "concurrency": args.concurrency,
                              "commands_per_call": COMMANDS_PER_CALL, "repeat": args.repeat}
    for name, rows in runs.items():
        result[name] = {
            "cpu_us_per_call": statistics.median(r["cpu_us_per_call"] for r in rows),
            "cpu_us_per_command": statistics.median(r["cpu_us_per_command"] for r in rows),
            "round_trips_per_call": rows[-1]["round_trips_per_call"],
            "connections": rows[-1]["connections"],
            "hiredis": rows[-1]["hiredis"],
            "parser": rows[-1]["parser"],
        }
    base = result["redis-py"]["cpu_us_per_call"]
    result["cpu_vs_redis_py"] = {name: round(result[name]["cpu_us_per_call"] / base, 2) for name in names}
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""The daemon's CPU for the pages' live figures: pushed once a second, against polling.

    .venv/bin/python benchmarks/wallboard.py [--agents 2000] [--calls 10000] [--viewers 500] [--seconds 15]

The real object graph (:class:`shenava.app.Shenava`) with a real
``redis-server`` (the statistics service and the callback flags run), on the
asyncio reactor as the daemon runs, its HTTP site on a loopback port.
``--agents`` agents are logged in (a fifth not ready), ``--calls`` calls wait
in the routing line (joined over the last ten minutes), and every second
``--changes`` agents change state, so agent rows go out as the day would send
them.

The pages are real ``GET /api/events`` connections (Server-Sent Events) from a
separate process (``--client``) through the listener's proxy mode (as from a
reverse proxy on loopback), which reads and counts what it gets: the
daemon's process does only the daemon's work. The daemon's CPU (user + system,
``getrusage``) is measured over ``--seconds`` of wall time with 1 page
connected and with ``--viewers`` pages connected, after a settling second.

Counted: ``cpu_fraction_of_core`` at ``--viewers`` pages,
``cpu_fraction_per_added_viewer`` (the difference over the added pages), the
same at one page, the bytes per second each page received, and the build
time of one second's figures. Side by side, the polling this replaces: every
open page asked ``GET /api/wallboard`` every 2 s, and each answer built the
statistics snapshot and allowances of every agent, sorted and scored the whole
waiting line for a count and a maximum, scanned each agent's day for its
not-ready time and read every callback flag for a count; that work is timed
here (``old_poll_ms``) and scaled to the same number of pages
(``old_cpu_fraction_of_core`` = pages / 2 s x the time of one answer).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROXY_SECRET = "benchmark-proxy-secret-0123456789"
SUPERVISOR_HEADERS = (b"X-Shenava-Proxy-Secret: " + PROXY_SECRET.encode()
                      + b"\r\nX-Shenava-Role: supervisor\r\nX-Shenava-Person: sara\r\n")


# -- the pages: a separate process ------------------------------------------------------------


async def _client(port: int, count: int) -> None:
    received = [0] * count
    writers = []

    async def read(i: int, reader: asyncio.StreamReader) -> None:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            received[i] += len(chunk)

    tasks = []
    for i in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n"
                     + SUPERVISOR_HEADERS + b"\r\n")
        writers.append(writer)
        tasks.append(asyncio.create_task(read(i, reader)))
    print(json.dumps({"connected": count}), flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while True:
        line = await stdin.readline()
        if not line or line.strip() == b"quit":
            break
        print(json.dumps({"received": sum(received), "least": min(received)}), flush=True)
    for writer in writers:
        writer.close()
    print(json.dumps({"received": sum(received), "least": min(received)}), flush=True)


# -- the daemon ----------------------------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def old_poll(app: Any, now: float) -> bytes:
    """What one ``GET /api/wallboard`` cost before the push (the code as it was)."""
    from collections import Counter

    from agent_stats.sla import day_start
    from agent_stats.states import AgentState
    from shenava.http.agents import agent_view

    service = app.extensions["agent_stats"]
    line = app.router.line
    calls = sorted(line, key=lambda c: line.rank(c.call_id))
    sizes = Counter((c.language, c.skill) for c in calls)
    out_of = [sizes[(c.language, c.skill)] for c in calls]
    places: Counter[tuple[str, str]] = Counter()
    out = []
    for overall, call in enumerate(calls, start=1):
        bucket = (call.language, call.skill)
        places[bucket] += 1
        score = line.score(call.call_id, now)
        out.append({"call_id": call.call_id, "waited_s": round(now - call.joined_at, 1),
                    "position": places[bucket], "of": out_of[overall - 1],
                    "overall": overall,
                    "score": round(score.total, 1)})
    body: dict[str, Any] = {"waiting": {"calls": len(out), "longest_wait_s": max(
        (c["waited_s"] for c in out), default=None)}}
    snap = service.snapshot(now)
    body["queues"] = snap["queues"]
    figures = {a["agent_id"]: a for a in snap["agents"]}
    allowances = service.allowances(now)
    today = day_start(now, service.sla)
    rows = []
    for s in app.roster:
        totals = s.ledger.totals(today, now, now)
        allowance = allowances.get(s.profile.agent_id)
        rows.append({**agent_view(s), "not_ready_today_s": totals.state(AgentState.NOT_READY),
                     "allowance": [allowance.earned_s, allowance.taken_s, allowance.unused_s],
                     **figures.get(s.profile.agent_id, {})})
    body["agents"] = rows
    return json.dumps(body).encode()


async def _daemon(args: argparse.Namespace) -> dict[str, Any]:
    from redis.asyncio import Redis
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    from agent_stats.states import AgentState, NotReadyReason
    from routing.calls import WaitingCall
    from routing.dispatch import CallQueued
    from shenava.app import Shenava
    from shenava.config import AgentConfig, default_config
    from shenava.http import start_http
    from shenava.redis_server import start_redis_server

    rng = random.Random(1)
    server = start_redis_server()
    client = Redis.from_url(server.url)
    config = default_config()
    agents = tuple(
        AgentConfig(id=f"a{i}", name=f"Agent {i}", endpoint=f"PJSIP/{1000 + i}",
                    languages=("fa", "en"), skills=())
        for i in range(args.agents)
    )
    # The pages come through a reverse proxy on loopback (proxy mode, docs/security.md), as
    # many screens would; the listener's connection cap is raised for them.
    config = replace(config, agents=agents, http=replace(
        config.http, auth="proxy", proxy_addresses=("127.0.0.1",), proxy_secret=PROXY_SECRET,
        max_connections=args.viewers + 64))
    app = Shenava(config, reactor=reactor, redis=client)
    def never(*a: Any, **k: Any) -> Deferred[Any]:
        return Deferred()  # AMI never connected: actions stay pending

    app.connection.agi = never  # type: ignore[method-assign]
    app.connection.send_action = never  # type: ignore[method-assign]
    service = app.extensions["agent_stats"]
    await service.started
    now = reactor.seconds()
    for a in agents:
        app.roster.log_in(a.id, now)
    ids = [a.id for a in agents]
    for agent_id in rng.sample(ids, len(ids) // 5):
        app.roster.set_not_ready(agent_id, NotReadyReason.PERSONAL, now)
    line = app.router.line
    for i in range(args.calls):
        call = WaitingCall(f"c{i}", now - 600 + 600 * i / args.calls, rng.choice(("fa", "en")),
                           "", "billing")
        app.dispatcher._emit(CallQueued(call.call_id, call.joined_at, call.joined_at, call.language,
                                        "billing", "09120000000"))
        line.join(call)
    service.tick()
    port: Any = start_http(app, port=0, interface="127.0.0.1")
    hub = app.extensions["http"].push

    def churn() -> None:
        t = reactor.seconds()
        for agent_id in rng.sample(ids, args.changes):
            status = app.roster.get(agent_id)
            if status.state is AgentState.READY:
                app.roster.set_not_ready(agent_id, NotReadyReason.PERSONAL, t)
            else:
                app.roster.set_ready(agent_id, t)

    from twisted.internet.task import LoopingCall

    churning = LoopingCall(churn)
    churning.clock = reactor
    churning.start(1.0, now=False)

    from twisted.internet.task import deferLater

    from shenava.aio import as_deferred

    async def sleep(seconds: float) -> None:
        await deferLater(reactor, seconds, lambda: None)

    async def line_of(stream: Any) -> Any:
        return json.loads(await as_deferred(stream.readline()))

    async def measure(viewers: int) -> dict[str, Any]:
        proc = await as_deferred(asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", str(port.getHost().port), str(viewers),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        assert proc.stdout is not None and proc.stdin is not None
        await line_of(proc.stdout)  # connected
        while hub.viewers < viewers:
            await sleep(0.05)
        await sleep(1.5)  # settle: the welcome of every page is out
        proc.stdin.write(b"count\n")
        before = await line_of(proc.stdout)
        cpu0, wall0, ticks0 = _cpu(), time.monotonic(), hub.ticks
        await sleep(args.seconds)
        cpu1, wall1, ticks1 = _cpu(), time.monotonic(), hub.ticks
        proc.stdin.write(b"count\n")
        after = await line_of(proc.stdout)
        proc.stdin.write(b"quit\n")
        await line_of(proc.stdout)
        await as_deferred(proc.wait())
        while hub.viewers:
            await sleep(0.05)
        wall = wall1 - wall0
        return {
            "viewers": viewers,
            "cpu_fraction_of_core": (cpu1 - cpu0) / wall,
            "ticks": ticks1 - ticks0,
            "bytes_per_viewer_per_s": (after["received"] - before["received"]) / viewers / wall,
        }

    await sleep(1.0)
    idle0, t0 = _cpu(), time.monotonic()
    await sleep(args.seconds)
    idle = (_cpu() - idle0) / (time.monotonic() - t0)
    one = await measure(1)
    many = await measure(args.viewers)

    # one second's build, alone (what the tick costs besides the writes)
    n = 20
    t = time.perf_counter()
    for _ in range(n):
        hub._rows_at = -math.inf  # the every-15-s full rebuild of the rows, the worst second
        hub.supervisors.append(_Null())
        hub.tick()
        hub.supervisors.pop()
    build_full_ms = (time.perf_counter() - t) / n * 1000
    t = time.perf_counter()
    hub.supervisors.append(_Null())
    for _ in range(n):
        hub.tick()
    hub.supervisors.pop()
    build_ms = (time.perf_counter() - t) / n * 1000
    hub.stop()

    t = time.perf_counter()
    k = 5
    size = 0
    for _ in range(k):
        size = len(old_poll(app, reactor.seconds()))
    old_ms = (time.perf_counter() - t) / k * 1000

    churning.stop()
    await port.stopListening()
    await service.stop()
    for name in ("complaints", "recordings"):
        ext = app.extensions.get(name)
        if ext is not None:
            ext.stop()
    await as_deferred(client.aclose())
    server.stop()
    per_viewer = (many["cpu_fraction_of_core"] - one["cpu_fraction_of_core"]) / max(
        1, args.viewers - 1)
    return {
        "agents": args.agents,
        "waiting_calls": args.calls,
        "viewers": args.viewers,
        "state_changes_per_s": args.changes,
        "seconds": args.seconds,
        "cpu_fraction_of_core": round(many["cpu_fraction_of_core"], 4),
        "cpu_fraction_per_added_viewer": round(per_viewer, 6),
        "cpu_fraction_one_viewer": round(one["cpu_fraction_of_core"], 4),
        "cpu_fraction_no_viewer": round(idle, 4),
        "bytes_per_viewer_per_s": round(many["bytes_per_viewer_per_s"]),
        "ticks_per_s": round(many["ticks"] / args.seconds, 2),
        "build_ms": round(build_ms, 2),
        "build_ms_with_all_rows": round(build_full_ms, 2),
        "old_poll_ms": round(old_ms, 1),
        "old_poll_bytes": size,
        "old_cpu_fraction_of_core": round(args.viewers / 2.0 * old_ms / 1000, 2),
        "python": platform.python_version(),
    }


class _Null:
    """A connection that swallows what it is sent (to time the build alone)."""

    agent = None
    paused_at: float | None = None  # always read promptly (push.Connection's slow-reader mark)

    def __init__(self) -> None:
        self.request = self

    def write(self, data: bytes) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=15.0,
                        help="each measurement (15 s holds one statistics heartbeat and one "
                        "rebuild of every agent row)")
    parser.add_argument("--changes", type=int, default=20, help="agent state changes a second")
    parser.add_argument("--client", nargs=2, type=int, metavar=("PORT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(_client(*args.client))
        return

    from twisted.internet import asyncioreactor

    asyncioreactor.install()
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred, ensureDeferred

    result: dict[str, Any] = {}

    def run() -> Deferred[Any]:
        d: Deferred[Any] = ensureDeferred(_daemon(args))
        d.addCallback(result.update)
        d.addErrback(lambda f: (f.printTraceback(), result.update(error=f.getErrorMessage())))
        d.addBoth(lambda _: reactor.stop())
        return d

    reactor.callWhenRunning(run)
    reactor.run()
    for key, value in result.items():
        print(f"{key}: {value}", file=sys.stderr)
    print(json.dumps(result))
    os._exit(0 if "error" not in result else 1)


if __name__ == "__main__":
    main()

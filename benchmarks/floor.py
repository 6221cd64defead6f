"""The floor of the daemon's per-call work on this runtime, layer by layer.

    .venv/bin/python benchmarks/floor.py [--repeat 1] [--rounds 1] [--seconds S]
                                         [--cpu 1] [--system on|off] [--scale]
                                         [--trace benchmarks/data/floor-trace.json.xz]

Replays the traffic the daemon saw at 50 calls/s (recorded from a real run of
``benchmarks/system.py --rates 50 --step-s 15 --agents 200 --drain-s 30
--daemon-cpu 1`` by :mod:`benchmarks.floor_record`, kept in
``benchmarks/data/floor-trace.json.xz``: the whole step and its drain, 772
calls from their start to their end, about 43 s) through progressively
fuller stacks, each in
a process of its own pinned to core ``--cpu`` (a feeder process and
redis-server on the other core), and measures the stack's CPU (user +
system, ``getrusage``) per call from its connection to its last reply:

- ``a_bare_asyncio``: an asyncio ``Protocol`` reads the AMI bytes and writes
  the recorded replies (one ``transport.write`` per send the daemon made),
  no parsing;
- ``b_codec``: + the project's AMI codec (``ami_bridge.codec.AMIDecoder``)
  framing every message and splitting all its headers (``message.headers``);
- ``c_redis``: + every recorded Redis round trip, the same commands in the
  same groups, through the daemon's own client
  (``shenava.redis_client.make_redis_client``: its pool and quick send;
  one command alone, a turn's batch as its plain pipeline, a transaction as
  ``pipeline(transaction=True)``), each in an asyncio task, against a real
  redis-server with the daemon's scripts loaded;
- ``d_twisted``: the same through Twisted's asyncio reactor: a Twisted
  ``Protocol`` on ``reactor.connectTCP``, its writes through the daemon's
  ``SendNow`` (one send per read, as ``_Guard`` does), each Redis round trip a
  Deferred from ``shenava_base.aio.as_deferred``;
- ``daemon`` (``--system on``): :mod:`benchmarks.system` at 50 calls/s with
  the daemon on the same core (``--rates 50 --step-s 15 --agents 200
  --drain-s 30 --daemon-cpu N``), its ``daemon_cpu_ms_per_call``.

A recorded action runs when the AMI bytes read before it in the recording
have arrived (the feeder sends each recorded read as one send, at its
recorded time). Each row's GC is set as the daemon sets it
(``shenava.daemon.tune_gc``). The difference between rows is a layer's cost;
``daemon`` minus ``d_twisted`` is the daemon's own logic. ``--repeat N``
replays the recording N times (N times as long), ``--rounds`` runs the rows
that many times interleaved, ``--speed N`` replays N times faster (and runs
``system.py`` at 50*N calls/s), ``--seconds S`` replays only the recording's
first S seconds (the smoke test; per-call figures are then of the calls'
first seconds), ``--scale`` is ``--repeat 5 --rounds 2``. The default takes
about 5 minutes (43 s a row, then ``system.py``). Every row processes the same calls; each reports exact counts
(reads, sends, messages parsed, Redis round trips and commands, loop turns).
Last line one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import lzma
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = Path(__file__).resolve().parent / "data" / "floor-trace.json.xz"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
HOST = "127.0.0.1"
ROWS = ("a_bare_asyncio", "b_codec", "c_redis", "d_twisted")
START_S = 0.2
"""The feeder waits this long after the connection before its first read."""


# --- the trace --------------------------------------------------------------------------


def load_trace(path: Path, seconds: float | None = None) -> dict[str, Any]:
    """The recorded window (``seconds``: only its first S seconds), bytes back as bytes."""
    raw = json.loads(lzma.decompress(path.read_bytes()))
    reads = [(t, data.encode("latin-1")) for t, data in raw["reads"]]
    window_s = raw["window_s"]
    if seconds is not None and seconds < window_s:
        kept = [r for r in reads if r[0] < seconds]
        while kept and not kept[-1][1].endswith(b"\r\n\r\n"):
            kept.pop()
        if not kept:
            raise SystemExit(f"--seconds {seconds}: no whole message in that part of the window")
        reads, window_s = kept, seconds
    total = sum(len(d) for _, d in reads)
    actions: list[tuple[int, str, Any]] = []
    for offset, kind, payload in raw["actions"]:
        if offset > total or (offset == total and seconds is not None and window_s < raw["window_s"]):
            continue
        if kind == "ami":
            actions.append((offset, kind, payload.encode("latin-1")))
        else:
            actions.append((offset, kind, [tuple(a.encode("latin-1") for a in args) for args in payload]))
    # the whole recording holds whole calls (every one placed in it); a slice, its seconds' share
    calls = raw["calls"] if window_s == raw["window_s"] else raw["rate"] * window_s
    return {
        "rate": raw["rate"], "window_s": window_s, "calls": calls, "reads": reads,
        "bytes": total, "actions": actions, "scripts": raw["scripts"],
    }


def trace_counts(trace: dict[str, Any], repeat: int) -> dict[str, Any]:
    """What every row must process: per call, from the trace."""
    calls = trace["calls"] * repeat
    ami = [a for a in trace["actions"] if a[1] == "ami"]
    redis = [a for a in trace["actions"] if a[1] == "redis"]
    return {
        "calls": round(calls, 1),
        "ami_reads_per_call": round(len(trace["reads"]) * repeat / calls, 2),
        "ami_bytes_in_per_call": round(trace["bytes"] * repeat / calls),
        "ami_messages_in_per_call": round(
            sum(d.count(b"\r\n\r\n") for _, d in trace["reads"]) * repeat / calls, 2),
        "ami_sends_per_call": round(len(ami) * repeat / calls, 2),
        "ami_bytes_out_per_call": round(sum(len(a[2]) for a in ami) * repeat / calls),
        "redis_round_trips_per_call": round(len(redis) * repeat / calls, 2),
        "redis_commands_per_call": round(sum(len(a[2]) for a in redis) * repeat / calls, 2),
    }


# --- the feeder (the PBX's side) -----------------------------------------------------------


def feeder(conn: Connection, trace_path: str, seconds: float | None, repeat: int,
           cpus: list[int], speed: float = 1.0) -> None:
    import select

    os.sched_setaffinity(0, set(cpus))
    trace = load_trace(Path(trace_path), seconds)
    plan = [(0.0, BANNER)]
    for k in range(repeat):
        plan.extend((START_S + (k * trace["window_s"] + t) / speed, data) for t, data in trace["reads"])
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(1)
    conn.send(listener.getsockname()[1])
    sock, _ = listener.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    got = 0
    started = time.perf_counter()
    late = 0
    for t, data in plan:
        while True:
            wait = t - (time.perf_counter() - started)
            if wait <= 0:
                break
            readable, _, _ = select.select([sock], [], [], wait)
            if readable:
                chunk = sock.recv(1 << 16)
                got += len(chunk)
        if wait < -0.005:
            late += 1
        sock.sendall(data)
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        readable, _, _ = select.select([sock], [], [], 1.0)
        if readable:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            got += len(chunk)
    sock.close()
    conn.send({"bytes_from_stack": got, "late_sends": late})


# --- the stacks ---------------------------------------------------------------------------


class Replay:
    """What every stack does with the bytes it reads: the recorded actions, in order."""

    def __init__(self, trace: dict[str, Any], repeat: int, row: str, client: Any,
                 spawn: Any) -> None:
        self.row = row
        self.client = client
        self.spawn = spawn  # runs a coroutine in a task (asyncio) or a Deferred (Twisted)
        self.parse = row != "a_bare_asyncio"
        self.redis = row in ("c_redis", "d_twisted")
        per = trace["bytes"]
        self.total = len(BANNER) + per * repeat
        self.actions: list[tuple[int, str, Any]] = []
        for k in range(repeat):
            base = len(BANNER) + k * per
            for offset, kind, payload in trace["actions"]:
                if kind == "redis" and not self.redis:
                    continue
                self.actions.append((base + offset, kind, payload))
        self.next = 0
        self.received = 0
        self.n = {"reads": 0, "sends": 0, "bytes_out": 0, "messages": 0, "redis_round_trips": 0,
                  "redis_commands": 0, "redis_errors": 0, "loop_turns": 0}
        self.pending = 0
        self.errors: dict[str, int] = {}
        self.cpu0 = self.sys0 = self.wall0 = 0.0
        self.result: dict[str, Any] | None = None
        self.on_done: Any = None
        self.write: Any = None
        if self.parse:
            from ami_bridge.codec import AMIDecoder

            self.decoder = AMIDecoder()

    def start(self, write: Any) -> None:
        self.write = write
        self.cpu0, self.sys0, self.wall0 = cpu_s(), sys_s(), time.perf_counter()

    def received_bytes(self, data: bytes) -> None:
        n = self.n
        n["reads"] += 1
        self.received += len(data)
        if self.parse:
            messages = self.decoder.feed(data)
            for message in messages:
                message.headers  # noqa: B018 - every header split: the work measured
            n["messages"] += len(messages)
        actions, received = self.actions, self.received
        while self.next < len(actions) and actions[self.next][0] <= received:
            _, kind, payload = actions[self.next]
            self.next += 1
            if kind == "ami":
                n["sends"] += 1
                n["bytes_out"] += len(payload)
                self.write(payload)
            else:
                self.pending += 1
                n["redis_round_trips"] += 1
                n["redis_commands"] += len(payload)
                self.spawn(self.round_trip(payload))
        self.check_done()

    async def round_trip(self, commands: list[tuple[bytes, ...]]) -> None:
        client = self.client
        try:
            if len(commands) == 1:
                await client._execute_alone(*commands[0])
            elif commands[0][0].upper() == b"MULTI" and commands[-1][0].upper() == b"EXEC":
                pipe = client.pipeline(transaction=True)
                for args in commands[1:-1]:
                    pipe.execute_command(*args)
                await pipe.execute(raise_on_error=False)
            else:
                await client._pipeline_of([(args, {}) for args in commands]).execute(
                    raise_on_error=False)
        except Exception as error:
            self.n["redis_errors"] += 1
            kind = f"{commands[0][0].decode()}: {str(error)[:60]}"
            self.errors[kind] = self.errors.get(kind, 0) + 1
        finally:
            self.pending -= 1
            self.check_done()

    def check_done(self) -> None:
        if self.result is None and self.received >= self.total and self.next >= len(self.actions) \
                and self.pending == 0:
            self.result = {"cpu_s": cpu_s() - self.cpu0, "sys_s": sys_s() - self.sys0, "wall_s": time.perf_counter() - self.wall0,
                           "bytes_in": self.received, **self.n,
                           "redis_error_kinds": self.errors}
            if self.on_done is not None:
                self.on_done()


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sys_s() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def count_turns(loop: Any, replay: Replay) -> None:
    run_once = getattr(loop, "_run_once", None)
    if run_once is None:
        return

    def counted() -> None:
        replay.n["loop_turns"] += 1
        run_once()

    loop._run_once = counted


def stack(conn: Connection, row: str, port: int, redis_url: str | None, trace_path: str,
          seconds: float | None, repeat: int, cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    trace = load_trace(Path(trace_path), seconds)
    client = None
    if row == "d_twisted":
        from shenava_base.aio import install_asyncio_reactor

        install_asyncio_reactor()
    if row in ("c_redis", "d_twisted"):
        from dataclasses import replace

        from shenava.config import default_config
        from shenava.redis_client import make_redis_client

        config = default_config()
        client = make_redis_client(replace(config.redis, url=redis_url or config.redis.url))
    from shenava.config import default_config

    if row == "d_twisted":
        result = run_twisted(row, port, client, trace, repeat)
    else:
        result = asyncio.run(run_asyncio(row, port, client, trace, repeat,
                                         default_config().daemon.gc_gen0_threshold))
    conn.send(result)


async def run_asyncio(row: str, port: int, client: Any, trace: dict[str, Any], repeat: int,
                      gen0: int) -> dict[str, Any]:
    from shenava.daemon import tune_gc

    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Any) -> None:
        task = loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    replay = Replay(trace, repeat, row, client, spawn)
    if client is not None:
        await client.ping()  # the pool's first connection made before the clock starts
    done = loop.create_future()
    def finished() -> None:
        if not done.done():
            done.set_result(None)

    replay.on_done = finished

    class Bare(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            replay.start(transport.write)

        def data_received(self, data: bytes) -> None:
            replay.received_bytes(data)

    tune_gc(gen0)
    count_turns(loop, replay)
    transport, _ = await loop.create_connection(Bare, HOST, port)
    await asyncio.wait_for(done, 600)
    transport.close()
    if client is not None:
        await client.aclose()
    assert replay.result is not None
    return replay.result


def run_twisted(row: str, port: int, client: Any, trace: dict[str, Any], repeat: int) -> dict[str, Any]:
    from twisted.internet import reactor as global_reactor
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.protocol import ClientFactory, Protocol

    from ami_bridge.connection import SendNow, set_no_delay
    from shenava.config import default_config
    from shenava.daemon import tune_gc
    from shenava_base.aio import as_deferred

    reactor: Any = global_reactor

    def spawn(coro: Any) -> None:
        as_deferred(coro)

    replay = Replay(trace, repeat, row, client, spawn)

    class Guarded(Protocol):
        """As ``ami_bridge.connection._Guard``: one read's writes go out as one send."""

        out: SendNow

        def makeConnection(self, transport: Any) -> None:
            set_no_delay(transport, True)
            Protocol.makeConnection(self, transport)
            loop = reactor._asyncioEventloop
            self.out = SendNow(transport, loop.call_soon)
            replay.start(self.out.write)

        def dataReceived(self, data: bytes) -> None:
            out = self.out
            out.hold()
            try:
                replay.received_bytes(data)
            finally:
                out.release()

    class Factory(ClientFactory):
        protocol = Guarded

    def finished() -> None:
        reactor.callLater(0, reactor.stop)

    replay.on_done = finished

    async def begin() -> None:
        if client is not None:
            await as_deferred(client.ping())
        tune_gc(default_config().daemon.gc_gen0_threshold)
        count_turns(reactor._asyncioEventloop, replay)
        reactor.connectTCP(HOST, port, Factory())

    reactor.callWhenRunning(lambda: ensureDeferred(begin()))
    reactor.callLater(600, reactor.stop)
    reactor.run()
    if replay.result is None:
        raise SystemExit("the Twisted stack did not finish")
    return replay.result


# --- the run ----------------------------------------------------------------------------


def pin_pid(pid: int, cpus: set[int]) -> None:
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(tid), cpus)
    except OSError:
        pass


def run_row(ctx: Any, row: str, args: argparse.Namespace, redis_url: str | None,
            others: list[int]) -> dict[str, Any]:
    feed_parent, feed_child = ctx.Pipe()
    feed = ctx.Process(target=feeder, args=(feed_child, args.trace, args.seconds, args.repeat, others, args.speed),
                       daemon=True)
    feed.start()
    try:
        if not feed_parent.poll(60):
            raise SystemExit("the feeder did not start")
        port = feed_parent.recv()
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=stack, args=(child, row, port, redis_url, args.trace, args.seconds,
                                               args.repeat, args.cpu), daemon=True)
        proc.start()
        limit = time.monotonic() + 600
        while not parent.poll(1.0):
            if not proc.is_alive() or time.monotonic() > limit:
                raise SystemExit(f"{row}: the stack ended without a result")
        result: dict[str, Any] = parent.recv()
        proc.join(30)
        if not feed_parent.poll(60):
            raise SystemExit(f"{row}: the feeder did not finish")
        result.update(feed_parent.recv())
        feed.join(10)
        return result
    finally:
        if feed.is_alive():
            feed.terminate()


def reset_redis(sync: Any, scripts: dict[str, str]) -> None:
    sync.flushall()
    for body in scripts.values():
        sync.script_load(body.encode("latin-1"))


def run_system(args: argparse.Namespace) -> dict[str, Any]:
    """benchmarks/system.py at the replay's rate, the daemon on ``--cpu``: its figures."""
    rate = f"{50 * args.speed:g}"
    command = [sys.executable, str(ROOT / "benchmarks" / "system.py"), "--rates", rate,
               "--step-s", str(args.system_step_s), "--agents", "200",
               "--drain-s", str(args.system_drain_s), "--daemon-cpu", str(args.cpu)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)})
    if done.returncode != 0:
        raise SystemExit(f"benchmarks/system.py failed: {done.stderr[-2000:]}")
    last = json.loads(done.stdout.strip().splitlines()[-1])
    step = last["steps"][0]
    return {"command": " ".join(["benchmarks/system.py", *command[2:]]),
            "cpu_ms_per_call": step["daemon_cpu_ms_per_call"],
            "sys_ms_per_call": step["daemon_sys_ms_per_call"], "placed": step["placed"],
            "accounted": step["accounted"], "redis_commands_per_call": step["redis_commands_per_call"],
            "agi_p99_ms": step["agi_ms"]["p99"],
            "loop_per_call": step["loop_per_call"], "pinning": last["pinning"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default=str(DEFAULT_TRACE))
    parser.add_argument("--repeat", type=int, default=1, help="replays of the window per row")
    parser.add_argument("--rounds", type=int, default=1, help="times each row runs, interleaved")
    parser.add_argument("--seconds", type=float, default=None,
                        help="replay only the window's first S seconds (the smoke test)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="replay N times faster than recorded (3: the same calls at 150 calls/s)")
    parser.add_argument("--scale", action="store_true", help="--repeat 5 --rounds 2")
    parser.add_argument("--cpu", type=int, default=1, help="the core every stack (and the daemon) runs on")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--system", choices=["on", "off"], default="on",
                        help="also run benchmarks/system.py at 50 calls/s on the same core")
    parser.add_argument("--system-step-s", type=float, default=15.0)
    parser.add_argument("--system-drain-s", type=float, default=30.0)
    args = parser.parse_args(argv)
    if args.scale:
        args.repeat, args.rounds = max(args.repeat, 5), max(args.rounds, 2)
    import multiprocessing

    import redis

    from shenava.redis_server import start_redis_server

    allowed = sorted(os.sched_getaffinity(0))
    if args.cpu not in allowed or len(allowed) < 2:
        raise SystemExit(f"--cpu {args.cpu}: needs two usable cores, have {allowed}")
    others = [c for c in allowed if c != args.cpu]
    rows = [r for r in args.rows.split(",") if r]
    unknown = set(rows) - set(ROWS)
    if unknown:
        raise SystemExit(f"unknown rows {sorted(unknown)}; rows are {', '.join(ROWS)}")
    trace = load_trace(Path(args.trace), args.seconds)
    expected = trace_counts(trace, args.repeat)
    calls = trace["calls"] * args.repeat
    ctx = multiprocessing.get_context("spawn")
    server = start_redis_server()
    pin_pid(server.process.pid, set(others))
    sync = redis.Redis.from_url(server.url)
    runs: dict[str, list[dict[str, Any]]] = {row: [] for row in rows}
    system: list[dict[str, Any]] = []
    try:
        for round_ in range(args.rounds):
            for row in rows:
                reset_redis(sync, trace["scripts"])
                result = run_row(ctx, row, args, server.url, others)
                result["cpu_ms_per_call"] = round(result["cpu_s"] * 1000 / calls, 3)
                result["sys_ms_per_call"] = round(result["sys_s"] * 1000 / calls, 3)
                print(json.dumps({"row": row, "round": round_, **result}), file=sys.stderr, flush=True)
                runs[row].append(result)
            if args.system == "on" and round_ == 0:
                system.append(run_system(args))
                print(json.dumps({"row": "daemon", **system[-1]}), file=sys.stderr, flush=True)
    finally:
        sync.close()
        server.stop()
    table: dict[str, Any] = {}
    previous = None
    for row in rows:
        best = min(r["cpu_ms_per_call"] for r in runs[row])
        first = runs[row][0]
        table[row] = {
            "cpu_ms_per_call": best,
            "cpu_ms_per_call_runs": [r["cpu_ms_per_call"] for r in runs[row]],
            "sys_ms_per_call": min(r["sys_ms_per_call"] for r in runs[row]),
            "layer_ms_per_call": None if previous is None else round(best - table[previous]["cpu_ms_per_call"], 3),
            "calls": round(calls, 1),
            "bytes_in": first["bytes_in"],
            "per_call": {k: round(first[k] / calls, 2) for k in
                         ("reads", "sends", "messages", "redis_round_trips", "redis_commands",
                          "redis_errors", "loop_turns")},
            "cpu_us_per_read": round(best * calls / max(1, first["reads"]) * 1000, 1),
            "redis_error_kinds": first["redis_error_kinds"],
            "wall_s": round(first["wall_s"], 2),
            "late_sends": first["late_sends"],
        }
        previous = row
    out: dict[str, Any] = {
        "bench": "floor",
        "trace": {"file": os.path.relpath(args.trace, ROOT), "window_s": trace["window_s"],
                  "repeat": args.repeat, **expected},
        "cpu": args.cpu,
        "rounds": args.rounds,
        "speed": args.speed,
        "calls_per_s": round(trace["rate"] * args.speed, 1),
        "rows": table,
    }
    if system:
        top = system[0]["cpu_ms_per_call"]
        out["daemon"] = system[0]
        if previous is not None:
            out["daemon_logic_ms_per_call"] = round(top - table[previous]["cpu_ms_per_call"], 3)
    out["python"] = platform.python_version()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

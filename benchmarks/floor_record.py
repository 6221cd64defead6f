"""Record the daemon's per-call traffic at 50 calls/s for :mod:`benchmarks.floor`.

    .venv/bin/python benchmarks/floor_record.py [--out benchmarks/data/floor-trace.json.xz]
                                                [--rate 50] [--step-s 15] [--drain-s 30]
                                                [--skip-s S --window-s W]

Runs :mod:`benchmarks.system` (daemon, test PBX child, real Redis) at one
rate with the daemon pinned to one core (``--rates 50 --step-s 15 --agents
200 --drain-s 30 --daemon-cpu 1`` by default), and records, by wrapping the
daemon's objects from outside (no daemon code changed):

- every read of the AMI connection: the bytes ``_Guard.dataReceived`` got
  (one per ``doRead``), with its time;
- every socket send of the AMI connection (``SendNow._send``: what the
  protocol wrote while one read was handled goes out as one send) and the
  count of the protocol's writes;
- every Redis round trip: the packed bytes of each ``send_packed_command``
  of the daemon's client connections (a turn's batch or a transaction is one
  send), decoded back into its commands after the run; the scripts loaded
  are kept by SHA so that a fresh redis-server can run the ``EVALSHA`` calls.

Kept: from the first read after the step starts that starts a message to the
end of the run (the step and its drain: every call placed, from its start to
its end; ``calls`` = calls placed), each send and round trip tagged with how
many AMI bytes had been read before it. ``--window-s W`` keeps only W
seconds from ``--skip-s`` after the step's start instead (``calls`` is then
rate * W, right only in a steady state, which a 15-s step never reaches: a
call lives longer than that). ``calls_by_agi_start`` counts the
``AsyncAGIStart`` events kept (callers entering the IVR).

The file is xz'd JSON, bytes as latin-1 text (lossless). Bounded as
benchmarks/system.py is. Last line one JSON object (what was kept).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "floor-trace.json.xz"


def resp_commands(data: bytes) -> list[list[bytes]]:
    """The commands of a packed RESP request (arrays of bulk strings)."""
    out: list[list[bytes]] = []
    i = 0
    while i < len(data):
        if data[i:i + 1] != b"*":
            raise ValueError(f"not a RESP array at {i}: {data[i:i + 20]!r}")
        end = data.index(b"\r\n", i)
        n = int(data[i + 1:end])
        i = end + 2
        args = []
        for _ in range(n):
            end = data.index(b"\r\n", i)
            size = int(data[i + 1:end])
            i = end + 2
            args.append(data[i:i + size])
            i += size + 2
        out.append(args)
    return out


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[float, str, Any]] = []
        self.scripts: dict[str, str] = {}
        self.step_at: float | None = None

    def install(self) -> None:
        from multiprocessing.connection import Connection

        from ami_bridge.connection import SendNow, _Guard
        from shenava.redis_client import QuickConnection

        events, clock = self.events, time.perf_counter
        received = _Guard.dataReceived

        def data_received(guard: Any, data: bytes) -> None:
            events.append((clock(), "in", data))
            received(guard, data)

        _Guard.dataReceived = data_received  # type: ignore[method-assign,assignment]
        send = SendNow._send

        def sent(out: Any, data: bytes) -> None:
            events.append((clock(), "send", data))
            send(out, data)

        SendNow._send = sent  # type: ignore[method-assign,assignment]
        write = SendNow.write

        def written(out: Any, data: bytes) -> None:
            events.append((clock(), "write", len(data)))
            write(out, data)

        SendNow.write = written  # type: ignore[method-assign,assignment]
        packed_send = QuickConnection.send_packed_command

        async def redis_send(conn: Any, command: Any, check_health: bool = True) -> None:
            data = command if isinstance(command, bytes) else (
                command.encode() if isinstance(command, str) else b"".join(command))
            events.append((clock(), "redis", data))  # decoded after the run
            await packed_send(conn, command, check_health)

        QuickConnection.send_packed_command = redis_send  # type: ignore[method-assign,assignment]
        pipe_send = Connection.send
        recorder = self

        def pipe_sent(conn: Any, obj: Any) -> None:
            if isinstance(obj, tuple) and obj and obj[0] == "step" and recorder.step_at is None:
                recorder.step_at = clock()
            pipe_send(conn, obj)

        Connection.send = pipe_sent  # type: ignore[method-assign,assignment]

    def window(self, skip_s: float, window_s: float | None, rate: float,
               placed: int | None = None) -> dict[str, Any]:
        """The reads from ``skip_s`` after the step's start for ``window_s`` (None: the
        whole step and its drain, ``placed`` calls), and what was sent meanwhile."""
        for _, kind, payload in self.events:
            if kind != "redis":
                continue
            for args in resp_commands(payload):
                name = args[0].upper()
                if name == b"SCRIPT" and len(args) > 2 and args[1].upper() == b"LOAD":
                    self.scripts[hashlib.sha1(args[2]).hexdigest()] = args[2].decode("latin-1")
                elif name == b"EVAL":
                    self.scripts[hashlib.sha1(args[1]).hexdigest()] = args[1].decode("latin-1")
        if self.step_at is None:
            raise SystemExit("the step never started")
        start = self.step_at + skip_s
        stop = float("inf") if window_s is None else start + window_s
        ins = [(i, e) for i, e in enumerate(self.events) if e[1] == "in"]
        # the first read at or after start that starts a message (the one before ended one)
        first = None
        for k, (_, (t, _, _)) in enumerate(ins):
            if t >= start and k > 0 and ins[k - 1][1][2].endswith(b"\r\n\r\n"):
                first = k
                break
        if first is None:
            raise SystemExit("no read starts a message after the skip")
        last = None
        for k in range(first, len(ins)):
            if ins[k][1][0] >= stop:
                break
            if ins[k][1][2].endswith(b"\r\n\r\n"):
                last = k
        if last is None:
            raise SystemExit("no read ends a message in the window")
        t0 = ins[first][1][0]
        if last + 1 < len(ins) and window_s is not None:
            end_index, t_end = ins[last + 1][0], ins[last + 1][1][0]
        else:  # the whole run: every send after the last read too
            end_index, t_end = len(self.events), self.events[-1][0]
        reads: list[list[Any]] = []
        actions: list[list[Any]] = []
        offset = 0
        writes = 0
        for t, kind, payload in self.events[ins[first][0]:end_index]:
            if kind == "in":
                if len(reads) > last - first:
                    continue  # reads after the last whole message are left out
                reads.append([round(t - t0, 6), payload.decode("latin-1")])
                offset += len(payload)
            elif kind == "send":
                actions.append([offset, "ami", payload.decode("latin-1")])
            elif kind == "write":
                writes += 1
            elif kind == "redis":
                actions.append([offset, "redis", [[a.decode("latin-1") for a in args]
                                                  for args in resp_commands(payload)]])
        calls_by_agi = sum(r[1].count("Event: AsyncAGIStart\r\n") for r in reads)
        window = round(t_end - t0, 6)
        return {
            "rate": rate,
            "window_s": window,
            "calls": placed if window_s is None and placed else round(rate * window, 1),
            "calls_by_agi_start": calls_by_agi,
            "ami_writes": writes,
            "reads": reads,
            "actions": actions,
            "scripts": self.scripts,
        }


def summary(trace: dict[str, Any]) -> dict[str, Any]:
    """Per call: AMI bytes and reads in, sends and bytes out, Redis round trips and commands."""
    calls = trace["calls"]
    ami = [a for a in trace["actions"] if a[1] == "ami"]
    redis = [a for a in trace["actions"] if a[1] == "redis"]
    commands = sum(len(a[2]) for a in redis)
    by_name: dict[str, int] = {}
    for a in redis:
        for args in a[2]:
            by_name[args[0].upper()] = by_name.get(args[0].upper(), 0) + 1
    return {
        "calls": calls,
        "calls_by_agi_start": trace["calls_by_agi_start"],
        "window_s": trace["window_s"],
        "ami_reads_per_call": round(len(trace["reads"]) / calls, 2),
        "ami_bytes_in_per_call": round(sum(len(r[1]) for r in trace["reads"]) / calls),
        "ami_messages_in_per_call": round(
            sum(r[1].count("\r\n\r\n") for r in trace["reads"]) / calls, 2),
        "ami_writes_per_call": round(trace["ami_writes"] / calls, 2),
        "ami_sends_per_call": round(len(ami) / calls, 2),
        "ami_bytes_out_per_call": round(sum(len(a[2]) for a in ami) / calls),
        "redis_round_trips_per_call": round(len(redis) / calls, 2),
        "redis_commands_per_call": round(commands / calls, 2),
        "redis_per_call_by_command": {
            k: round(v / calls, 2) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--step-s", type=float, default=15.0)
    parser.add_argument("--skip-s", type=float, default=0.0)
    parser.add_argument("--window-s", type=float, default=None,
                        help="seconds kept (default: the whole step and its drain)")
    parser.add_argument("--drain-s", type=float, default=30.0)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--daemon-cpu", type=int, default=1)
    args = parser.parse_args(argv)
    from benchmarks import system

    recorder = Recorder()
    recorder.install()
    result = system.run(_system_args(args))
    placed = sum(s["placed"] or 0 for s in result.get("steps", []))
    trace = recorder.window(args.skip_s, args.window_s, args.rate, placed)
    trace["system"] = {k: result.get(k) for k in ("daemon_cpu_ms_per_call", "redis_commands_per_call",
                                                   "agi_p99_ms_at_50", "pinning")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(trace, separators=(",", ":")).encode("utf-8")
    Path(args.out).write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    print(json.dumps({"bench": "floor_record", "out": args.out, **summary(trace),
                      "system": trace["system"]}))
    return 0


def _system_args(args: argparse.Namespace) -> argparse.Namespace:
    """benchmarks/system.py's defaults, at one rate, pinned."""
    return argparse.Namespace(
        rates=str(args.rate), step_s=args.step_s, drain_s=args.drain_s, agents=args.agents, prompt_s=0.5,
        seed=1, profile=None, profiler="cprofile", profile_top=15, daemon_nodelay="on",
        pbx_nodelay="on", manager_conf="shipped", gc_tuning="on", daemon_cpu=args.daemon_cpu,
        cluster=False, state_folder=False, by_kind=False,
    )


if __name__ == "__main__":
    raise SystemExit(main())

"""AGI turnaround with and without TCP_NODELAY, side by side in one run.

    .venv/bin/python benchmarks/agi_turnaround.py [--commands 200]

One AGI command's round trip through the daemon's own protocol
(``AMIConnection.agi``: the ``AGI`` action out, its ``Response`` and the
``AsyncAGIExec`` event with the result back) against the test PBX on loopback,
the PBX in another process. Two PBX processes run at once, one with
``TCP_NODELAY`` on its accepted sockets (as Asterisk's manager sets it) and one
without, and four connections (the option on and off, to each); the commands
(``NOOP`` on a caller's channel sitting in AsyncAGI) alternate between the
four, so all see the same machine load. Four variants: the option on both
ends (``both``, as now against Asterisk), only on the PBX's side
(``pbx_only``: Shenava before the change, against a real Asterisk, whose
manager sets it), only on the daemon's (``daemon_only``) and on neither
(``neither``: the test PBX before the change).

The test PBX imitates Asterisk: the ``AGI`` action's ``Response`` goes out at
once, and the ``AsyncAGIExec`` event once the channel's AGI loop picks the
command up (``--pickup-ms``, 20 ms as in the PBX; 17-100 ms in the captures).
Those are two small writes apart, which is what Nagle's algorithm holds back:
the second waits for the ACK of the first, which the daemon's side delays. With
``--pickup-ms 0`` both go out in one write and the option makes no difference.
``*_over_pickup_ms`` is the p50 less the pickup delay. The last line is one
JSON object.

Why it matters: an IVR step is a few of these in a row, and with Nagle's
algorithm on both ends each small write waits for the ACK the other side
delays (40 ms on Linux), so every step paid tens of milliseconds for nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testpbx.options import AGI_PICKUP_S  # noqa: E402

USER, SECRET = "bench", "bench-secret"


def serve(no_delay: bool, pickup_s: float) -> None:
    """The child: a test PBX placing a few callers who sit in AsyncAGI."""
    from twisted.internet import reactor

    from testpbx.options import PbxOptions
    from testpbx.scripts import CallerScript
    from testpbx.server import listen_testpbx
    from testpbx.world import PbxWorld

    root = Path(tempfile.mkdtemp(prefix="agi-turnaround-"))
    world = PbxWorld(reactor, PbxOptions(
        users={USER: SECRET}, recordings_root=root, agi_pickup_s=pickup_s))
    port = listen_testpbx(reactor, 0, world, no_delay=no_delay)
    print(port.getHost().port, flush=True)
    # callers every second for a few seconds: the benchmark takes the first it sees
    for delay in (1.0, 2.0, 3.0, 4.0):
        reactor.callLater(delay, world.place_call, CallerScript(hangup_after_s=600.0))
    reactor.callLater(600.0, reactor.stop)
    reactor.run()


def start_child(no_delay: bool, pickup_s: float) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "on" if no_delay else "off",
         "--pickup-ms", str(pickup_s * 1000)],
        stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None
    return child, int(child.stdout.readline())


VARIANTS = {
    # name: (the daemon's side, the PBX's side)
    "both": (True, True),
    "pbx_only": (False, True),
    "daemon_only": (True, False),
    "neither": (False, False),
}


async def measure(reactor: Any, commands: int, ports: dict[bool, int]) -> dict[str, Any]:
    from twisted.internet.defer import Deferred
    from twisted.internet.endpoints import TCP4ClientEndpoint

    from ami_bridge.connection import AMIConnection, AMICredentials

    connections: dict[str, AMIConnection] = {}
    channels: dict[str, Deferred[str]] = {}
    taken: set[str] = set()  # each variant its own caller (both PBXs name channels alike)
    for name, (daemon, pbx) in VARIANTS.items():
        conn = AMIConnection(
            TCP4ClientEndpoint(reactor, "127.0.0.1", ports[pbx]), reactor,
            AMICredentials(USER, SECRET), tcp_no_delay=daemon,
            # each connection its own ActionIDs and CommandIDs: two sessions on one PBX see
            # each other's AsyncAGIExec events
            action_id_prefix=f"bench-{name}",
        )
        found: Deferred[str] = Deferred()

        def on_event(message: Any, found: Deferred[str] = found, pbx: bool = pbx) -> None:
            key = f"{pbx}:{message['Channel']}" if message.event == "AsyncAGIStart" else ""
            if key and not found.called and key not in taken:
                taken.add(key)
                found.callback(message["Channel"])

        conn.add_event_observer(on_event)
        conn.startService()
        connections[name], channels[name] = conn, found
    chosen = {name: await d for name, d in channels.items()}
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for n in range(commands + 10):  # the first ten of each warm up
        for name in VARIANTS:
            t0 = time.perf_counter()
            await connections[name].agi(chosen[name], "NOOP")
            if n >= 10:
                times[name].append((time.perf_counter() - t0) * 1000)
    for conn in connections.values():
        conn.stopService()

    def figures(ms: list[float]) -> dict[str, float]:
        ordered = sorted(ms)
        return {
            "p50_ms": round(statistics.median(ordered), 3),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 3),
            "mean_ms": round(statistics.fmean(ordered), 3),
        }

    return {name: figures(ms) for name, ms in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200, help="round trips per variant")
    parser.add_argument(
        "--pickup-ms", type=float, default=AGI_PICKUP_S * 1000,
        help="the test PBX's AsyncAGI pickup delay (default: its usual 20 ms)")
    parser.add_argument("--serve", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve == "on", args.pickup_ms / 1000)
        return
    children = {pbx: start_child(pbx, args.pickup_ms / 1000) for pbx in (True, False)}
    try:
        from twisted.internet import reactor
        from twisted.internet.defer import ensureDeferred

        result: dict[str, Any] = {}

        def run() -> Any:
            d = ensureDeferred(
                measure(reactor, args.commands, {pbx: p for pbx, (_, p) in children.items()}))
            d.addCallback(result.update)
            d.addBoth(lambda r: (reactor.stop(), r)[1])
            return d

        reactor.callWhenRunning(run)
        reactor.run()
    finally:
        for child, _ in children.values():
            child.terminate()
            child.wait(timeout=10)
    for name, (daemon, pbx) in VARIANTS.items():
        print(f"daemon {'on ' if daemon else 'off'} pbx {'on ' if pbx else 'off'}  {result[name]}")
    out = {
        "bench": "agi_turnaround",
        "commands": args.commands,
        "pbx_agi_pickup_ms": args.pickup_ms,
        **{f"tcp_nodelay_{name}": result[name] for name in VARIANTS},
        **{f"{name}_over_pickup_ms": round(result[name]["p50_ms"] - args.pickup_ms, 3)
           for name in VARIANTS},
        "python": platform.python_version(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

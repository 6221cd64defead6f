"""End to end over loopback TCP: a second process serves the stream, we parse it.

    .venv/bin/python benchmarks/ami_loopback.py [--messages 50000] [--repeat 3] [--reactor default|asyncio]

A child process (``multiprocessing``, spawn) listens on 127.0.0.1 on a free
port and, to every connection, writes the same stream as ``ami_codec`` (banner
and ``--messages`` real captured messages) as fast as the socket takes it,
then closes. This process connects once per contender per round, rounds
interleaved, and times from connecting until the last message is parsed and
the connection is closed; the best round counts.

- ``shenava``: ``AMIDecoder`` inside a Twisted ``Protocol`` on the reactor
  (the platform default, or ``--reactor asyncio`` as the daemon runs): lazy
  framing, event headers NOT split, so not like for like with the libraries;
  ``shenava_full_parse`` splits every header (see ``ami_codec`` for the
  like-for-like and daemon-path figures at several read sizes).
- ``asterisk_ami``: asterisk-ami's real ``AMIClient`` (its reader thread,
  ``_next_pack``, ``fire_recv_pack``), a listener counting events and responses.
- ``panoramisk``: its ``AMIProtocol`` on an asyncio loop (in a worker thread),
  ``handle_message`` replaced by a counter.
- ``split_floor``: a blocking socket read in 64 KiB and ``SplitFloor``: framing
  and decoding, no header parsing.

The non-Twisted contenders run in a worker thread while the reactor sits
idle. Loopback only; every connection and the whole run are bounded in time.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    CONTENDERS,
    DEFAULT_MESSAGES,
    READ_BYTES,
    SplitFloor,
    build_stream,
    panoramisk_protocol,
    summary,
)

HOST = "127.0.0.1"
DEFAULT_REPEAT = 3
CONNECTION_TIMEOUT_S = 60.0
ACCEPT_TIMEOUT_S = 120.0


# --- the serving child ---------------------------------------------------------


def serve(messages: int, connections: int, port_out: Connection) -> None:
    """Write the stream to each of ``connections`` clients in turn, then exit."""
    stream = build_stream(messages)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(4)
        listener.settimeout(ACCEPT_TIMEOUT_S)
        port_out.send(listener.getsockname()[1])
        port_out.close()
        for _ in range(connections):
            try:
                client, _ = listener.accept()
            except TimeoutError:
                return
            with client:
                client.settimeout(CONNECTION_TIMEOUT_S)
                try:
                    client.sendall(stream)
                    client.shutdown(socket.SHUT_WR)
                    # Wait for the reader to close, so no unread byte becomes a reset.
                    while client.recv(4096):
                        pass
                except OSError:
                    pass


# --- contenders outside Twisted (each run in a worker thread) -------------------


def read_asterisk_ami(port: int, recv_bytes: int) -> int:
    from asterisk.ami.client import AMIClient

    count = [0]

    def on_message(source: object, **kwargs: object) -> None:
        count[0] += 1

    client = AMIClient(address=HOST, port=port, timeout=CONNECTION_TIMEOUT_S, buffer_size=recv_bytes)
    client.add_listener(on_event=on_message, on_response=on_message)
    client.connect()
    client._thread.join(CONNECTION_TIMEOUT_S)
    if client._thread.is_alive():
        raise SystemExit("asterisk-ami did not finish reading in time")
    client._socket.close()
    return count[0]


def read_panoramisk(port: int) -> int:
    import asyncio

    async def run() -> int:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        count = [0]

        def on_message(message: object) -> None:
            count[0] += 1

        class Factory:
            def connection_lost(self, exc: object) -> None:
                if not done.done():
                    done.set_result(None)

        protocol: Any = panoramisk_protocol(on_message)
        original_made = protocol.connection_made

        def connection_made(transport: asyncio.BaseTransport) -> None:
            original_made(transport)
            protocol.factory = Factory()
            protocol.encoding = "utf8"

        protocol.connection_made = connection_made
        await loop.create_connection(lambda: protocol, HOST, port)
        await asyncio.wait_for(done, CONNECTION_TIMEOUT_S)
        return count[0]

    return asyncio.run(run())


def read_split_floor(port: int) -> int:
    floor = SplitFloor()
    with socket.create_connection((HOST, port), timeout=CONNECTION_TIMEOUT_S) as sock:
        recv, feed = sock.recv, floor.feed
        while data := recv(READ_BYTES):
            feed(data)
    return floor.count


# --- Shenava inside Twisted, and the driver ---------------------------------------


async def measure(reactor: Any, args: argparse.Namespace, port: int) -> dict[str, float]:
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.protocol import Protocol
    from twisted.internet.threads import deferToThread

    from ami_bridge.codec import AMIDecoder

    class CountingAMIProtocol(Protocol):
        """Frames like ``AMIProtocol``: the kind of each message, a response's ActionID."""

        def __init__(self, full: bool) -> None:
            self.decoder = AMIDecoder()
            self.count = 0
            self.full = full
            self.done: Any = None

        def dataReceived(self, data: bytes) -> None:
            messages = self.decoder.feed(data)
            if self.full:
                for message in messages:
                    message.headers  # noqa: B018 - the parse is the work measured
            else:
                for message in messages:
                    if message.event is None:
                        message.action_id  # noqa: B018
            self.count += len(messages)

        def connectionLost(self, reason: object = None) -> None:
            self.done.callback(self.count)

    async def shenava(full: bool = False) -> int:
        from twisted.internet.defer import Deferred

        protocol = CountingAMIProtocol(full)
        protocol.done = Deferred()
        protocol.done.addTimeout(CONNECTION_TIMEOUT_S, reactor)
        await connectProtocol(TCP4ClientEndpoint(reactor, HOST, port), protocol)
        return int(await protocol.done)

    async def shenava_full_parse() -> int:
        return await shenava(full=True)

    def in_thread(read: Callable[[], int]) -> Callable[[], Any]:
        async def run() -> int:
            return int(await deferToThread(read))

        return run

    runs: dict[str, Callable[[], Any]] = {
        "shenava": shenava,
        "shenava_full_parse": shenava_full_parse,
        "asterisk_ami": in_thread(lambda: read_asterisk_ami(port, args.asterisk_ami_recv_bytes)),
        "panoramisk": in_thread(lambda: read_panoramisk(port)),
        "split_floor": in_thread(lambda: read_split_floor(port)),
    }
    best = {name: float("inf") for name in CONTENDERS}
    for _ in range(args.repeat):
        for name in CONTENDERS:
            started = time.perf_counter()
            count = await runs[name]()
            elapsed = time.perf_counter() - started
            if count != args.messages:
                raise SystemExit(f"{name} parsed {count} messages, expected {args.messages}")
            best[name] = min(best[name], elapsed)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--reactor", choices=("default", "asyncio"), default="default")
    parser.add_argument(
        "--asterisk-ami-recv-bytes",
        type=int,
        default=READ_BYTES,
        help="asterisk-ami's buffer_size (its own default is 1024)",
    )
    args = parser.parse_args(argv)

    context = multiprocessing.get_context("spawn")
    port_in, port_out = context.Pipe(duplex=False)
    server = context.Process(
        target=serve, args=(args.messages, args.repeat * len(CONTENDERS), port_out), daemon=True
    )
    server.start()
    try:
        if not port_in.poll(ACCEPT_TIMEOUT_S):
            raise SystemExit("the serving process did not start")
        port = int(port_in.recv())

        if args.reactor == "asyncio":
            from twisted.internet import asyncioreactor

            asyncioreactor.install()
        from twisted.internet import defer

        results: dict[str, dict[str, float]] = {}

        def run(reactor: Any) -> Any:
            async def go() -> None:
                results["best"] = await measure(reactor, args, port)

            return defer.ensureDeferred(go())

        _react(run)
        seconds = results["best"]
        reactor_name = type(_reactor()).__name__
    finally:
        server.join(5)
        if server.is_alive():
            server.terminate()
            server.join(5)

    print(
        f"loopback {HOST}: {args.messages} messages per connection, best of {args.repeat}; "
        f"reactor {reactor_name}; Python {platform.python_version()}; "
        f"threads at end: {threading.active_count()}"
    )
    for name, elapsed in seconds.items():
        print(f"  {name:<13} {args.messages / elapsed:>12,.0f} msgs/s  ({elapsed * 1e3:.1f} ms)")
    print(json.dumps(summary("ami_loopback", args.messages, seconds, [("reactor", reactor_name)])))
    return 0


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _react(run: Callable[[Any], Any]) -> None:
    """``task.react`` ends the process; run the reactor and come back instead."""
    reactor = _reactor()
    failure: list[Any] = []

    def start() -> None:
        d = run(reactor)
        d.addErrback(failure.append)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()
    if failure:
        failure[0].raiseException()


if __name__ == "__main__":
    raise SystemExit(main())

"""Exact counts of the event loop's and the AMI write path's work, for benchmarks/system.py.

Counted without a profiler, by wrapping a few methods of the running daemon's
objects (one Python call each, so the CPU figures barely move):

- ``event_loop``: ``uvloop`` or ``asyncio`` (``SHENAVA_EVENT_LOOP``, as ``shenava run``);
- ``iterations``: turns of the asyncio loop (``BaseEventLoop._run_once``); None
  under uvloop, whose loop is C and keeps no count outside a debug build;
- ``ami_reads``: ``doRead`` of the AMI connection's socket (one per readable wake-up);
- ``ami_writes``: the AMI protocol's ``transport.write`` calls;
- ``ami_sends``: socket sends on the AMI connection: made at once by
  ``ami_bridge.connection.SendNow``, plus Twisted's write-behind ``doWrite``;
- ``ami_write_turns``: Twisted ``doWrite`` calls on it (each one loop turn after
  an ``addWriter`` and before a ``removeWriter``);
- ``add_writer``: the reactor's ``addWriter`` calls, any connection (each an
  epoll change, and its ``removeWriter`` another);
- ``redis_sends``: ``send_packed_command`` calls of redis.asyncio's connections
  (one socket write each when nothing waits before it).

Per call: :meth:`LoopCounts.per_call` with a :meth:`LoopCounts.mark` taken at the
step's start. Works on the code before ``SendNow`` too (its AMI transport is
Twisted's own, and every send is a ``doWrite``).
"""

from __future__ import annotations

from typing import Any


class LoopCounts:
    """Counts on ``reactor`` and on the AMI protocol's transport ``ami_transport``."""

    def __init__(self, reactor: Any, ami_transport: Any) -> None:
        self.n = {"iterations": 0, "ami_reads": 0, "ami_writes": 0, "ami_write_turns": 0,
                  "add_writer": 0, "redis_sends": 0}
        n = self.n
        loop = reactor._asyncioEventloop
        self.kind = "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
        self._count_iterations = hasattr(loop, "_run_once")
        if self._count_iterations:
            run_once = loop._run_once

            def counted_run_once() -> None:
                n["iterations"] += 1
                run_once()

            loop._run_once = counted_run_once
        add_writer = reactor.addWriter

        def counted_add_writer(writer: Any) -> None:
            n["add_writer"] += 1
            add_writer(writer)

        reactor.addWriter = counted_add_writer
        out = ami_transport
        self.send_now = out if hasattr(out, "sends") else None
        raw = out.transport if self.send_now is not None else out
        do_read, do_write = raw.doRead, raw.doWrite

        def counted_read() -> Any:
            n["ami_reads"] += 1
            return do_read()

        def counted_do_write() -> Any:
            n["ami_write_turns"] += 1
            return do_write()

        raw.doRead, raw.doWrite = counted_read, counted_do_write
        if self.send_now is None:
            write = raw.write

            def counted_write(data: bytes) -> None:
                n["ami_writes"] += 1
                write(data)

            raw.write = counted_write
        from redis.asyncio.connection import AbstractConnection

        send = AbstractConnection.send_packed_command

        async def counted_send(self: Any, *args: Any, **kwargs: Any) -> None:
            n["redis_sends"] += 1
            await send(self, *args, **kwargs)

        AbstractConnection.send_packed_command = counted_send  # type: ignore[method-assign]

    def mark(self) -> dict[str, int]:
        out = dict(self.n)
        if self.send_now is not None:
            out["ami_writes"] = self.send_now.writes
            out["direct_sends"] = self.send_now.sends
        return out

    def per_call(self, mark: dict[str, int], calls: int) -> dict[str, Any]:
        now = self.mark()
        d = {k: now[k] - mark.get(k, 0) for k in now}
        sends = d.get("direct_sends", 0) + d["ami_write_turns"]
        per = {
            "event_loop": self.kind,
            "iterations": round(d["iterations"] / calls, 1) if self._count_iterations else None,
            "ami_reads": round(d["ami_reads"] / calls, 1),
            "ami_writes": round(d["ami_writes"] / calls, 1),
            "ami_sends": round(sends / calls, 1),
            "ami_write_turns": round(d["ami_write_turns"] / calls, 1),
            "add_writer": round(d["add_writer"] / calls, 1),
            "redis_sends": round(d["redis_sends"] / calls, 1),
        }
        return per

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
- ``redis_sends``: socket sends of the process's asyncio transports (the stdlib
  loop's ``_SelectorSocketTransport``: a ``write`` that finds its buffer empty
  sends at once, and each write-behind ``_write_ready`` sends again). In the
  daemon only redis.asyncio's connections use asyncio transports (Twisted
  drives the AMI and HTTP sockets itself), so these are the Redis writes,
  however they were made: a turn's batch or a pipeline is one, and the
  ``QuickConnection`` fast path (``shenava.redis_client``), which writes to the
  transport without ``send_packed_command``, is counted too (hooking
  ``send_packed_command``, as before, counted only its slow path: always 0).
  None under uvloop, whose transports are C.

Per call: :meth:`LoopCounts.per_call` with a :meth:`LoopCounts.mark` taken at the
step's start. Works on the code before ``SendNow`` too (its AMI transport is
Twisted's own, and every send is a ``doWrite``).
"""

from __future__ import annotations

from typing import Any

_ABSENT = object()

class LoopCounts:
    """Counts on ``reactor`` and on the AMI protocol's transport ``ami_transport`` (None:
    no AMI counts); :meth:`close` puts back what was wrapped."""

    def __init__(self, reactor: Any, ami_transport: Any) -> None:
        self.n = {"iterations": 0, "ami_reads": 0, "ami_writes": 0, "ami_write_turns": 0,
                  "add_writer": 0, "redis_sends": 0}
        self._undo: list[tuple[Any, str, Any]] = []
        n = self.n
        loop = reactor._asyncioEventloop
        self.kind = "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
        self._count_iterations = hasattr(loop, "_run_once")
        self._count_redis = self.kind == "asyncio"
        self.send_now: Any = None
        if self._count_redis:
            self._count_transport_sends()
        if self._count_iterations:
            run_once = loop._run_once

            def counted_run_once() -> None:
                n["iterations"] += 1
                run_once()

            self._wrap(loop, "_run_once", counted_run_once)
        add_writer = reactor.addWriter

        def counted_add_writer(writer: Any) -> None:
            n["add_writer"] += 1
            add_writer(writer)

        self._wrap(reactor, "addWriter", counted_add_writer)
        if ami_transport is not None:
            self._count_ami(ami_transport)

    def _wrap(self, owner: Any, name: str, counted: Any) -> None:
        self._undo.append((owner, name, owner.__dict__.get(name, _ABSENT) if hasattr(owner, "__dict__")
                           else _ABSENT))
        setattr(owner, name, counted)

    def close(self) -> None:
        """Unwrap everything, newest first (the transport class is the whole process's)."""
        while self._undo:
            owner, name, old = self._undo.pop()
            if old is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, old)

    def _count_transport_sends(self) -> None:
        from asyncio import selector_events

        n = self.n
        transport: Any = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]  # private: no stub
        write, write_ready = transport.write, transport._write_ready

        def counted_write(self: Any, data: Any) -> None:
            if data and not self._buffer and not self._conn_lost and not self._eof:
                n["redis_sends"] += 1  # an empty buffer: sent now
            write(self, data)

        def counted_write_ready(self: Any) -> None:
            if self._buffer and not self._conn_lost:
                n["redis_sends"] += 1  # the rest, sent when the socket took more
            write_ready(self)

        self._wrap(transport, "write", counted_write)
        self._wrap(transport, "_write_ready", counted_write_ready)

    def _count_ami(self, ami_transport: Any) -> None:
        n = self.n
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

        self._wrap(raw, "doRead", counted_read)
        self._wrap(raw, "doWrite", counted_do_write)
        if self.send_now is None:
            write = raw.write

            def counted_write(data: bytes) -> None:
                n["ami_writes"] += 1
                write(data)

            self._wrap(raw, "write", counted_write)

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
            "redis_sends": round(d["redis_sends"] / calls, 1) if self._count_redis else None,
        }
        return per

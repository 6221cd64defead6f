"""Twisted's asyncio reactor with one layer less on every read and fewer timer moves.

Twisted's ``AsyncioSelectorReactor`` registers each reader with the asyncio
loop as ``callWithLogger(reader, self._readOrWrite, reader, True)``: every
readable wake-up of every Twisted socket (the AMI link about 20 times a call)
first asks the reader for its ``logPrefix``, copies the legacy log context
with a ``system`` key and pushes it, then calls ``_readOrWrite``, then pops
it: about 2 µs a read. That context only names the ``system`` of events
logged with the legacy ``twisted.python.log`` during the read; Shenava logs
with ``twisted.logger``, whose events never read it, and ``_readOrWrite``
itself catches and logs any exception of ``doRead`` (then drops the
connection), as before.

:class:`AsyncioReactor` registers ``_readOrWrite`` directly. Writers keep the
wrapper: a writer is added and removed around each buffered write, and
replacing the callback would cost what it saves.

Timers: Twisted keeps its delayed calls in its own heap and one asyncio timer
for the earliest. Its ``callLater`` moves that timer (a cancel and a new
``TimerHandle``) when the new call looks sooner, comparing the loop's
monotonic time plus the wall-clock delay with the loop time the timer was set
for; the two clocks are read a few microseconds apart each time, so a call
due *later* than the timer moved it about every other time (1.7 of 1.9
``callLater`` a call at 50 calls/s). Here a call moves the timer only when it
is due before the delayed call the timer was set for, both in the reactor's
own ``seconds()``.

Everything else (the transports, connection lost, half-close, TLS, writers,
timers' firing) is Twisted's own.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

from twisted.internet.asyncioreactor import AsyncioSelectorReactor
from twisted.internet.base import DelayedCall
from twisted.internet.posixbase import PosixReactorBase

__all__ = ["AsyncioReactor", "install"]


class AsyncioReactor(AsyncioSelectorReactor):
    """``AsyncioSelectorReactor`` whose readers are called without ``callWithLogger``."""

    def __init__(self, eventloop: asyncio.AbstractEventLoop | None = None) -> None:
        self._timer_for = math.inf
        """``seconds()`` of the delayed call the asyncio timer was last set for."""
        super().__init__(eventloop)

    def callLater(self, delay: float, callable: Callable[..., Any], *args: object,
                  **kw: object) -> DelayedCall:
        call = PosixReactorBase.callLater(self, delay, callable, *args, **kw)
        if self._scheduledAt is None or call.time < self._timer_for:
            self._reschedule()
        elif len(self._newTimedCalls) > 256:  # into the heap, as Twisted's would be at once
            self._insertNewDelayedCalls()
        return call

    def _reschedule(self) -> None:
        super()._reschedule()  # type: ignore[no-untyped-call]  # untyped in Twisted
        if self._scheduledAt is not None and self._pendingTimedCalls:
            self._timer_for = self._pendingTimedCalls[0].time

    def addReader(self, reader: Any) -> None:
        super().addReader(reader)  # type: ignore[no-untyped-call]  # untyped in Twisted
        fd = self._readers.get(reader)
        if fd is not None:  # watched by the loop (not by continuous polling)
            # the same fd and events: asyncio swaps the handle, no epoll change
            self._asyncioEventloop.add_reader(fd, self._readOrWrite, reader, True)


def install(loop: asyncio.AbstractEventLoop | None = None) -> AsyncioReactor:
    """Install :class:`AsyncioReactor` as Twisted's reactor (as ``asyncioreactor.install``)."""
    from twisted.internet.main import installReactor

    reactor = AsyncioReactor(loop)
    installReactor(reactor)  # type: ignore[no-untyped-call]  # untyped in Twisted
    return reactor

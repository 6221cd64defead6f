"""Twisted's asyncio reactor with one layer less on every read.

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

:class:`AsyncioReactor` registers ``_readOrWrite`` directly. Everything else
(the transports, connection lost, half-close, TLS, writers, timers) is
Twisted's own; writers keep the wrapper, since a writer is added and removed
around each buffered write and replacing the callback would cost what it saves.
"""

from __future__ import annotations

import asyncio
from typing import Any

from twisted.internet.asyncioreactor import AsyncioSelectorReactor

__all__ = ["AsyncioReactor", "install"]


class AsyncioReactor(AsyncioSelectorReactor):
    """``AsyncioSelectorReactor`` whose readers are called without ``callWithLogger``."""

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

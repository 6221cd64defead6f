"""The daemon's live call figures, written to Redis once per tick instead of once per event.

Each caller on the support line used to cost two gauge writes
(``set_in_progress``: ``MULTI``, ``DEL``, ``HSET``, ``EXEC``) and each queued
call two counter updates (``MULTI``, two ``HINCRBY``, ``EXPIRE``, ``EXEC``):
about 18 Redis commands per call for figures read by the demo's summary. Here
the changes are summed in memory, in order, and written at most once per
``tick_s`` in one transaction (:meth:`shenava.live_store.LiveFiguresStore.apply`);
what Redis holds after a write is what the per-event writes left, and
:meth:`flushed` writes what waits (shutdown, tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from shenava.aio import as_deferred
from shenava.live_store import LiveChanges, LiveFiguresStore

log = Logger()

TICK_S = 0.5


class Scheduler(Protocol):
    def callLater(self, delay: float, f: Callable[..., object], *a: object, **kw: object) -> Any: ...


class LiveFiguresWriter:
    def __init__(self, store: LiveFiguresStore, clock: Scheduler, *, tick_s: float = TICK_S) -> None:
        self._store = store
        self._clock = clock
        self.tick_s = tick_s
        self._changes = LiveChanges()
        self._call: Any = None
        self._writing: Deferred[None] | None = None
        self.writes = 0

    # -- what happened (the same calls as LiveFiguresStore's) ------------------------

    def call_offered(self, queue: str, now: float) -> None:
        self._count(queue, now, "offered", +1)

    def call_answered(self, queue: str, now: float) -> None:
        self._count(queue, now, "answered", -1)

    def call_abandoned(self, queue: str, now: float) -> None:
        self._count(queue, now, "abandoned", -1)

    def set_in_progress(self, counts: Mapping[str, int]) -> None:
        self._changes.gauge = dict(counts)
        self._changes.gauge_delta.clear()
        self._soon()

    def _count(self, queue: str, now: float, metric: str, in_progress: int) -> None:
        changes = self._changes
        key = (self._store.day_of(now), f"{metric}:{queue}")
        changes.counters[key] = changes.counters.get(key, 0) + 1
        changes.gauge_delta[queue] = changes.gauge_delta.get(queue, 0) + in_progress
        self._soon()

    # -- writing ---------------------------------------------------------------------

    def _soon(self) -> None:
        if self._call is None and self._writing is None:
            self._call = self._clock.callLater(self.tick_s, self._write)

    def _write(self) -> None:
        self._call = None
        changes, self._changes = self._changes, LiveChanges()
        if changes.empty():
            return
        d = as_deferred(self._store.apply(changes))
        self._writing = d

        def settled(result: object) -> None:
            self._writing = None
            self.writes += 1
            if not self._changes.empty():
                self._soon()

        d.addErrback(lambda f: log.error("live figures not stored: {e}", e=f.getErrorMessage()))
        d.addBoth(settled)

    def flushed(self) -> Deferred[None]:
        """Fires once every change so far is written (or failed, logged)."""
        return Deferred.fromCoroutine(self._flushed())

    async def _flushed(self) -> None:
        for _ in range(3):
            writing = self._writing
            if writing is not None:
                done: Deferred[None] = Deferred()

                def relay(result: object, done: Deferred[None] = done) -> object:
                    done.callback(None)
                    return result

                writing.addBoth(relay)
                await done
                continue
            if self._changes.empty():
                return
            call, self._call = self._call, None
            if call is not None and call.active():
                call.cancel()
            self._write()

    def stop(self) -> Deferred[None]:
        d = self.flushed()

        def cancel(result: object) -> object:
            call, self._call = self._call, None
            if call is not None and call.active():
                call.cancel()
            return result

        return d.addBoth(cancel)

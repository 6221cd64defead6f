"""Many timeouts behind one ``callLater``: each AMI action and AGI command has one.

The daemon sends a few dozen actions per call, each with a timeout that is
almost never reached. A ``callLater`` and its ``cancel`` per action cost the
asyncio reactor a timer handle each (about a tenth of the daemon's time per
AGI command in a profile). Here the deadlines sit in a heap and only the
earliest has a ``callLater``; a cancelled deadline is only marked (dropped
when it reaches the top, or when cancelled ones outnumber the rest).

The one timer is lazy: it is moved only to an *earlier* deadline, never
cancelled because the deadline it was set for is gone. An action answered
in a millisecond leaves the timer where it was; when it comes, the timer
runs what is due (often nothing) and is set again for the earliest deadline
left, if any. So at 50 calls/s, where the protocol goes idle between
actions about ten times a call, the reactor sees one ``callLater`` per
timeout period instead of one (and a cancel) per idle spell. An idle
protocol has nothing scheduled once its last timer has come; :meth:`clear`
(on connection lost) cancels it at once. Each callback still runs when its
own deadline comes, in deadline order.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from shenava_base.clock import Clock

_EARLY = 1e-9
"""A timer's time can differ from the deadline it was set for by a rounding."""

_COMPACT_AT = 64
"""Cancelled entries kept before the heap is rebuilt (when they outnumber the live ones)."""


Scheduler = Clock
"""The one clock protocol (``shenava_base.clock.Clock``)."""


class Deadline:
    """What :meth:`Deadlines.call_later` gives back: ``active()`` and ``cancel()``."""

    __slots__ = ("_owner", "args", "f", "live", "seq", "when")

    def __init__(self, owner: Deadlines, when: float, seq: int, f: Callable[..., object],
                 args: tuple[object, ...]) -> None:
        self._owner = owner
        self.when = when
        self.seq = seq
        self.f = f
        self.args = args
        self.live = True

    def active(self) -> bool:
        return self.live

    def cancel(self) -> None:
        if self.live:
            self.live = False
            self._owner._cancelled()


class Deadlines:
    def __init__(self, clock: Scheduler) -> None:
        self._clock = clock
        # (when, seq, deadline): compared as tuples, in C; equal deadlines
        # fire in the order they were set (seq), as callLater's do
        self._heap: list[tuple[float, int, Deadline]] = []
        self._active = 0
        self._timer: Any = None
        """The one ``callLater``, due at ``_timer_at``: never later than a live deadline."""
        self._timer_at = 0.0
        self._firing = False
        self._seq = 0
        self.timers_set = 0
        """``callLater``s made (a count for tests and benchmarks)."""

    def call_later(self, delay: float, f: Callable[..., object], *args: object) -> Deadline:
        when = self._clock.seconds() + delay
        self._seq += 1
        deadline = Deadline(self, when, self._seq, f, args)
        heapq.heappush(self._heap, (when, self._seq, deadline))
        self._active += 1
        if not self._firing and (self._timer is None or when < self._timer_at):
            self._arm(when)
        return deadline

    def clear(self) -> None:
        """Forget every deadline (none fires) and cancel the timer: nothing is left scheduled."""
        for _, _, deadline in self._heap:
            deadline.live = False
        self._heap.clear()
        self._active = 0
        self._disarm()

    def _disarm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _arm(self, when: float) -> None:
        self._disarm()
        self._timer_at = when
        self.timers_set += 1
        self._timer = self._clock.callLater(max(0.0, when - self._clock.seconds()), self._fire)

    def _cancelled(self) -> None:
        # The timer stays: when it comes it finds nothing due and is set for
        # the next live deadline, or for none.
        self._active -= 1
        heap = self._heap
        if self._active == 0:
            heap.clear()
        elif len(heap) > _COMPACT_AT and len(heap) > 2 * self._active:
            heap[:] = [entry for entry in heap if entry[2].live]
            heapq.heapify(heap)

    def _fire(self) -> None:
        self._timer = None
        heap = self._heap
        self._firing = True
        try:
            while heap:
                top = heap[0][2]
                if not top.live:
                    heapq.heappop(heap)
                    continue
                if top.when > self._clock.seconds() + _EARLY:
                    break
                heapq.heappop(heap)
                top.live = False
                self._active -= 1
                top.f(*top.args)  # may add or cancel deadlines
        finally:
            self._firing = False
        while heap and not heap[0][2].live:
            heapq.heappop(heap)
        if heap and self._timer is None:
            self._arm(heap[0][0])

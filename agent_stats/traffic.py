"""The recent traffic the break headroom and the callback gate are computed from.

:class:`RecentTraffic` keeps the last ``window_s`` of arrivals (calls queued),
handle times (a call's talk time at its end, a wrap-up's length when it
closes) and completions, and turns them into Erlang C's
:class:`~agent_stats.erlang.Traffic` (``StatsService.spare``,
``headroom_service_level``, ``staffed_service_level``). Time is passed in;
samples older than the window are dropped when read and at every heartbeat.

The handle times' total is kept as they come and go (exact partial sums, so
it is the same float ``math.fsum`` of the window gives): summing the window
on every read cost O(calls in the last half hour) per callback-gate check,
which at 50 calls/s is tens of thousands of samples, twice a call.
"""

from __future__ import annotations

import math
from collections import deque

from agent_stats.erlang import Traffic, estimate_traffic

TRAFFIC_WINDOW_S = 1800.0
MIN_TRAFFIC_WINDOW_S = 300.0


class RecentTraffic:
    """Arrivals, handle times and completions of the last ``window_s``."""

    def __init__(self, started_at: float, window_s: float = TRAFFIC_WINDOW_S) -> None:
        self.started_at = started_at
        self.window_s = window_s
        self.arrivals: deque[float] = deque()
        self.handles: deque[tuple[float, float]] = deque()
        self.completions: deque[float] = deque()
        self._handle_total: list[float] = []
        """The handle times in ``handles``, summed exactly: non-overlapping
        partials whose ``math.fsum`` is the correctly rounded total."""

    def arrived(self, at: float) -> None:
        self.arrivals.append(at)

    def handled(self, at: float, duration: float) -> None:
        self.handles.append((at, duration))
        _add_exact(self._handle_total, duration)

    def completed(self, at: float) -> None:
        self.completions.append(at)

    def trim(self, now: float) -> None:
        cutoff = now - self.window_s
        for q in (self.arrivals, self.completions):
            while q and q[0] < cutoff:
                q.popleft()
        handles = self.handles
        while handles and handles[0][0] < cutoff:
            _add_exact(self._handle_total, -handles.popleft()[1])

    def traffic(self, now: float) -> Traffic:
        self.trim(now)
        window = min(self.window_s, max(MIN_TRAFFIC_WINDOW_S, now - self.started_at))
        handle = math.fsum(self._handle_total) if self.handles else 0.0
        return estimate_traffic(len(self.arrivals), window, len(self.completions), handle)


def _add_exact(partials: list[float], x: float) -> None:
    """Add ``x`` to the exact sum held in ``partials`` (Shewchuk's algorithm, as
    ``math.fsum`` runs it): no rounding is lost, so ``math.fsum(partials)`` is the
    correctly rounded sum of every value added (less those taken away)."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]

"""The recent traffic the break headroom and the callback gate are computed from.

:class:`RecentTraffic` keeps the last ``window_s`` of arrivals (calls queued),
handle times (a call's talk time at its end, a wrap-up's length when it
closes) and completions, and turns them into Erlang C's
:class:`~agent_stats.erlang.Traffic` (``StatsService.spare``,
``headroom_service_level``, ``staffed_service_level``). Time is passed in;
samples older than the window are dropped when read and at every heartbeat.
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

    def arrived(self, at: float) -> None:
        self.arrivals.append(at)

    def handled(self, at: float, duration: float) -> None:
        self.handles.append((at, duration))

    def completed(self, at: float) -> None:
        self.completions.append(at)

    def trim(self, now: float) -> None:
        cutoff = now - self.window_s
        for q in (self.arrivals, self.completions):
            while q and q[0] < cutoff:
                q.popleft()
        while self.handles and self.handles[0][0] < cutoff:
            self.handles.popleft()

    def traffic(self, now: float) -> Traffic:
        self.trim(now)
        window = min(self.window_s, max(MIN_TRAFFIC_WINDOW_S, now - self.started_at))
        handle = math.fsum(s for _, s in self.handles)
        return estimate_traffic(len(self.arrivals), window, len(self.completions), handle)

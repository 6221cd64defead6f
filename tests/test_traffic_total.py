"""The recent traffic's handle total, kept as samples come and go, is the window's fsum."""

from __future__ import annotations

import math
import random

from agent_stats.erlang import estimate_traffic
from agent_stats.traffic import MIN_TRAFFIC_WINDOW_S, RecentTraffic


def test_the_kept_total_is_exactly_the_fsum_of_the_window() -> None:
    rng = random.Random(16)
    for _ in range(60):
        recent = RecentTraffic(0.0, window_s=rng.choice([5.0, 60.0, 1800.0]))
        now = 0.0
        for _ in range(rng.randint(1, 1500)):
            now += rng.expovariate(rng.choice([0.2, 30.0]))
            # talk times, tiny and huge ones, and 0.1 + 0.2 (not 0.3 in floats)
            recent.handled(now, rng.choice([rng.uniform(0, 900), 1e-9 * rng.random(),
                                            1e7 * rng.random(), 0.1 + 0.2, 0.0]))
            recent.completed(now)
            if rng.random() < 0.1:
                later = now + rng.uniform(0, 100)
                traffic = recent.traffic(later)
                window = min(recent.window_s, max(MIN_TRAFFIC_WINDOW_S, later))
                assert traffic == estimate_traffic(
                    len(recent.arrivals), window, len(recent.completions),
                    math.fsum(s for _, s in recent.handles),
                )
    gone = RecentTraffic(0.0)
    gone.handled(1.0, 42.5)
    gone.completed(1.0)
    assert gone.traffic(100.0).aht_s == 42.5
    assert gone.traffic(10_000.0) == estimate_traffic(0, 1800.0, 0, 0.0)  # all out of the window

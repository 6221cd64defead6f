"""Erlang C: the predicted service level of a queue, and break headroom from it.

The model is M/M/N: Poisson arrivals at ``arrival_rate`` calls per second,
exponential handle times with mean ``aht_s`` (talk plus wrap-up), ``N`` agents
taking calls, nobody abandons. Traffic ``A = arrival_rate * aht_s`` Erlangs.
Then the probability that a call waits is Erlang C,

    C(N, A) = N B / (N - A (1 - B)),  B = Erlang B(N, A) (computed by recursion),

and the predicted service level for a threshold ``T`` is

    SL(N) = 1 - C(N, A) * exp(-(N - A) * T / aht_s),   and 0 when N <= A.

Without abandons the prediction is pessimistic (abandons shorten the line), which
is the safe side for granting breaks.

**Headroom** (used by the fair break line): with ``N`` staffed agents (ready,
ringing, on a call or in wrap-up), the number of breaks that can start now is
the largest ``k`` such that ``SL(N - k) >= target`` and ``N - k >= min_staffed``.
"Headroom for one break" means ``k >= 1``: the predicted service level with one
ready agent fewer stays at or above the target. With no traffic (A = 0) every
agent above ``min_staffed`` is spare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent_stats.errors import InvalidConfigError

DEFAULT_AHT_S = 300.0


@dataclass(frozen=True, slots=True)
class Traffic:
    """Recent demand: arrivals per second and average handle time in seconds."""

    arrival_rate: float
    aht_s: float

    def __post_init__(self) -> None:
        if self.arrival_rate < 0:
            raise InvalidConfigError("arrival_rate", "must be >= 0")
        if self.aht_s <= 0:
            raise InvalidConfigError("aht_s", "must be > 0")

    @property
    def erlangs(self) -> float:
        return self.arrival_rate * self.aht_s


def estimate_traffic(
    arrivals: int,
    window_s: float,
    handled_calls: int,
    handle_time_s: float,
    default_aht_s: float = DEFAULT_AHT_S,
) -> Traffic:
    """Traffic from recent counts: arrivals over a window, total handle time over calls."""
    if window_s <= 0:
        raise InvalidConfigError("window_s", "must be > 0")
    aht = handle_time_s / handled_calls if handled_calls and handle_time_s > 0 else default_aht_s
    return Traffic(arrivals / window_s, aht)


def erlang_b(servers: int, erlangs: float) -> float:
    """Blocking probability, by the stable recursion B(k) = A B(k-1) / (k + A B(k-1))."""
    b = 1.0
    for k in range(1, servers + 1):
        b = erlangs * b / (k + erlangs * b)
    return b


def erlang_c(servers: int, erlangs: float) -> float:
    """Probability that a call has to wait (1 when the queue is unstable)."""
    if erlangs <= 0:
        return 0.0
    if servers <= erlangs:
        return 1.0
    b = erlang_b(servers, erlangs)
    return servers * b / (servers - erlangs * (1.0 - b))


def predicted_service_level(servers: int, traffic: Traffic, threshold_s: float) -> float:
    """Fraction of calls answered within ``threshold_s`` with ``servers`` agents."""
    a = traffic.erlangs
    if a <= 0:
        return 1.0 if servers > 0 else 0.0
    if servers <= a:
        return 0.0
    wait = erlang_c(servers, a)
    return max(0.0, 1.0 - wait * math.exp(-(servers - a) * threshold_s / traffic.aht_s))


class PredictedLevels:
    """:func:`predicted_service_level`, keeping the Erlang B recursion of the last traffic.

    The callback gate asks, for every call, the level with the agents staffed and
    with one fewer, and asks again after its claim: at 10,000 agents each is a
    10,000-step recursion. ``B(n)`` is the ``n``-th step of one recursion, so for the
    same Erlangs the sizes asked are kept and a larger size continues from the last
    step (N after N - 1 is one step): the same floats, operation for operation. A
    new traffic starts again (one recursion per change of traffic)."""

    def __init__(self) -> None:
        self._erlangs = math.nan
        self._asked: dict[int, float] = {}
        """``B(n)`` of the sizes asked at ``_erlangs``."""
        self._step = (0, 1.0)
        """The last step of the recursion at ``_erlangs``: ``(k, B(k))``."""

    def blocking(self, servers: int, erlangs: float) -> float:
        """:func:`erlang_b`."""
        if erlangs != self._erlangs:
            self._erlangs = erlangs
            self._asked = {}
            self._step = (0, 1.0)
        b = self._asked.get(servers)
        if b is not None:
            return b
        k, b = self._step
        if servers < k:
            k, b = 0, 1.0
        for x in map(float, range(k + 1, servers + 1)):  # float(k) is what k + ab converts
            ab = erlangs * b
            b = ab / (x + ab)
        self._step = (max(servers, 0), b)
        self._asked[servers] = b
        return b

    def service_level(self, servers: int, traffic: Traffic, threshold_s: float) -> float:
        """:func:`predicted_service_level`."""
        a = traffic.erlangs
        if a <= 0:
            return 1.0 if servers > 0 else 0.0
        if servers <= a:
            return 0.0
        b = self.blocking(servers, a)
        wait = servers * b / (servers - a * (1.0 - b))
        return max(0.0, 1.0 - wait * math.exp(-(servers - a) * threshold_s / traffic.aht_s))


SURE_MARGIN = 1e-9
"""How far above the target a computed SL must be to vouch for every larger size.

The float SL differs from the exact one by far less (the Erlang B recursion is
stable: a relative error of a few hundred ulps at 10,000 agents), and the exact
SL grows with the number of agents, so ``SL(n) >= target + SURE_MARGIN`` in
floats means every size above ``n`` passes in floats too."""


def spare_agents(
    staffed: int,
    traffic: Traffic,
    threshold_s: float,
    target: float,
    min_staffed: int = 1,
) -> int:
    """How many of ``staffed`` agents may leave now with the SL still predicted on target.

    The largest ``k`` such that ``SL(staffed - j) >= target`` for every ``j`` from
    1 to ``k`` (and ``staffed - k >= min_staffed``): the answer of
    :func:`spare_agents_by_size` (the definition, one Erlang C per size, O(N^2)).

    O(N): Erlang B for every size comes out of one pass of its recursion
    (``erlang_b(n)`` is its ``n``-th step), and each ``SL(n)`` is then O(1), the
    same floats as :func:`predicted_service_level`, operation for operation. A
    binary search finds a size whose SL clears the target by ``SURE_MARGIN``
    (all larger sizes pass); only the sizes below it are checked one by one.
    """
    last = staffed - min_staffed
    if last < 1:
        return 0
    a = traffic.erlangs
    if a <= 0:
        # SL(n) is 1 for n > 0 and 0 otherwise
        if 1.0 < target:
            return 0
        if 0.0 >= target:
            return last
        return max(0, min(last, staffed - 1))
    if target <= 0.0:
        return last  # every SL is >= 0
    top = staffed - 1
    if top <= a:
        return 0  # SL(staffed - 1) is 0
    # Erlang B(k) for k = 1..top; only sizes above A can pass, so only theirs are kept
    below = math.floor(a)  # < top
    b = 1.0
    for x in map(float, range(1, below + 1)):  # float(k) is exactly what k + ab converts
        ab = a * b
        b = ab / (x + ab)
    blocking = [b]  # blocking[i] = B(below + i)
    keep = blocking.append
    for k in range(below + 1, top + 1):
        ab = a * b
        b = ab / (k + ab)
        keep(b)
    aht = traffic.aht_s
    exp = math.exp

    def sl(n: int) -> float:
        if n <= a:
            return 0.0
        bn = blocking[n - below]
        wait = n * bn / (n - a * (1.0 - bn))
        return max(0.0, 1.0 - wait * exp(-(n - a) * threshold_s / aht))

    sure = top + 1  # every size from ``sure`` to ``top`` passes
    if threshold_s >= 0.0:
        lo, hi = max(staffed - last, math.floor(a) + 1), top + 1
        bar = target + SURE_MARGIN
        while lo < hi:
            mid = (lo + hi) // 2
            if sl(mid) >= bar:
                hi = mid
            else:
                lo = mid + 1
        if lo <= top and sl(lo) >= bar:
            sure = lo
    spare = min(last, staffed - sure)
    for k in range(spare + 1, last + 1):
        if sl(staffed - k) < target:
            break
        spare = k
    return spare


def spare_agents_by_size(
    staffed: int,
    traffic: Traffic,
    threshold_s: float,
    target: float,
    min_staffed: int = 1,
) -> int:
    """The definition, one :func:`predicted_service_level` per size: O(N^2) (reference)."""
    spare = 0
    for k in range(1, staffed - min_staffed + 1):
        if predicted_service_level(staffed - k, traffic, threshold_s) < target:
            break
        spare = k
    return spare


def has_headroom(
    staffed: int, traffic: Traffic, threshold_s: float, target: float, min_staffed: int = 1
) -> bool:
    """One agent fewer keeps the predicted service level at or above ``target``."""
    return spare_agents(staffed, traffic, threshold_s, target, min_staffed) >= 1

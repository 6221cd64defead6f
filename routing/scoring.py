"""The priority of a waiting call: points from its facts, plus points for waiting.

With the default ageing rate of one point a second, every weight reads as a head
start in seconds: a vulnerable caller (150 points) goes ahead of an otherwise
equal caller who has waited up to 150 s longer, and no further.

Why the order of the line never changes with time
--------------------------------------------------

A call's score at ``now`` is ``static + rate * (now - joined_at)``, where
``static`` is the sum of the points from its facts and ``rate`` is the same for
every call. Rewritten, that is ``(static - rate * joined_at) + rate * now``: the
second term is common to all calls, so comparing two calls at any moment is
comparing their :func:`ranking_key` ``static - rate * joined_at``, which does not
depend on ``now``. The waiting line therefore keeps calls in heaps ordered by
``(-ranking_key, joined_at, seq)`` and never re-sorts; a decision is O(log n).
Equal scores go to the longer wait through ``joined_at``.

Why no call waits forever
-------------------------

Call L ranks ahead of a call H that joined ``d`` seconds after it exactly when
``rate * d >= static(H) - static(L)``, whatever the time. The largest possible
difference of static points is :func:`max_head_start_s` (in seconds, once divided
by the rate), so every call that joins more than that after L ranks behind L.
Only the calls that joined before L, or within that window after it, can be
served before L: a finite set, so as long as agents keep taking calls, L is
served. A cap on ageing, or a rate that differs between calls, would break this
(and the time-invariant order), which is why neither is offered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from math import isfinite
from types import MappingProxyType
from typing import NamedTuple

from routing.calls import Urgency, WaitingCall
from routing.errors import InvalidScoringConfigError

# With one point a second, a weight is the head start in seconds it buys.
DEFAULT_AGEING_POINTS_PER_S = 1.0

DEFAULT_CATEGORY_POINTS: Mapping[str, float] = MappingProxyType(
    {
        # The default IVR's categories (ivr/menus.toml), then broader ones an
        # operator may use in their own menus.
        "service_quality": 60.0,
        "product": 60.0,
        "billing": 90.0,
        "staff_conduct": 120.0,
        "delivery": 60.0,
        "other": 60.0,
        "general": 60.0,
        "technical": 90.0,
        "service_outage": 120.0,
        "safety": 240.0,
    }
)
DEFAULT_UNKNOWN_CATEGORY_POINTS = 60.0
DEFAULT_URGENCY_POINTS: Mapping[Urgency, float] = MappingProxyType(
    {Urgency.NORMAL: 0.0, Urgency.HIGH: 90.0, Urgency.CRITICAL: 180.0}
)


class Factor(StrEnum):
    """What a part of a score is for; stable names for APIs and comparisons."""

    CATEGORY = "category"
    URGENCY = "urgency"
    VULNERABLE = "vulnerable"
    OPEN_COMPLAINT = "open_complaint"
    RECENT_CALL = "recent_call"
    CALLBACK_FLAG = "callback_flag"
    TRANSCRIPT_URGENCY = "transcript_urgency"
    AGEING = "ageing"


class ScorePart(NamedTuple):
    """One line of a score's breakdown: why (in words) and how many points."""

    reason: str
    points: float
    factor: Factor


@dataclass(frozen=True, slots=True)
class Score:
    """A call's score at one moment, itemised so a decision can be explained.

    ``parts`` lists the category and the ageing always, and every other factor
    only when it applies; ``total`` is their sum.
    """

    call_id: str
    total: float
    parts: tuple[ScorePart, ...]
    at: float

    def points_for(self, factor: Factor) -> float:
        return sum(part.points for part in self.parts if part.factor is factor)


def _frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """Weights of the priority score, in points; validated when built.

    ``ageing_points_per_s`` must be positive: it is what keeps every call from
    waiting forever (see the module docstring).
    """

    category_points: Mapping[str, float] = field(default_factory=lambda: DEFAULT_CATEGORY_POINTS)
    unknown_category_points: float = DEFAULT_UNKNOWN_CATEGORY_POINTS
    urgency_points: Mapping[Urgency, float] = field(default_factory=lambda: DEFAULT_URGENCY_POINTS)
    vulnerable_points: float = 150.0
    open_complaint_points: float = 60.0
    recent_call_points: float = 30.0
    callback_flag_points: float = 90.0
    transcript_urgency_points: float = 120.0
    ageing_points_per_s: float = DEFAULT_AGEING_POINTS_PER_S

    def __post_init__(self) -> None:
        object.__setattr__(self, "category_points", _frozen(self.category_points))
        urgency = {level: float(self.urgency_points.get(level, 0.0)) for level in Urgency}
        object.__setattr__(self, "urgency_points", MappingProxyType(urgency))
        rate = self.ageing_points_per_s
        if not (isfinite(rate) and rate > 0):
            raise InvalidScoringConfigError(
                "ageing_points_per_s", f"must be a positive number, got {rate!r}"
            )
        weights: dict[str, float] = {
            "unknown_category_points": self.unknown_category_points,
            "vulnerable_points": self.vulnerable_points,
            "open_complaint_points": self.open_complaint_points,
            "recent_call_points": self.recent_call_points,
            "callback_flag_points": self.callback_flag_points,
            "transcript_urgency_points": self.transcript_urgency_points,
        }
        weights.update({f"category_points.{k}": v for k, v in self.category_points.items()})
        weights.update({f"urgency_points.{k}": v for k, v in urgency.items()})
        for key, value in weights.items():
            if not isfinite(value):
                raise InvalidScoringConfigError(key, f"must be a finite number, got {value!r}")

    def category(self, name: str) -> float:
        return self.category_points.get(name, self.unknown_category_points)


def static_parts(call: WaitingCall, config: ScoringConfig) -> tuple[ScorePart, ...]:
    """The points a call has from its facts alone (everything but ageing)."""
    parts = [
        ScorePart(f"category {call.category!r}", config.category(call.category), Factor.CATEGORY)
    ]
    urgency = config.urgency_points[call.urgency]
    if urgency:
        parts.append(ScorePart(f"declared urgency {call.urgency.value}", urgency, Factor.URGENCY))
    flags = (
        (call.vulnerable, "vulnerable caller", config.vulnerable_points, Factor.VULNERABLE),
        (
            call.open_complaint,
            "open complaint",
            config.open_complaint_points,
            Factor.OPEN_COMPLAINT,
        ),
        (
            call.recent_call,
            "recent call from the same number",
            config.recent_call_points,
            Factor.RECENT_CALL,
        ),
        (
            call.callback_flag,
            "pending callback flag",
            config.callback_flag_points,
            Factor.CALLBACK_FLAG,
        ),
    )
    parts.extend(
        ScorePart(reason, points, factor) for on, reason, points, factor in flags if on and points
    )
    if call.urgent_words and config.transcript_urgency_points:
        words = ", ".join(call.urgent_words)
        parts.append(
            ScorePart(
                f"urgent words in transcript: {words}",
                config.transcript_urgency_points,
                Factor.TRANSCRIPT_URGENCY,
            )
        )
    return tuple(parts)


def static_points(call: WaitingCall, config: ScoringConfig) -> float:
    """``sum`` of :func:`static_parts`' points, in the same order (the same float),
    without making the parts: a call's ranking key is asked for when it joins."""
    total: float = 0
    total += config.category(call.category)
    urgency = config.urgency_points[call.urgency]
    if urgency:
        total += urgency
    if call.vulnerable and config.vulnerable_points:
        total += config.vulnerable_points
    if call.open_complaint and config.open_complaint_points:
        total += config.open_complaint_points
    if call.recent_call and config.recent_call_points:
        total += config.recent_call_points
    if call.callback_flag and config.callback_flag_points:
        total += config.callback_flag_points
    if call.urgent_words and config.transcript_urgency_points:
        total += config.transcript_urgency_points
    return total


def ranking_key(call: WaitingCall, config: ScoringConfig) -> float:
    """``score(call, now) - rate * now``: the same for every ``now``, so calls can
    be ordered once, when they join (higher goes first)."""
    return static_points(call, config) - config.ageing_points_per_s * call.joined_at


def score(call: WaitingCall, now: float, config: ScoringConfig) -> Score:
    """The call's score at ``now``, itemised."""
    parts = static_parts(call, config)
    waited_s = now - call.joined_at
    ageing = ScorePart(
        f"waited {waited_s:.0f} s", config.ageing_points_per_s * waited_s, Factor.AGEING
    )
    all_parts = (*parts, ageing)
    return Score(call.call_id, sum(p.points for p in all_parts), all_parts, now)


def max_head_start_s(config: ScoringConfig) -> float:
    """The longest a call can be kept behind calls that joined after it, in seconds
    of their later arrival: any call that joins this much later ranks behind it.

    It is the widest possible gap in static points divided by the ageing rate.
    """
    categories = [*config.category_points.values(), config.unknown_category_points]
    urgencies = list(config.urgency_points.values())
    flags = (
        config.vulnerable_points,
        config.open_complaint_points,
        config.recent_call_points,
        config.callback_flag_points,
        config.transcript_urgency_points,
    )
    highest = max(categories) + max(urgencies) + sum(max(f, 0.0) for f in flags)
    lowest = min(categories) + min(urgencies) + sum(min(f, 0.0) for f in flags)
    return (highest - lowest) / config.ageing_points_per_s

"""Fair break allowances: earning, exemptions, the fair break line, Jain's index.

Allowance. Over a span (a day, usually), an agent *earns* break time in
proportion to logged-in time (``earn_per_hour_s`` per hour; ``UNKNOWN`` time
counts as logged in). Break time *taken* is the not-ready time with a reason in
``counted_reasons`` (default: ``BREAK``; lunch and other scheduled time is
separate), plus the part of each ``PERSONAL`` interval beyond
``personal_exempt_s``. Personal time up to that limit (a toilet visit, a drink)
and all ``RECOVERY`` time are exempt: a right, never counted against the agent.
``unused = earned - taken`` (may be negative).

The fair break line. A request with a reason in ``queued_reasons`` (default:
break, lunch) waits in the line; any other reason (personal, recovery,
technical, ...) is granted at once. The line is never a refusal. ``decide(now,
spare)`` grants:

1. every request that has waited ``max_wait_s`` or longer, regardless of
   headroom (each one uses up a spare place if there is one), then
2. up to the remaining ``spare`` requests, in fair order: most unused
   allowance first, then longest since the last break (never had one: first),
   then earliest request, then agent id (for a total order).

``spare`` is the headroom: how many agents may leave now. The daemon gets it
from ``agent_stats.erlang.spare_agents`` (one ready agent fewer must keep the
predicted SL at or above target; see that module), or from any other policy.
A grant for an agent on a call means "go when the call ends".

Fairness each day is Jain's index of ``taken / earned`` across the agents who
earned anything: ``(sum x)^2 / (n * sum x^2)``, 1 when all are equal, ``1/n``
when one agent took everything; 1 by convention when nobody took any.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from agent_stats.errors import ClockWentBackwardsError, InvalidConfigError
from agent_stats.ledger import AgentLedger, Interval
from agent_stats.states import LOGGED_IN_STATES, AgentState, NotReadyReason

EARN_PER_HOUR_S = 300.0
PERSONAL_EXEMPT_S = 300.0
BREAK_MAX_WAIT_S = 900.0
HOUR_S = 3600.0


@dataclass(frozen=True)
class BreakConfig:
    earn_per_hour_s: float = EARN_PER_HOUR_S
    personal_exempt_s: float = PERSONAL_EXEMPT_S
    max_wait_s: float = BREAK_MAX_WAIT_S
    counted_reasons: frozenset[NotReadyReason] = frozenset({NotReadyReason.BREAK})
    queued_reasons: frozenset[NotReadyReason] = frozenset(
        {NotReadyReason.BREAK, NotReadyReason.LUNCH}
    )
    headroom_target: float = 0.8
    min_staffed: int = 1

    def __post_init__(self) -> None:
        for name in ("earn_per_hour_s", "personal_exempt_s", "max_wait_s"):
            if getattr(self, name) < 0:
                raise InvalidConfigError(name, "must be >= 0")
        if NotReadyReason.RECOVERY in self.counted_reasons | self.queued_reasons:
            raise InvalidConfigError("counted_reasons", "recovery is never counted nor queued")
        if NotReadyReason.PERSONAL in self.queued_reasons:
            raise InvalidConfigError("queued_reasons", "personal breaks never wait")
        if not 0.0 <= self.headroom_target <= 1.0:
            raise InvalidConfigError("headroom_target", "must be a fraction between 0 and 1")
        if self.min_staffed < 0:
            raise InvalidConfigError("min_staffed", "must be >= 0")


@dataclass(frozen=True, slots=True)
class Allowance:
    earned_s: float
    taken_s: float
    exempt_s: float

    @property
    def unused_s(self) -> float:
        return self.earned_s - self.taken_s

    @property
    def ratio(self) -> float | None:
        """taken / earned, the quantity Jain's index compares."""
        return self.taken_s / self.earned_s if self.earned_s > 0 else None


def allowance(intervals: Iterable[Interval], config: BreakConfig) -> Allowance:
    """Earned, taken and exempt break time over the given (already clipped) intervals."""
    logged_in: list[float] = []
    taken: list[float] = []
    exempt: list[float] = []
    for interval in intervals:
        d = interval.duration
        if interval.state in LOGGED_IN_STATES:
            logged_in.append(d)
        if interval.state is not AgentState.NOT_READY:
            continue
        if interval.reason is NotReadyReason.RECOVERY:
            exempt.append(d)
        elif interval.reason is NotReadyReason.PERSONAL:
            free = min(d, config.personal_exempt_s)
            exempt.append(free)
            taken.append(d - free)
        elif interval.reason in config.counted_reasons:
            taken.append(d)
    earned = math.fsum(logged_in) * config.earn_per_hour_s / HOUR_S
    return Allowance(earned, math.fsum(taken), math.fsum(exempt))


def last_break_end(intervals: Iterable[Interval], config: BreakConfig) -> float | None:
    """End of the latest break of a kind the line deals in (queued or counted reasons)."""
    kinds = config.queued_reasons | config.counted_reasons
    last: float | None = None
    for interval in intervals:
        if interval.state is AgentState.NOT_READY and interval.reason in kinds:
            last = interval.end if last is None else max(last, interval.end)
    return last


def standing(
    ledger: AgentLedger, day_start: float, now: float, config: BreakConfig
) -> tuple[Allowance, float | None]:
    """Today's allowance and the last break's end: what a request is ordered by."""
    today = ledger.intervals_between(day_start, now, now)
    return allowance(today, config), last_break_end(ledger.intervals, config)


@dataclass(frozen=True, slots=True)
class BreakRequest:
    agent_id: str
    reason: NotReadyReason
    requested_at: float
    unused_s: float
    last_break_end: float | None

    def fair_key(self) -> tuple[float, float, float, str]:
        last = -math.inf if self.last_break_end is None else self.last_break_end
        return (-self.unused_s, last, self.requested_at, self.agent_id)


@dataclass(frozen=True, slots=True)
class BreakGrant:
    agent_id: str
    reason: NotReadyReason
    requested_at: float
    granted_at: float
    forced: bool = False  # granted because it reached max_wait_s, headroom or not

    @property
    def waited_s(self) -> float:
        return self.granted_at - self.requested_at


class BreakLine:
    """The fair line of break requests. Pure: no clock, every call takes ``now``."""

    def __init__(self, config: BreakConfig) -> None:
        self.config = config
        self._waiting: dict[str, BreakRequest] = {}

    def request(
        self,
        now: float,
        agent_id: str,
        reason: NotReadyReason,
        unused_s: float,
        last_break_end: float | None,
    ) -> BreakGrant | None:
        """Grant at once (reason not queued) or join the line and return None.

        Asking again while waiting keeps the place (and takes the new reason).
        """
        reason = NotReadyReason(reason)
        if reason not in self.config.queued_reasons:
            return BreakGrant(agent_id, reason, now, now)
        old = self._waiting.get(agent_id)
        if old is not None:
            self._waiting[agent_id] = replace(
                old, reason=reason, unused_s=unused_s, last_break_end=last_break_end
            )
        else:
            self._waiting[agent_id] = BreakRequest(agent_id, reason, now, unused_s, last_break_end)
        return None

    def cancel(self, agent_id: str) -> bool:
        return self._waiting.pop(agent_id, None) is not None

    def refresh(self, agent_id: str, unused_s: float, last_break_end: float | None) -> None:
        """Update the standing that orders the line (allowance keeps accruing while waiting)."""
        old = self._waiting.get(agent_id)
        if old is not None:
            self._waiting[agent_id] = replace(old, unused_s=unused_s, last_break_end=last_break_end)

    def waiting(self) -> list[BreakRequest]:
        """Requests in fair order."""
        return sorted(self._waiting.values(), key=BreakRequest.fair_key)

    def position(self, agent_id: str) -> int | None:
        """1-based place in the fair order."""
        for i, req in enumerate(self.waiting(), start=1):
            if req.agent_id == agent_id:
                return i
        return None

    def __len__(self) -> int:
        return len(self._waiting)

    def next_deadline(self) -> float | None:
        """When the oldest request reaches the maximum wait (schedule a decide then)."""
        if not self._waiting:
            return None
        return min(r.requested_at for r in self._waiting.values()) + self.config.max_wait_s

    def decide(self, now: float, spare: int) -> list[BreakGrant]:
        """Grant overdue requests, then up to ``spare`` more in fair order."""
        for req in self._waiting.values():
            if now < req.requested_at:
                raise ClockWentBackwardsError(f"break line ({req.agent_id})", now, req.requested_at)
        grants: list[BreakGrant] = []
        ordered = self.waiting()
        for req in ordered:
            # the same sum as next_deadline, so a decide scheduled then always grants
            if now >= req.requested_at + self.config.max_wait_s:
                grants.append(
                    BreakGrant(req.agent_id, req.reason, req.requested_at, now, forced=True)
                )
        room = max(0, spare - len(grants))
        done = {g.agent_id for g in grants}
        for req in ordered:
            if room == 0:
                break
            if req.agent_id not in done:
                grants.append(BreakGrant(req.agent_id, req.reason, req.requested_at, now))
                room -= 1
        for grant in grants:
            del self._waiting[grant.agent_id]
        return grants


def jain_index(values: Sequence[float]) -> float:
    """Jain's fairness index of non-negative values: 1/n (one has all) .. 1 (all equal)."""
    if not values:
        return 1.0
    if any(v < 0 for v in values):
        raise ValueError("Jain's index takes non-negative values")
    total = math.fsum(values)
    squares = math.fsum(v * v for v in values)
    if squares == 0:
        return 1.0
    return total * total / (len(values) * squares)


def fairness_index(allowances: Mapping[str, Allowance]) -> float:
    """Jain's index of taken/earned across agents who earned anything."""
    ratios = [r for a in allowances.values() if (r := a.ratio) is not None]
    return jain_index(ratios)

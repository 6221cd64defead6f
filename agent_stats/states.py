"""Agent states and not-ready reasons, and the groups other modules reason about.

Every second of an agent's shift belongs to exactly one ``(state, reason)`` pair;
``reason`` is set only for ``NOT_READY``. ``UNKNOWN`` is the neutral bucket for
time Shenava could not observe (the daemon was down, or the AMI link was lost
for longer than the trusted gap, see ``agent_stats.ledger``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeAlias

from agent_stats.errors import InvalidTransitionError


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    NOT_READY = "not_ready"
    UNKNOWN = "unknown"


class NotReadyReason(StrEnum):
    BREAK = "break"
    LUNCH = "lunch"
    PERSONAL = "personal"  # toilet, a drink: a right, never a performance problem
    TRAINING = "training"
    MEETING = "meeting"
    COACHING = "coaching"
    RECOVERY = "recovery"  # after an abusive call: granted at once, never counted
    TECHNICAL = "technical"
    MISSED = "missed"  # set by the system after a ring-no-answer


StateKey: TypeAlias = tuple[AgentState, NotReadyReason | None]
"""One ledger bucket: the state, and the reason when the state is ``NOT_READY``."""

LOGGED_IN_STATES = frozenset(AgentState) - {AgentState.LOGGED_OUT}
"""Time that earns break allowance. ``UNKNOWN`` is included: an outage of
Shenava must not cost the agent allowance."""

STAFFED_STATES = frozenset(
    {AgentState.READY, AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP}
)
"""Agents who take calls: the ``N`` of the Erlang C headroom prediction."""

HANDLING_STATES = frozenset({AgentState.ON_CALL, AgentState.WRAP_UP})
"""Busy with a call: the numerator of occupancy."""

REST_REASONS = frozenset(
    {
        NotReadyReason.BREAK,
        NotReadyReason.LUNCH,
        NotReadyReason.PERSONAL,
        NotReadyReason.RECOVERY,
    }
)
"""Not-ready reasons during which the agent rests (for "time since last break")."""


def check_key(state: AgentState, reason: NotReadyReason | None) -> StateKey:
    """Return the pair if valid; ``NOT_READY`` needs a reason and nothing else takes one."""
    state = AgentState(state)
    if state is AgentState.NOT_READY:
        if reason is None:
            raise InvalidTransitionError("not ready needs a reason")
        return state, NotReadyReason(reason)
    if reason is not None:
        raise InvalidTransitionError(f"state {state.value} takes no reason (got {reason!r})")
    return state, None

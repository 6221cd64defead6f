"""An agent as routing sees it: what it can take and whether it can take a call now.

The agent state machine and its time ledger belong to ``agent_stats``; routing
only reads a snapshot of the facts that choosing an agent needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    NOT_READY = "not_ready"
    RECOVERY = "recovery"


@dataclass(frozen=True, slots=True)
class AgentView:
    """A snapshot of one agent for routing.

    ``idle_since`` is when the agent last became free for a call (POSIX
    seconds); the agent idle longest has the smallest value. ``last_call_hard``
    says the agent's previous call was an abusive caller or a high-severity
    complaint; ``experienced`` marks agents trusted with callers reported as
    abusive.
    """

    agent_id: str
    languages: frozenset[str]
    skills: frozenset[str]
    state: AgentState = AgentState.READY
    idle_since: float = 0.0
    experienced: bool = False
    last_call_hard: bool = False

    def speaks(self, language: str) -> bool:
        return language in self.languages

    def has_skill(self, skill: str) -> bool:
        return skill in self.skills

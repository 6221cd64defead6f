"""Errors of routing, one class each, with a stable code for logs and APIs."""

from __future__ import annotations


class RoutingError(Exception):
    """Base of every routing error."""

    code = "routing.error"


class InvalidScoringConfigError(RoutingError, ValueError):
    """A scoring setting would break the ordering guarantees (e.g. no ageing)."""

    code = "routing.invalid_scoring_config"

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"routing.scoring.{key}: {problem}")


class CallAlreadyWaitingError(RoutingError):
    """A call joined the line twice; the second join would give it two places."""

    code = "routing.call_already_waiting"

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        super().__init__(f"call {call_id!r} is already waiting")


class CallAlreadyAssignedError(RoutingError):
    """A call that is being connected to an agent tried to join the line again."""

    code = "routing.call_already_assigned"

    def __init__(self, call_id: str, agent_id: str) -> None:
        self.call_id = call_id
        self.agent_id = agent_id
        super().__init__(f"call {call_id!r} is already assigned to agent {agent_id!r}")


class UnknownCallError(RoutingError, KeyError):
    """No waiting call, assignment or recorded decision has this id."""

    code = "routing.unknown_call"

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        super().__init__(f"no waiting or routed call {call_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class AgentNotReadyError(RoutingError, ValueError):
    """``on_agent_ready`` was given an agent whose state is not ready."""

    code = "routing.agent_not_ready"

    def __init__(self, agent_id: str, state: str) -> None:
        self.agent_id = agent_id
        self.state = state
        super().__init__(f"agent {agent_id!r} reported ready while in state {state!r}")

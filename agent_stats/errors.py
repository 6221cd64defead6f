"""Errors of the agent statistics domain, one class each, with a stable code."""

from __future__ import annotations


class AgentStatsError(Exception):
    """Base of every agent statistics error."""

    code = "agent_stats.error"


class ClockWentBackwardsError(AgentStatsError, ValueError):
    """An event is older than what is already recorded; accepting it would count time twice."""

    code = "agent_stats.clock_went_backwards"

    def __init__(self, what: str, now: float, latest: float) -> None:
        self.what = what
        self.now = now
        self.latest = latest
        super().__init__(f"{what}: time {now!r} is before the latest recorded time {latest!r}")


class InvalidTransitionError(AgentStatsError, ValueError):
    """A state change that cannot be recorded as given (e.g. not ready without a reason)."""

    code = "agent_stats.invalid_transition"


class InvalidCallRecordError(AgentStatsError, ValueError):
    """A call record whose times are out of order or whose outcome is missing."""

    code = "agent_stats.invalid_call_record"


class InvalidConfigError(AgentStatsError, ValueError):
    """A configuration value out of its range; ``key`` names the field."""

    code = "agent_stats.invalid_config"

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")


class BadSnapshotError(AgentStatsError, ValueError):
    """A stored form (dict or hash fields) that cannot be read back."""

    code = "agent_stats.bad_snapshot"

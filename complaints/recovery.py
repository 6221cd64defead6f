"""Recovery after an abusive call: the reporting agent goes not ready (``recovery``) at once.

"At once" means now if the agent is free to change state; if they are still
on the call (or their phone rings), the moment that call ends, before wrap-up
can hand them the next one. Recovery is never counted against the agent's
allowance (agent_stats treats the reason so); it ends when the agent makes
themselves ready again: ``duration_s`` is offered, not imposed.
"""

from __future__ import annotations

from twisted.logger import Logger

from agent_stats.roster import AgentBusyError, AgentChange, AgentRoster
from agent_stats.states import AgentState, NotReadyReason
from complaints.abuse import RecoveryGrant
from shenava_base.clock import Clock

log = Logger()

_ON_A_CALL = frozenset({AgentState.RINGING, AgentState.ON_CALL})


class RecoveryKeeper:
    """``ComplaintRegister``'s ``on_recovery`` hook, acting on the roster."""

    def __init__(self, roster: AgentRoster, clock: Clock) -> None:
        self._roster = roster
        self._clock = clock
        self._pending: dict[str, RecoveryGrant] = {}
        roster.subscribe(self._on_agent_change)

    @property
    def pending(self) -> frozenset[str]:
        """Agents whose recovery starts when their current call ends."""
        return frozenset(self._pending)

    def __call__(self, grant: RecoveryGrant) -> None:
        if grant.agent_id not in self._roster:
            log.warn(
                "recovery for abuse report {report} not granted: no agent {agent} on the roster",
                report=grant.report_id, agent=grant.agent_id,
            )
            return
        status = self._roster.get(grant.agent_id)
        if status.state in _ON_A_CALL:
            self._pending[grant.agent_id] = grant
            return
        self._start(grant)

    def _on_agent_change(self, change: AgentChange) -> None:
        grant = self._pending.get(change.agent_id)
        if grant is not None and change.new not in _ON_A_CALL:
            del self._pending[change.agent_id]
            self._start(grant)

    def _start(self, grant: RecoveryGrant) -> None:
        status = self._roster.get(grant.agent_id)
        if status.state is AgentState.LOGGED_OUT or status.reason is NotReadyReason.RECOVERY:
            return
        try:
            self._roster.set_not_ready(grant.agent_id, NotReadyReason.RECOVERY, self._clock.seconds())
        except AgentBusyError as exc:
            log.warn("recovery for {agent} not started: {error}", agent=grant.agent_id, error=str(exc))
            return
        log.info(
            "agent {agent} in recovery after abuse report {report} ({minutes:.0f} min offered)",
            agent=grant.agent_id, report=grant.report_id, minutes=grant.duration_s / 60,
        )

"""The break desk: requests, the fair line, grants, grants that wait for a call, recovery.

:class:`BreakDesk` is the part of :class:`~agent_stats.service.StatsService`
that grants breaks. ``request`` grants at once what the config does not queue,
and puts the rest in the fair :class:`~agent_stats.breaks.BreakLine`;
``decide`` runs on every request, every state change (``decide_soon``), every
tick and at the line's next deadline, with the spare agents the service
computes (Erlang C on recent traffic, or an injected ``headroom`` policy). A
grant makes the agent not ready at once if they are free, or right after their
call. A grant waiting for a call is kept in Redis (``breakpending``) and
restored at start-up (``restore_pending``): it waits on if the agent's call is
seen again, starts when the agent leaves the ``technical`` state they resume in
after a call nobody could follow (they press ready), and starts at once if
they are free.

The desk owns the line, the grants still to start and their timers; the
ledgers are the roster's, the writes go through ``submit``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from agent_stats.breaks import BreakConfig, BreakGrant, BreakLine
from agent_stats.errors import AgentStatsError
from agent_stats.roster import AgentBusyError, AgentRoster
from agent_stats.states import AgentState, NotReadyReason, StateKey
from agent_stats.store import (
    BreakCancelled,
    BreakGranted,
    BreakRecord,
    BreakRequested,
    BreakStarted,
    Operation,
)
from shenava_base.clock import Clock

log = Logger()

BUSY = frozenset({AgentState.RINGING, AgentState.ON_CALL})
"""An agent granted a break in these states starts it right after the call."""
TECHNICAL: StateKey = (AgentState.NOT_READY, NotReadyReason.TECHNICAL)


@dataclass(frozen=True, slots=True)
class BreakAnswer:
    """What a break request got: ``granted`` (not ready now), ``after_call`` or ``waiting``."""

    agent_id: str
    reason: NotReadyReason
    status: str
    requested_at: float
    position: int | None = None


class BreakDesk:
    """The break line, the grants and the grants waiting for a call to end."""

    def __init__(
        self,
        *,
        roster: AgentRoster,
        clock: Clock,
        config: BreakConfig,
        submit: Callable[[Operation], None],
        standing: Callable[[str, float], tuple[float, float | None]],
        spare: Callable[[float], int],
        predicted: Callable[[float], float],
        mark_live: Callable[[], None],
    ) -> None:
        self.roster = roster
        self.clock = clock
        self.config = config
        self._submit = submit
        self._standing = standing
        self._spare = spare
        self._predicted = predicted
        self._mark_live = mark_live
        self.line = BreakLine(config)
        self.pending_grants: dict[str, BreakGrant] = {}
        self.held: set[str] = set()
        """Restored pending grants of agents resumed as not ready ``technical`` (their call
        could not be followed): they start when the agent leaves that state (presses ready)."""
        self.grants: list[BreakRecord] = []
        """Today's grants (pruned at the heartbeat); ``grants_made`` counts them all."""
        self.grants_made = 0
        self.break_wait_max_s = 0.0
        """The longest wait of a grant since the start."""
        self._deadline_call: IDelayedCall | None = None
        self._decide_call: IDelayedCall | None = None
        self._start_calls: dict[str, Any] = {}

    def stop(self) -> None:
        """Cancel the timers (the deadline, a decision to come, grants about to start)."""
        for call in (self._deadline_call, self._decide_call, *self._start_calls.values()):
            if call is not None and call.active():
                call.cancel()
        self._start_calls.clear()
        self._deadline_call = self._decide_call = None

    def forget_before(self, today: float) -> None:
        """Today's grants only (the figures read no more)."""
        if self.grants and (self.grants[0].granted_at or today) < today:
            self.grants = [g for g in self.grants if (g.granted_at or today) >= today]

    # -- requests -----------------------------------------------------------------

    def request(self, agent_id: str, reason: NotReadyReason, now: float) -> BreakAnswer:
        """An agent asks for a break: granted now, after the call, or a place in the line."""
        reason = NotReadyReason(reason)
        status = self.roster.get(agent_id)
        if status.state is AgentState.LOGGED_OUT:
            raise AgentBusyError(f"agent {agent_id} is logged out: log in first")
        if reason is NotReadyReason.RECOVERY:
            return self.grant_recovery(agent_id, now)
        unused, last = self._standing(agent_id, now)
        grant = self.line.request(now, agent_id, reason, unused, last)
        if grant is not None:
            return self._answer(self._apply(grant, now), now)
        requested_at = next(r.requested_at for r in self.line.waiting() if r.agent_id == agent_id)
        self._submit(BreakRequested(BreakRecord(agent_id, reason, requested_at)))
        self.decide(now)
        position = self.line.position(agent_id)
        if position is not None:
            self._mark_live()
            log.info(
                "break for {agent_id} waits at place {position} of the break line: the headroom "
                "gate says no ({why})",
                agent_id=agent_id, position=position, gate="headroom", why=self.wait_reason(now),
            )
            return BreakAnswer(agent_id, reason, "waiting", requested_at, position)
        grant_now = self.pending_grants.get(agent_id)
        status_word = "after_call" if grant_now is not None else "granted"
        return BreakAnswer(agent_id, reason, status_word, requested_at)

    def cancel(self, agent_id: str) -> bool:
        """Withdraw a waiting request (or a grant not yet started)."""
        found = self.line.cancel(agent_id)
        found = self.pending_grants.pop(agent_id, None) is not None or found
        self.held.discard(agent_id)
        if found:
            self._submit(BreakCancelled(agent_id))
            self._mark_live()
        return found

    def grant_recovery(self, agent_id: str, now: float) -> BreakAnswer:
        """Recovery after an abusive call: at once, or right after the current call."""
        grant = BreakGrant(agent_id, NotReadyReason.RECOVERY, now, now)
        return self._answer(self._apply(grant, now), now)

    def _answer(self, grant: BreakGrant, now: float) -> BreakAnswer:
        word = "after_call" if grant.agent_id in self.pending_grants else "granted"
        return BreakAnswer(grant.agent_id, grant.reason, word, grant.requested_at)

    def wait_reason(self, now: float) -> str:
        """Why the break line does not move now, in words (for the log)."""
        staffed = self.roster.staffed
        pending = len(self.pending_grants)
        predicted = self._predicted(now)
        return (
            f"{staffed} agents staffed, {pending} grants still to start, service level predicted "
            f"with one agent fewer {predicted:.0%}, target {self.config.headroom_target:.0%}, "
            f"at least {self.config.min_staffed} staffed"
        )

    # -- the agents' changes -------------------------------------------------------------

    def on_agent_change(self, agent_id: str, new_reason: NotReadyReason | None) -> None:
        """An agent changed state: cancel what no longer applies, start a grant now due."""
        status = self.roster.get(agent_id)
        state = status.state
        if state is AgentState.LOGGED_OUT:
            if self.pending_grants.pop(agent_id, None) is not None:
                self._submit(BreakCancelled(agent_id))
            self.held.discard(agent_id)
            if self.line.cancel(agent_id):
                self._submit(BreakCancelled(agent_id))
        elif state is AgentState.NOT_READY:
            if new_reason in self.config.queued_reasons and self.line.cancel(agent_id):
                self._submit(BreakCancelled(agent_id))
        if agent_id in self.held and (state, status.reason) != TECHNICAL:
            self.held.discard(agent_id)
        if agent_id in self.pending_grants and state not in BUSY and agent_id not in self.held:
            self._start_soon(agent_id)

    def restore_waiting(self, record: BreakRecord, now: float) -> None:
        """A request that waited in the line before the restart: back in, with its request time."""
        status = self.roster.get(record.agent_id) if record.agent_id in self.roster else None
        if status is None or status.state is AgentState.LOGGED_OUT:
            self._submit(BreakCancelled(record.agent_id))
            return
        unused, last = self._standing(record.agent_id, now)
        self.line.request(record.requested_at, record.agent_id, record.reason, unused, last)

    def restore_pending(self, record: BreakRecord) -> None:
        """A grant that waited for a call before the restart: waits on, or starts now."""
        agent_id = record.agent_id
        status = self.roster.get(agent_id) if agent_id in self.roster else None
        if status is None or status.state is AgentState.LOGGED_OUT or record.granted_at is None:
            self._submit(BreakCancelled(agent_id))
            return
        self.pending_grants[agent_id] = BreakGrant(
            agent_id, record.reason, record.requested_at, record.granted_at, record.forced
        )
        if status.state in BUSY:
            return  # the call was seen again: the grant starts when it ends
        if (status.state, status.reason) == TECHNICAL:
            self.held.add(agent_id)  # resumed from a call nobody follows: when they are back
            return
        self._start_soon(agent_id)

    # -- deciding -------------------------------------------------------------------

    def decide(self, now: float) -> list[BreakGrant]:
        """Grant what the line allows now; schedule the next deadline."""
        if not len(self.line):
            return []
        for request in self.line.waiting():
            unused, last = self._standing(request.agent_id, now)
            self.line.refresh(request.agent_id, unused, last)
        grants = self.line.decide(now, max(0, self._spare(now)))
        for grant in grants:
            self._apply(grant, now)
        self.schedule_deadline()
        if grants:
            self._mark_live()
        return grants

    def _apply(self, grant: BreakGrant, now: float) -> BreakGrant:
        record = BreakRecord(
            grant.agent_id, grant.reason, grant.requested_at, grant.granted_at, grant.forced
        )
        self.grants.append(record)
        self.grants_made += 1
        self.break_wait_max_s = max(self.break_wait_max_s, record.waited_s or 0.0)
        status = self.roster.get(grant.agent_id)
        self._submit(BreakGranted(record, after_call=status.state in BUSY))
        log.info(
            "break granted to {agent} ({reason}) after {waited:.0f} s{forced}",
            agent=grant.agent_id, reason=grant.reason.value, waited=grant.waited_s,
            forced=" (maximum wait reached)" if grant.forced else "",
        )
        if status.state in BUSY:
            self.pending_grants[grant.agent_id] = grant
        else:
            self.pending_grants.pop(grant.agent_id, None)
            self.held.discard(grant.agent_id)
            if status.state is not AgentState.LOGGED_OUT:
                self._go_not_ready(grant.agent_id, grant.reason, now)
        return grant

    def _start_soon(self, agent_id: str) -> None:
        if agent_id not in self._start_calls:
            self._start_calls[agent_id] = self.clock.callLater(0, self._start_pending, agent_id)

    def _start_pending(self, agent_id: str) -> None:
        self._start_calls.pop(agent_id, None)
        grant = self.pending_grants.get(agent_id)
        if grant is None or self.roster.get(agent_id).state in BUSY or agent_id in self.held:
            return
        del self.pending_grants[agent_id]
        self._submit(BreakStarted(agent_id))
        self._go_not_ready(agent_id, grant.reason, self.clock.seconds())

    def _go_not_ready(self, agent_id: str, reason: NotReadyReason, now: float) -> None:
        try:
            self.roster.set_not_ready(agent_id, reason, now)
        except AgentStatsError as exc:
            log.warn("break for {agent} not started: {error}", agent=agent_id, error=exc)

    def decide_soon(self) -> None:
        # not inside a roster notification: a grant changes the roster again
        if len(self.line) and self._decide_call is None:
            self._decide_call = self.clock.callLater(0, self._decide_now)

    def _decide_now(self) -> None:
        self._decide_call = None
        self.decide(self.clock.seconds())

    def schedule_deadline(self) -> None:
        deadline = self.line.next_deadline()
        call = self._deadline_call
        if call is not None and call.active():
            if deadline is not None and call.getTime() == deadline:
                return
            call.cancel()
        self._deadline_call = None
        if deadline is not None:
            delay = max(0.0, deadline - self.clock.seconds())
            self._deadline_call = self.clock.callLater(delay, self._deadline_reached)

    def _deadline_reached(self) -> None:
        self._deadline_call = None
        self.decide(self.clock.seconds())

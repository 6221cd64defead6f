"""The start-up restore: the ledgers, SL counters and break line read back from Redis.

:class:`Restorer` is what ``StatsService.start`` runs (and retries while Redis
cannot be read) before any write goes out:

* each agent's stored ledger is put back into the roster (``merge``), the
  unobserved time since the daemon's last heartbeat accounted by
  ``AgentLedger.reconcile`` (up to ``trust_gap_s``: the last state, so a break
  in progress continues; longer: ``UNKNOWN``). A call in progress cannot be
  followed by a new daemon: ``ON_CALL`` resumes as not ready ``TECHNICAL`` (the
  agent presses ready), ``RINGING`` and ``WRAP_UP`` resume as ready, unless the
  take-over settles them (``keep_states``). Changes the roster saw before the
  reconciliation finished are replayed after it, so nothing is counted twice;
* the SL counters of the day, the window and the current interval are read
  back (``live_keys``), and the break line is restored with its original
  request times, grants waiting for a call too (the break desk's
  ``restore_waiting``, ``restore_pending``).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger

from agent_stats.break_desk import BreakDesk
from agent_stats.errors import ClockWentBackwardsError
from agent_stats.ledger import RECONCILE_TRUST_GAP_S, AgentLedger, Interval
from agent_stats.roster import AgentRoster
from agent_stats.sla import (
    BucketKey,
    BucketKind,
    SLAConfig,
    SLATally,
    day_start,
    interval_start,
    rolling_window_start,
)
from agent_stats.states import STAFFED_STATES, AgentState, NotReadyReason, StateKey
from agent_stats.store import LedgerWrite, Operation, StatsStore
from agent_stats.writer import StoreWriter
from shenava_base.clock import Clock

log = Logger()

# What a new daemon resumes an agent in, when the old one left them in a call state.
RESUME: dict[AgentState, StateKey] = {
    AgentState.ON_CALL: (AgentState.NOT_READY, NotReadyReason.TECHNICAL),
    AgentState.RINGING: (AgentState.READY, None),
    AgentState.WRAP_UP: (AgentState.READY, None),
}


class Restorer:
    """Reads the stored statistics back into the roster, the tally and the break desk."""

    def __init__(
        self,
        *,
        store: StatsStore,
        roster: AgentRoster,
        clock: Clock,
        sla: SLAConfig,
        tally: SLATally,
        writer: StoreWriter,
        desk: BreakDesk,
        look_at: Callable[[str], None],
        trust_gap_s: float = RECONCILE_TRUST_GAP_S,
    ) -> None:
        self.store = store
        self.roster = roster
        self.clock = clock
        self.sla = sla
        self.tally = tally
        self.writer = writer
        self.desk = desk
        self._look_at = look_at
        self.trust_gap_s = trust_gap_s
        self.keep_states: frozenset[AgentState] = frozenset()
        """States a restored ledger resumes as they were (not as ``RESUME`` says)
        because someone else settles them: with call state in Redis, the
        take-over keeps an agent on a call that survived the restart on it, and
        ends the others in wrap-up (shenava.takeover)."""
        self.restored_agents: list[str] = []

    async def restore(self) -> None:
        store = self.store
        heartbeat = await store.heartbeat()
        ids = [status.profile.agent_id for status in self.roster]
        stored = await store.load_ledgers(ids, self.clock.seconds())
        waiting = await store.break_line()
        pending = await store.pending_grants()
        queues = set(await store.queues())
        now = self.clock.seconds()
        keys = [k for q in sorted(queues) for k in self.live_keys(q, now)]
        counts = await store.buckets(keys)
        now = self.clock.seconds()
        for key, c in zip(keys, counts, strict=True):
            self.tally.merge(key, c)
        front: list[Operation] = []
        for agent_id, item in stored.items():
            if item.repaired:
                log.warn(
                    "agent {agent}: stored ledger repaired ({n} overlaps or gaps)",
                    agent=agent_id, n=item.repaired,
                )
            front.extend(self.merge(item.ledger, heartbeat.at, heartbeat.link_lost_at, now))
        self.writer.submit_front(front)
        for record in waiting:
            self.desk.restore_waiting(record, now)
        for record in pending:
            self.desk.restore_pending(record)
        self.desk.schedule_deadline()

    def live_keys(self, queue: str, now: float) -> list[BucketKey]:
        first = rolling_window_start(now, self.sla)
        slots = [
            BucketKey(queue, BucketKind.SLOT, first + i * self.sla.slot_s)
            for i in range(self.sla.window_slots)
        ]
        return [
            *slots,
            BucketKey(queue, BucketKind.INTERVAL, interval_start(now, self.sla)),
            BucketKey(queue, BucketKind.DAY, day_start(now, self.sla)),
        ]

    def merge(
        self, stored: AgentLedger, heartbeat: float | None, link_lost_at: float | None, now: float
    ) -> list[Operation]:
        """Put a stored ledger back, accounting for the time nobody watched."""
        agent_id = stored.agent_id
        current = self.roster.get(agent_id).ledger
        seen = stored.since if heartbeat is None else heartbeat
        if link_lost_at is not None and stored.state in STAFFED_STATES:
            seen = min(seen, link_lost_at)
        changed = bool(current.intervals) or current.state is not AgentState.LOGGED_OUT
        try:
            if not changed:
                resume = None if stored.state in self.keep_states else RESUME.get(stored.state)
                closed = stored.reconcile(seen, now, resume, trust_gap_s=self.trust_gap_s)
            else:
                # the roster moved before we were back: the stored ledger runs up to
                # the roster's start, then come the roster's own (already queued) intervals
                origin = current.origin
                closed = stored.reconcile(
                    seen, origin, (AgentState.LOGGED_OUT, None), trust_gap_s=self.trust_gap_s
                )
                tail = (
                    [Interval(stored.since, origin, stored.state, stored.reason)]
                    if stored.since < origin else []
                )
                closed += tail
                stored = AgentLedger(
                    agent_id, current.since, current.state, current.reason,
                    [*stored.intervals, *tail, *current.intervals],
                )
        except ClockWentBackwardsError as exc:
            log.error("agent {agent}: stored ledger not restored: {error}", agent=agent_id, error=exc)
            return []
        self.restored_agents.append(agent_id)
        self._look_at(agent_id)
        op = LedgerWrite(agent_id, tuple(closed), stored.since, stored.state, stored.reason)
        self.roster.restore(stored)
        return [op]

"""The live statistics: ledgers persisted, SL counted, breaks granted fairly, wellbeing watched.

:class:`StatsService` is the facade the composition root and the HTTP pages
use. It listens to the roster (agent state changes), to routing (call
outcomes) and to the AMI link, keeps the live figures in memory, and writes
through a :class:`~agent_stats.writer.StoreWriter` (ordered batches, never
blocking the reactor). Every decision uses the injected clock. It owns the
lifecycle (``start`` with its retry loop, the heartbeat ``tick``, ``stop``),
the ledger wiring (each change written, the AMI link's outages reconciled,
``prune_ledgers``); the rest is done by small collaborators it holds, one
concept each:

==========================  =================================================================
``figures``                 :class:`~agent_stats.agent_figures.AgentFigures`: each agent's
                            running day and call log, ``standing``, ``prune_ledgers``
``restorer``                :class:`~agent_stats.restore.Restorer`: the start-up restore
                            (ledgers merged with the unobserved gap, SL buckets, break line)
``calls``                   :class:`~agent_stats.outcomes.CallCounter`: routing's events to
                            SL outcomes (``ROUTING_HANDLERS``), traffic, call logs
``recent``                  :class:`~agent_stats.traffic.RecentTraffic`: Erlang C's input
                            for ``spare`` and the headroom service levels
``desk``                    :class:`~agent_stats.break_desk.BreakDesk`: break requests, the
                            fair line, grants, grants waiting for a call, recovery
``watch``                   :class:`~agent_stats.watch.WellbeingWatch`: ``check_wellbeing``,
                            alerts, glances, ``signals``
(function)                  :func:`~agent_stats.live.live_figures`: ``snapshot``
==========================  =================================================================

AMI link: while it is down, agents who take calls (ready, ringing, on a call,
wrap-up) are not observed; when it comes back their gap is reconciled the same
way as at start-up. Agents not ready or logged out change only through
Shenava, so they stay observed.

The in-memory ledgers are pruned on every tick to the last
``occupancy_window_s`` (``prune_ledgers``): the day's figures are running sums
(``running.AgentDay``) folded in before an interval is dropped; a restart reads
the stored days back.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from agent_stats.agent_figures import AgentFigures
from agent_stats.break_desk import BreakAnswer as BreakAnswer  # re-exported
from agent_stats.break_desk import BreakDesk
from agent_stats.breaks import (
    Allowance,
    BreakConfig,
    BreakGrant,
    BreakLine,
    fairness_index,
)
from agent_stats.erlang import PredictedLevels, Traffic, spare_agents
from agent_stats.ledger import RECONCILE_TRUST_GAP_S, AgentLedger
from agent_stats.live import counts_dict as counts_dict  # re-exported
from agent_stats.live import live_figures
from agent_stats.outcomes import CallCounter
from agent_stats.restore import Restorer
from agent_stats.roster import AgentChange, AgentRoster
from agent_stats.running import (
    AgentDay,
    CallLog,
    Glance,
    WindowSums,
)
from agent_stats.sla import (
    CallRecord,
    SLAConfig,
    SLATally,
    day_start,
)
from agent_stats.states import (
    STAFFED_STATES,
    AgentState,
    NotReadyReason,
)
from agent_stats.store import (
    AlertRecord,
    BreakRecord,
    HeartbeatWrite,
    LedgerWrite,
    Operation,
    OutcomeWrite,
    StatsStore,
)
from agent_stats.traffic import MIN_TRAFFIC_WINDOW_S as MIN_TRAFFIC_WINDOW_S  # re-exported
from agent_stats.traffic import TRAFFIC_WINDOW_S as TRAFFIC_WINDOW_S  # re-exported
from agent_stats.traffic import RecentTraffic
from agent_stats.watch import HANDLED_KEEP_S as HANDLED_KEEP_S  # re-exported
from agent_stats.watch import SIGNALS_REFRESH_S as SIGNALS_REFRESH_S  # re-exported
from agent_stats.watch import WellbeingWatch
from agent_stats.wellbeing import (
    Alert,
    AlertKind,
    WellbeingConfig,
    WellbeingSignals,
)
from agent_stats.wellbeing_looks import OCCUPANCY_LOOK, WHOLE_LOOK
from agent_stats.writer import StoreWriter
from routing.events import (
    RoutingEvent,
)
from shenava_base.aio import as_deferred
from shenava_base.clock import Clock

log = Logger()

HEARTBEAT_S = 15.0
RESTORE_RETRY_INITIAL_S = 0.5
RESTORE_RETRY_MAX_S = 5.0
"""Short: the journal holds the SL outcomes back until the restore is done."""
FAIRNESS_EVERY_S = 300.0
"""How often the day's Jain index is recomputed (from the running allowances)."""
DEFAULT_QUEUE = "complaints"

Headroom = Callable[[int, float], int]
"""``(staffed agents, now) -> spare agents``: a policy other than Erlang C."""


class StatsService:
    def __init__(
        self,
        *,
        store: StatsStore,
        roster: AgentRoster,
        clock: Clock,
        sla: SLAConfig,
        breaks: BreakConfig,
        wellbeing: WellbeingConfig,
        default_queue: str = DEFAULT_QUEUE,
        queue_of: Callable[[RoutingEvent], str] | None = None,
        headroom: Headroom | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        trust_gap_s: float = RECONCILE_TRUST_GAP_S,
        traffic_window_s: float = TRAFFIC_WINDOW_S,
    ) -> None:
        self.store = store
        self.roster = roster
        self.clock = clock
        self.sla = sla
        self.break_config = breaks
        self.wellbeing = wellbeing
        self.default_queue = default_queue
        self._queue_of: Callable[[RoutingEvent], str] = queue_of or (lambda event: default_queue)
        self._headroom = headroom
        self._heartbeat_s = heartbeat_s
        self._trust_gap_s = trust_gap_s
        self.writer = StoreWriter(store, clock, paused=True)
        self.tally = SLATally(sla)
        self.figures = AgentFigures(roster=roster, sla=sla, breaks=breaks, wellbeing=wellbeing)
        self.recent = RecentTraffic(clock.seconds(), traffic_window_s)
        self._levels = PredictedLevels()
        """Erlang C for the headroom levels, its recursion kept while the traffic stays."""
        self.desk = BreakDesk(
            roster=roster, clock=clock, config=breaks, submit=self.writer.submit,
            standing=self._standing, spare=self.spare, predicted=self.headroom_service_level,
            mark_live=self._mark_live,
        )
        self.watch = WellbeingWatch(
            roster=roster, sla=sla, wellbeing=wellbeing, agent_day=self._agent_day,
            call_log=self._call_log, submit=self.writer.submit,
        )
        self.calls = CallCounter(
            tally=self.tally, queue_of=self._queue_of, submit=self.writer.submit,
            recent=self.recent, call_log=self._call_log, watch=self.watch,
        )
        self.writer.on_recovered = self._recovered
        self.restorer = Restorer(
            store=store, roster=roster, clock=clock, sla=sla, tally=self.tally,
            writer=self.writer, desk=self.desk, look_at=self._look_at, trust_gap_s=trust_gap_s,
        )
        self.fairness_today = 1.0
        self._fairness_at = -math.inf
        self._seen_until = self.recent.started_at
        self._link_lost_at: float | None = None
        self._live_dirty = True
        self._heartbeat: LoopingCall | None = None
        self.started: Deferred[None] | None = None
        self._stopped = False
        self._restore_call: IDelayedCall | None = None
        self.journal_health: Callable[[], dict[str, Any]] | None = None
        """The daemon's journal figures (``/metrics``), when it has one."""
        roster.subscribe(self.on_agent_change)

    # -- wiring -------------------------------------------------------------------

    def attach(self, dispatcher: Any = None, connection: Any = None) -> None:
        """Listen to routing events and to the AMI link's state."""
        if dispatcher is not None:
            dispatcher.subscribe(self.on_routing_event)
        if connection is not None:
            connection.add_state_observer(self.on_link_state)

    def start(self) -> Deferred[None]:
        """Reconcile with Redis, then let writes out and start the heartbeat.

        While Redis cannot be read the service waits and tries again (backing
        off to ``RESTORE_RETRY_MAX_S``), saying so; it never starts afresh over
        stored ledgers, and its writes wait (in order) until the restore is done.
        """
        started: Deferred[None] = Deferred()
        self.started = started
        self._restore_attempt(started, RESTORE_RETRY_INITIAL_S)
        return started

    def _restore_attempt(self, started: Deferred[None], delay: float) -> None:
        if self.started is not started:
            return  # stopped or restarted meanwhile
        d: Deferred[None] = as_deferred(self._restore())

        def ok(_: object) -> None:
            self._restore_call = None
            self._started()
            started.callback(None)

        def failed(failure: Failure) -> None:
            log.warn(
                "statistics not restored from Redis yet ({error}); stored state is kept, "
                "next try in {delay:.1f} s",
                error=failure.getErrorMessage(), delay=delay,
            )
            self._restore_call = self.clock.callLater(
                delay, self._restore_attempt, started, min(RESTORE_RETRY_MAX_S, delay * 2)
            )

        d.addCallbacks(ok, failed)

    def _started(self) -> None:
        self.writer.resume()
        loop = LoopingCall(self.tick)
        loop.clock = self.clock  # type: ignore[assignment]
        self._heartbeat = loop
        loop.start(self._heartbeat_s, now=True).addErrback(
            lambda f: log.failure("statistics heartbeat failed", failure=f)
        )

    def stop(self, *, graceful: bool = True) -> Deferred[None]:
        """Stop the heartbeat and timers, write a last heartbeat (if ``graceful``), and flush.

        ``graceful=False`` is a crash as Redis sees it: what was written stays,
        the heartbeat stops where it was.
        """
        self._stopped = True
        loop, self._heartbeat = self._heartbeat, None
        if loop is not None and loop.running:
            loop.stop()
        restore, self._restore_call = self._restore_call, None
        if restore is not None and restore.active():
            restore.cancel()
        if self.started is not None and not self.started.called:
            # never restored (Redis away since the start): nothing was written, and
            # the ledgers' state is reconciled again at the next start
            self.started = None
            self.writer.stop()
            return succeed(None)
        self.desk.stop()
        if graceful:
            self.writer.submit(HeartbeatWrite(self.clock.seconds(), self._link_lost_at))
        d = self.writer.flushed()

        def done(result: object) -> object:
            self.writer.stop()
            return result

        d.addBoth(done)
        return d

    def flushed(self) -> Deferred[None]:
        return self.writer.flushed()

    # -- start-up reconciliation -----------------------------------------------------

    async def _restore(self) -> None:
        await self.restorer.restore()
        self._live_dirty = True

    def _merge(
        self, stored: AgentLedger, heartbeat: float | None, link_lost_at: float | None, now: float
    ) -> list[Operation]:
        return self.restorer.merge(stored, heartbeat, link_lost_at, now)

    @property
    def keep_states(self) -> frozenset[AgentState]:
        """States a restored ledger resumes as they were (``Restorer.keep_states``)."""
        return self.restorer.keep_states

    @keep_states.setter
    def keep_states(self, states: frozenset[AgentState]) -> None:
        self.restorer.keep_states = states

    @property
    def restored_agents(self) -> list[str]:
        return self.restorer.restored_agents

    # -- agents -----------------------------------------------------------------

    def on_agent_change(self, change: AgentChange) -> None:
        agent_id = change.agent_id
        look = self.watch.look_filter.change_look(change, self.active_alerts.get(agent_id, ()))
        if look is WHOLE_LOOK:
            self._look_at(agent_id)
        elif look is OCCUPANCY_LOOK:
            self.watch.look_at_occupancy(agent_id)
        status = self.roster.get(agent_id)
        ledger = status.ledger
        self.writer.submit(
            LedgerWrite(agent_id, change.closed, ledger.since, ledger.state, ledger.reason)
        )
        for interval in change.closed:
            if interval.state is AgentState.WRAP_UP:
                self.recent.handled(change.at, interval.duration)
        self.desk.on_agent_change(agent_id, change.new_reason)
        if status.state is AgentState.LOGGED_OUT:
            self.active_alerts.pop(agent_id, None)
        self._mark_live()
        self.desk.decide_soon()

    def _look_at(self, agent_id: str) -> None:
        self.watch.look_at(agent_id)

    def on_link_state(self, state: Any) -> None:
        """``ami_bridge.connection.ConnectionState``: reconcile after an outage."""
        if self._stopped:
            # The daemon is stopping: the AMI link closes after the last
            # heartbeat was written; that is a clean stop, not an outage.
            return
        now = self.clock.seconds()
        value = getattr(state, "value", state)
        if value == "disconnected":
            if self._link_lost_at is None:
                self._link_lost_at = now
                self.writer.submit(HeartbeatWrite(now, now))
                log.info("statistics: AMI link lost, agents taking calls unobserved")
            return
        if value != "connected" or self._link_lost_at is None:
            return
        lost, self._link_lost_at = self._link_lost_at, None
        for status in self.roster:
            if status.state not in STAFFED_STATES:
                continue
            change = self.roster.reconcile(
                status.profile.agent_id, lost, now, trust_gap_s=self._trust_gap_s
            )
            if change is not None:
                self._look_at(change.agent_id)
                ledger = status.ledger
                self.writer.submit(
                    LedgerWrite(change.agent_id, change.closed, ledger.since, ledger.state,
                                ledger.reason)
                )
        self._seen_until = now
        self.writer.submit(HeartbeatWrite(now, None))
        self._mark_live()

    # -- calls ------------------------------------------------------------------

    def on_routing_event(self, event: RoutingEvent) -> None:
        """One of routing's events (:mod:`routing.events`), handled by its type."""
        handle = self.ROUTING_HANDLERS.get(type(event))
        if handle is None:
            return  # CallOffered: an offer changes no figure
        handle(self.calls, event)
        self._mark_live()

    def _recovered(self, op: OutcomeWrite) -> None:
        """An outcome an earlier run (or a take-over's recount) left out of the live figures."""
        self.calls.recovered(op)
        self._mark_live()

    ROUTING_HANDLERS: Mapping[type[RoutingEvent], Callable[[CallCounter, Any], None]] = (
        CallCounter.HANDLERS
    )
    """Routing's events this service counts, by type (``agent_stats.outcomes``)."""

    def record_outcome(self, record: CallRecord, agent_id: str | None = None, hard: bool = False) -> None:
        """Count one outcome (live and in Redis)."""
        self.calls.record_outcome(record, agent_id, hard)

    # -- breaks -----------------------------------------------------------------

    def agent_day(self, agent_id: str) -> AgentDay:
        """The agent's running figures of the day (allowance, not-ready time), kept as it goes."""
        return self.figures.day(agent_id)

    def _agent_day(self, agent_id: str) -> AgentDay:
        return self.figures.day(agent_id)

    def _call_log(self, agent_id: str) -> CallLog:
        return self.figures.call_log(agent_id)

    @property
    def _call_logs(self) -> dict[str, CallLog]:
        return self.figures.call_logs

    def _standing(self, agent_id: str, now: float) -> tuple[float, float | None]:
        """Today's unused allowance and the last break's end (``AgentFigures.standing``)."""
        return self.figures.standing(agent_id, now)

    def request_break(
        self, agent_id: str, reason: NotReadyReason, now: float | None = None
    ) -> BreakAnswer:
        """An agent asks for a break: granted now, after the call, or a place in the line."""
        return self.desk.request(agent_id, reason, self.clock.seconds() if now is None else now)

    def cancel_break(self, agent_id: str) -> bool:
        """Withdraw a waiting request (or a grant not yet started)."""
        return self.desk.cancel(agent_id)

    def grant_recovery(self, agent_id: str, now: float | None = None) -> BreakAnswer:
        """Recovery after an abusive call: at once, or right after the current call."""
        return self.desk.grant_recovery(agent_id, self.clock.seconds() if now is None else now)

    def break_wait_reason(self, now: float) -> str:
        """Why the break line does not move now, in words (for the log)."""
        return self.desk.wait_reason(now)

    @property
    def line(self) -> BreakLine:
        return self.desk.line

    @property
    def pending_grants(self) -> dict[str, BreakGrant]:
        return self.desk.pending_grants

    @property
    def grants(self) -> list[BreakRecord]:
        """Today's grants (pruned at the heartbeat); ``grants_made`` counts them all."""
        return self.desk.grants

    @property
    def grants_made(self) -> int:
        return self.desk.grants_made

    @property
    def break_wait_max_s(self) -> float:
        """The longest wait of a grant since the start."""
        return self.desk.break_wait_max_s

    def spare(self, now: float) -> int:
        """Agents who may leave now (headroom), less grants still to start."""
        staffed = self.roster.staffed
        if self._headroom is not None:
            spare = self._headroom(staffed, now)
        else:
            spare = spare_agents(
                staffed, self.traffic(now), self.sla.threshold_s,
                self.break_config.headroom_target, self.break_config.min_staffed,
            )
        return spare - len(self.pending_grants)

    def headroom_service_level(self, now: float) -> float:
        """The service level predicted (Erlang C, recent traffic) with one agent fewer.

        The headroom test shared by breaks and callbacks: taking one agent away
        (for a break, or to dial a callback) is fine while this stays at or
        above the target."""
        staffed = self.roster.staffed
        return self._levels.service_level(max(0, staffed - 1), self.traffic(now), self.sla.threshold_s)

    def staffed_service_level(self, now: float) -> float:
        """The service level predicted (Erlang C, recent traffic) with the agents staffed now.

        With one or two agents the headroom test above says no whatever the
        traffic; the callback gate also asks this one (routing.callbacks.dial_gate)."""
        staffed = self.roster.staffed
        return self._levels.service_level(staffed, self.traffic(now), self.sla.threshold_s)

    def _forget_before(self, today: float, now: float) -> None:
        """At the heartbeat: the traffic window's samples, today's grants and alerts only
        (the figures read no more; without it each grew with every call, break and alert)."""
        self.recent.trim(now)
        self.desk.forget_before(today)
        self.watch.forget_before(today)

    def traffic(self, now: float) -> Traffic:
        return self.recent.traffic(now)

    @property
    def _completions(self) -> deque[float]:
        return self.recent.completions

    def decide(self, now: float | None = None) -> list[BreakGrant]:
        """Grant what the line allows now; schedule the next deadline."""
        return self.desk.decide(self.clock.seconds() if now is None else now)

    # -- the heartbeat ------------------------------------------------------------

    def tick(self) -> None:
        now = self.clock.seconds()
        self._seen_until = now
        self.writer.submit(HeartbeatWrite(now, self._link_lost_at))
        self.check_wellbeing(now)
        if now >= self._fairness_at + FAIRNESS_EVERY_S:
            self._fairness_at = now
            self.fairness_today = fairness_index(self.allowances(now))
        self.tally.prune(now)
        self.prune_ledgers(now)
        self._forget_before(day_start(now, self.sla), now)
        self.decide(now)
        self._mark_live()

    def prune_ledgers(self, now: float) -> int:
        """Drop closed intervals no live figure reads any more (``AgentFigures.prune_ledgers``)."""
        return self.figures.prune_ledgers(now)

    def allowances(self, now: float) -> dict[str, Allowance]:
        return self.figures.allowances(now)

    # -- wellbeing (agent_stats.watch) ---------------------------------------------

    def check_wellbeing(self, now: float) -> list[AlertRecord]:
        """New alerts of logged-in agents are recorded and logged (:class:`WellbeingWatch`).

        ``signals`` gives every logged-in agent's exact signals at this check when read.
        """
        return self.watch.check(now)

    def exact_signals(self, agent_id: str) -> WellbeingSignals | None:
        """The agent's signals at the last check (None: logged out then, or never looked at)."""
        return self.watch.exact_signals(agent_id)

    def glance(self, agent_id: str, now: float) -> tuple[float | None, float | None]:
        """Time since the last break (at ``now``) and occupancy (when last looked at)."""
        return self.watch.glance(agent_id, now)

    @property
    def active_alerts(self) -> dict[str, dict[AlertKind, Alert]]:
        return self.watch.active_alerts

    @property
    def alerts_raised(self) -> list[AlertRecord]:
        """Today's alerts (pruned at the heartbeat); ``alerts_count`` counts them all."""
        return self.watch.alerts_raised

    @property
    def alerts_count(self) -> int:
        return self.watch.alerts_count

    @property
    def signals(self) -> Mapping[str, WellbeingSignals]:
        """Each logged-in agent's exact signals at the last check, computed when read."""
        return self.watch.signals

    @property
    def alert_horizon_s(self) -> float:
        """How far ahead a look plans the next one (``wellbeing_looks.ALERT_HORIZON_S``)."""
        return self.watch.alert_horizon_s

    @alert_horizon_s.setter
    def alert_horizon_s(self, value: float) -> None:
        self.watch.alert_horizon_s = value

    @property
    def _glances(self) -> dict[str, Glance]:
        return self.watch.glances

    @property
    def _windows(self) -> dict[str, WindowSums]:
        return self.watch.windows

    @property
    def _checked_at(self) -> float:
        return self.watch.checked_at

    # -- live figures -------------------------------------------------------------

    def _mark_live(self) -> None:
        # The pages read the live figures from memory once a second (shenava.http.push);
        # nothing is published to Redis for them. A change still kicks the writer.
        self._live_dirty = True
        self.writer.kick()

    def queues(self) -> list[str]:
        return sorted(self.tally.queues() | {self.default_queue})

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """The live figures, JSON-able: what the wallboard and /metrics show (``agent_stats.live``)."""
        return live_figures(
            self.clock.seconds() if now is None else now,
            sla=self.sla, tally=self.tally, queue_names=self.queues(), roster=self.roster,
            desk=self.desk, watch=self.watch, fairness_today=self.fairness_today,
            journal=self.journal_health() if self.journal_health is not None else None,
        )

    def waiting_requests(self) -> Iterable[BreakRecord]:
        return (BreakRecord(r.agent_id, r.reason, r.requested_at) for r in self.line.waiting())

"""The calls counted: routing's events turned into SL outcomes, traffic and call logs.

:class:`CallCounter` is the part of :class:`~agent_stats.service.StatsService`
that routing's events (:mod:`routing.events`) reach, by type (``HANDLERS``,
``StatsService.ROUTING_HANDLERS``): a call queued is remembered (its queue and
arrival) and counted as an arrival of the recent traffic; an answer, an
abandon or a caller leaving for voicemail or a callback becomes one
:class:`~agent_stats.sla.CallRecord`, which ``record_outcome`` adds to the
live :class:`~agent_stats.sla.SLATally` and writes through to Redis
(``OutcomeWrite``); answered and completed calls go to the agent's call log
(hard calls, long calls) and, when they can change an alert sooner than
planned, make the wellbeing watch look at the agent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from twisted.logger import Logger

from agent_stats.errors import InvalidCallRecordError
from agent_stats.running import CallLog
from agent_stats.sla import CallRecord, Outcome, SLATally
from agent_stats.store import Operation, OutcomeWrite
from agent_stats.traffic import RecentTraffic
from agent_stats.watch import WellbeingWatch
from agent_stats.wellbeing import AlertKind
from routing.events import (
    CallAbandoned,
    CallAnswered,
    CallAnsweredBefore,
    CallCompleted,
    CallLeftForChoice,
    CallQueued,
    RoutingEvent,
)

log = Logger()


class CallCounter:
    """Counts routing's call events: SL outcomes, traffic, the agents' call logs."""

    def __init__(
        self,
        *,
        tally: SLATally,
        queue_of: Callable[[RoutingEvent], str],
        submit: Callable[[Operation], None],
        recent: RecentTraffic,
        call_log: Callable[[str], CallLog],
        watch: WellbeingWatch,
    ) -> None:
        self.tally = tally
        self._queue_of = queue_of
        self._submit = submit
        self.recent = recent
        self._call_log = call_log
        self.watch = watch
        self.calls: dict[str, tuple[str, float]] = {}
        """Calls queued and not ended yet: their queue and arrival time."""

    def _call_queued(self, event: CallQueued) -> None:
        self.calls.setdefault(event.call_id, (self._queue_of(event), event.arrived_at))
        self.recent.arrived(event.at)

    def _call_answered(self, event: CallAnswered) -> None:
        self._outcome(event, event.joined_at, Outcome.ANSWERED, event.agent_id, event.hard)
        self._call_log(event.agent_id).answered(event.call_id, event.at, event.hard)
        by = self.watch.look_filter.answer_look_by(
            event.agent_id, event.at, event.hard, self.watch.active_alerts.get(event.agent_id, ())
        )
        if by is None:
            self.watch.look_at(event.agent_id)
        elif by != math.inf:
            self.watch.look_by(event.agent_id, by)

    def _call_answered_before(self, event: CallAnsweredBefore) -> None:
        """An earlier daemon's answer, found by a take-over: the stored outcome only.

        The same record as the answer made (queue, join, answer time, call id),
        so the same ``outcome_id`` and buckets: Redis counts it once, now if the
        earlier daemon's journal lost it. The live tally was restored from
        Redis at start: it takes the answer only if this write is the one that
        counts it (``recovered``: ``StoreWriter.on_recovered``), so a kept
        answer is not counted twice and a lost one is not left out."""
        self.calls.pop(event.call_id, None)
        try:
            record = CallRecord(self._queue_of(event), min(event.arrived_at, event.joined_at),
                                event.joined_at, Outcome.ANSWERED, event.at, event.call_id)
        except InvalidCallRecordError as exc:
            log.error("call {call}: outcome not counted: {error}", call=event.call_id, error=exc)
            return
        self._submit(OutcomeWrite(record, event.agent_id, event.hard, recovered=True))

    def recovered(self, op: OutcomeWrite) -> None:
        """An outcome this run did not count live, just counted in Redis: now live too."""
        self.tally.add(op.call)

    def _call_abandoned(self, event: CallAbandoned) -> None:
        self._outcome(event, event.joined_at, Outcome.ABANDONED, recovered=event.found_after_restart)

    def _call_left_for_choice(self, event: CallLeftForChoice) -> None:
        choice = Outcome.CALLBACK if event.choice == "callback" else Outcome.VOICEMAIL
        self._outcome(event, event.joined_at, choice)

    def _call_completed(self, event: CallCompleted) -> None:
        self.recent.completed(event.at)
        self.recent.handled(event.at, max(0.0, event.at - event.answered_at))
        self._call_log(event.agent_id).completed(event.call_id, event.at)
        if AlertKind.LONG_CALL in self.watch.active_alerts.get(event.agent_id, {}):
            # the only alert a call's end can take away; otherwise the long-call
            # look already planned finds the call over
            self.watch.look_at(event.agent_id)

    HANDLERS: Mapping[type[RoutingEvent], Callable[[CallCounter, Any], None]] = {
        CallQueued: _call_queued,
        CallAnswered: _call_answered,
        CallAnsweredBefore: _call_answered_before,
        CallAbandoned: _call_abandoned,
        CallLeftForChoice: _call_left_for_choice,
        CallCompleted: _call_completed,
    }
    """Routing's events this service counts, by type (``routing.events``)."""

    def _outcome(
        self, event: RoutingEvent, joined_at: float, outcome: Outcome,
        agent_id: str | None = None, hard: bool = False, *, recovered: bool = False,
    ) -> None:
        queue, arrived = self.calls.pop(event.call_id, (self._queue_of(event), joined_at))
        try:
            record = CallRecord(queue, min(arrived, joined_at), joined_at, outcome, event.at,
                                event.call_id)
        except InvalidCallRecordError as exc:
            log.error("call {call}: outcome not counted: {error}", call=event.call_id, error=exc)
            return
        if recovered:  # live once the store counts it (``recovered``)
            self._submit(OutcomeWrite(record, agent_id, hard, recovered=True))
            return
        self.record_outcome(record, agent_id, hard)

    def record_outcome(self, record: CallRecord, agent_id: str | None = None, hard: bool = False) -> None:
        """Count one outcome (live and in Redis)."""
        self.tally.add(record)
        self._submit(OutcomeWrite(record, agent_id, hard))

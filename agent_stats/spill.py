"""The statistics writer's overflow: operations past its cap go to the journal, not away.

The writer (:mod:`agent_stats.writer`) holds its operations in memory, in
order, while Redis is away, up to ``max_pending``. Past that it used to drop the
oldest, leaving an ``UNKNOWN`` hole in agents' time. With a journal it hands
the oldest to :class:`JournalSpill` instead: they are appended to the journal
(fsynced in ``state.folder``) as one entry per overflow, all under one key so
the journal applies them in order, and stored with the same
``StatsStore.apply`` when Redis answers again.

Order: the spilled operations are older than everything the writer still
holds, so while any of them is not yet applied the writer sends nothing
(:attr:`JournalSpill.holding`); it starts again once the journal has applied
the last one. Entries left by a run killed during the outage are replayed by
the next start, and that start's writer also waits for them. Applying one
twice (a crash between apply and the journal's cursor) is harmless: intervals
are ordered and overlaps cut when a ledger is read
(:func:`agent_stats.store.chain`), and the rest are ``HSET``s of the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from agent_stats.ledger import Interval
from agent_stats.states import AgentState, NotReadyReason
from agent_stats.store import (
    AlertRaised,
    AlertRecord,
    BreakCancelled,
    BreakGranted,
    BreakRecord,
    BreakRequested,
    BreakStarted,
    HeartbeatWrite,
    LedgerWrite,
    Operation,
    OutcomeWrite,
    outcome_from_dict,
    outcome_to_dict,
)
from shenava_base.aio import as_deferred

log = Logger()

JOURNAL_KIND = "stats.spill"
SPILL_KEY = "stats:spill"
"""The one journal key of every spill entry: applied one after the other, in order."""


def op_to_dict(op: Operation) -> dict[str, Any]:
    """An operation as the journal keeps it (JSON; floats round-trip exactly)."""
    if isinstance(op, LedgerWrite):
        return {"t": "ledger", "agent_id": op.agent_id, "closed": [i.to_list() for i in op.closed],
                "since": op.since, "state": op.state.value,
                "reason": op.reason.value if op.reason else None}
    if isinstance(op, HeartbeatWrite):
        return {"t": "heartbeat", "at": op.at, "link_lost_at": op.link_lost_at}
    if isinstance(op, OutcomeWrite):
        return {"t": "outcome", **outcome_to_dict(op)}
    if isinstance(op, BreakRequested):
        return {"t": "break_requested", "record": op.record.to_json()}
    if isinstance(op, BreakCancelled):
        return {"t": "break_cancelled", "agent_id": op.agent_id}
    if isinstance(op, BreakGranted):
        return {"t": "break_granted", "record": op.record.to_json(), "after_call": op.after_call}
    if isinstance(op, BreakStarted):
        return {"t": "break_started", "agent_id": op.agent_id}
    if isinstance(op, AlertRaised):
        return {"t": "alert", "record": op.record.to_json()}
    raise TypeError(f"unknown operation {op!r}")


def op_from_dict(data: dict[str, Any]) -> Operation:
    kind = data["t"]
    if kind == "ledger":
        reason = data.get("reason")
        return LedgerWrite(
            str(data["agent_id"]), tuple(Interval.from_list(i) for i in data["closed"]),
            float(data["since"]), AgentState(data["state"]),
            NotReadyReason(reason) if reason else None,
        )
    if kind == "heartbeat":
        lost = data.get("link_lost_at")
        return HeartbeatWrite(float(data["at"]), None if lost is None else float(lost))
    if kind == "outcome":
        return outcome_from_dict(data)
    if kind == "break_requested":
        return BreakRequested(BreakRecord.from_json(data["record"]))
    if kind == "break_cancelled":
        return BreakCancelled(str(data["agent_id"]))
    if kind == "break_granted":
        return BreakGranted(BreakRecord.from_json(data["record"]), bool(data.get("after_call")))
    if kind == "break_started":
        return BreakStarted(str(data["agent_id"]))
    if kind == "alert":
        return AlertRaised(AlertRecord.from_json(data["record"]))
    raise ValueError(f"unknown spilled operation {kind!r}")


class JournalSpill:
    """The writer's ``spill`` hook: the oldest operations past its cap, kept in the journal."""

    def __init__(self, journal: Any, store: Any, kick: Callable[[], object]) -> None:
        self._journal = journal
        self._store = store
        self._kick = kick
        # A previous run's spill entries not yet applied: the writer waits for them too.
        self.outstanding = len(journal.pending(JOURNAL_KIND, SPILL_KEY))
        self.spilled = 0
        journal.register(JOURNAL_KIND, self._apply)

    @property
    def holding(self) -> bool:
        """Spilled operations not yet in Redis: the writer must not overtake them."""
        return self.outstanding > 0

    def __call__(self, ops: Sequence[Operation]) -> bool:
        """Keep ``ops`` (the oldest the writer holds) in the journal; False if it refused."""
        try:
            d = self._journal.submit(JOURNAL_KIND, {"ops": [op_to_dict(op) for op in ops]}, (SPILL_KEY,))
        except Exception:
            log.failure("statistics: operations past the cap could not be journalled")
            return False
        if self.spilled == 0:
            log.warn("statistics: the write queue is full; the oldest operations go to the journal "
                     "(on this host) until Redis takes them")
        self.outstanding += 1
        self.spilled += len(ops)
        d.addErrback(lambda f: log.error("statistics: {n} operations not journalled: {e}",
                                         n=len(ops), e=f.getErrorMessage()))
        return True

    def _apply(self, entry: dict[str, Any]) -> Deferred[Any]:
        from shenava_base.journal import is_transient

        ops = [op_from_dict(raw) for raw in entry["ops"]]
        d = as_deferred(self._store.apply(ops))

        def applied(result: object) -> object:
            self._settled()
            return result

        def failed(failure: Any) -> Any:
            if not (isinstance(failure.value, BaseException) and is_transient(failure.value)):
                self._settled()  # not retried (the journal rejects it): do not hold the writer
            return failure

        d.addCallbacks(applied, failed)
        return d

    def _settled(self) -> None:
        self.outstanding = max(0, self.outstanding - 1)
        if self.outstanding == 0:
            self._kick()


__all__ = ["JOURNAL_KIND", "JournalSpill", "op_from_dict", "op_to_dict"]

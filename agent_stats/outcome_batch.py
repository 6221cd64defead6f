"""SL outcomes from the journal, applied to Redis together rather than one batch each.

The journal applies its entries one call each (up to ``MAX_IN_FLIGHT`` at
once). An SL outcome applied alone costs a ``MULTI``/``EXEC`` and a script;
gathered for ``delay_s`` (or until ``max_batch`` are waiting), many share
them and their counters are summed (:mod:`agent_stats.outcome_counts`). Each
entry's Deferred fires when its batch is written, or fails with the batch, so
the journal keeps its exactly-once bookkeeping per entry: a failed batch's
entries are retried by the journal, and the seen sets count them once.
An entry's Deferred fires with whether this batch is the one that counted it
(its id was not in the seen set), which the live figures need for an outcome
recovered from an earlier daemon (``StoreWriter.on_recovered``).
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from agent_stats.store import Operation, OutcomeWrite, outcome_id
from shenava_base.aio import as_deferred
from shenava_base.clock import Clock

BATCH_DELAY_S = 0.1
"""How long an outcome waits for others (the journal's slot is held meanwhile)."""
MAX_BATCH = 16
"""Written at once when this many wait: half the journal's slots, so others still apply."""


class BatchStore(Protocol):
    async def apply(self, ops: list[Operation]) -> set[str] | None: ...


def counted_here(op: Operation, counted: set[str] | None) -> bool:
    """Whether the write that returned ``counted`` (``StatsStore.apply``) counted ``op``.

    Taken out of ``counted``: an outcome twice in one batch was counted once, for the first."""
    if not counted or not isinstance(op, OutcomeWrite):
        return False
    oid = outcome_id(op.call)
    if oid not in counted:
        return False
    counted.discard(oid)
    return True


Scheduler = Clock
"""The one clock protocol (``shenava_base.clock.Clock``)."""


class OutcomeBatcher:
    def __init__(self, store: BatchStore, clock: Scheduler, *, delay_s: float = BATCH_DELAY_S,
                 max_batch: int = MAX_BATCH) -> None:
        self._store = store
        self._clock = clock
        self.delay_s = delay_s
        self._max_batch = max(1, max_batch)
        self._waiting: list[tuple[Operation, Deferred[bool]]] = []
        self._call: Any = None
        self.batches = 0

    def add(self, op: Operation) -> Deferred[bool]:
        """Fires once ``op`` is written (with others), or fails with its batch: True
        if that write counted it (an outcome whose id the seen set did not hold)."""
        done: Deferred[bool] = Deferred()
        self._waiting.append((op, done))
        if len(self._waiting) >= self._max_batch:
            self.flush()
        elif self._call is None:
            self._call = self._clock.callLater(self.delay_s, self.flush)
        return done

    def flush(self) -> None:
        """Write what waits now."""
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        self.batches += 1
        d = as_deferred(self._store.apply([op for op, _ in batch]))
        d.addCallbacks(self._written, self._failed, callbackArgs=(batch,), errbackArgs=(batch,))

    @staticmethod
    def _written(counted: set[str] | None, batch: list[tuple[Operation, Deferred[bool]]]) -> None:
        for op, done in batch:
            done.callback(counted_here(op, counted))

    @staticmethod
    def _failed(failure: Failure, batch: list[tuple[Operation, Deferred[bool]]]) -> None:
        for _op, done in batch:
            done.errback(failure)

    def stop(self) -> None:
        """Write what waits (a journal entry's Deferred always fires)."""
        self.flush()

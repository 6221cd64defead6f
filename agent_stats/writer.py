"""Ordered, batched writes to the statistics store, off the reactor's critical path.

Operations are queued in the order they happen; one batch is in flight at a
time, and everything queued meanwhile goes in the next batch (one
``MULTI``/``EXEC``). So writes keep their order (a ledger's intervals are
appended in sequence even with a pool of connections), a burst costs one
round trip, and the reactor never waits on Redis. With ``tick_s`` set (the
daemon: ``agent_stats.wiring.WRITE_TICK_S``) at most one batch starts per
tick, so a busy second costs a few transactions rather than one per change.
A failed batch goes back to the front of the queue and is retried after
``WRITE_RETRY_S``: nothing is lost while Redis is away. An outage is logged
twice, not at every retry: a warning when writes start failing, and a line
when Redis takes them again with how long it was away, how many batches
failed and how many operations were held.

SL outcomes are records, not state: with a journal (:meth:`StoreWriter.use_journal`)
each one goes there instead (fsynced on this host, applied once by its
``outcome_id``), so an outcome counted while Redis was away survives a restart
of the daemon too. The ledgers' and breaks' writes stay here: they are state
that the next start reconciles from the roster.

The live figures (``SLATally``) are read from Redis at start, then raised by
every outcome this process counts. An outcome it did not count live, an
earlier run's journal entry replayed after that read or a take-over's recount
of an answer (``OutcomeWrite.recovered``), goes to ``on_recovered`` once the
store says the write that carried it counted it: so it is in the live figures
once, whether Redis had it at the start (then no write counts it again) or
not. Each journal entry says which run's live tally counted it (``tallied``,
a token drawn per writer); an entry from another run, or without it, is
recovered.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from agent_stats.outcome_batch import counted_here
from agent_stats.store import Operation, OutcomeWrite, outcome_from_dict, outcome_to_dict
from shenava_base.aio import as_deferred
from shenava_base.clock import Clock

log = Logger()

WRITE_RETRY_S = 1.0
MAX_PENDING = 100_000
"""Operations kept while Redis is away (a busy site makes a few per second);
past it the oldest are dropped, counted in ``dropped`` and logged (``/metrics``
shows both the depth and the drops). Live publications are never queued: a
failed batch keeps only the records."""

JOURNAL_KIND = "stats.outcome"


class BatchStore(Protocol):
    async def apply(self, ops: list[Operation]) -> set[str] | None: ...


class StoreWriter:
    def __init__(
        self,
        store: BatchStore,
        clock: Clock,
        extra: Callable[[], list[Operation]] = list,
        *,
        paused: bool = False,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._store = store
        self._clock = clock
        self._extra = extra
        self._pending: list[Operation] = []
        self._busy = False
        self._paused = paused
        self._retry: Any = None
        self._waiters: list[Deferred[None]] = []
        self.batches = 0
        self.operations = 0
        self.failures = 0
        self.dropped = 0
        self._max_pending = max(1, max_pending)
        self._journal: Any = None
        self.spill: Any = None
        """Where the oldest operations past ``max_pending`` go instead of being dropped
        (:class:`agent_stats.spill.JournalSpill`: a callable taking them, True if kept,
        whose ``holding`` keeps newer batches back until they are applied)."""
        self._outcomes: Any = None  # an OutcomeBatcher, with a journal and batch_s
        self.tick_s = 0.0
        """At most one batch started per ``tick_s`` (0: one as soon as the last is written);
        the ``clock`` then needs ``seconds()``. ``flushed()`` does not wait for the tick."""
        self._last_start = -math.inf
        self._tick: Any = None
        self.away_since: float | None = None
        """When Redis stopped taking batches (None: it takes them)."""
        self._away_failures = 0
        self._away_held = 0
        self.run = secrets.token_hex(6)
        """This writer's token in the journal entries of outcomes its live tally counted."""
        self.on_recovered: Callable[[OutcomeWrite], object] = lambda op: None
        """Told of an outcome not in this run's live tally, once a write counted it."""

    def use_journal(self, journal: Any, *, batch_s: float | None = None) -> None:
        """Send SL outcomes through ``journal`` (a :class:`shenava.journal.Journal`).

        ``batch_s``: the journal's outcomes are written together, gathered this long
        (:mod:`agent_stats.outcome_batch`); None writes each as the journal applies it.
        """
        self._journal = journal
        if batch_s is not None:
            from agent_stats.outcome_batch import OutcomeBatcher

            self._outcomes = OutcomeBatcher(self._store, self._clock, delay_s=batch_s)
        journal.register(JOURNAL_KIND, self._apply_outcome)

    def _apply_outcome(self, entry: dict[str, Any]) -> Deferred[None]:
        if self._paused:
            # not before the start-up restore has read the counters: an outcome
            # stored before that read would be counted twice in the live figures
            from shenava_base.journal import RetryLaterError

            raise RetryLaterError("statistics not restored yet")
        op = outcome_from_dict(entry)
        recovered = entry.get("tallied") != self.run
        if self._outcomes is not None:
            d: Deferred[Any] = self._outcomes.add(op)
        else:
            d = as_deferred(self._store.apply([op])).addCallback(lambda counted: counted_here(op, counted))
        return d.addCallback(self._applied, op, recovered)

    def _applied(self, counted: bool, op: OutcomeWrite, recovered: bool) -> None:
        if counted and recovered:
            self.on_recovered(op)

    def submit(self, op: Operation) -> None:
        if self._journal is not None and isinstance(op, OutcomeWrite):
            entry = outcome_to_dict(op)
            if not op.recovered:
                entry["tallied"] = self.run
            # (the call's state carries it until it is on disk: shenava.journal.Journal.carried)
            d = self._journal.submit(JOURNAL_KIND, entry, call=op.call.call_id)
            d.addErrback(lambda f: log.error("SL outcome not kept: {error}", error=f.getErrorMessage()))
            return
        self._pending.append(op)
        if len(self._pending) > self._max_pending and (self.spill is None or not self._busy):
            self._drop_oldest()  # with a spill, not past a batch in flight (its order)
        self.kick()

    def _drop_oldest(self) -> None:
        pending = self._pending
        excess = len(pending) - self._max_pending
        if excess <= 0:
            return
        if self.spill is not None:
            # some headroom, so an outage past the cap makes one journal entry per
            # tenth of the cap rather than one per operation
            count = min(len(pending), excess + self._max_pending // 10)
            if self.spill(pending[:count]):
                del pending[:count]
                return
        if self.dropped == 0:
            log.error(
                "statistics write queue full ({limit} operations waiting for Redis): "
                "dropping the oldest",
                limit=self._max_pending,
            )
        del pending[:excess]
        self.dropped += excess

    def submit_front(self, ops: Iterable[Operation]) -> None:
        """Queue ``ops`` before everything pending (start-up reconciliation)."""
        self._pending[:0] = list(ops)
        self.kick()

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self.kick()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flushed(self) -> Deferred[None]:
        """Fires once everything submitted so far is written."""
        if self._outcomes is not None:
            self._outcomes.flush()
        if not self._busy and not self._pending and not self._paused:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        self.kick()
        return waiter

    def kick(self) -> None:
        if self._busy or self._paused or self._retry is not None:
            return
        if self.spill is not None and self.spill.holding:
            return  # older operations are in the journal: they go first
        if self.tick_s > 0 and not self._waiters:
            wait = self._last_start + self.tick_s - self._clock.seconds()
            if wait > 0:
                if self._tick is None:
                    self._tick = self._clock.callLater(wait, self._tick_over)
                return
            self._last_start = self._clock.seconds()
        batch = self._pending
        batch.extend(self._extra())
        self._pending = []
        if not batch:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)
            return
        self._busy = True
        d = as_deferred(self._store.apply(batch))
        d.addCallbacks(self._done, self._failed, callbackArgs=(batch,), errbackArgs=(batch,))

    def _done(self, counted: set[str] | None, batch: list[Operation]) -> None:
        self._busy = False
        self.batches += 1
        self.operations += len(batch)
        for op in batch:
            if isinstance(op, OutcomeWrite) and op.recovered and counted_here(op, counted):
                self.on_recovered(op)
        if self.away_since is not None:
            log.info(
                "statistics: Redis takes writes again after {away:.1f} s; {failed} batches failed "
                "meanwhile, up to {held} operations were held and are written now",
                away=self._clock.seconds() - self.away_since, failed=self._away_failures,
                held=self._away_held,
            )
            self.away_since = None
        self.kick()

    def _failed(self, failure: Any, batch: list[Operation]) -> None:
        from shenava_base.journal import is_transient

        self._busy = False
        self.failures += 1
        kept = batch
        self._pending[:0] = kept
        self._drop_oldest()
        if isinstance(failure.value, BaseException) and is_transient(failure.value):
            # Redis away or slow: say so once, and once when it is back (not every retry)
            if self.away_since is None:
                self.away_since = self._clock.seconds()
                self._away_failures = 0
                self._away_held = 0
                log.warn(
                    "statistics: Redis does not take writes ({error}); {count} operations held, "
                    "retried every {every:g} s (one line when it is back)",
                    error=failure.getErrorMessage(), count=len(self._pending), every=WRITE_RETRY_S,
                )
            self._away_failures += 1
            self._away_held = max(self._away_held, len(self._pending))
        else:
            log.error(
                "statistics not written ({error}); {count} operations kept for a retry",
                error=failure.getErrorMessage(),
                count=len(kept),
            )
        self._retry = self._clock.callLater(WRITE_RETRY_S, self._retry_now)

    def _tick_over(self) -> None:
        self._tick = None
        self.kick()

    def _retry_now(self) -> None:
        self._retry = None
        self.kick()

    def stop(self) -> None:
        retry, self._retry = self._retry, None
        if retry is not None and retry.active():
            retry.cancel()
        tick, self._tick = self._tick, None
        if tick is not None and tick.active():
            tick.cancel()
        if self._outcomes is not None:
            self._outcomes.stop()

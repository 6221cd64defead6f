"""Outcomes a new daemon recovers are in the live figures once: not left out, not doubled.

The live SL tally is read from Redis when the statistics start, then raised by
each outcome this daemon counts. Three kinds of outcome reach Redis after that
read without this daemon having counted them live:

- an answer a take-over counts again (``CallAnsweredBefore``): the killed
  daemon's journal may have lost it (then Redis counts it now) or kept it
  (then Redis had it at the read and refuses the recount);
- an abandon a take-over counts for a caller who hung up while no daemon ran
  (``CallAbandoned.found_after_restart``): the killed daemon may have counted it;
- an earlier run's journal entries, replayed after the read.

Before, the first and third were never live (the wallboard's SL stayed one
call short until the next restart) and the second was counted live even when
Redis had it already (one call too many). Now each is live exactly when its
store write is the one that counted it (``StoreWriter.on_recovered``). A real
Redis, a real journal on disk; the outcome batcher as the daemon runs it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest_twisted
from redis.asyncio import Redis
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock, deferLater

from agent_stats.service import DEFAULT_QUEUE, StatsService
from agent_stats.sla import CallRecord, Outcome
from agent_stats.store import OutcomeWrite, StatsStore, outcome_to_dict
from agent_stats.wiring import OUTCOME_BATCH_S
from agent_stats.writer import JOURNAL_KIND
from routing.events import CallAbandoned, CallAnswered, CallAnsweredBefore, CallQueued
from shenava.journal import Journal
from shenava_base.aio import as_deferred
from tests.stats_helpers import SLA, T0, clock_at, make_service

BOUND_S = 30.0
"""A bound on waiting for the real Redis, not a timing claim."""
NOW = T0 + 100.0


def _inline(f: Any) -> Deferred[Any]:
    return succeed(f())


def _answered(call_id: str) -> OutcomeWrite:
    """What the killed daemon counted for ``call_id``: queued at T0, answered 10 s later."""
    return OutcomeWrite(CallRecord(DEFAULT_QUEUE, T0, T0, Outcome.ANSWERED, T0 + 10, call_id), "a1", False)


def _recount(call_id: str) -> CallAnsweredBefore:
    """The take-over's recount of that answer (same record, so the same outcome id)."""
    return CallAnsweredBefore(call_id, T0 + 10, "a1", T0, T0, False)


async def _started(redis_client: Redis, clock: Clock, folder: Path) -> tuple[StatsService, Journal]:
    """A daemon's statistics as ``agent_stats.wiring`` makes them: outcomes through the journal."""
    journal = Journal(clock, folder, run_in_thread=_inline)
    journal.load()
    _, service = make_service(redis_client, clock)
    service.writer.use_journal(journal, batch_s=OUTCOME_BATCH_S)
    journal.start()
    await service.start()
    return service, journal


async def _settled(service: StatsService, journal: Journal, clock: Clock) -> None:
    """Until the journal has applied everything (the batcher's delay stepped on the clock)."""
    deadline = time.monotonic() + BOUND_S
    done = journal.drained()
    while not done.called:
        assert time.monotonic() < deadline, "the journal did not drain"
        clock.advance(OUTCOME_BATCH_S)
        await deferLater(reactor, 0.01, lambda: None)
    await service.flushed()


def _live(service: StatsService) -> tuple[int, int]:
    day = service.tally.day(DEFAULT_QUEUE, NOW)
    return day.offered, day.answered


async def _stored(redis_client: Redis) -> tuple[int, int]:
    store = StatsStore(redis_client, SLA)
    day = await as_deferred(store.day_counts(DEFAULT_QUEUE, store.day_of(T0)))
    return day.offered, day.answered


@pytest_twisted.ensureDeferred
async def test_an_answer_the_killed_daemon_never_stored_is_live_once_its_recount_lands(
    redis_client: Redis, tmp_path: Path,
) -> None:
    clock = clock_at(NOW)
    service, journal = await _started(redis_client, clock, tmp_path)
    assert _live(service) == (0, 0)
    service.on_routing_event(_recount("c1"))  # adopt_talking
    service.on_routing_event(_recount("c1"))  # and again (ended while away, say): still one
    await _settled(service, journal, clock)
    assert await _stored(redis_client) == (1, 1)
    assert _live(service) == (1, 1)
    assert service.tally.rolling(DEFAULT_QUEUE, T0 + 60).answered == 1  # at its own time
    await service.stop()


@pytest_twisted.ensureDeferred
async def test_an_answer_stored_before_the_restart_is_not_counted_twice_live(
    redis_client: Redis, tmp_path: Path,
) -> None:
    await as_deferred(StatsStore(redis_client, SLA).apply([_answered("c1")]))  # the killed daemon
    clock = clock_at(NOW)
    service, journal = await _started(redis_client, clock, tmp_path)
    assert _live(service) == (1, 1)  # read back at the start
    service.on_routing_event(_recount("c1"))
    await _settled(service, journal, clock)
    assert await _stored(redis_client) == (1, 1)
    assert _live(service) == (1, 1)
    await service.stop()


@pytest_twisted.ensureDeferred
async def test_an_earlier_runs_journalled_outcomes_replayed_after_the_start_are_live_once(
    redis_client: Redis, tmp_path: Path,
) -> None:
    # the killed run journalled an answer and an abandon (its live tally counted
    # them: another run's token) while Redis was away; neither reached Redis
    killed = Journal(Clock(), tmp_path, run_in_thread=_inline)
    killed.register(JOURNAL_KIND, lambda entry: None)  # never started: nothing applied
    abandoned = OutcomeWrite(CallRecord(DEFAULT_QUEUE, T0, T0, Outcome.ABANDONED, T0 + 30, "c2"))
    for op in (_answered("c1"), abandoned):
        killed.submit(JOURNAL_KIND, {**outcome_to_dict(op), "tallied": "killed-run"})
    await killed.written()

    clock = clock_at(NOW)
    service, journal = await _started(redis_client, clock, tmp_path)
    # the take-over counts both calls again (c2's caller hung up while no daemon ran)
    service.on_routing_event(_recount("c1"))
    service.on_routing_event(CallAbandoned("c2", NOW, T0, "09120000002", None, found_after_restart=True))
    await _settled(service, journal, clock)
    assert await _stored(redis_client) == (2, 1)
    assert _live(service) == (2, 1)
    await service.stop()


@pytest_twisted.ensureDeferred
async def test_an_abandon_the_killed_daemon_had_stored_is_not_counted_again_live(
    redis_client: Redis, tmp_path: Path,
) -> None:
    abandoned = OutcomeWrite(CallRecord(DEFAULT_QUEUE, T0, T0, Outcome.ABANDONED, T0 + 30, "c2"))
    await as_deferred(StatsStore(redis_client, SLA).apply([abandoned]))
    clock = clock_at(NOW)
    service, journal = await _started(redis_client, clock, tmp_path)
    assert _live(service) == (1, 0)
    service.on_routing_event(CallAbandoned("c2", NOW, T0, "09120000002", None, found_after_restart=True))
    await _settled(service, journal, clock)
    assert await _stored(redis_client) == (1, 0)
    assert _live(service) == (1, 0)
    await service.stop()


@pytest_twisted.ensureDeferred
async def test_this_runs_own_outcomes_are_live_once_as_before(
    redis_client: Redis, tmp_path: Path,
) -> None:
    clock = clock_at(NOW)
    service, journal = await _started(redis_client, clock, tmp_path)
    service.on_routing_event(CallQueued("c3", NOW, NOW, "fa", "complaint", "09120000003"))
    service.on_routing_event(CallAnswered("c3", NOW + 5, "a1", NOW, False))
    service.on_routing_event(CallAbandoned("c4", NOW + 9, NOW, "09120000004", None))
    assert _live(service) == (2, 1)
    await _settled(service, journal, clock)
    assert await _stored(redis_client) == (2, 1)
    assert _live(service) == (2, 1)
    await service.stop()

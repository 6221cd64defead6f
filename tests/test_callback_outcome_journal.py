"""A callback attempt's outcome known while Redis is away survives a ``kill -9``.

The customer answers their callback while Redis is stopped; the daemon is then
killed (here: dropped without a stop, its journal's file left as it was on
disk) and a new one starts on the same ``state.folder`` once Redis is back.
Before, the outcome waited in the dialer's memory only: the new daemon's claim
found the lease expired and recorded the attempt ``interrupted`` (counted), the
flag stayed open, and a customer who had answered was called again. Now the
outcome is journalled (``callback.outcome``) and the new daemon applies it,
once, before it claims the flag. A real redis-server, stopped and started again
on the same data and port; a real journal file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest_twisted
from redis.asyncio import Redis
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock, deferLater

from routing.callback_dialer import OUTCOME_KIND
from routing.callbacks import AttemptOutcome, DialPolicy, Resolution
from shenava.journal import Journal
from shenava.redis_server import start_redis_server
from shenava_base.aio import as_deferred
from tests.test_callback_dialer import PREFIX, T0, Site

BOUND_S = 30.0
"""A bound on waiting for the real Redis and the journal, not a timing claim."""
LEASE_MS = 1000


def _inline(f: Any) -> Deferred[Any]:
    return succeed(f())


def _clock() -> Clock:
    clock = Clock()
    clock.advance(T0 + 60)
    return clock


async def _real(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)  # type: ignore[arg-type]


async def _drained(journal: Journal, clock: Clock) -> None:
    """Until the journal has applied everything (its retries stepped on ``clock``)."""
    deadline = time.monotonic() + BOUND_S
    done = journal.drained()
    while not done.called:
        assert time.monotonic() < deadline, "the journal did not drain"
        clock.advance(1.0)
        await _real(0.02)


def _started_journal(folder: Path, clock: Clock) -> Journal:
    journal = Journal(clock, folder, run_in_thread=_inline)
    journal.load()
    journal.start()  # as the daemon: started before the packages register their kinds
    return journal


async def _flag_json(client: Redis, flag_id: str) -> dict[str, Any]:
    raw = await as_deferred(client.get(f"{PREFIX}:{{callbacks}}:flag:{flag_id}"))
    assert raw is not None
    return dict(json.loads(raw))


@pytest_twisted.ensureDeferred
async def test_an_outcome_known_while_redis_is_away_survives_a_kill_and_is_applied_once(
    tmp_path: Path,
) -> None:
    server = start_redis_server(tmp_path / "redis", extra_args=("--appendfsync", "always"))
    client = Redis.from_url(server.url, decode_responses=True, socket_connect_timeout=0.5,
                            socket_timeout=2.0)
    state = tmp_path / "state"
    restarted = None
    try:
        policy = DialPolicy(lease_ms=LEASE_MS)
        killed_clock = Clock()
        killed_clock.advance(T0)
        killed = Site(client, killed_clock, policy=policy,
                      journal=_started_journal(state, killed_clock))
        flag_id = await killed.flag()
        await killed.dial()
        leg = killed.ami.originates()[0]["ChannelId"]
        killed.agent_answers(leg)
        server.stop()
        killed.customer_dialled(leg, "ANSWER")  # journalled; Redis refuses it
        await _real(0.3)
        assert (state / "journal.jsonl").read_text().count(OUTCOME_KIND) == 1
        # kill -9: the killed daemon's objects are never stopped nor stepped again
        await _real(LEASE_MS / 1000 + 0.2)  # its dial lease expires meanwhile
        restarted = start_redis_server(tmp_path / "redis", port=server.port,
                                       extra_args=("--appendfsync", "always"))

        clock = _clock()
        journal = _started_journal(state, clock)
        assert journal.depth == 1  # the outcome, from the killed run
        after = Site(client, clock, policy=policy, journal=journal)
        assert flag_id in after.dialer._skipped()  # not claimed before its outcome is applied
        await _drained(journal, clock)
        await after.dial()
        await after.dialer.settled()

        flag = await as_deferred(after.store.get(flag_id))
        assert [a.outcome for a in flag.attempts] == [AttemptOutcome.ANSWERED]
        assert flag.resolution is Resolution.ANSWERED
        assert after.ami.originates() == []  # not called again
        events = [h.event for h in flag.history]
        assert events.count("outcome") == 1 and "late_outcome" not in events
        stored = await _flag_json(client, flag_id)

        # replayed once more (a kill before the journal's cursor moved): nothing changes
        again_clock = _clock()
        again_journal = Journal(again_clock, state, run_in_thread=_inline)
        again_journal.load()
        again_journal.start()
        again = Site(client, again_clock, policy=policy, journal=again_journal)
        await as_deferred(again.dialer._apply_journalled(
            {"flag_id": flag_id, "token": "old", "attempt": 1, "outcome": "answered",
             "at": T0 + 5, "by": "a1", "note": "DialStatus ANSWER"}))
        await _drained(again_journal, again_clock)
        assert await _flag_json(client, flag_id) == stored
    finally:
        await as_deferred(client.aclose())
        if restarted is not None:
            restarted.stop()
        server.stop()


@pytest_twisted.ensureDeferred
async def test_with_redis_up_a_journalled_outcome_is_stored_as_before(
    redis_client: Redis, tmp_path: Path,
) -> None:
    clock = _clock()
    journal = _started_journal(tmp_path / "state", clock)
    site = Site(redis_client, clock, journal=journal)
    flag_id = await site.flag()
    await site.dial()
    leg = site.ami.originates()[0]["ChannelId"]
    site.agent_answers(leg)
    site.customer_dialled(leg, "NOANSWER")
    await _drained(journal, clock)
    await site.dialer.settled()
    flag = await as_deferred(site.store.get(flag_id))
    assert [a.outcome for a in flag.attempts] == [AttemptOutcome.NO_ANSWER]
    assert flag.is_open and flag.attempt_in_progress is None

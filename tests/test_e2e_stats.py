"""Statistics end to end: callers through the test PBX, a real Redis, the SL by hand.

The daemon runs in virtual time against the test PBX (``tests.e2e_harness``)
with the statistics, complaints and recordings wiring installed on a real
Redis. One agent takes the calls one after another, so later callers wait
longer and one gives up. The service level is then computed here, by the
definition in DESIGN.md, from the routing events themselves, and compared with
what the statistics service counted and stored; the agent's ledger must cover
the shift to the second, and its time on calls must equal the calls' lengths.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest_twisted
from redis.asyncio import Redis

from agent_stats.service import StatsService
from agent_stats.states import AgentState
from routing.events import CallAbandoned, CallAnswered, CallCompleted, CallQueued
from shenava_base.aio import as_deferred
from testpbx.scripts import CallerScript, PhoneScript
from tests.e2e_harness import E2E

THRESHOLD_S = 20.0  # DESIGN.md's default T
SHORT_ABANDON_S = 5.0
TALK_S = 25.0


def by_hand(h: E2E) -> tuple[int, int, int]:
    """(offered, answered within T, abandoned) by DESIGN.md, from the raw events."""
    joined = {e.call_id: e.at for e in h.routing if isinstance(e, CallQueued)}
    answered = {e.call_id: e.at for e in h.routing if isinstance(e, CallAnswered)}
    abandoned = {e.call_id: e.at for e in h.routing if isinstance(e, CallAbandoned)}
    long_abandons = [c for c, at in abandoned.items() if at - joined[c] >= SHORT_ABANDON_S]
    in_time = [c for c, at in answered.items() if at - joined[c] <= THRESHOLD_S]
    return len(answered) + len(long_abandons), len(in_time), len(long_abandons)


@pytest_twisted.ensureDeferred
async def test_a_busy_spell_gives_the_sl_by_hand_and_a_ledger_to_the_second(
    redis_client: Redis, tmp_path: Path
) -> None:
    h = E2E.build(tmp_path, redis=redis_client)
    try:
        service = h.app.agent_stats
        assert isinstance(service, StatsService)
        h.phone("PJSIP/101", PhoneScript(answer_after_s=2.0, talk_s=TALK_S))
        shift_start = h.now
        h.log_in("a1")
        # Four Persian callers ask for an agent (1 = Persian, 3 = an agent), a
        # few seconds apart; the last one gives up after a minute and a half.
        for i in range(1, 5):
            h.call(CallerScript(number=f"0912000000{i}", answers=("1", "3"),
                                patience_s=60.0 if i == 4 else None))
            h.advance(3.0)
        await h.run_until_async(
            lambda: len([e for e in h.routing if isinstance(e, (CallCompleted, CallAbandoned))]) == 4,
            limit_s=600.0,
        )
        h.advance(10.0)  # the last wrap-up ends
        await h.run_until_async(lambda: h.state("a1") is AgentState.READY, limit_s=60.0)

        offered, in_time, abandoned = by_hand(h)
        assert (offered, abandoned) == (4, 1)
        assert 0 < in_time < offered  # the later callers waited past T

        now = h.now
        day = service.tally.day(service.default_queue, now)
        assert (day.offered, day.in_sl, day.abandoned) == (offered, in_time, abandoned)
        assert math.isclose(day.service_level or 0.0, in_time / offered)

        # What Redis holds says the same (the writer flushes in batches).
        await service.flushed()
        stored = await as_deferred(
            service.store.day_counts(service.default_queue, service.store.day_of(now))
        )
        assert (stored.offered, stored.in_sl, stored.abandoned) == (offered, in_time, abandoned)

        # Every second of the shift belongs to exactly one state ...
        ledger = h.app.roster.get("a1").ledger
        totals = ledger.totals(shift_start, now, now)
        assert totals.total == totals.span == now - shift_start
        # ... and the time on calls is the calls' own length.
        talk = {e.call_id: e.at for e in h.routing if isinstance(e, CallAnswered)}
        ended = {e.call_id: e.at for e in h.routing if isinstance(e, CallCompleted)}
        on_calls = sum(ended[c] - talk[c] for c in ended)
        assert math.isclose(totals.state(AgentState.ON_CALL), on_calls)
        assert len(ended) == 3
    finally:
        h.stop()

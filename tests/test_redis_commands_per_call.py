"""What a known call journey costs a real Redis, counted by Redis itself (``INFO commandstats``).

Callers go through the IVR to an agent, are answered and hang up, against the
test PBX in virtual time (``tests.e2e_harness``) with the statistics,
complaints and recordings wiring on a real Redis. Redis counts every command
it executes, those run inside scripts and transactions included, so the
figures are those of ``benchmarks/system.py``'s ``redis_commands_per_call``.
The bounds are the counts after #16's per-tick cuts with a little room; the
code before them spent more (in the comments), so each bound fails there.
"""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from redis.asyncio import Redis

from agent_stats.service import StatsService
from routing.events import CallCompleted
from shenava_base.aio import as_deferred
from testpbx.scripts import CallerScript, PhoneScript
from tests.e2e_harness import E2E

CALLS = 6


async def commandstats(redis: Redis) -> dict[str, int]:
    raw = await redis.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in raw.items()}


def spent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    out = {k: n - before.get(k, 0) for k, n in after.items()}
    out["info"] = out.get("info", 0) - 1  # our own
    return {k: n for k, n in out.items() if n}


@pytest_twisted.ensureDeferred
async def test_calls_answered_by_agents_cost_redis_a_bounded_number_of_commands(
    redis_client: Redis, tmp_path: Path
) -> None:
    h = E2E.build(tmp_path, redis=redis_client)
    try:
        service = h.app.agent_stats
        assert isinstance(service, StatsService)
        h.phones({"PJSIP/101": PhoneScript(answer_after_s=1.0, talk_s=8.0),
                  "PJSIP/102": PhoneScript(answer_after_s=1.0, talk_s=8.0)})
        h.log_in("a1", "a2")
        await h.run_until_async(lambda: service.started.called, limit_s=30.0)
        await service.flushed()
        h.advance(2.0)
        await service.flushed()
        before = await as_deferred(commandstats(redis_client))
        started = h.now

        for i in range(CALLS):
            h.call(CallerScript(number=f"0912100000{i}", answers=("1", "3")))
            h.advance(2.0)
        await h.run_until_async(
            lambda: len([e for e in h.routing if isinstance(e, CallCompleted)]) == CALLS,
            limit_s=600.0,
        )
        end = h.now + 10.0  # wrap-ups end, the last writes are due
        await h.run_until_async(lambda: h.now >= end, limit_s=20.0)
        await service.flushed()
        if h.app.live_writer is not None:
            await h.app.live_writer.flushed()
        if h.app.takeover is not None:
            await h.app.takeover.recorder.flushed()
        counts = spent(before, await as_deferred(commandstats(redis_client)))
        elapsed = h.now - started
    finally:
        h.stop()

    # The transcript follower's idle poll is one XREAD a second whatever the calls
    # (48 here): bounded by the time, not the calls. Counted in the total it made
    # the bound below pass or fail by how long the calls took (239-241 for 240).
    assert counts.get("xread", 0) <= elapsed + 2
    total = sum(n for k, n in counts.items() if k != "xread")
    print(f"{total} commands for {CALLS} calls: {sorted(counts.items(), key=lambda kv: -kv[1])}")
    # Without a leader lease the call state is a plain HSET/HDEL, not a script
    # around them (before: one EVALSHA per write). The statistics' scripts go by
    # their SHA1, loaded once per process (before: EVAL with the script's text, 16 here).
    assert counts.get("eval", 0) == 0 and counts.get("evalsha", 0) <= 3 * CALLS
    # An answered call's SL counters: one HMGET and one HSET per bucket, not a
    # HINCRBY per field (before: 73 for these calls, about 7 fields x 3 buckets
    # each); what is left is the live figures' and the agents' day counters.
    assert counts.get("hincrby", 0) <= 4 * CALLS
    # The transcript follower keeps its position in memory: an idle poll is one
    # XREAD, not a GET too (before: 53 GETs here, one a second).
    assert counts.get("get", 0) <= 2 * CALLS
    # The caller's facts read both of the caller's indexes in one ZUNION (before: a
    # ZRANGE of each, 12 here), in the pipeline with the flag and the urgent words.
    # (The one ZRANGE left is the callback dialler's read of its due set, by rank.)
    assert counts.get("zrange", 0) <= 1 and counts.get("zunion", 0) <= CALLS
    # The agents' ledger heads: one HSET of the site's heads hash per statistics
    # batch, not one per transition (57 HSETs here before, 48-49 after).
    assert counts.get("hset", 0) <= 9 * CALLS
    # 405 commands for these 6 calls before the per-tick cuts (67.5 a call), 253
    # after them, 236 after the ledger heads and the caller's facts (39.3 a call);
    # without the follower's polls, 191 (31.8 a call).
    assert total / CALLS <= 34

"""The centre's figures cost each daemon the same few Redis commands whatever the number
of sites: each site's daemon reads its own counters once and publishes them with its
figures of the moment; the others are read from their counters only when their daemon
has not published them lately (stopped, or of another day). Counted on a real Redis
(``INFO commandstats``)."""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.task import Clock

from agent_stats.centre import STALE_S, CentreBoard, SiteNow, read_centre
from agent_stats.sla import CallRecord, Outcome, SLAConfig
from agent_stats.store import HeartbeatWrite, OutcomeWrite, StatsStore
from shenava_base.aio import as_deferred
from shenava_base.sites import site_now_key

T0 = 1_741_000_000.0
SLA = SLAConfig()


async def _executed(client: Redis) -> int:
    stats: dict[str, Any] = await client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def _answered(site: str, n: int, wait_s: float) -> OutcomeWrite:
    call = CallRecord(queue="support", arrived_at=T0, joined_at=T0, outcome=Outcome.ANSWERED,
                      outcome_at=T0 + wait_s, call_id=f"{site}-{n}")
    return OutcomeWrite(call, agent_id=f"{site}-a")


async def _sites(client: Redis, clock: Clock, count: int) -> list[CentreBoard]:
    """``count`` sites, site i with i + 1 calls answered (one late), each daemon refreshed once."""
    boards = []
    for i in range(count):
        site = f"s{i:02d}"
        calls = [_answered(site, n, 5.0 if n else 60.0) for n in range(i + 1)]
        await StatsStore(client, SLA, site=site).apply([*calls, HeartbeatWrite(T0 + i)])
        board = CentreBoard(client, "shenava", site, SLA, clock, name=site, timezone="UTC")

        async def figures(now: float, sites: list[str], waiting: int = i) -> SiteNow:
            return SiteNow(now, waiting=waiting, ready=1)

        board.site_now = figures
        await board.refresh()
        boards.append(board)
    return boards


async def _one_refresh(client: Redis, board: CentreBoard) -> int:
    before = await _executed(client)
    await board.refresh()
    return await _executed(client) - before - 1  # less the INFO itself


@pytest_twisted.ensureDeferred
async def test_a_refresh_costs_the_same_commands_with_2_or_12_sites(redis_client: Redis) -> None:
    clock = Clock()
    clock.advance(T0 + 70)
    boards = await as_deferred(_sites(redis_client, clock, 2))
    with_two = await as_deferred(_one_refresh(redis_client, boards[0]))
    boards += await as_deferred(_sites_from(redis_client, clock, 2, 12))
    with_twelve = await as_deferred(_one_refresh(redis_client, boards[0]))
    # every refresh reads this site's counters (one window of 30 slots and today, the queues
    # and the heartbeat) and the register and every site's published figures: not theirs
    assert with_twelve == with_two <= 40
    figures = boards[0].latest
    assert figures is not None and len(figures.sites) == 12
    # the sums are the stored counters' (site i answered i + 1 calls, one of them late)
    assert (figures.day.offered, figures.day.in_sl) == (sum(range(1, 13)), sum(range(12)))
    assert figures.rolling.offered == figures.day.offered
    assert figures.site("s05") is not None and figures.site("s05").heartbeat_at == T0 + 5  # type: ignore[union-attr]
    assert figures.now is not None and figures.now.waiting == sum(range(12))
    # the same figures as reading every site's counters
    read = await as_deferred(read_centre(redis_client, "shenava", SLA, clock.seconds(), published={}))
    assert [(s.site, s.day, s.rolling, s.heartbeat_at) for s in read.sites] == [
        (s.site, s.day, s.rolling, s.heartbeat_at) for s in figures.sites]


async def _sites_from(client: Redis, clock: Clock, first: int, last: int) -> list[CentreBoard]:
    boards = await _sites(client, clock, last)  # sites 0 .. first - 1 again: the same, idempotent
    return boards[first:]


@pytest_twisted.ensureDeferred
async def test_a_site_not_publishing_lately_is_read_from_its_counters(redis_client: Redis) -> None:
    clock = Clock()
    clock.advance(T0 + 70)
    north, south = await as_deferred(_sites(redis_client, clock, 2))
    # south's calls go on being counted, but its daemon stops publishing
    await as_deferred(StatsStore(redis_client, SLA, site="s01").apply([_answered("s01", 9, 1.0)]))
    seen = await as_deferred(north.refresh())
    row = seen.site("s01")
    assert row is not None and row.day.offered == 2  # as south's daemon published it
    clock.advance(STALE_S + 1)
    seen = await as_deferred(north.refresh())
    row = seen.site("s01")
    assert row is not None and row.day.offered == 3 and not row.reporting  # read from its counters
    # published counters of another day are not taken either (a site past its midnight)
    raw = json.loads((await as_deferred(redis_client.hgetall(site_now_key("shenava"))))["s01"])
    raw["at"] = raw["sl"]["at"] = clock.seconds()
    raw["sl"]["day"] = "1999-01-01"
    raw["sl"]["today"] = {"offered": 99}
    await as_deferred(redis_client.hset(site_now_key("shenava"), "s01", json.dumps(raw)))
    seen = await as_deferred(north.refresh())
    row = seen.site("s01")
    assert row is not None and row.day.offered == 3 and row.reporting

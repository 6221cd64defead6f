"""LiveFiguresStore against a real redis-server, including a restart with AOF."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest_twisted
import redis
from redis.asyncio import Redis

from shenava.live_store import LiveFiguresStore, QueueFigures
from shenava.redis_server import start_redis_server
from shenava_base.aio import as_deferred

TEHRAN = ZoneInfo("Asia/Tehran")
# 2025-03-01 10:00 in Tehran (UTC+3:30)
NOW = datetime(2025, 3, 1, 10, 0, tzinfo=TEHRAN).timestamp()


@pytest_twisted.ensureDeferred
async def test_counters_per_queue_and_day(redis_client: Redis) -> None:
    store = LiveFiguresStore(redis_client, "shenava", tz=TEHRAN)
    for _ in range(3):
        await as_deferred(store.call_offered("billing", NOW))
    await as_deferred(store.call_offered("service", NOW))
    await as_deferred(store.call_answered("billing", NOW + 10))
    await as_deferred(store.call_abandoned("billing", NOW + 30))

    snap = await as_deferred(store.snapshot(NOW + 60))
    assert snap.day == date(2025, 3, 1)
    assert snap.queue("billing") == QueueFigures(in_progress=1, offered=3, answered=1, abandoned=1)
    assert snap.queue("service") == QueueFigures(in_progress=1, offered=1)
    assert snap.queue("nobody") == QueueFigures()
    assert list(snap.queues) == ["billing", "service"]


@pytest_twisted.ensureDeferred
async def test_days_follow_the_site_time_zone(redis_client: Redis) -> None:
    store = LiveFiguresStore(redis_client, "shenava", tz=TEHRAN)
    # 23:50 UTC on 28 Feb is already 1 March in Tehran
    late_utc = datetime(2025, 2, 28, 23, 50, tzinfo=ZoneInfo("UTC")).timestamp()
    await as_deferred(store.call_offered("q", late_utc))
    assert (await as_deferred(store.snapshot_day(date(2025, 3, 1)))).queue("q").offered == 1
    assert (await as_deferred(store.snapshot_day(date(2025, 2, 28)))).queue("q").offered == 0


@pytest_twisted.ensureDeferred
async def test_keys_carry_the_hash_tag_and_expire(redis_client: Redis) -> None:
    store = LiveFiguresStore(redis_client, "site1", day_retention_s=3600)
    await as_deferred(store.call_offered("q", NOW))
    keys = sorted(await as_deferred(redis_client.keys("*")))
    assert keys == ["site1:{live}:day:2025-03-01", "site1:{live}:in_progress"]
    assert 0 < await as_deferred(redis_client.ttl("site1:{live}:day:2025-03-01")) <= 3600
    assert await as_deferred(redis_client.ttl("site1:{live}:in_progress")) == -1


@pytest_twisted.ensureDeferred
async def test_prefixes_keep_stores_apart(redis_client: Redis) -> None:
    a = LiveFiguresStore(redis_client, "a")
    b = LiveFiguresStore(redis_client, "b")
    await as_deferred(a.call_offered("q", NOW))
    assert (await as_deferred(b.snapshot(NOW))).queues == {}


@pytest_twisted.ensureDeferred
async def test_set_in_progress_replaces_the_gauge(redis_client: Redis) -> None:
    store = LiveFiguresStore(redis_client, "shenava")
    await as_deferred(store.call_offered("q1", NOW))
    await as_deferred(store.set_in_progress({"q2": 4}))
    snap = await as_deferred(store.snapshot(NOW))
    assert snap.queue("q1") == QueueFigures(in_progress=0, offered=1)
    assert snap.queue("q2").in_progress == 4
    await as_deferred(store.set_in_progress({}))
    assert (await as_deferred(store.snapshot(NOW))).queue("q2").in_progress == 0


@pytest_twisted.ensureDeferred
async def test_a_gauge_driven_negative_reads_as_zero(redis_client: Redis) -> None:
    store = LiveFiguresStore(redis_client, "shenava")
    await as_deferred(store.call_answered("q", NOW))  # its arrival predates a resync
    assert (await as_deferred(store.snapshot(NOW))).queue("q") == QueueFigures(answered=1)


@pytest_twisted.ensureDeferred
async def test_works_with_a_client_that_returns_bytes(redis_url: str) -> None:
    client = Redis.from_url(redis_url)  # decode_responses=False
    try:
        store = LiveFiguresStore(client, "shenava")
        await as_deferred(store.call_offered("صف", NOW))
        assert (await as_deferred(store.snapshot(NOW))).queue("صف").offered == 1
    finally:
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_counters_survive_a_redis_restart_with_aof(tmp_path: Path) -> None:
    data = tmp_path / "aof"
    first = start_redis_server(data)
    try:
        client = Redis.from_url(first.url)
        store = LiveFiguresStore(client, "shenava")
        await as_deferred(store.call_offered("q", NOW))
        await as_deferred(store.call_offered("q", NOW))
        await as_deferred(store.call_answered("q", NOW))
        await as_deferred(client.aclose())
    finally:
        first.stop()
    assert (data / "appendonlydir").is_dir()

    second = start_redis_server(data)
    try:
        client = Redis.from_url(second.url)
        store = LiveFiguresStore(client, "shenava")
        snap = await as_deferred(store.snapshot(NOW))
        await as_deferred(client.aclose())
    finally:
        second.stop()
    assert snap.queue("q") == QueueFigures(in_progress=1, offered=2, answered=1)


def test_the_sync_client_sees_the_same_server(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.ping()


def test_the_daemons_live_figures_keep_days_in_the_site_time_zone(redis_client: Redis) -> None:
    """Half past midnight in Tehran is still the previous day in UTC: the day
    counters of a Tehran site roll over at Tehran's midnight."""
    from dataclasses import replace

    from twisted.internet.task import Clock

    from shenava.app import Shenava
    from shenava.config import default_config

    config = default_config()
    config = replace(config, site=replace(config.site, timezone="Asia/Tehran"))
    clock = Clock()
    app = Shenava(config, reactor=clock, redis=redis_client)
    assert app.live is not None
    at = datetime(2026, 11, 22, 21, 15, tzinfo=UTC).timestamp()  # 00:45 in Tehran
    assert app.live.day_of(at) == date(2026, 11, 23)


@pytest_twisted.ensureDeferred
async def test_the_daemons_live_figures_are_written_once_per_tick(redis_client: Redis) -> None:
    """Many events, one transaction; Redis ends as the per-event writes left it."""
    from twisted.internet.task import Clock

    from shenava.live_writer import LiveFiguresWriter

    by_event = LiveFiguresStore(redis_client, "each")
    batched = LiveFiguresStore(redis_client, "tick")
    clock = Clock()
    writer = LiveFiguresWriter(batched, clock, tick_s=0.5)
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC).timestamp()
    script = [("offered", "q"), ("gauge", {"q": 3}), ("offered", "q"), ("answered", "q"),
              ("offered", "r"), ("abandoned", "r"), ("offered", "q")]
    for kind, arg in script:
        if kind == "gauge":
            assert isinstance(arg, dict)
            await as_deferred(by_event.set_in_progress(arg))
            writer.set_in_progress(arg)
        else:
            assert isinstance(arg, str)
            await as_deferred(getattr(by_event, f"call_{kind}")(arg, now))
            getattr(writer, f"call_{kind}")(arg, now)
    assert writer.writes == 0
    clock.advance(0.5)
    await writer.flushed()
    assert writer.writes == 1
    assert await as_deferred(batched.snapshot(now)) == await as_deferred(by_event.snapshot(now))
    assert (await as_deferred(batched.snapshot(now))).queue("q").in_progress == 4


async def _executed(client: Redis) -> dict[str, int]:
    raw = await client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in raw.items()}


@pytest_twisted.ensureDeferred
async def test_a_tick_writes_only_what_changed(redis_client: Redis) -> None:
    """The live figures' tick (shenava.live_writer) sent DEL, HSET of the gauge,
    the counters, an EXPIRE and MULTI/EXEC every time; now an unchanged gauge
    and a TTL already set are not sent, nor MULTI/EXEC around one command."""
    from shenava.live_store import LiveChanges

    store = LiveFiguresStore(redis_client, "shenava", tz=TEHRAN)
    day = store.day_of(NOW)
    await as_deferred(store.apply(LiveChanges(gauge={"q": 2}, counters={(day, "offered:q"): 2})))

    async def spent(changes: LiveChanges) -> dict[str, int]:
        before = await _executed(redis_client)
        await store.apply(changes)
        after = await _executed(redis_client)
        out = {k: n - before.get(k, 0) for k, n in after.items()}
        out["info"] -= 1
        return {k: n for k, n in out.items() if n}

    assert await as_deferred(spent(LiveChanges(gauge={"q": 2}))) == {}
    assert await as_deferred(spent(LiveChanges(gauge={"q": 3}))) == {"hset": 1}
    assert await as_deferred(spent(
        LiveChanges(gauge={"q": 3}, gauge_delta={"q": -1}, counters={(day, "answered:q"): 1})
    )) == {"multi": 1, "hset": 1, "hincrby": 1, "exec": 1}
    assert await as_deferred(spent(LiveChanges(gauge_delta={"q": 1}))) == {"hincrby": 1}
    assert await as_deferred(spent(LiveChanges(gauge={"q": 3}))) == {}  # 2 + 1, known
    assert await as_deferred(spent(LiveChanges(gauge={}))) == {"del": 1}
    snap = await as_deferred(store.snapshot(NOW))
    assert snap.queue("q") == QueueFigures(in_progress=0, offered=2, answered=1)

"""Every site's figures of the moment on one real Redis: each daemon publishes its own
site's (calls waiting, agents by state, callbacks due), every daemon reads them all, a
site that stopped publishing is shown as not reporting and left out of the sums."""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.task import Clock

from agent_stats.centre import STALE_S, CentreBoard, SiteNow, read_centre, sla_settings
from agent_stats.sla import SLAConfig
from routing.callback_store import CallbackStore
from routing.callbacks import DialPolicy, abandon_reason
from shenava_base.aio import as_deferred
from shenava_base.sites import registered_sites, site_now_key

T0 = 1_741_000_000.0
SLA = SLAConfig()
POLICY = DialPolicy(max_attempts=2, backoff_s=(300.0,), lease_ms=60_000)


def _source(figures: SiteNow) -> Any:
    async def site_now(now: float, sites: list[str]) -> SiteNow:
        return SiteNow(at=now, waiting=figures.waiting, longest_wait_s=figures.longest_wait_s,
                       ready=figures.ready, busy=figures.busy, not_ready=figures.not_ready,
                       callbacks_due=figures.callbacks_due)

    return site_now


def _board(client: Redis, site: str, clock: Clock, figures: SiteNow | None) -> CentreBoard:
    board = CentreBoard(client, "shenava", site, SLA, clock, name=f"Site {site}", timezone="UTC")
    if figures is not None:
        board.site_now = _source(figures)
    return board


@pytest_twisted.ensureDeferred
async def test_each_site_publishes_its_own_figures_and_every_site_reads_them_all(redis_client: Redis) -> None:
    clock = Clock()
    clock.advance(T0)
    north = _board(redis_client, "north", clock,
                   SiteNow(0, waiting=3, longest_wait_s=41.5, ready=2, busy=5, not_ready=1, callbacks_due=2))
    south = _board(redis_client, "south", clock,
                   SiteNow(0, waiting=1, longest_wait_s=12.0, ready=4, busy=1, not_ready=0, callbacks_due=0))
    await as_deferred(north.refresh())
    await as_deferred(south.refresh())
    # each daemon wrote its own field only
    raw = await as_deferred(redis_client.hgetall(site_now_key("shenava")))
    assert sorted(raw) == ["north", "south"]
    assert json.loads(raw["north"])["waiting"] == 3
    seen = await as_deferred(north.refresh())  # north now reads south's too
    by_site = {s.site: s for s in seen.sites}
    assert by_site["south"].now == SiteNow(T0, 1, 12.0, 4, 1, 0, 0)
    assert by_site["north"].now == SiteNow(T0, 3, 41.5, 2, 5, 1, 2)
    assert all(s.reporting for s in seen.sites)
    assert seen.now == SiteNow(T0, waiting=4, longest_wait_s=41.5, ready=6, busy=6, not_ready=1, callbacks_due=2)
    body = north.as_dict()
    assert body is not None and body["reporting"] == 2 and body["this_site"] == "north"
    assert body["now"]["waiting"] == 4
    assert [s["now"]["ready"] for s in body["sites"]] == [2, 4]
    # the register carries each site's [sla] settings (shenava check-sites compares them)
    registered = await as_deferred(registered_sites(redis_client, "shenava"))
    assert registered["north"]["sla"] == sla_settings(SLA)
    assert registered["north"]["sla"]["threshold_s"] == 20.0 and "utc_offset_s" not in registered["north"]["sla"]


@pytest_twisted.ensureDeferred
async def test_a_site_that_stopped_publishing_is_not_reporting_and_left_out_of_the_sums(
    redis_client: Redis,
) -> None:
    clock = Clock()
    clock.advance(T0)
    north = _board(redis_client, "north", clock, SiteNow(0, waiting=3, ready=2))
    south = _board(redis_client, "south", clock, SiteNow(0, waiting=7, ready=9))
    await as_deferred(south.refresh())
    clock.advance(STALE_S + 1)  # south's daemon has stopped; north goes on
    seen = await as_deferred(north.refresh())
    by_site = {s.site: s for s in seen.sites}
    assert by_site["north"].reporting and not by_site["south"].reporting
    assert by_site["south"].now is not None and by_site["south"].now.at == T0  # as last published
    assert seen.now is not None and (seen.now.waiting, seen.now.ready) == (3, 2)
    # a site that registered but never published (an older daemon) is not reporting either
    east = _board(redis_client, "east", clock, None)
    await as_deferred(east.refresh())
    figures = await as_deferred(read_centre(redis_client, "shenava", SLA, clock.seconds()))
    east_row = figures.site("east")
    assert east_row is not None and east_row.now is None and not east_row.reporting
    assert east_row.to_dict()["now"] is None


@pytest_twisted.ensureDeferred
async def test_callbacks_due_are_counted_for_the_site_that_dials_them(redis_client: Redis) -> None:
    stores = {site: CallbackStore(redis_client, "shenava", POLICY, site=site) for site in ("", "north", "south")}
    numbers = {"": ["09120000001", "09120000002"], "north": ["09121110001"], "south": []}
    for site, store in stores.items():
        for i, number in enumerate(numbers[site]):
            reason = abandon_reason(f"call-{site}-{i}", T0, 30, POLICY)
            assert reason is not None
            await as_deferred(store.raise_reason(number, reason, T0))
    later = T0 + 86400
    sites = ["", "north", "south"]
    due = {site: await as_deferred(store.site_backlog(later, sites)) for site, store in stores.items()}
    assert due == {"": 2, "north": 1, "south": 0}
    assert await as_deferred(stores[""].backlog(later)) == 3  # the centre's, every site's
    assert await as_deferred(stores["north"].site_backlog(T0 - 1, sites)) == 0  # not due yet


class _NoEndpoint:
    def connect(self, factory: Any) -> Any:
        raise AssertionError("not connected in this test")


@pytest_twisted.ensureDeferred
async def test_the_daemon_publishes_what_its_pages_show(redis_client: Redis) -> None:
    """The real object graph of a named site's daemon: what it publishes is its live
    board's figures (waiting calls, agents by state) and its own callbacks due."""
    from dataclasses import replace

    from routing.calls import WaitingCall
    from routing.events import CallQueued
    from shenava.app import Shenava
    from shenava.config import default_config
    from shenava.http import install

    config = default_config()
    config = replace(config, site=replace(config.site, id="north"))
    clock = Clock()
    clock.advance(T0)
    shenava = Shenava(config, reactor=clock, redis=redis_client, endpoint=_NoEndpoint())
    service = shenava.agent_stats
    assert service is not None and shenava.centre is not None
    await service.started
    try:
        install(shenava)
        shenava.roster.log_in("a1", T0)
        shenava.roster.log_in("a2", T0)
        call = WaitingCall("c1", T0 - 42, "fa", "", "billing")
        shenava.dispatcher._emit(CallQueued("c1", T0 - 42, T0 - 42, "fa", "billing", "09120000000"))
        shenava.router.line.join(call)
        reason = abandon_reason("call-x", T0 - 600, 30, POLICY)
        assert reason is not None
        await as_deferred(shenava.complaints.callbacks.raise_reason("09121234567", reason, T0 - 600))
        figures = await as_deferred(shenava.centre.refresh())
        mine = figures.site("north")
        assert mine is not None and mine.reporting
        assert mine.now == SiteNow(T0, waiting=1, longest_wait_s=42.0, ready=2, busy=0, not_ready=0,
                                   callbacks_due=1)
        stored = json.loads(await as_deferred(redis_client.hget(site_now_key("shenava"), "north")))
        assert stored["waiting"] == 1 and stored["ready"] == 2
    finally:
        await service.stop()
        shenava.complaints.stop()
        shenava.recordings.stop()


@pytest_twisted.ensureDeferred
async def test_a_daemon_says_when_another_site_counts_its_service_level_differently(
    redis_client: Redis,
) -> None:
    from twisted.logger import globalLogPublisher

    from agent_stats.centre import sla_mismatches

    clock = Clock()
    clock.advance(T0)
    south = CentreBoard(redis_client, "shenava", "south", SLAConfig(threshold_s=30.0), clock,
                        name="South", timezone="UTC")
    await as_deferred(south.refresh())
    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        north = _board(redis_client, "north", clock, None)
        await as_deferred(north.refresh())
        await as_deferred(north.refresh())  # said once, not every 5 s
    finally:
        globalLogPublisher.removeObserver(seen.append)
    said = [e for e in seen if e.get("code") == "sites.sla_differs"]
    assert len(said) == 1 and (said[0]["other"], said[0]["key"], said[0]["theirs"], said[0]["ours"]) == (
        "south", "threshold_s", 30.0, 20.0)
    assert sla_mismatches(sla_settings(SLA), {"north": {"sla": sla_settings(SLA)}, "old": {}}, "x") == []


@pytest_twisted.ensureDeferred
async def test_a_standby_daemon_neither_writes_nor_cries_until_it_leads(redis_url: str) -> None:
    """The leader's gate refuses a standby's every command: the centre's board waits
    quietly (no failure logged) and registers once the daemon leads."""
    from twisted.logger import LogLevel, globalLogPublisher

    from shenava.leader import guard_redis

    client = Redis.from_url(redis_url, decode_responses=True)
    leading = [False]
    guard_redis(client, lambda: leading[0])
    clock = Clock()
    clock.advance(T0)
    board = _board(client, "north", clock, SiteNow(0, waiting=1))
    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        board._tick()
        await _until(lambda: not board._busy)
        assert board.latest is None
        leading[0] = True
        board._tick()
        await _until(lambda: not board._busy)
    finally:
        globalLogPublisher.removeObserver(seen.append)
        await as_deferred(client.aclose())
    assert not [e for e in seen if e.get("log_level") in (LogLevel.critical, LogLevel.error)], seen
    assert board.latest is not None and [s.site for s in board.latest.sites] == ["north"]


async def _until(done: Any) -> None:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    for _ in range(200):
        if done():
            return
        await deferLater(reactor, 0.01, lambda: None)  # type: ignore[arg-type]
    raise AssertionError("not done")

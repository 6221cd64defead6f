"""The whole centre's figures: every site's SL counters, read from Redis and summed.

Each daemon counts only its own site's calls (``{stats:SITE}`` keys, see
:mod:`shenava_base.sites`); the centre's service level is the sum of the sites'
counters (offered, answered in time, abandoned, ...), never an average of
their percentages. Sites are found in the register every daemon writes at
start. The figures are read with this daemon's ``[sla]`` settings (the
sites of one centre share them: threshold, window, day alignment); a site's
"today" is the day of its counters under those settings.

:class:`CentreBoard` keeps the latest figures for the pages, refreshed every
``REFRESH_S`` on the daemon's clock; reading them never blocks on Redis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from agent_stats.sla import SLAConfig, SLCounts
from agent_stats.store import StatsStore
from shenava_base.aio import as_deferred
from shenava_base.sites import register_site, registered_sites, site_label

__all__ = ["CentreBoard", "CentreFigures", "SiteFigures", "install", "read_centre"]

log = Logger()

REFRESH_S = 5.0
"""How often the centre's figures are read again (a few Redis round trips per site)."""


@dataclass(frozen=True)
class SiteFigures:
    site: str
    name: str
    rolling: SLCounts
    day: SLCounts
    heartbeat_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.site, "label": site_label(self.site), "name": self.name,
            "heartbeat_at": self.heartbeat_at,
            "rolling": _counts(self.rolling), "day": _counts(self.day),
        }


@dataclass(frozen=True)
class CentreFigures:
    at: float
    sites: tuple[SiteFigures, ...] = ()
    rolling: SLCounts = field(default_factory=SLCounts)
    day: SLCounts = field(default_factory=SLCounts)

    def site(self, site: str) -> SiteFigures | None:
        return next((s for s in self.sites if s.site == site), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "rolling": _counts(self.rolling), "day": _counts(self.day),
            "sites": [s.to_dict() for s in self.sites],
        }


def _counts(c: SLCounts) -> dict[str, Any]:
    return {
        "offered": c.offered, "in_sl": c.in_sl, "answered": c.answered,
        "answered_in_sl": c.answered_in_sl, "abandoned": c.abandoned, "sl": c.service_level,
    }


async def read_site(store: StatsStore, now: float) -> tuple[SLCounts, SLCounts, float | None]:
    """One site's rolling window and today, over all its queues, and its heartbeat."""
    rolling, day = SLCounts(), SLCounts()
    today = store.day_of(now)
    for queue in await store.queues():
        rolling.add(await store.rolling(queue, now))
        day.add(await store.day_counts(queue, today))
    heartbeat = await store.heartbeat()
    return rolling, day, heartbeat.at


async def read_centre(
    client: Any, prefix: str, sla: SLAConfig, now: float, *, sites_found: dict[str, Any] | None = None
) -> CentreFigures:
    """Every registered site's figures and their sums (reads only; no site's keys are written)."""
    sites: list[SiteFigures] = []
    rolling, day = SLCounts(), SLCounts()
    found = await registered_sites(client, prefix) if sites_found is None else sites_found
    for site, entry in found.items():
        store = StatsStore(client, sla, prefix=prefix, site=site)
        site_rolling, site_day, beat = await read_site(store, now)
        sites.append(SiteFigures(site, str(entry.get("name", "")), site_rolling, site_day, beat))
        rolling.add(site_rolling)
        day.add(site_day)
    return CentreFigures(now, tuple(sites), rolling, day)


class CentreBoard:
    """The latest centre figures, refreshed on the daemon's clock; this site registered first."""

    def __init__(self, client: Any, prefix: str, site: str, sla: SLAConfig, clock: Any, *,
                 name: str, timezone: str) -> None:
        self._client = client
        self._prefix = prefix
        self.site = site
        self._sla = sla
        self._clock = clock
        self._name = name
        self._timezone = timezone
        self._registered = False
        self._busy = False
        self._loop: LoopingCall | None = None
        self.latest: CentreFigures | None = None

    async def refresh(self) -> CentreFigures:
        if not self._registered:
            await register_site(self._client, self._prefix, self.site, name=self._name, timezone=self._timezone)
            self._registered = True
        found = await registered_sites(self._client, self._prefix)
        if list(found) == [self.site] == [""]:
            # A single-site install: the centre is this site, whose figures the page has.
            self.latest = CentreFigures(self._clock.seconds())
            return self.latest
        self.latest = await read_centre(
            self._client, self._prefix, self._sla, self._clock.seconds(), sites_found=found
        )
        return self.latest

    def _tick(self) -> None:
        if self._busy:
            return
        self._busy = True

        def done(result: object) -> None:
            self._busy = False

        def failed(failure: Any) -> None:
            log.debug("centre figures not read: {error}", error=failure.getErrorMessage())

        as_deferred(self.refresh()).addErrback(failed).addBoth(done)

    def start(self) -> None:
        loop = LoopingCall(self._tick)
        loop.clock = self._clock
        self._loop = loop
        loop.start(REFRESH_S, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def as_dict(self) -> dict[str, Any] | None:
        """For the wallboard's ``centre`` field (None until first read, and for a single-site install)."""
        if self.latest is None or not self.latest.sites:
            return None
        body = self.latest.to_dict()
        body["this_site"] = self.site
        return body


def install(app: Any) -> CentreBoard:
    """Register this site in Redis and keep the centre's figures (``app.redis`` set)."""
    config = app.config
    board = CentreBoard(
        app.redis, config.redis.key_prefix, config.site.id, config.sla, app.reactor,
        name=config.site.name, timezone=config.site.timezone,
    )
    board.start()
    return board

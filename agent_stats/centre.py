"""The whole centre's figures: every site's SL counters, read from Redis and summed.

Each daemon counts only its own site's calls (``{stats:SITE}`` keys, see
:mod:`shenava_base.sites`); the centre's service level is the sum of the sites'
counters (offered, answered in time, abandoned, ...), never an average of
their percentages. Sites are found in the register every daemon writes at
start. The figures are read with this daemon's ``[sla]`` settings (the
sites of one centre share them: threshold, window, day alignment; ``shenava
check-sites`` checks it); a site's "today" is the day of its counters under
those settings.

The figures of the moment (calls waiting, the longest wait, agents by state,
callbacks due) live in each daemon's memory, not in Redis: every
``REFRESH_S`` each daemon publishes its own site's (:class:`SiteNow`, into
``{sites}:now``, its own field) and reads every site's. A site that has not
published for ``STALE_S`` (its daemon stopped) is shown as not reporting and
left out of the centre's sums of the moment.

:class:`CentreBoard` keeps the latest figures for the pages, refreshed every
``REFRESH_S`` on the daemon's clock; reading them never blocks on Redis.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.exceptions import RedisError
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from agent_stats.errors import BadSnapshotError
from agent_stats.sla import SLAConfig, SLCounts
from agent_stats.store import StatsStore
from shenava_base.aio import as_deferred
from shenava_base.sites import (
    publish_site_now,
    register_site,
    registered_sites,
    site_label,
    sites_now,
)

__all__ = ["CentreBoard", "CentreFigures", "SiteFigures", "SiteNow", "install", "read_centre", "sla_settings"]

log = Logger()

REFRESH_S = 5.0
"""How often the centre's figures are read again: this site's counters, and every site's
published figures (a few round trips, whatever the number of sites)."""
NOT_LEADER = "leader.not_leader"
"""The code of the error a standby daemon's writes get (shenava.leader.NotLeaderError)."""
STALE_S = 30.0
"""A site whose figures of the moment are older than this is not reporting (its daemon is away)."""


@dataclass(frozen=True)
class SiteNow:
    """One site's figures of the moment, as its daemon keeps them (published every ``REFRESH_S``)."""

    at: float
    waiting: int = 0
    longest_wait_s: float | None = None
    ready: int = 0
    busy: int = 0
    """Ringing, on a call or in wrap-up."""
    not_ready: int = 0
    callbacks_due: int | None = None
    """Open callback flags of this site due to be dialled now (None: not read)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SiteNow | None:
        try:
            longest = raw.get("longest_wait_s")
            due = raw.get("callbacks_due")
            return cls(
                at=float(raw["at"]), waiting=int(raw.get("waiting", 0)),
                longest_wait_s=None if longest is None else float(longest),
                ready=int(raw.get("ready", 0)), busy=int(raw.get("busy", 0)),
                not_ready=int(raw.get("not_ready", 0)),
                callbacks_due=None if due is None else int(due),
            )
        except (KeyError, TypeError, ValueError):
            return None  # written by something else: shown as not reporting


def sum_now(at: float, figures: list[SiteNow]) -> SiteNow:
    """The centre's figures of the moment: sums, and the longest of the longest waits."""
    waits = [f.longest_wait_s for f in figures if f.longest_wait_s is not None]
    dues = [f.callbacks_due for f in figures if f.callbacks_due is not None]
    return SiteNow(
        at=at, waiting=sum(f.waiting for f in figures), longest_wait_s=max(waits) if waits else None,
        ready=sum(f.ready for f in figures), busy=sum(f.busy for f in figures),
        not_ready=sum(f.not_ready for f in figures), callbacks_due=sum(dues) if dues else None,
    )


@dataclass(frozen=True)
class SiteFigures:
    site: str
    name: str
    rolling: SLCounts
    day: SLCounts
    heartbeat_at: float | None = None
    now: SiteNow | None = None
    """Its figures of the moment as last published (None: never, or unreadable)."""
    reporting: bool = False
    """Whether ``now`` is recent (within ``STALE_S``)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.site, "label": site_label(self.site), "name": self.name,
            "heartbeat_at": self.heartbeat_at,
            "rolling": _counts(self.rolling), "day": _counts(self.day),
            "now": None if self.now is None else self.now.to_dict(), "reporting": self.reporting,
        }


@dataclass(frozen=True)
class CentreFigures:
    at: float
    sites: tuple[SiteFigures, ...] = ()
    rolling: SLCounts = field(default_factory=SLCounts)
    day: SLCounts = field(default_factory=SLCounts)
    now: SiteNow | None = None
    """The sums of the reporting sites' figures of the moment."""

    def site(self, site: str) -> SiteFigures | None:
        return next((s for s in self.sites if s.site == site), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "rolling": _counts(self.rolling), "day": _counts(self.day),
            "now": None if self.now is None else self.now.to_dict(),
            "reporting": sum(1 for s in self.sites if s.reporting),
            "sites": [s.to_dict() for s in self.sites],
        }


def _counts(c: SLCounts) -> dict[str, Any]:
    return {
        "offered": c.offered, "in_sl": c.in_sl, "answered": c.answered,
        "answered_in_sl": c.answered_in_sl, "abandoned": c.abandoned, "sl": c.service_level,
    }


@dataclass(frozen=True)
class SiteCounts:
    """One site's SL counters over all its queues: the rolling window and today, and its heartbeat."""

    rolling: SLCounts
    day: SLCounts
    heartbeat_at: float | None = None


def _heartbeat_at(raw: Mapping[Any, Any]) -> float | None:
    at = raw.get("at", raw.get(b"at"))
    return None if at is None else float(at)


async def read_sites(client: Any, stores: list[StatsStore], now: float) -> list[SiteCounts]:
    """Each store's site's counters, every site read once: two non-transactional pipelines
    for all the sites together (their queues and heartbeats, then every bucket).

    Each command names one key, so on a Redis Cluster the client splits the pipeline by
    node (a site's keys share its ``{stats:SITE}`` slot); nothing spans two slots."""
    if not stores:
        return []
    first = client.pipeline(transaction=False)
    for store in stores:
        store.queue_read(first)
    replies = await first.execute()
    second = client.pipeline(transaction=False)
    plans = []
    for i, store in enumerate(stores):
        queues = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in replies[2 * i])
        plans.append(store.queue_buckets(second, queues, now))
    counts = await second.execute() if any(plans) else []
    out, at = [], 0
    for i, plan in enumerate(plans):
        rolling, day = SLCounts(), SLCounts()
        for kind in plan:
            (day if kind else rolling).add(SLCounts.from_fields(counts[at]))
            at += 1
        out.append(SiteCounts(rolling, day, _heartbeat_at(replies[2 * i + 1])))
    return out


async def read_site(store: StatsStore, now: float) -> tuple[SLCounts, SLCounts, float | None]:
    """One site's rolling window and today, over all its queues, and its heartbeat."""
    (counts,) = await read_sites(store.client, [store], now)
    return counts.rolling, counts.day, counts.heartbeat_at


def published_counts(raw: Mapping[str, Any] | None, day: str, now: float) -> SiteCounts | None:
    """A site's counters as its daemon published them with its figures of the moment
    (``"sl"``), if they are of the reader's ``day`` and at most ``STALE_S`` old; None:
    read its counters instead (not published, stale, another day, or unreadable)."""
    sl = None if raw is None else raw.get("sl")
    if not isinstance(sl, dict) or sl.get("day") != day:
        return None
    try:
        if not now - float(sl["at"]) <= STALE_S:
            return None
        beat = sl.get("heartbeat_at")
        return SiteCounts(SLCounts.from_fields(sl["rolling"]), SLCounts.from_fields(sl["today"]),
                          None if beat is None else float(beat))
    except (KeyError, TypeError, ValueError, AttributeError, BadSnapshotError):
        return None


def counts_to_publish(counts: SiteCounts, day: str, now: float) -> dict[str, Any]:
    """What :func:`published_counts` reads back (the ``"sl"`` of a site's published entry)."""
    return {"at": now, "day": day, "rolling": counts.rolling.to_fields(), "today": counts.day.to_fields(),
            "heartbeat_at": counts.heartbeat_at}


async def read_centre(
    client: Any, prefix: str, sla: SLAConfig, now: float, *, sites_found: dict[str, Any] | None = None,
    published: dict[str, Any] | None = None, known: Mapping[str, SiteCounts] | None = None,
) -> CentreFigures:
    """Every registered site's figures and their sums (reads only; no site's keys are written).

    A site whose daemon published its counters recently (``published_counts``) is not read
    again: each site's counters are read once per refresh, by its own daemon, so the centre's
    reading grows with the number of sites, not with its square. The others (stopped, of an
    earlier version) are read from their counters, all in the same two pipelines.
    ``known``: counters already read in this refresh (this daemon's own site)."""
    found = await registered_sites(client, prefix) if sites_found is None else sites_found
    if published is None:
        published = await sites_now(client, prefix)
    stores = {site: StatsStore(client, sla, prefix=prefix, site=site) for site in found}
    day = stores[next(iter(stores))].day_of(now).isoformat() if stores else ""
    counts: dict[str, SiteCounts] = dict(known or {})
    for site in found:
        if site not in counts and (got := published_counts(published.get(site), day, now)) is not None:
            counts[site] = got
    unread = [site for site in found if site not in counts]
    counts.update(zip(unread, await read_sites(client, [stores[s] for s in unread], now), strict=True))
    sites: list[SiteFigures] = []
    rolling, total_day = SLCounts(), SLCounts()
    reporting: list[SiteNow] = []
    for site, entry in found.items():
        c = counts[site]
        raw = published.get(site)
        figures = None if raw is None else SiteNow.from_dict(raw)
        fresh = figures is not None and now - figures.at <= STALE_S
        if fresh and figures is not None:
            reporting.append(figures)
        sites.append(SiteFigures(site, str(entry.get("name", "")), c.rolling, c.day, c.heartbeat_at,
                                 figures, fresh))
        rolling.add(c.rolling)
        total_day.add(c.day)
    return CentreFigures(now, tuple(sites), rolling, total_day, sum_now(now, reporting))


def sla_settings(sla: SLAConfig) -> dict[str, Any]:
    """The ``[sla]`` settings a centre's sites must share, as plain values (the register's
    ``sla``; ``utc_offset_s`` comes from the site's time zone and is left out)."""
    out = {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(sla).items()}
    out.pop("utc_offset_s", None)
    return out


def sla_mismatches(mine: Mapping[str, Any], found: Mapping[str, Mapping[str, Any]],
                   site: str) -> list[tuple[str, str, Any, Any]]:
    """``(other site, key, its value, ours)`` for every ``[sla]`` setting another registered
    site counts with differently (sites that registered no settings are not compared)."""
    out = []
    for other, entry in found.items():
        theirs = entry.get("sla")
        if other == site or not isinstance(theirs, dict):
            continue
        for key in sorted(set(mine) | set(theirs)):
            if mine.get(key) != theirs.get(key):
                out.append((other, key, theirs.get(key), mine.get(key)))
    return out


SiteNowSource = Callable[[float, list[str]], Awaitable[SiteNow]]
"""This daemon's figures of the moment at ``now``, given every registered site's id
(set by the pages' live board, :mod:`shenava.http.wallboard`)."""


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
        self._said = False
        self._warned: set[tuple[str, str]] = set()
        self._busy = False
        self._loop: LoopingCall | None = None
        self.latest: CentreFigures | None = None
        self.site_now: SiteNowSource | None = None
        """Where this site's figures of the moment come from (None: none are published)."""
        self.registered: tuple[str, ...] | None = None
        """The sites registered in this Redis as last read (None: not read yet)."""

    async def refresh(self) -> CentreFigures:
        if not self._registered:
            await register_site(self._client, self._prefix, self.site, name=self._name, timezone=self._timezone,
                                sla=sla_settings(self._sla))
            self._registered = True
        found = await registered_sites(self._client, self._prefix)
        self.registered = tuple(found)
        for other, key, theirs, ours in sla_mismatches(sla_settings(self._sla), found, self.site):
            if (other, key) not in self._warned:
                self._warned.add((other, key))
                log.warn(
                    "site {other} counts its service level with sla.{key} = {theirs!r}, this site "
                    "({site}) with {ours!r}: the centre's figures sum calls counted differently; "
                    "give every site the same [sla] (shenava check-sites)",
                    other=site_label(other), key=key, theirs=theirs, ours=ours, site=site_label(self.site),
                    code="sites.sla_differs")
        if list(found) == [self.site] == [""]:
            # A single-site install: the centre is this site, whose figures the page has.
            self.latest = CentreFigures(self._clock.seconds())
            return self.latest
        now = self._clock.seconds()
        store = StatsStore(self._client, self._sla, prefix=self._prefix, site=self.site)
        (own,) = await read_sites(self._client, [store], now)
        entry = {} if self.site_now is None else (await self.site_now(now, list(found))).to_dict()
        entry["sl"] = counts_to_publish(own, store.day_of(now).isoformat(), now)
        published = await publish_site_now(self._client, self._prefix, self.site, entry, read=True)
        self.latest = await read_centre(self._client, self._prefix, self._sla, now, sites_found=found,
                                        published=published, known={self.site: own})
        return self.latest

    def _tick(self) -> None:
        if self._busy:
            return
        self._busy = True

        def done(result: object) -> None:
            self._busy = False

        def failed(failure: Any) -> None:
            # Redis away is said elsewhere (the journal, the health check), and a standby may
            # not write (the leader's gate: "leader.not_leader") until it leads; a bug is said once
            expected = failure.check(RedisError, OSError) is not None or getattr(
                failure.value, "code", None) == NOT_LEADER
            if not expected and not self._said:
                self._said = True
                log.failure("centre figures not read", failure=failure)
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

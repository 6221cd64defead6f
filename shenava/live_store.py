"""Live call figures in Redis, and the pattern every Shenava storage class follows.

The pattern
-----------
One class owns a package's Redis keys; nothing else reads or writes them.

- Key names are built in one place (the ``_key`` helpers below) as
  ``<prefix>:{<tag>}:<name>``. The braces are a Redis Cluster hash tag: every
  key of one store hashes to the same slot, so a MULTI over several of them is
  valid on a cluster, and different stores spread over the cluster.
- Each change that touches more than one counter is one ``MULTI``/``EXEC``
  (``pipeline(transaction=True)``): a crash or a reconnect never leaves half
  an update, and readers never see one.
- Methods take ``now`` (POSIX seconds) from the caller; the store never reads
  a clock. Per-day keys use the site's time zone and expire after a retention
  period, so nothing grows without bound.
- Methods are coroutines of ``redis.asyncio``; Twisted code calls them through
  :func:`shenava_base.aio.as_deferred`. Values come back typed (frozen dataclasses),
  never as raw Redis replies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, date, datetime, tzinfo
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

DAY_RETENTION_S = 35 * 24 * 3600
"""How long a day's counters are kept (a month of daily figures, plus margin)."""

METRICS = ("offered", "answered", "abandoned")


@dataclass(frozen=True)
class QueueFigures:
    """One queue's counters: calls in progress now, and the day's totals."""

    in_progress: int = 0
    offered: int = 0
    answered: int = 0
    abandoned: int = 0


@dataclass
class LiveChanges:
    """Changes summed in order (:mod:`shenava.live_writer`): ``gauge`` replaces the
    in-progress gauge (then ``gauge_delta`` is what came after it); ``counters`` are
    day counter increments by (day, ``metric:queue``)."""

    gauge: dict[str, int] | None = None
    gauge_delta: dict[str, int] = dc_field(default_factory=dict)
    counters: dict[tuple[date, str], int] = dc_field(default_factory=dict)

    def empty(self) -> bool:
        return self.gauge is None and not self.gauge_delta and not self.counters


@dataclass(frozen=True)
class LiveSnapshot:
    day: date
    queues: Mapping[str, QueueFigures]

    def queue(self, name: str) -> QueueFigures:
        return self.queues.get(name, QueueFigures())


class LiveFiguresStore:
    """Counters of calls per queue: in progress (a gauge) and offered/answered/abandoned per day.

    ``offered`` counts calls that joined a queue; the SLA definitions (short
    abandons left out, answered within T) are computed elsewhere from these
    and finer events.
    """

    TAG = "live"

    def __init__(
        self,
        client: Redis,
        prefix: str,
        *,
        tz: tzinfo = UTC,
        day_retention_s: int = DAY_RETENTION_S,
        site: str = "",
    ) -> None:
        from shenava_base.sites import site_tag

        self._client = client
        self._tag = site_tag(self.TAG, site)
        self._prefix = prefix
        self._tz = tz
        self._retention_s = day_retention_s
        self._gauge_written: dict[str, int] | None = None
        """The in-progress gauge as this store last wrote it (None: not known)."""
        self._ttl_done: set[str] = set()
        self.commands = 0
        """Redis commands ``apply`` sent (tests count them)."""

    # -- keys (the only place key names are made) ------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, self._tag, *parts))

    def _in_progress_key(self) -> str:
        return self._key("in_progress")

    def _day_key(self, day: date) -> str:
        return self._key("day", day.isoformat())

    def day_of(self, now: float) -> date:
        return datetime.fromtimestamp(now, self._tz).date()

    # -- writes ------------------------------------------------------------

    async def call_offered(self, queue: str, now: float) -> None:
        """A call joined ``queue``: offered +1 today, in progress +1."""
        await self._count(queue, now, metric="offered", in_progress=+1)

    async def call_answered(self, queue: str, now: float) -> None:
        """An agent answered a call of ``queue``: answered +1 today, in progress -1."""
        await self._count(queue, now, metric="answered", in_progress=-1)

    async def call_abandoned(self, queue: str, now: float) -> None:
        """The caller left ``queue`` unanswered: abandoned +1 today, in progress -1."""
        await self._count(queue, now, metric="abandoned", in_progress=-1)

    async def set_in_progress(self, counts: Mapping[str, int]) -> None:
        """Replace the in-progress gauge, e.g. after resyncing channels with Asterisk."""
        key = self._in_progress_key()
        self._gauge_written = None
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if counts:
                pipe.hset(key, mapping={q: int(n) for q, n in counts.items()})
            await pipe.execute()

    async def apply(self, changes: LiveChanges) -> None:
        """Many changes in one ``MULTI``/``EXEC``, leaving what the calls one by one left.

        Only what changed is sent: the gauge as its final values (a replacement
        and the changes after it summed), and not at all when it is what this
        store last wrote; a day key's TTL once per key and process (as the
        statistics store does); no ``MULTI``/``EXEC`` around a single command.
        """
        key = self._in_progress_key()
        commands: list[tuple[str, tuple[object, ...], dict[str, object]]] = []
        gauge: dict[str, int] | None = None
        if changes.gauge is not None:
            gauge = {q: int(n) for q, n in changes.gauge.items()}
            for queue, n in changes.gauge_delta.items():
                gauge[queue] = gauge.get(queue, 0) + n
            written = self._gauge_written
            if written is None or set(written) - set(gauge):
                commands.append(("delete", (key,), {}))
                if gauge:
                    commands.append(("hset", (key,), {"mapping": gauge}))
            elif gauge != written:
                commands.append(("hset", (key,), {"mapping": {
                    q: n for q, n in gauge.items() if written.get(q) != n}}))
        days: set[date] = set()
        for (day, name), n in changes.counters.items():
            commands.append(("hincrby", (self._day_key(day), name, n), {}))
            days.add(day)
        for day in sorted(days):
            day_key = self._day_key(day)
            if day_key not in self._ttl_done:
                commands.append(("expire", (day_key, self._retention_s), {}))
        if gauge is None:
            for queue, n in changes.gauge_delta.items():
                if n:
                    commands.append(("hincrby", (key, queue, n), {}))
            if self._gauge_written is not None:
                gauge = dict(self._gauge_written)
                for queue, n in changes.gauge_delta.items():
                    gauge[queue] = gauge.get(queue, 0) + n
        self._gauge_written = None  # unknown until the write is answered
        if len(commands) == 1:
            name, args, kwargs = commands[0]
            await getattr(self._client, name)(*args, **kwargs)
        elif commands:
            async with self._client.pipeline(transaction=True) as pipe:
                for name, args, kwargs in commands:
                    getattr(pipe, name)(*args, **kwargs)
                await pipe.execute()
        self.commands += len(commands) + (2 if len(commands) > 1 else 0)
        self._ttl_done.update(self._day_key(day) for day in days)
        if gauge is not None:
            self._gauge_written = gauge

    async def _count(self, queue: str, now: float, *, metric: str, in_progress: int) -> None:
        day_key = self._day_key(self.day_of(now))
        self._gauge_written = None
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hincrby(day_key, f"{metric}:{queue}", 1)
            pipe.expire(day_key, self._retention_s)
            pipe.hincrby(self._in_progress_key(), queue, in_progress)
            await pipe.execute()

    # -- reads -------------------------------------------------------------

    async def snapshot(self, now: float) -> LiveSnapshot:
        """Today's figures and the current gauge, read in one transaction."""
        return await self.snapshot_day(self.day_of(now))

    async def snapshot_day(self, day: date) -> LiveSnapshot:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._day_key(day))
            pipe.hgetall(self._in_progress_key())
            day_counts, gauge = await pipe.execute()
        figures: dict[str, dict[str, int]] = {}
        for field, value in day_counts.items():
            metric, _, queue = _text(field).partition(":")
            if metric in METRICS:
                figures.setdefault(queue, {})[metric] = int(value)
        for queue, value in gauge.items():
            # a negative gauge means an answer/abandon whose arrival predates the
            # last resync; it is shown as 0 rather than as a negative count
            figures.setdefault(_text(queue), {})["in_progress"] = max(0, int(value))
        return LiveSnapshot(
            day=day,
            queues={queue: QueueFigures(**values) for queue, values in sorted(figures.items())},
        )


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value

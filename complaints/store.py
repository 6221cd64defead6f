"""The complaint register and abuse reports in Redis: the only code that touches ``{complaints}`` keys.

Keys (``<prefix>`` is ``redis.key_prefix``; one hash tag, so every
transaction below is valid on Redis Cluster):

- ``<prefix>:{complaints}:seq``: legacy complaint serial (a store without
  :class:`~complaints.reference_blocks.ReferenceBlocks`); the daemon makes
  references from reserved blocks instead (``refctr``, ``refkey``, ``refbase``).
- ``<prefix>:{complaints}:c:<reference>``: the complaint as JSON, history included.
- ``<prefix>:{complaints}:all``: sorted set, reference -> opened_at.
- ``<prefix>:{complaints}:status:<status>``: sorted set per status, reference -> opened_at.
- ``<prefix>:{complaints}:number:<number>``: sorted set of a caller's complaints.
- ``<prefix>:{complaints}:closed``: sorted set, reference -> closed_at (for retention).
- ``<prefix>:{complaints}:purges``: list of purge records (JSON), oldest first.
- ``<prefix>:{complaints}:abuse:seq``: abuse report counter (ids ``ar-<n>``).
- ``<prefix>:{complaints}:abuse:r:<id>``: one abuse report as JSON.
- ``<prefix>:{complaints}:abuse:all`` / ``abuse:pending``: sorted sets by reported_at.
- ``<prefix>:{complaints}:abuse:number:<number>``: a caller's reports.

Every change is read-modify-write under ``WATCH`` with a pure function of
:mod:`complaints.complaint` or :mod:`complaints.abuse`, retried on conflict;
opening a complaint (one per caller of the IVR's complaint menus) is one
script instead (:data:`OPEN`): Python makes the complaint (and the repeat
link) from what it read, the script checks that what it read still holds
and writes, so a new caller's complaint is one round trip and 7 commands
(it was 11 under ``WATCH``: ``WATCH`` x2, ``GET``, ``ZRANGE``, ``MULTI``,
the writes, ``EXEC``).
Searches read candidates from an index and filter in Python: a register of a
few hundred thousand complaints is fine; a larger one wants RediSearch or an
export to a database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import WatchError

from complaints.abuse import (
    AbuseReport,
    ReportStatus,
    new_report,
    report_from_dict,
    report_to_dict,
)
from complaints.complaint import (
    DEFAULT_REPEAT_WINDOW_S,
    Channel,
    Complaint,
    ComplaintStatus,
    complaint_from_dict,
    complaint_to_dict,
    link_repeat,
    needs_unresolved_callback,
    open_complaint,
)
from complaints.errors import ConcurrentUpdateError, UnknownComplaintError, UnknownReportError
from complaints.reference import parse_reference, reference_for

MAX_WATCH_RETRIES = 50
REPORT_ID_PREFIX = "ar-"
"""Abuse report ids (``ar-0001``): never a complaint reference (digits only)."""

OPEN = """
local c, index, expected = KEYS[1], ARGV[1], ARGV[2]
if index ~= '' then
  local latest = redis.call('ZRANGE', KEYS[tonumber(index)], -1, -1)[1] or ''
  if latest ~= expected then
    local stored = redis.call('GET', c)
    if stored then return {1, stored} end
    return {2, latest}
  end
end
local prev = ARGV[3]
if prev ~= '' and redis.call('GET', KEYS[tonumber(prev)]) ~= ARGV[4] then
  return {2, expected}
end
if not redis.call('SET', c, ARGV[7], 'NX') then return {1, redis.call('GET', c)} end
local i = 8
while i <= #ARGV do
  local op, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  if op == 'S' then redis.call('SET', key, ARGV[i + 2]); i = i + 3
  elseif op == 'Z' then redis.call('ZADD', key, ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'R' then redis.call('ZREM', key, ARGV[i + 2]); i = i + 3
  else redis.call('INCR', key); i = i + 2 end
end
return {0}
"""
"""Open a complaint, checked: KEYS[1] the complaint; ARGV index-key (its position in
KEYS, '' without a number), the reference last in that index when the complaint was
made ('' for none), prev-key and the previous complaint's JSON as read ('' when it is
not changed), then the writes (the first the complaint's own ``SET``, made ``NX``:
a complaint already stored, a replay, is returned as stored, nothing written). Replies
``{0}`` written, ``{1, json}`` already stored, ``{2, latest}`` what was read has
changed: read again and retry."""
_FORMATTING = str.maketrans("", "", " -.()/")


def number_key(number: str) -> str:
    """The form a caller's number is indexed by (formatting removed)."""
    return number.strip().translate(_FORMATTING)


@dataclass(frozen=True, slots=True)
class ComplaintQuery:
    """Filters of a listing or search; every one given must match.

    ``text`` matches (case-insensitively) the reference, category, notes,
    transcript and account. ``handled_by`` matches anyone in the history.
    Results are newest first; ``offset``/``limit`` page through them.
    """

    statuses: frozenset[ComplaintStatus] = frozenset()
    category: str | None = None
    number: str | None = None
    text: str | None = None
    handled_by: str | None = None
    since: float | None = None
    until: float | None = None
    offset: int = 0
    limit: int = 100

    def matches(self, c: Complaint) -> bool:
        if self.statuses and c.status not in self.statuses:
            return False
        if self.category is not None and c.category != self.category:
            return False
        if self.handled_by is not None and all(h.by != self.handled_by for h in c.history):
            return False
        if self.text:
            needle = self.text.casefold()
            hay = [c.reference, c.category, c.account or "", c.transcript or ""]
            hay.extend(n.text for n in c.notes)
            if not any(needle in h.casefold() for h in hay):
                return False
        return True


class ComplaintStore:
    """Owns the ``{complaints}`` keys."""

    TAG = "complaints"

    def __init__(self, client: Any, prefix: str, references: Any | None = None) -> None:
        # ``client`` is a ``redis.asyncio.Redis``; typed Any as in shenava.live_store
        self._client = client
        self._prefix = prefix
        self.references = references
        """A :class:`~complaints.reference_blocks.ReferenceBlocks`, or None (legacy serials)."""
        self._open_script: Any = None

    def new_reference_now(self) -> str:
        """A fresh reference from the reserved blocks, with no Redis round trip.

        Raises :class:`~complaints.reference_blocks.ReferencesNotReadyError` if
        there is no block in hand (or the store has none).
        """
        from complaints.reference_blocks import ReferencesNotReadyError

        if self.references is None:
            raise ReferencesNotReadyError("this store makes legacy serial references")
        return str(self.references.next())

    async def new_reference(self) -> str:
        """A fresh reference: from the reserved blocks (no Redis), else the legacy serial."""
        if self.references is not None:
            if not self.references.in_hand:
                await self.references.prepare()  # no block in hand: reserve one now
            return str(self.references.next())
        return reference_for(int(await self._client.incr(self._key("seq"))))

    # -- keys ------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, "{" + self.TAG + "}", *parts))

    def _c_key(self, reference: str) -> str:
        return self._key("c", reference)

    def _number_index(self, number: str) -> str:
        return self._key("number", number_key(number))

    def _report_key(self, report_id: str) -> str:
        return self._key("abuse", "r", report_id)

    # -- complaints ------------------------------------------------------------

    async def open(
        self,
        now: float,
        *,
        category: str,
        channel: Channel,
        number: str | None = None,
        repeat_window_s: float = DEFAULT_REPEAT_WINDOW_S,
        reference: str | None = None,
        **fields: Any,
    ) -> Complaint:
        """Register a new complaint, linked to the caller's previous one if it is recent.

        ``fields`` are the keyword arguments of :func:`complaints.complaint.open_complaint`
        (``by``, ``language``, ``account``, ``call_id``, ``ivr``, ``transcript``, ``recordings``).
        With ``reference`` given (made earlier, e.g. replayed from the journal)
        the open is idempotent: if that complaint exists it is returned as stored.
        """
        if reference is None:
            reference = await self.new_reference()
        else:
            reference = parse_reference(reference)
        number = number_key(number) if number else None
        if self._open_script is None:
            self._open_script = self._client.register_script(OPEN)
        latest, previous, previous_raw = "", None, ""  # first guess: the caller's first complaint
        for _ in range(MAX_WATCH_RETRIES):
            complaint = open_complaint(
                reference, now, category=category, channel=channel, number=number,
                previous=previous, repeat_window_s=repeat_window_s, **fields,
            )
            ops = _ScriptWrites(self._c_key(reference))
            index = ops.at(self._number_index(number)) if number else ""
            self._queue_write(ops, complaint, None)
            assert ops.args[:2] == ["S", "1"], "OPEN takes the complaint's own SET first"
            prev_at = ""
            if previous is not None and complaint.repeat_of:
                prev_at = ops.at(self._c_key(previous.reference))
                self._queue_write(ops, link_repeat(previous, complaint, now), previous)
            else:
                previous_raw = ""
            reply = await self._open_script(
                keys=ops.keys, args=[index, latest, prev_at, previous_raw, *ops.args]
            )
            outcome = int(reply[0])
            if outcome == 0:
                return complaint
            if outcome == 1:
                return complaint_from_dict(json.loads(reply[1]))
            latest = _text(reply[1])  # changed since read: read the caller's latest and retry
            previous, previous_raw = None, ""
            if latest:
                raw = await self._client.get(self._c_key(latest))
                if raw is None:
                    raise UnknownComplaintError(latest)
                previous, previous_raw = complaint_from_dict(json.loads(raw)), _text(raw)
        raise ConcurrentUpdateError(f"complaint {reference}: too many concurrent updates")

    async def get(self, reference: str) -> Complaint:
        reference = parse_reference(reference)
        raw = await self._client.get(self._c_key(reference))
        if raw is None:
            raise UnknownComplaintError(reference)
        return complaint_from_dict(json.loads(raw))

    async def find(self, reference: str) -> Complaint | None:
        try:
            return await self.get(reference)
        except UnknownComplaintError:
            return None

    async def update(self, reference: str, change: Callable[[Complaint], Complaint]) -> Complaint:
        """Apply a pure change to the stored complaint, atomically."""
        reference = parse_reference(reference)
        key = self._c_key(reference)
        for _ in range(MAX_WATCH_RETRIES):
            async with self._client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    current = await self._read(pipe, reference)
                    updated = change(current)
                    if updated is current:
                        await pipe.unwatch()
                        return current
                    pipe.multi()
                    self._queue_write(pipe, updated, current)
                    await pipe.execute()
                    return updated
                except WatchError:
                    continue
        raise ConcurrentUpdateError(f"complaint {reference}: too many concurrent updates")

    async def for_number(self, number: str) -> list[Complaint]:
        """The caller's complaints, oldest first."""
        return await self._many(await self._client.zrange(self._number_index(number), 0, -1))

    def queue_caller_reads(self, pipe: Any, number: str) -> int:
        """Queue the read of the caller's indexes on ``pipe``; how many commands (one).

        The caller's facts at arrival are read in one pipeline with the other
        packages' (callback flag, urgent voicemail), then :meth:`caller_records`.
        Both indexes (complaints and abuse reports) in one ``ZUNION``: they share
        the slot, and a reference (digits) is never a report id (``ar-``)."""
        pipe.zunion([self._number_index(number), self._key("abuse", "number", number_key(number))])
        return 1

    async def caller_records(self, replies: Sequence[Any]) -> tuple[list[Complaint], list[AbuseReport]]:
        """The complaints (oldest first) and reports :meth:`queue_caller_reads` found, in one ``MGET``."""
        members = [_text(m) for m in replies[0]]
        refs = [m for m in members if not m.startswith(REPORT_ID_PREFIX)]
        ids = [m for m in members if m.startswith(REPORT_ID_PREFIX)]
        keys = [self._c_key(r) for r in refs] + [self._report_key(i) for i in ids]
        if not keys:
            return [], []
        values = await self._client.mget(keys)
        complaints = [complaint_from_dict(json.loads(v)) for v in values[: len(refs)] if v]
        reports = [report_from_dict(json.loads(v)) for v in values[len(refs) :] if v]
        return complaints, reports

    async def caller_records_for(self, number: str) -> tuple[list[Complaint], list[AbuseReport]]:
        """The caller's complaints and abuse reports: two round trips at most."""
        async with self._client.pipeline(transaction=False) as pipe:
            self.queue_caller_reads(pipe, number)
            replies = await pipe.execute()
        return await self.caller_records(replies)

    async def search(self, query: ComplaintQuery) -> list[Complaint]:
        """Complaints matching ``query``, newest first, paged."""
        lo = "-inf" if query.since is None else query.since
        hi = "+inf" if query.until is None else query.until
        if query.number:
            indexes = [self._number_index(query.number)]
        elif query.statuses:
            indexes = [self._key("status", str(s)) for s in query.statuses]
        else:
            indexes = [self._key("all")]
        scored: dict[str, float] = {}
        for index in indexes:
            for ref, score in await self._client.zrangebyscore(index, lo, hi, withscores=True):
                scored[_text(ref)] = float(score)
        refs = sorted(scored, key=lambda r: (scored[r], r), reverse=True)
        found: list[Complaint] = []
        skip = query.offset
        for chunk_start in range(0, len(refs), 200):
            for c in await self._many(refs[chunk_start : chunk_start + 200]):
                if not query.matches(c):
                    continue
                if skip:
                    skip -= 1
                    continue
                found.append(c)
                if len(found) >= query.limit:
                    return found
        return found

    async def stale_unresolved(self, now: float, max_age_s: float) -> list[Complaint]:
        """Unresolved complaints due a callback flag (see ``needs_unresolved_callback``)."""
        stale: list[Complaint] = []
        for status in (ComplaintStatus.OPEN, ComplaintStatus.IN_PROGRESS, ComplaintStatus.WAITING_FOR_CUSTOMER):
            refs = await self._client.zrangebyscore(
                self._key("status", str(status)), "-inf", now - max_age_s
            )
            stale.extend(c for c in await self._many(refs) if needs_unresolved_callback(c, now, max_age_s))
        return stale

    async def closed_before(self, until: float) -> list[Complaint]:
        return await self._many(await self._client.zrangebyscore(self._key("closed"), "-inf", until))

    async def record_purge(self, reference: str, change: Callable[[Complaint], Complaint], now: float) -> Complaint:
        """Apply a purge and append it to the purge log."""
        purged = await self.update(reference, change)
        if purged.purged_at != now:
            return purged  # someone else purged it first; their purge is logged
        record = {"reference": purged.reference, "at": now, "history_entries": len(purged.history)}
        await self._client.rpush(self._key("purges"), json.dumps(record))
        return purged

    async def purge_log(self) -> list[dict[str, Any]]:
        return [json.loads(r) for r in await self._client.lrange(self._key("purges"), 0, -1)]

    # -- abuse reports ---------------------------------------------------------

    async def next_report_id(self) -> str:
        """The next ``ar-<n>`` id (the abuse report counter)."""
        return f"{REPORT_ID_PREFIX}{int(await self._client.incr(self._key('abuse', 'seq'))):04d}"

    async def add_report(self, now: float, *, report_id: str | None = None, **fields: Any) -> AbuseReport:
        """Keep a new report (fields of :func:`complaints.abuse.new_report`).

        With ``report_id`` given (made by the daemon, replayed from the journal)
        it is idempotent: a report already stored is returned as it is.
        """
        if report_id is None:
            report_id = await self.next_report_id()
        report = new_report(report_id, now, **fields)
        key = self._report_key(report_id)
        async with self._client.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            existing = await pipe.get(key)
            if existing is not None:
                await pipe.unwatch()
                return report_from_dict(json.loads(existing))
            pipe.multi()
            self._queue_report(pipe, report)
            await pipe.execute()  # a WatchError here: the same id was just stored by a replay
        return report

    async def get_report(self, report_id: str) -> AbuseReport:
        raw = await self._client.get(self._report_key(report_id))
        if raw is None:
            raise UnknownReportError(report_id)
        return report_from_dict(json.loads(raw))

    async def update_report(self, report_id: str, change: Callable[[AbuseReport], AbuseReport]) -> AbuseReport:
        key = self._report_key(report_id)
        for _ in range(MAX_WATCH_RETRIES):
            async with self._client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise UnknownReportError(report_id)
                    report = change(report_from_dict(json.loads(raw)))
                    pipe.multi()
                    self._queue_report(pipe, report)
                    await pipe.execute()
                    return report
                except WatchError:
                    continue
        raise ConcurrentUpdateError(f"abuse report {report_id}: too many concurrent updates")

    async def reports_for(self, number: str) -> list[AbuseReport]:
        refs = await self._client.zrange(self._key("abuse", "number", number_key(number)), 0, -1)
        return await self._reports(refs)

    async def pending_reports(self) -> list[AbuseReport]:
        return await self._reports(await self._client.zrange(self._key("abuse", "pending"), 0, -1))

    async def all_reports(self, since: float | None = None) -> list[AbuseReport]:
        lo = "-inf" if since is None else since
        return await self._reports(await self._client.zrangebyscore(self._key("abuse", "all"), lo, "+inf"))

    # -- plumbing ----------------------------------------------------------------

    async def _read(self, pipe: Any, reference: str) -> Complaint:
        raw = await pipe.get(self._c_key(reference))
        if raw is None:
            raise UnknownComplaintError(reference)
        return complaint_from_dict(json.loads(raw))

    async def _many(self, refs: Iterable[Any]) -> list[Complaint]:
        keys = [self._c_key(_text(r)) for r in refs]
        if not keys:
            return []
        return [complaint_from_dict(json.loads(v)) for v in await self._client.mget(keys) if v]

    async def _reports(self, ids: Iterable[Any]) -> list[AbuseReport]:
        keys = [self._report_key(_text(i)) for i in ids]
        if not keys:
            return []
        return [report_from_dict(json.loads(v)) for v in await self._client.mget(keys) if v]

    async def change_stamps(self) -> tuple[int, int, int]:
        """``(register changes, abuse report changes, reports pending review)``: counters
        every write moves, read in one round trip whatever the register's size (the
        review pages re-read a list only when its stamp moved)."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.get(self._key("changes"))
            pipe.get(self._key("abuse", "changes"))
            pipe.zcard(self._key("abuse", "pending"))
            register, abuse, pending = await pipe.execute()
        return int(register or 0), int(abuse or 0), int(pending or 0)

    def _queue_write(self, pipe: Any, c: Complaint, old: Complaint | None) -> None:
        pipe.set(self._c_key(c.reference), json.dumps(complaint_to_dict(c), ensure_ascii=False))
        if old is None:
            pipe.zadd(self._key("all"), {c.reference: c.opened_at})
            if c.number:
                pipe.zadd(self._number_index(c.number), {c.reference: c.opened_at})
        if old is None or old.status is not c.status:
            if old is not None:
                pipe.zrem(self._key("status", str(old.status)), c.reference)
            pipe.zadd(self._key("status", str(c.status)), {c.reference: c.opened_at})
        if c.closed_at is not None:
            pipe.zadd(self._key("closed"), {c.reference: c.closed_at})
        elif old is not None and old.closed_at is not None:
            pipe.zrem(self._key("closed"), c.reference)
        pipe.incr(self._key("changes"))  # the review pages' cue that the register changed

    def _queue_report(self, pipe: Any, r: AbuseReport) -> None:
        pipe.set(self._report_key(r.report_id), json.dumps(report_to_dict(r), ensure_ascii=False))
        pipe.zadd(self._key("abuse", "all"), {r.report_id: r.reported_at})
        if r.number:
            pipe.zadd(self._key("abuse", "number", number_key(r.number)), {r.report_id: r.reported_at})
        if r.status is ReportStatus.PENDING_REVIEW:
            pipe.zadd(self._key("abuse", "pending"), {r.report_id: r.reported_at})
        else:
            pipe.zrem(self._key("abuse", "pending"), r.report_id)
        pipe.incr(self._key("abuse", "changes"))


class _ScriptWrites:
    """Takes ``_queue_write``'s commands as :data:`OPEN`'s KEYS and ARGV (the first a ``SET``)."""

    def __init__(self, first_key: str) -> None:
        self.keys: list[str] = []
        self.args: list[str | float] = []
        self.at(first_key)

    def at(self, key: str) -> str:
        """The key's position in KEYS, from 1 as Lua counts, as text."""
        if key not in self.keys:
            self.keys.append(key)
        return str(self.keys.index(key) + 1)

    def set(self, key: str, value: str) -> None:
        self.args += ["S", self.at(key), value]

    def zadd(self, key: str, mapping: dict[str, float]) -> None:
        for member, score in mapping.items():
            self.args += ["Z", self.at(key), repr(float(score)), member]

    def zrem(self, key: str, member: str) -> None:
        self.args += ["R", self.at(key), member]

    def incr(self, key: str) -> None:
        self.args += ["I", self.at(key)]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value

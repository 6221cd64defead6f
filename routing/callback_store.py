"""Callback flags in Redis, and the dial lease that keeps two daemons from dialling one flag.

Keys (``<prefix>`` is ``redis.key_prefix``, by default ``shenava``; the hash tag
``{callbacks}`` keeps every key in one Cluster slot, so each script below
is valid on a cluster):

- ``<prefix>:{callbacks}:seq``: counter for flag ids ``cb-<n>``; each store
  reserves ``ID_BLOCK`` ids at a time (``INCRBY``), so a new flag costs no
  ``INCR`` (ids are unique, in order per daemon; a restart leaves a gap).
- ``<prefix>:{callbacks}:flag:<id>``: the flag as JSON (reasons, attempts, history).
- ``<prefix>:{callbacks}:open``: hash, customer number -> id of its open flag.
- ``<prefix>:{callbacks}:due``: sorted set of open flags, scored by when each
  may next be dialled (calling hours are applied when claiming, so a config
  change takes effect at once). A flag being dialled keeps the attempt's start
  as its score, so if its daemon dies it is found again once the lease expires.
- ``<prefix>:{callbacks}:due@<site>``: the same, for the open flags of one
  named site (:mod:`shenava_base.sites`): its daemon claims from it alone. A flag
  belongs to the site whose daemon opened it (the caller's site); flags of the
  default site ("") are in ``due`` only, and its daemon skips the others there.
- ``<prefix>:{callbacks}:closed``: sorted set of closed flags by closing time.
- ``<prefix>:{callbacks}:attention``: sorted set of unreachable and
  wrong-number flags that no supervisor has acknowledged yet.
- ``<prefix>:{callbacks}:lease:<id>``: the dial lease, ``SET NX PX`` with a
  random token; extended and released only by its holder (compare-then-act Lua).
- ``<prefix>:{callbacks}:ver:<number>``: set by every raise and by every write
  that opens or closes the number's flag (kept ``OP_MARK_TTL_S``): daemons of
  earlier versions raise a reason under ``WATCH`` of it (then of the flag), so
  it is still written for them.
- ``<prefix>:{callbacks}:calling:<number>``: the customer is on a call at that
  site now (value: the site id), set when a named site's daemon sees them call
  in while they have an open flag (:meth:`CallbackStore.mark_calling`, one
  script per call in), deleted when their call there ends, kept at most
  ``CALLING_TTL_S`` (a daemon killed meanwhile). Every site's dialer reads it
  before it dials a flag and, while it dials, once a second: a customer's call
  in at any site wins over their callback (docs/complaints.md).
- ``<prefix>:{callbacks}:op:<op id>``: a raised reason replayed from the
  journal (:mod:`shenava.journal`) is applied once: the marker is set
  (``SET NX``) in the same script and kept ``OP_MARK_TTL_S``.

Raising a reason (one per flagged caller) is one script (:data:`RAISE`): Python
makes the new or merged flag from what it knows (a new flag, or the number's
open flag as this store last wrote or read it), the script checks that this
still holds (``HSETNX`` of the number's open flag, or the stored JSON equal to
the one merged into) and writes; when it does not, it answers what is there
and Python merges again. A new flag is 5-6 commands (``EVALSHA``, ``HSETNX``,
``SET`` of the flag and of the version, ``ZADD`` of the due set and, for a
named site, of the site's) and a journal operation's marker one more: under ``WATCH`` it was
10-13 in 5 round trips. Every other change is one :data:`WRITE` script: the
pure functions of :mod:`routing.callbacks` applied to the flag as this store
last read or wrote it, checked against what is stored, and applied again to
what the script answers when another writer got there first; so a new reason
merged while a flag is being dialled is never overwritten by the outcome of
that dial. (Daemons of earlier versions change flags under ``WATCH`` of the
flag's key, which these scripts' writes fail as any write does.)

Dialling a flag is four round trips: the claim (two: the due set, then the lease's
``SET NX`` and the flag's ``GET`` together), the attempt and the outcome (each
one :data:`WRITE` script checking the flag is as the claim read it; the
outcome's gives the lease back).

The dialling protocol, for the daemon::

    claim = await store.claim_due(now, hours, owner="daemon-1")   # None: nothing due
    flag = await store.start_attempt(claim.lease, now, agent_id)  # before the Originate
    ...                                                           # store.extend(lease) while it rings
    await store.record_outcome(claim.lease, attempt_no, outcome, now, by=agent_id)

``release(lease)`` without an attempt gives the flag back untouched (e.g. the
agent went away before the Originate).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

from routing.callbacks import (
    AttemptOutcome,
    CallbackError,
    CallbackFlag,
    CallingHours,
    DialPolicy,
    LeaseLostError,
    Reason,
    ReasonKind,
    UnknownFlagError,
    acknowledge,
    attach_transcript,
    cancel,
    flag_from_dict,
    flag_to_dict,
    interrupt_stale_attempt,
    is_due,
    merge_reason,
    new_flag,
    next_attempt_at,
    normalize_number,
    purge_transcripts,
    record_outcome,
    start_attempt,
)

MAX_WATCH_RETRIES = 50
OP_MARK_TTL_S = 90 * 86400
"""How long a journal operation's marker is kept (longer than any journal can hold)."""
DEFAULT_CLAIM_SCAN = 20
"""Due flags looked at per claim: leased ones are skipped, so a few spare are read."""
SITE_MEMO_MAX = 10_000
"""Flags whose site the default site's claims remember; forgotten (and read again) beyond."""
ID_BLOCK = 20
"""Flag ids reserved per ``INCRBY`` of ``seq``."""
OPEN_MEMO_MAX = 1000
"""Open flags (as last written or read) kept to merge a number's next reason into at once."""
DUE_HINT_MAX_S = 10.0
"""How long a claim trusts its last read of the due set (and this store's own writes since)
to say nothing is due: a flag another daemon made due sooner waits at most this long."""

CALLING_TTL_S = 2 * 3600
"""How long a site's "on a call here" mark lasts if that site's daemon dies before the call ends."""

MARK_CALLING = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""
"""KEYS[1] the ``open`` hash, KEYS[2] the number's ``calling`` key; ARGV the number, the
site, the TTL. Marks the number only if it has an open flag (most callers have none)."""

WRITE = """
local stored = redis.call('GET', KEYS[1])
if not stored then return {1} end
if ARGV[3] == 'check' and redis.call('GET', KEYS[2]) ~= ARGV[2] then return {4} end
if stored ~= ARGV[1] then return {2, stored} end
local i = 4
while i <= #ARGV do
  local op, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  if op == 'S' then redis.call('SET', key, ARGV[i + 2]); i = i + 3
  elseif op == 'V' then redis.call('SET', key, '1', 'EX', ARGV[i + 2]); i = i + 3
  elseif op == 'H' then redis.call('HSET', key, ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'D' then redis.call('HDEL', key, ARGV[i + 2]); i = i + 3
  elseif op == 'Z' then redis.call('ZADD', key, ARGV[i + 2], ARGV[i + 3]); i = i + 4
  else redis.call('ZREM', key, ARGV[i + 2]); i = i + 3 end
end
if ARGV[3] == 'release' and redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return {0}
"""
"""Change a flag, checked: KEYS[1] the flag, KEYS[2] its lease (ARGV 2 the token, ARGV 3
``check``: refuse unless held; ``release``: give it back after the writes, if held), ARGV 1
the flag's JSON the change was made from, then the writes (``S`` key value, ``V`` key ttl:
the number's version, ``H``/``D`` hash field set/delete, ``Z``/``R`` sorted set add/remove).
Replies ``{0}`` written, ``{1}`` no such flag, ``{4}`` the lease is not held, ``{2, json}``
the flag changed since: change what is stored and retry."""

RAISE = """
local number, id, expected, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
if expected == '' then
  if redis.call('HSETNX', KEYS[1], number, id) == 0 then
    return {2, redis.call('HGET', KEYS[1], number)}
  end
else
  local stored = redis.call('GET', KEYS[2])
  if stored ~= expected then
    local open = redis.call('HGET', KEYS[1], number) or ''
    if open == id and stored then return {2, open, stored} end
    return {2, open}
  end
end
if ARGV[8] ~= '' and not redis.call('SET', KEYS[tonumber(ARGV[8])], '1', 'NX', 'EX', ttl) then
  if expected == '' then redis.call('HDEL', KEYS[1], number) end
  return {3}
end
redis.call('SET', KEYS[2], ARGV[4])
redis.call('SET', KEYS[3], '1', 'EX', ttl)
redis.call('ZADD', KEYS[4], ARGV[5], id)
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[tonumber(ARGV[7])], ARGV[5], id) end
return {0}
"""
"""Raise a reason, checked: KEYS open, the flag, the number's version, due, then the
site's due set and the operation's marker when ARGV 7 and 8 name their places. ARGV
number, flag id, the flag's JSON as read ('' for a new flag: the number must have no
open flag, taken by ``HSETNX``), the JSON to write, its due score, the markers' TTL.
Replies ``{0}`` written, ``{3}`` the operation was applied before (nothing written),
``{2, open id or '' [, its JSON]}`` what was assumed does not hold: merge again."""

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
_EXTEND_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class ConcurrentUpdateError(CallbackError):
    """A flag changed under us more than ``MAX_WATCH_RETRIES`` times in a row."""

    code = "callbacks.concurrent_update"


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to dial one flag, held until released or ``lease_ms`` pass unextended."""

    flag_id: str
    token: str


@dataclass(frozen=True, slots=True)
class Claim:
    flag: CallbackFlag
    lease: Lease


class CallbackStore:
    """Owns the ``{callbacks}`` keys: flags, their indexes, and dial leases."""

    TAG = "callbacks"

    def __init__(self, client: Any, prefix: str, policy: DialPolicy | None = None, *, site: str = "") -> None:
        # ``client`` is a ``redis.asyncio.Redis``; typed Any as in shenava.live_store
        self._client = client
        self.site = site
        self._prefix = prefix
        self._policy = policy or DialPolicy()
        self._release_script = client.register_script(_RELEASE_LUA)
        self._extend_script = client.register_script(_EXTEND_LUA)
        self._raise_script = client.register_script(RAISE)
        self._ids: list[int] = []
        """Reserved flag ids not used yet, lowest last (``ID_BLOCK``)."""
        self._write_script = client.register_script(WRITE)
        self._mark_calling_script = client.register_script(MARK_CALLING)
        self._open_memo: dict[str, str] = {}
        """Number -> id of its open flag as this store last wrote or read it: the next
        reason is merged into that flag's JSON (``_texts``) at once (the script checks it)."""
        self._texts: dict[str, str] = {}
        """Flag id -> its JSON as this store last wrote or read it: a change is made from it
        and sent at once (:data:`WRITE` checks it is still what is stored)."""
        self._idle_until = -math.inf
        """Until then a claim knows nothing is due in this site's set (``claim_due``)."""
        self._idle_skipped: frozenset[str] = frozenset()
        """Due flags that claim skipped (the caller's ``skip``): one not skipped now is read again."""
        self._reads: list[dict[str, float]] = []
        """Per claim whose due-set read is in flight: flag id -> score this store wrote (or
        gave the lease of) meanwhile. The read may predate the write: ``_set_idle`` must not
        put the hint past it (it did, and such a flag waited up to ``DUE_HINT_MAX_S``)."""
        self._default_site: dict[str, bool] = {}
        """Flag id -> opened at the default site: a flag keeps its site for life, so
        the claim reads it once per flag, not once per claim (``SITE_MEMO_MAX``)."""

    @property
    def policy(self) -> DialPolicy:
        return self._policy

    # -- keys (the only place key names are made) ----------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, "{" + self.TAG + "}", *parts))

    def _flag_key(self, flag_id: str) -> str:
        return self._key("flag", flag_id)

    def _lease_key(self, flag_id: str) -> str:
        return self._key("lease", flag_id)

    def _site_due_key(self, site: str) -> str:
        """The due set this site's daemon claims from (the default site's is the shared one)."""
        return self._key("due@" + site) if site else self._key("due")

    # -- raising -----------------------------------------------------------------

    async def raise_reason(
        self, number: str, reason: Reason, now: float, *, op_id: str | None = None
    ) -> CallbackFlag | None:
        """Merge ``reason`` into the number's open flag, or open a flag for it.

        With ``op_id`` (a journal entry's) the raise happens at most once: a
        replay of an operation already applied changes nothing and returns None.
        One :data:`RAISE` script; again with what it answers when the number's
        flag is not what this store assumed.
        """
        number = normalize_number(number)
        op_key = self._key("op", op_id) if op_id else None
        known = self._open_memo.get(number)
        expected = self._texts.get(known, "") if known is not None else ""
        for _ in range(MAX_WATCH_RETRIES):
            if expected:
                current = flag_from_dict(json.loads(expected))
                flag = merge_reason(current, reason, now)
            else:
                flag_id = await self._new_id()
                flag = replace(new_flag(flag_id, number, reason, now), site=self.site)
            keys = [self._key("open"), self._flag_key(flag.flag_id), self._key("ver", number), self._key("due")]
            site_at = op_at = ""
            if flag.site:
                keys.append(self._site_due_key(flag.site))
                site_at = str(len(keys))
            if op_key is not None:
                keys.append(op_key)
                op_at = str(len(keys))
            text = _flag_json(flag)
            reply = await self._raise_script(
                keys=keys,
                args=[number, flag.flag_id, expected, text, repr(self._score(flag)), OP_MARK_TTL_S, site_at, op_at],
            )
            outcome = int(reply[0])
            if outcome == 0:
                self._remember(flag, text)
                return flag
            if not expected:
                self._ids.append(int(flag.flag_id.removeprefix("cb-")))  # not used: the next one
            if outcome == 3:
                return None
            # not as assumed: merge into what is there now (or open a new flag)
            expected_id = _text(reply[1]) if reply[1] else ""
            if len(reply) > 2:
                expected = _text(reply[2])
            elif expected_id:
                raw = await self._client.get(self._flag_key(expected_id))
                expected = "" if raw is None else _text(raw)
            else:
                expected = ""
            if expected and not flag_from_dict(json.loads(expected)).is_open:
                expected = ""  # closed meanwhile: the script finds the number free, or what took it
        raise ConcurrentUpdateError(f"callback flag of {number[-2:]!r}: too many concurrent updates")

    async def _new_id(self) -> str:
        """A flag id from this store's reserved block (one ``INCRBY`` per ``ID_BLOCK``)."""
        if not self._ids:
            last = int(await self._client.incrby(self._key("seq"), ID_BLOCK))
            if not self._ids:
                self._ids = list(range(last, last - ID_BLOCK, -1))
            else:  # another raise refilled meanwhile: keep both blocks
                self._ids[:0] = range(last, last - ID_BLOCK, -1)
        return f"cb-{self._ids.pop():04d}"

    def _score(self, flag: CallbackFlag) -> float:
        """The flag's score in the due sets: the attempt's start while one is open."""
        busy = flag.attempt_in_progress
        at = next_attempt_at(flag, self._policy) if busy is None else busy.started_at
        return flag.due_at if at is None else at  # None only for a closed flag, not scored

    def _remember(self, flag: CallbackFlag, text: str) -> None:
        """Keep the flag as just written or read (forget a closed one's number); a flag of
        this site written due sooner than claims thought brings their next read forward."""
        self._texts.pop(flag.flag_id, None)
        if len(self._texts) >= OPEN_MEMO_MAX:
            del self._texts[next(iter(self._texts))]  # the oldest
        self._texts[flag.flag_id] = text
        if not self.site and len(self._default_site) < SITE_MEMO_MAX:
            self._default_site[flag.flag_id] = not flag.site  # claims need not read it
        if flag.attempt_in_progress is None:  # its score now is as written here
            self._idle_skipped -= {flag.flag_id}
            if flag.is_open and flag.site == self.site:
                score = self._score(flag)
                self._idle_until = min(self._idle_until, score)
                for written in self._reads:
                    written[flag.flag_id] = min(written.get(flag.flag_id, math.inf), score)
        self._open_memo.pop(flag.number, None)
        if flag.is_open:
            if len(self._open_memo) >= OPEN_MEMO_MAX:
                del self._open_memo[next(iter(self._open_memo))]  # the oldest
            self._open_memo[flag.number] = flag.flag_id

    async def attach_transcript(
        self, number: str, recording_id: str, transcript: str, now: float
    ) -> CallbackFlag:
        """Put a finished transcript on the voicemail reason of the number's open flag."""
        flag = await self.open_flag_for(number)
        if flag is None:
            raise UnknownFlagError(f"open for the number of voicemail {recording_id!r}")
        return await self._update(
            flag.flag_id, lambda f: attach_transcript(f, recording_id, transcript, now)
        )

    # -- dialling ------------------------------------------------------------------

    async def claim_due(
        self, now: float, hours: CallingHours, owner: str, *, scan: int = DEFAULT_CLAIM_SCAN,
        skip: Collection[str] = (),
    ) -> Claim | None:
        """Lease the flag due longest, within calling hours; ``None`` if none can be dialled.

        A flag whose previous holder vanished mid-dial (the lease expired with an
        attempt open) has that attempt recorded as ``interrupted`` first.
        ``skip``: flags the caller holds the lease of (its own dials in progress):
        not asked about (before, each claim tried their leases again: two Redis
        commands per flag being dialled, on every poke; benchmarks/system.py).

        The due set is read by rank with scores, so a read that finds nothing more
        to dial also says when the next flag falls due; until then (at most
        ``DUE_HINT_MAX_S``, for flags other daemons write) claims return ``None``
        without reading, unless this store wrote a flag due sooner, gave a lease
        back, or a flag skipped then is not skipped now (the dialer pokes on every
        raise, and each read under traffic found nothing: about 0.3 commands per call).
        """
        if not hours.is_open(now):
            return None
        if now < self._idle_until and self._idle_skipped <= set(skip):
            return None  # nothing due since the last read, nor written due since by this store
        written: dict[str, float] = {}
        self._reads.append(written)
        try:
            return await self._claim_read(now, hours, owner, scan, skip, written)
        finally:
            self._reads = [r for r in self._reads if r is not written]  # (equal dicts are not it)

    async def _claim_read(
        self, now: float, hours: CallingHours, owner: str, scan: int, skip: Collection[str],
        written: dict[str, float],
    ) -> Claim | None:
        """:meth:`claim_due` once the hint says read; ``written``: see ``_reads``."""
        n = scan + len(skip)
        # by rank, with scores: the due flags, and when the first of the others falls due
        pairs = await self._client.zrange(self._site_due_key(self.site), 0, n - 1, withscores=True)
        due = [(_text(raw_id), float(score)) for raw_id, score in pairs if float(score) <= now]
        later = math.inf if len(pairs) < n else -math.inf
        if len(due) < len(pairs):
            later = float(pairs[len(due)][1])
        skipped: set[str] = set()
        recheck = later
        for k, (flag_id, _) in enumerate(due):
            if flag_id in skip:
                skipped.add(flag_id)
                continue
            if not self.site and not await self._of_default_site(flag_id):
                continue  # another site's flag, in the shared set: its own daemon dials it
            lease = Lease(flag_id, f"{owner}:{uuid.uuid4().hex}")
            async with self._client.pipeline(transaction=False) as pipe:  # one round trip
                pipe.set(self._lease_key(flag_id), lease.token, nx=True, px=self._policy.lease_ms)
                pipe.get(self._flag_key(flag_id))
                taken, raw = await pipe.execute()
            if not taken:
                recheck = -math.inf  # another daemon's for now: read again at the next claim
                continue
            flag = None
            if raw is not None:
                try:
                    flag = await self._update(
                        flag_id, lambda f: interrupt_stale_attempt(f, now, self._policy),
                        fresh=_text(raw),
                    )
                except UnknownFlagError:
                    flag = None
            if flag is not None and is_due(flag, now, self._policy, hours):
                more = any(f not in skip for f, _ in due[k + 1 :])
                self._set_idle(now, -math.inf if more else recheck, skipped, written, due)
                return Claim(flag, lease)
            await self.release(lease)
            if flag is not None and flag.is_open:  # not due after all: when it is
                recheck = min(recheck, self._score(flag))
        self._set_idle(now, recheck, skipped, written, due)
        return None

    def _set_idle(
        self, now: float, until: float, skipped: set[str], written: dict[str, float],
        read: list[tuple[str, float]],
    ) -> None:
        """Claims until ``until`` (at most ``DUE_HINT_MAX_S`` on) need not read: nothing due,
        nor written due by this store since the read (the flags ``read`` due were seen to)."""
        seen = {flag_id for flag_id, _ in read}
        since = min((at for flag_id, at in written.items() if flag_id not in seen), default=math.inf)
        self._idle_until = min(until, since, now + DUE_HINT_MAX_S)
        self._idle_skipped = frozenset(skipped)

    async def start_attempt(self, lease: Lease, now: float, agent_id: str) -> CallbackFlag:
        """Record the attempt; raises :class:`LeaseLostError` if the lease is no longer ours."""
        return await self._update(
            lease.flag_id, lambda f: start_attempt(f, now, agent_id), lease=lease
        )

    async def record_outcome(
        self,
        lease: Lease,
        attempt_no: int,
        outcome: AttemptOutcome,
        now: float,
        *,
        by: str,
        note: str = "",
        follow_up_at: float | None = None,
    ) -> CallbackFlag:
        """Record how the attempt ended, then release the lease.

        The outcome is recorded even if the lease was lost meanwhile: the call
        did happen, and an outcome is never dropped.
        """
        return await self._update(
            lease.flag_id,
            lambda f: record_outcome(
                f, attempt_no, outcome, now, self._policy, by=by, note=note,
                follow_up_at=follow_up_at,
            ),
            release=lease,
        )

    async def extend(self, lease: Lease) -> None:
        """Keep the lease while a call is still ringing or talking."""
        extended = await self._extend_script(
            keys=[self._lease_key(lease.flag_id)], args=[lease.token, self._policy.lease_ms]
        )
        if not int(extended):
            raise LeaseLostError(lease.flag_id)

    async def release(self, lease: Lease) -> bool:
        """Give the lease back; ``False`` if it had already expired or been taken over."""
        self._idle_until = -math.inf  # the flag may be due again: the next claim reads
        for written in self._reads:
            written[lease.flag_id] = -math.inf
        deleted = await self._release_script(
            keys=[self._lease_key(lease.flag_id)], args=[lease.token]
        )
        return bool(int(deleted))

    # -- customers on a call at some site ---------------------------------------------

    async def mark_calling(self, number: str) -> bool:
        """The customer called in here: say so to every site's dialer, if they have an
        open flag (one script; nothing is written for the others). True if marked."""
        marked = await self._mark_calling_script(
            keys=[self._key("open"), self._key("calling", number)],
            args=[number, self.site or "-", CALLING_TTL_S],
        )
        return bool(int(marked))

    async def unmark_calling(self, number: str) -> None:
        """Their call here ended (the mark goes if it is still this site's)."""
        await self._release_script(keys=[self._key("calling", number)], args=[self.site or "-"])

    async def calling(self, numbers: Collection[str]) -> set[str]:
        """Which of ``numbers`` are on a call at some site now (one ``MGET``: one slot)."""
        if not numbers:
            return set()
        ordered = list(numbers)
        found = await self._client.mget([self._key("calling", n) for n in ordered])
        return {n for n, value in zip(ordered, found, strict=True) if value is not None}

    # -- supervisors ---------------------------------------------------------------

    async def cancel(self, flag_id: str, now: float, *, by: str, note: str) -> CallbackFlag:
        return await self._update(flag_id, lambda f: cancel(f, now, by=by, note=note))

    async def acknowledge(self, flag_id: str, now: float, *, by: str) -> CallbackFlag:
        return await self._update(flag_id, lambda f: acknowledge(f, now, by=by))

    async def needing_attention(self) -> list[CallbackFlag]:
        """Unreachable and wrong-number flags nobody has acknowledged, oldest first."""
        return await self._many(await self._client.zrange(self._key("attention"), 0, -1))

    # -- reads ---------------------------------------------------------------------

    async def get(self, flag_id: str) -> CallbackFlag:
        raw = await self._client.get(self._flag_key(flag_id))
        if raw is None:
            raise UnknownFlagError(repr(flag_id))
        return flag_from_dict(json.loads(raw))

    async def open_flag_for(self, number: str) -> CallbackFlag | None:
        flag_id = await self._client.hget(self._key("open"), normalize_number(number))
        return None if flag_id is None else await self.get(_text(flag_id))

    def queue_has_open_flag(self, pipe: Any, number: str) -> int:
        """Queue :meth:`has_open_flag`'s read on ``pipe`` (the caller's facts in one
        pipeline); how many commands: 0 for a number no flag can have (then False)."""
        try:
            pipe.hexists(self._key("open"), normalize_number(number))
        except CallbackError:
            return 0
        return 1

    async def has_open_flag(self, number: str) -> bool:
        """For routing's ``WaitingCall.callback_flag``: an unknown number has none."""
        try:
            return bool(await self._client.hexists(self._key("open"), normalize_number(number)))
        except CallbackError:
            return False

    async def open_flags(self) -> list[CallbackFlag]:
        """Every open flag, by when it may next be dialled."""
        return await self._many(await self._client.zrange(self._key("due"), 0, -1))

    async def first_due(self, limit: int) -> list[CallbackFlag]:
        """The ``limit`` open flags to be dialled first (the wallboard's backlog list)."""
        if limit <= 0:
            return []
        return await self._many(await self._client.zrange(self._key("due"), 0, limit - 1))

    async def attention_count(self) -> int:
        """How many flags need a person's look (without reading them)."""
        return int(await self._client.zcard(self._key("attention")))

    async def backlog(self, now: float) -> int:
        """Open flags due by ``now`` (the wallboard's callback backlog, every site's)."""
        return int(await self._client.zcount(self._key("due"), "-inf", now))

    async def site_backlog(self, now: float, sites: Iterable[str] = ()) -> int:
        """Open flags due by ``now`` that this store's site dials (the wallboard's row of
        the site). A named site's are its ``due@SITE`` set; the default site's are the
        shared set's less every named site's in ``sites`` (one round trip)."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zcount(self._site_due_key(self.site), "-inf", now)
            others = [] if self.site else sorted({s for s in sites if s})
            for site in others:
                pipe.zcount(self._site_due_key(site), "-inf", now)
            counts = [int(n) for n in await pipe.execute()]
        return max(0, counts[0] - sum(counts[1:]))

    async def _of_default_site(self, flag_id: str) -> bool:
        known = self._default_site.get(flag_id)
        if known is not None:
            return known
        raw = await self._client.get(self._flag_key(flag_id))
        if raw is None:
            return False  # not kept: the flag may be written later
        mine = not json.loads(raw).get("site")
        if len(self._default_site) >= SITE_MEMO_MAX:
            self._default_site.clear()
        self._default_site[flag_id] = mine
        return mine

    async def closed_between(self, since: float, until: float) -> list[CallbackFlag]:
        return await self._many(
            await self._client.zrangebyscore(self._key("closed"), since, until)
        )

    # -- retention -----------------------------------------------------------------

    async def purge_closed(self, now: float, retention_s: float) -> list[str]:
        """Remove the transcripts of flags closed ``retention_s`` ago or more; returns their ids."""
        purged = []
        for flag in await self.closed_between(float("-inf"), now - retention_s):
            if flag.purged_at is None and flag.transcripts:
                await self._update(flag.flag_id, lambda f: purge_transcripts(f, now))
                purged.append(flag.flag_id)
        return purged

    # -- plumbing --------------------------------------------------------------------

    async def _many(self, raw_ids: list[Any]) -> list[CallbackFlag]:
        if not raw_ids:
            return []
        values = await self._client.mget([self._flag_key(_text(i)) for i in raw_ids])
        return [flag_from_dict(json.loads(v)) for v in values if v is not None]

    async def _update(
        self,
        flag_id: str,
        change: Callable[[CallbackFlag], CallbackFlag],
        *,
        lease: Lease | None = None,
        release: Lease | None = None,
        fresh: str | None = None,
    ) -> CallbackFlag:
        """Apply ``change`` to the stored flag: one :data:`WRITE` script, from the flag as this
        store last wrote or read it (read first when it has none), again from what the script
        answers when it changed meanwhile. ``lease``: refused unless held (:class:`LeaseLostError`);
        ``release``: given back in the same script once written (if still held); ``fresh``:
        the flag's JSON just read."""
        raw = fresh if fresh is not None else self._texts.get(flag_id)
        read = fresh is not None  # whether ``raw`` was just read (a change of nothing is then the answer)
        held = lease or release
        for _ in range(MAX_WATCH_RETRIES):
            if raw is None:
                got = await self._client.get(self._flag_key(flag_id))
                if got is None:
                    self._texts.pop(flag_id, None)
                    raise UnknownFlagError(repr(flag_id))
                raw, read = _text(got), True
            current = flag_from_dict(json.loads(raw))
            flag = change(current)
            if flag is current and lease is None and release is None:
                if read:
                    self._remember(flag, raw)
                    return flag
                raw = None  # a change of nothing to what this store remembered: read it
                continue
            ops = _Writes(self._flag_key(flag_id))
            if held is not None:
                ops.at(self._lease_key(flag_id))
            text = raw if flag is current else self._queue_write(ops, flag, was_open=current.is_open)
            mode = "check" if lease is not None else "release" if release is not None else ""
            reply = await self._write_script(
                keys=ops.keys, args=[raw, held.token if held is not None else "", mode, *ops.args]
            )
            outcome = int(reply[0])
            if outcome == 0:
                self._remember(flag, text)
                return flag
            if outcome == 1:
                self._texts.pop(flag_id, None)
                raise UnknownFlagError(repr(flag_id))
            if outcome == 4:
                raise LeaseLostError(flag_id)
            raw, read = _text(reply[1]), True
        raise ConcurrentUpdateError(f"callback flag {flag_id!r}: too many concurrent updates")

    def _queue_write(self, pipe: Any, flag: CallbackFlag, *, was_open: bool = False) -> str:
        """Queue the flag's write and its indexes; returns the JSON written.

        A flag open before and after keeps its number's ``open`` entry and version: only a
        write that opens or closes it changes which flag is the number's open one, all that
        a raise of an earlier version (``WATCH`` of the version, then of the flag) must see."""
        text = _flag_json(flag)
        pipe.set(self._flag_key(flag.flag_id), text)
        if flag.is_open:
            if not was_open:
                pipe.set(self._key("ver", flag.number), "1", ex=OP_MARK_TTL_S)
                pipe.hset(self._key("open"), flag.number, flag.flag_id)
            score = self._score(flag)
            pipe.zadd(self._key("due"), {flag.flag_id: score})
            if flag.site:
                pipe.zadd(self._site_due_key(flag.site), {flag.flag_id: score})
            return text
        if was_open:
            # Any write of the key makes a WATCH of it fail, whatever the value.
            pipe.set(self._key("ver", flag.number), "1", ex=OP_MARK_TTL_S)
            pipe.hdel(self._key("open"), flag.number)
        # (a flag closed before, changed again: an acknowledgement, a late outcome, must not
        # take the number's ``open`` entry from a newer flag; it did)
        pipe.zrem(self._key("due"), flag.flag_id)
        if flag.site:
            pipe.zrem(self._site_due_key(flag.site), flag.flag_id)
        pipe.zadd(self._key("closed"), {flag.flag_id: flag.closed_at})
        if flag.needs_attention:
            pipe.zadd(self._key("attention"), {flag.flag_id: flag.closed_at})
        else:
            pipe.zrem(self._key("attention"), flag.flag_id)
        return text


class _Writes:
    """Takes ``_queue_write``'s commands as :data:`WRITE`'s KEYS and ARGV."""

    def __init__(self, first_key: str) -> None:
        self.keys: list[str] = []
        self.args: list[str | float | int] = []
        self.at(first_key)

    def at(self, key: str) -> str:
        """The key's position in KEYS, from 1 as Lua counts, as text."""
        if key not in self.keys:
            self.keys.append(key)
        return str(self.keys.index(key) + 1)

    def set(self, key: str, value: str, ex: int | None = None) -> None:
        if ex is None:
            self.args += ["S", self.at(key), value]
        else:
            assert value == "1", "V sets a marker"
            self.args += ["V", self.at(key), ex]

    def hset(self, key: str, field: str, value: str) -> None:
        self.args += ["H", self.at(key), field, value]

    def hdel(self, key: str, field: str) -> None:
        self.args += ["D", self.at(key), field]

    def zadd(self, key: str, mapping: dict[str, float | None]) -> None:
        for member, score in mapping.items():
            assert score is not None
            self.args += ["Z", self.at(key), repr(float(score)), member]

    def zrem(self, key: str, member: str) -> None:
        self.args += ["R", self.at(key), member]


def _flag_json(flag: CallbackFlag) -> str:
    return json.dumps(flag_to_dict(flag), ensure_ascii=False)


def reason_to_dict(reason: Reason) -> dict[str, Any]:
    """A reason as JSON (the journal keeps it so while Redis is away)."""
    return {
        "kind": str(reason.kind), "source": reason.source, "raised_at": reason.raised_at,
        "due_at": reason.due_at, "raised_by": reason.raised_by, "note": reason.note,
        "transcript": reason.transcript, "complaint_ref": reason.complaint_ref,
    }


def reason_from_dict(data: dict[str, Any]) -> Reason:
    return Reason(
        kind=ReasonKind(data["kind"]), source=data["source"], raised_at=data["raised_at"],
        due_at=data["due_at"], raised_by=data["raised_by"], note=data["note"],
        transcript=data["transcript"], complaint_ref=data["complaint_ref"],
    )


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _text_or_none(value: bytes | str | None) -> str | None:
    return None if value is None else _text(value)

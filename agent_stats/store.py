"""The statistics' Redis keys, behind one class: ledgers, SL counters, breaks, alerts.

Keys (``P`` is the configured prefix, ``{stats}`` the Cluster hash tag, so one
``MULTI`` may touch any of them; a named site's tag is ``{stats:SITE}``, see
:mod:`shenava_base.sites`; ``DAY`` is the site's local date, ISO form):

========================================  ======  =====================================
``P:{stats}:agents``                      set     agents with a ledger
``P:{stats}:heads``                       hash    AGENT -> the open interval, JSON
                                                  ``[since, state, reason]``
``P:{stats}:ledger:AGENT``                hash    the open interval of earlier versions
                                                  (since, state, reason): read when
                                                  ``heads`` has no field for the agent,
                                                  moved there at the next restore
``P:{stats}:intervals:AGENT:DAY``         list    closed intervals starting that day,
                                                  JSON ``[start, end, state, reason]``
``P:{stats}:heartbeat``                   hash    ``at``: the daemon last watched then;
                                                  ``link_lost_at``: AMI down since
``P:{stats}:queues``                      set     queues with SL counters
``P:{stats}:sl:QUEUE:KIND:START``         hash    ``SLCounts`` fields (``sla.BucketKey``)
``P:{stats}:agentday:DAY``                hash    ``AGENT:answered``, ``AGENT:hard``
``P:{stats}:slseen:DAY``                  set     outcomes already counted (``outcome_id``),
                                                  so a retried batch never counts twice
``P:{stats}:breakline``                   hash    AGENT -> waiting request (JSON)
``P:{stats}:breakpending``                hash    AGENT -> grant waiting for the agent's
                                                  call to end (JSON ``BreakRecord``)
``P:{stats}:breaks:DAY``                  list    grants (JSON), by grant day
``P:{stats}:alerts:DAY``                  list    alerts raised (JSON)
========================================  ======  =====================================

A named site (``[site] id``) gives each agent's intervals their own slot:
``P:{stats:SITE:AGENT}:intervals:DAY`` (the rest, ``heads`` included, under
``P:{stats:SITE}``); the default site keeps the names above.

The ledger heads (each agent's open interval) are one hash per site, written
once per batch (one ``HSET`` of every agent that changed), not one key per
agent written per transition: 2.6 fewer commands per call at 50 calls/s, and
on a cluster no script per agent's slot (the intervals' ``RPUSH`` goes bare).
On a cluster a transition's intervals and its head are then in two slots,
written together and retried whole like every slot of a batch; a batch cut
short by a crash between the two leaves a gap (filled ``UNKNOWN``) or an
overlap (cut) that :func:`chain` repairs on reading, as after an ambiguous
failure.

Writes come as a batch of typed operations (``apply``), one ``MULTI``/``EXEC``
per batch (on a Redis Cluster one per slot, :mod:`agent_stats.slot_pipes`), so
a crash never leaves half a transition and a busy second costs one round trip.
The agents' transitions of a slot are one script (:data:`LEDGER`), and a
slot's only command goes without ``MULTI``/``EXEC`` (and a script of one
command as the command itself): a batch of transitions alone, the usual one,
is one command per slot.
Rolling-window slots expire after ``2 * window_s``; everything else after
``retention_s``. A TTL is set once per key and process, not on every
increment. The store never reads a clock: every time comes with the operation.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent_stats.errors import BadSnapshotError
from agent_stats.ledger import AgentLedger, Interval
from agent_stats.outcome_counts import COUNT_OUTCOMES, OutcomeCounters, script_call
from agent_stats.sla import (
    DAY_S,
    BucketKey,
    BucketKind,
    CallRecord,
    SLAConfig,
    SLCounts,
    bucket_keys,
    day_start,
    delta,
    rolling_window_start,
)
from agent_stats.sla import Outcome as SLOutcome
from agent_stats.slot_pipes import SlotPipes, is_cluster, key_slot
from agent_stats.states import AgentState, NotReadyReason, check_key

if TYPE_CHECKING:
    from redis.asyncio import Redis

TAG = "{stats}"
RETENTION_S = 400 * 86400
"""How long day-keyed records are kept: a year of reports, with margin."""
TTL_MEMO_MAX = 50_000
"""Keys whose TTL this process already set; forgotten (and set again) beyond this."""
SEEN_TTL_S = 2 * 86400
"""How long an outcome's id is remembered (a retried batch comes back within seconds)."""


# -- operations (what a batch is made of) -----------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerWrite:
    """Intervals just closed, and the agent's open interval after them."""

    agent_id: str
    closed: tuple[Interval, ...]
    since: float
    state: AgentState
    reason: NotReadyReason | None


@dataclass(frozen=True, slots=True)
class OutcomeWrite:
    """One call outcome for the SL counters; ``agent_id`` for an answer."""

    call: CallRecord
    agent_id: str | None = None
    hard: bool = False
    recovered: bool = dataclasses.field(default=False, compare=False)
    """Not in this process's live tally: an earlier daemon's answer counted again by a
    take-over (``CallAnsweredBefore``). The tally adds it once the store says this
    write is the one that counted it (``StoreWriter.on_recovered``)."""


@dataclass(frozen=True, slots=True)
class HeartbeatWrite:
    at: float
    link_lost_at: float | None = None


@dataclass(frozen=True, slots=True)
class BreakRecord:
    """A break request in the line (``granted_at`` None) or granted."""

    agent_id: str
    reason: NotReadyReason
    requested_at: float
    granted_at: float | None = None
    forced: bool = False

    @property
    def waited_s(self) -> float | None:
        return None if self.granted_at is None else self.granted_at - self.requested_at

    def to_json(self) -> str:
        return json.dumps(
            {
                "agent_id": self.agent_id,
                "reason": self.reason.value,
                "requested_at": self.requested_at,
                "granted_at": self.granted_at,
                "forced": self.forced,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> BreakRecord:
        try:
            d = json.loads(raw)
            granted = d.get("granted_at")
            return cls(
                str(d["agent_id"]),
                NotReadyReason(d["reason"]),
                float(d["requested_at"]),
                None if granted is None else float(granted),
                bool(d.get("forced", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadSnapshotError(f"bad break record {raw!r}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class BreakRequested:
    record: BreakRecord


@dataclass(frozen=True, slots=True)
class BreakCancelled:
    agent_id: str


@dataclass(frozen=True, slots=True)
class BreakGranted:
    """A grant; ``after_call``: it starts when the agent's call ends (kept in ``breakpending``)."""

    record: BreakRecord
    after_call: bool = False


@dataclass(frozen=True, slots=True)
class BreakStarted:
    """A grant that waited for the call has started (the agent is on the break)."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class AlertRecord:
    agent_id: str
    kind: str
    value: float
    limit: float
    at: float

    def to_json(self) -> str:
        return json.dumps(
            {"agent_id": self.agent_id, "kind": self.kind, "value": self.value,
             "limit": self.limit, "at": self.at},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> AlertRecord:
        try:
            d = json.loads(raw)
            return cls(str(d["agent_id"]), str(d["kind"]), float(d["value"]),
                       float(d["limit"]), float(d["at"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadSnapshotError(f"bad alert record {raw!r}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class AlertRaised:
    record: AlertRecord


Operation = (
    LedgerWrite | OutcomeWrite | HeartbeatWrite | BreakRequested | BreakCancelled
    | BreakGranted | BreakStarted | AlertRaised
)


# -- what reads return ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat:
    at: float | None
    link_lost_at: float | None


@dataclass(frozen=True, slots=True)
class StoredLedger:
    ledger: AgentLedger
    repaired: int
    """Intervals dropped (overlaps: a second already counted) or gaps filled."""


def outcome_to_dict(op: OutcomeWrite) -> dict[str, Any]:
    """An outcome as the journal keeps it (floats round-trip exactly, so its id is kept)."""
    c = op.call
    return {
        "queue": c.queue, "arrived_at": c.arrived_at, "joined_at": c.joined_at,
        "outcome": c.outcome.value, "outcome_at": c.outcome_at, "call_id": c.call_id,
        "agent_id": op.agent_id, "hard": op.hard,
    }


def outcome_from_dict(data: Mapping[str, Any]) -> OutcomeWrite:
    call = CallRecord(
        data["queue"], data["arrived_at"], data["joined_at"], SLOutcome(data["outcome"]),
        data["outcome_at"], data["call_id"],
    )
    return OutcomeWrite(call, data["agent_id"], bool(data["hard"]))


def outcome_id(call: CallRecord) -> str:
    """What makes an outcome's increment idempotent ('' for a call without an id: not deduplicated).

    One outcome per call and queue, whatever its kind and time: a daemon that
    takes over after a ``kill -9`` may count again, at its own clock, an abandon
    its predecessor had already journalled (benchmarks/chaos.py)."""
    if not call.call_id:
        return ""
    return f"{call.queue}|{call.call_id}"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _texts(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def chain(intervals: Iterable[Interval], until: float) -> tuple[list[Interval], int]:
    """Order intervals and make them contiguous up to ``until``, never counting a second twice.

    Overlapping parts (a batch replayed after an ambiguous failure) are cut
    off; a gap (a write lost) is filled with ``UNKNOWN``. Returns the chain and
    how many repairs were made.
    """
    out: list[Interval] = []
    repairs = 0
    for interval in sorted(intervals, key=lambda i: (i.start, i.end)):
        start = interval.start
        if out:
            end = out[-1].end
            if start < end:
                repairs += 1
                if interval.end <= end:
                    continue
                start = end
            elif start > end:
                repairs += 1
                out.append(Interval(end, start, AgentState.UNKNOWN))
        out.append(Interval(start, interval.end, interval.state, interval.reason))
    while out and out[-1].end > until:
        repairs += 1
        last = out.pop()
        if last.start < until:
            out.append(Interval(last.start, until, last.state, last.reason))
            break
    if out and out[-1].end < until:
        repairs += 1
        out.append(Interval(out[-1].end, until, AgentState.UNKNOWN))
    return out, repairs


LEDGER = """
local i = 1
while i <= #ARGV do
  local key = KEYS[tonumber(ARGV[i + 1])]
  if ARGV[i] == 'L' then
    local ttl, n = ARGV[i + 2], tonumber(ARGV[i + 3])
    redis.call('RPUSH', key, unpack(ARGV, i + 4, i + 3 + n))
    if ttl ~= '0' then redis.call('EXPIRE', key, ttl) end
    i = i + 4 + n
  else
    local n = tonumber(ARGV[i + 2])
    redis.call('HSET', key, unpack(ARGV, i + 3, i + 2 + 2 * n))
    i = i + 3 + 2 * n
  end
end
return 0
"""
"""Agents' transitions, in order: ``L`` key-index ttl n values... is an ``RPUSH`` of closed
intervals (and their list's ``EXPIRE`` when ttl is not 0), ``H`` key-index n field value...
the ledger heads' ``HSET`` (one for the batch). One script per slot instead of a
``MULTI``/``EXEC`` around the same commands: as atomic, one command fewer, and a batch of
transitions alone (most of them, one agent's change per 0.2-s tick) needs no transaction."""

HEADS_PER_COMMAND = 1000
"""Ledger heads per ``HSET`` (a Lua ``unpack`` is limited to a few thousand values)."""


class _LedgerScript:
    """KEYS and ARGV of :data:`LEDGER` for the transitions of one slot."""

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}
        self._args: list[str | int] = []
        self._ops: list[tuple[str, str, Any]] = []  # what the script does, for ``bare``

    def _at(self, key: str) -> int:
        n = self._keys.get(key)
        if n is None:
            n = self._keys[key] = len(self._keys) + 1  # Lua counts from 1
        return n

    def push(self, key: str, values: Sequence[str], ttl: int) -> None:
        self._args += ["L", self._at(key), ttl, len(values), *values]
        self._ops.append(("rpush", key, tuple(values)))
        if ttl:
            self._ops.append(("expire", key, ttl))

    def heads(self, key: str, heads: Mapping[str, str]) -> None:
        items = list(heads.items())
        for start in range(0, len(items), HEADS_PER_COMMAND):
            chunk = items[start : start + HEADS_PER_COMMAND]
            self._args += ["H", self._at(key), len(chunk)]
            for field, value in chunk:
                self._args += [field, value]
            self._ops.append(("hset", key, dict(chunk)))

    def bare(self) -> tuple[str, str, Any] | None:
        """The one command this script would run, to send as it is (None: several)."""
        return self._ops[0] if len(self._ops) == 1 else None

    def call(self) -> tuple[list[str], list[str | int]]:
        return list(self._keys), self._args


def head_value(since: float, state: AgentState, reason: NotReadyReason | None) -> str:
    """A ledger head as ``heads`` keeps it (``repr`` of the float: it reads back exactly)."""
    return f'[{since!r},"{state.value}","{reason.value if reason else ""}"]'


class StatsStore:
    """Owns every ``P:{stats}:*`` key. Coroutines of ``redis.asyncio``; see the module doc."""

    def __init__(
        self,
        client: Redis,
        sla: SLAConfig,
        *,
        prefix: str = "shenava",
        retention_s: int = RETENTION_S,
        site: str = "",
    ) -> None:
        from shenava_base.sites import site_tag

        self._client = client
        self.site = site
        self._tag = site_tag("stats", site)  # "{stats}" for the default site (shenava_base.sites)
        self._split = is_cluster(client)
        self.sla = sla
        self._prefix = prefix
        self._retention_s = retention_s
        self._slot_ttl_s = max(int(2 * sla.window_s), 60)
        self._ttl_done: set[str] = set()
        self._members_done: set[str] = set()
        self.round_trips = 0
        self.commands_sent = 0
        self._link_lost_written: bool | None = None
        """Whether the heartbeat holds ``link_lost_at`` as this store last wrote it
        (None: not known), so a heartbeat without one sends no ``HDEL`` each time."""
        self._link_lost_next: bool | None = None  # what the batch being built leaves
        self._scripts_loaded = False
        """Whether this process has loaded :data:`LEDGER` and :data:`COUNT_OUTCOMES`: batches
        send them as ``EVALSHA`` (a server that lost them gets them again: ``slot_pipes``)."""

    # -- keys (the only place key names are made) -----------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, self._tag, *parts))

    def day_of(self, t: float) -> date:
        """The site's local date holding ``t`` (the SLA's day alignment)."""
        local = day_start(t, self.sla) + self.sla.utc_offset_s
        return datetime.fromtimestamp(local + DAY_S / 2, UTC).date()

    def day_bounds(self, day: date) -> tuple[float, float]:
        """``[start, end)`` of a local date, POSIX seconds."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        start = midnight - self.sla.utc_offset_s
        return start, start + DAY_S

    def _intervals_key(self, agent_id: str, day: date) -> str:
        if self.site:
            return self._agent_key(agent_id, "intervals", day.isoformat())
        return self._key("intervals", agent_id, day.isoformat())

    def _ledger_key(self, agent_id: str) -> str:
        """An agent's head as earlier versions kept it (read until moved to ``heads``)."""
        return self._agent_key(agent_id, "ledger") if self.site else self._key("ledger", agent_id)

    def _heads_key(self) -> str:
        return self._key("heads")

    def _agent_key(self, agent_id: str, *parts: str) -> str:
        """A named site's agent keys have the agent's own slot: ``P:{stats:SITE:AGENT}:...``."""
        return ":".join((self._prefix, self._tag[:-1] + ":" + agent_id + "}", *parts))

    def _sl_key(self, bucket: BucketKey) -> str:
        return self._key("sl", bucket.to_str())

    # -- writing ------------------------------------------------------------------

    async def apply(self, ops: Sequence[Operation]) -> set[str]:
        """Write a batch in one ``MULTI``/``EXEC`` (per slot; a lone command bare).

        Returns the ``outcome_id``s this batch counted (not in their seen set
        before): the live figures add a recovered outcome only then."""
        if not ops:
            return set()
        # On a cluster, one transaction per slot (agent_stats.slot_pipes)
        # On a cluster, one transaction per slot (agent_stats.slot_pipes); a
        # group of one command (a ledger-only batch's script) without MULTI/EXEC
        if not self._scripts_loaded:  # once per process: batches send them by SHA1
            for source in (LEDGER, COUNT_OUTCOMES):  # on a cluster SCRIPT LOAD goes to every master
                await self._client.script_load(source)
            self._scripts_loaded = True
        pipe = SlotPipes(self._client, split=self._split)
        self._link_lost_next = self._link_lost_written  # a heartbeat in the batch changes it
        outcomes: list[OutcomeCounters] = []
        ttls: dict[str, int] = {}
        ledgers: dict[int, _LedgerScript] = {}
        heads: dict[str, str] = {}
        for op in ops:
            if isinstance(op, OutcomeWrite):
                outcomes.append(self._outcome(pipe, op, ttls))
            elif isinstance(op, LedgerWrite):
                self._ledger(pipe, op, ledgers)
                heads.pop(op.agent_id, None)  # the batch's last transition, last in the hash
                heads[op.agent_id] = head_value(op.since, op.state, op.reason)
            else:
                self._add(pipe, op)
        if heads:  # one HSET for the batch, in the script of its slot
            self._slot_script(ledgers, self._heads_key()).heads(self._heads_key(), heads)
        for script in ledgers.values():  # one script per slot for the agents' transitions
            bare = script.bare()
            if bare is None:
                keys, args = script.call()
                pipe.eval(LEDGER, len(keys), *keys, *args)
            elif bare[0] == "rpush":
                pipe.rpush(bare[1], *bare[2])
            elif bare[0] == "hset":
                pipe.hset(bare[1], mapping=bare[2])
            else:  # pragma: no cover - an EXPIRE comes only after its RPUSH
                raise AssertionError(bare)
        counted_at: tuple[int, int] | None = None
        if outcomes:  # one script for all of them (agent_stats.outcome_counts)
            keys, args = script_call(outcomes)
            counted_at = pipe.eval(COUNT_OUTCOMES, len(keys), *keys, *args)
            for key, ttl in ttls.items():  # after the script: EXPIRE needs the key
                self._expire_once(pipe, key, ttl)
        self.commands_sent += len(pipe) + 2 * pipe.transactions  # and MULTI, EXEC
        link_lost, self._link_lost_next = self._link_lost_next, None
        self._link_lost_written = None  # not known while in flight (or if it fails)
        await pipe.execute()
        self._link_lost_written = link_lost
        self.round_trips += 1
        if counted_at is None:
            return set()
        return {_text(i) for i in pipe.reply(counted_at) or ()}

    def _expire_once(self, pipe: Any, key: str, ttl: int) -> None:
        if self._ttl_first(key):
            pipe.expire(key, ttl)

    def _member_once(self, pipe: Any, key: str, member: str) -> None:
        memo = f"{key}\0{member}"
        if memo not in self._members_done:
            self._members_done.add(memo)
            pipe.sadd(key, member)

    def _outcome(self, pipe: Any, op: OutcomeWrite, ttls: dict[str, int]) -> OutcomeCounters:
        """The outcome's increments; its keys' TTLs go in ``ttls``."""
        fields = delta(op.call, self.sla).to_fields()
        self._member_once(pipe, self._key("queues"), op.call.queue)
        buckets = bucket_keys(op.call, self.sla)
        day = self.day_of(op.call.outcome_at).isoformat()
        seen = self._key("slseen", day)
        counters: list[tuple[str, str, int]] = []
        ttls[seen] = SEEN_TTL_S
        for bucket in buckets:
            key = self._sl_key(bucket)
            counters += [(key, name, value) for name, value in fields.items()]
            ttls[key] = self._slot_ttl_s if bucket.kind is BucketKind.SLOT else self._retention_s
        if op.agent_id is not None:
            agentday = self._key("agentday", day)
            counters.append((agentday, f"{op.agent_id}:answered", 1))
            if op.hard:
                counters.append((agentday, f"{op.agent_id}:hard", 1))
            ttls[agentday] = self._retention_s
        return OutcomeCounters(seen, outcome_id(op.call), counters)

    def _slot_script(self, scripts: dict[int, _LedgerScript], key: str) -> _LedgerScript:
        slot = key_slot(key.encode()) if self._split else 0
        script = scripts.get(slot)
        if script is None:
            script = scripts[slot] = _LedgerScript()
        return script

    def _ledger(self, pipe: Any, op: LedgerWrite, scripts: dict[int, _LedgerScript]) -> None:
        """The transition's ``RPUSH`` and ``EXPIRE`` (once), in its slot's script (its head: ``apply``)."""
        self._member_once(pipe, self._key("agents"), op.agent_id)
        by_day: dict[str, list[str]] = {}
        for interval in op.closed:
            key = self._intervals_key(op.agent_id, self.day_of(interval.start))
            by_day.setdefault(key, []).append(json.dumps(interval.to_list()))
        for key, values in by_day.items():
            self._slot_script(scripts, key).push(key, values, self._retention_s if self._ttl_first(key) else 0)

    def _ttl_first(self, key: str) -> bool:
        """True the first time this process sets ``key``'s TTL (see ``_expire_once``)."""
        if key in self._ttl_done:
            return False
        if len(self._ttl_done) >= TTL_MEMO_MAX:
            self._ttl_done.clear()
        self._ttl_done.add(key)
        return True

    def _add(self, pipe: Any, op: Operation) -> None:
        if isinstance(op, HeartbeatWrite):
            key = self._key("heartbeat")
            if op.link_lost_at is None:
                pipe.hset(key, "at", repr(op.at))
                if self._link_lost_written is not False:  # not known to be absent
                    pipe.hdel(key, "link_lost_at")
            else:
                pipe.hset(key, mapping={"at": repr(op.at), "link_lost_at": repr(op.link_lost_at)})
            self._link_lost_next = op.link_lost_at is not None
        elif isinstance(op, BreakRequested):
            pipe.hset(self._key("breakline"), op.record.agent_id, op.record.to_json())
        elif isinstance(op, BreakCancelled):
            pipe.hdel(self._key("breakline"), op.agent_id)
            pipe.hdel(self._key("breakpending"), op.agent_id)
        elif isinstance(op, BreakStarted):
            pipe.hdel(self._key("breakpending"), op.agent_id)
        elif isinstance(op, BreakGranted):
            record = op.record
            assert record.granted_at is not None
            pipe.hdel(self._key("breakline"), record.agent_id)
            if op.after_call:
                pipe.hset(self._key("breakpending"), record.agent_id, record.to_json())
            else:
                pipe.hdel(self._key("breakpending"), record.agent_id)
            key = self._key("breaks", self.day_of(record.granted_at).isoformat())
            pipe.rpush(key, record.to_json())
            self._expire_once(pipe, key, self._retention_s)
        elif isinstance(op, AlertRaised):
            key = self._key("alerts", self.day_of(op.record.at).isoformat())
            pipe.rpush(key, op.record.to_json())
            self._expire_once(pipe, key, self._retention_s)
        else:  # pragma: no cover - the union above is exhaustive
            raise TypeError(f"unknown operation {op!r}")

    # -- reading ------------------------------------------------------------------

    async def heartbeat(self) -> Heartbeat:
        raw = _texts(await self._client.hgetall(self._key("heartbeat")))
        self.round_trips += 1
        at, lost = raw.get("at"), raw.get("link_lost_at")
        return Heartbeat(None if at is None else float(at), None if lost is None else float(lost))

    async def agents(self) -> list[str]:
        members = await self._client.smembers(self._key("agents"))
        self.round_trips += 1
        return sorted(_text(m) for m in members)

    async def load_ledgers(
        self, agent_ids: Iterable[str], now: float, days: int = 2
    ) -> dict[str, StoredLedger]:
        """The stored ledgers with the intervals of the last ``days`` local days.

        A head still in its per-agent key of earlier versions is read from there
        and moved to ``heads`` (unless a newer one is there already)."""
        ids = list(agent_ids)
        if not ids:
            return {}
        today = self.day_of(now)
        wanted = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
        pipe = self._client.pipeline(transaction=False)
        pipe.hmget(self._heads_key(), ids)
        for agent_id in ids:
            pipe.hgetall(self._ledger_key(agent_id))
            for day in wanted:
                pipe.lrange(self._intervals_key(agent_id, day), 0, -1)
        replies = await pipe.execute()
        self.round_trips += 1
        out: dict[str, StoredLedger] = {}
        moved: dict[str, str] = {}
        step = 1 + len(wanted)
        for n, (agent_id, new) in enumerate(zip(ids, replies[0], strict=True)):
            old = _texts(replies[1 + n * step])
            head = self._head_from(agent_id, new, old)
            if old:
                moved[agent_id] = head_value(*self._head_parts(agent_id, old))
            if not head:
                continue
            lists = replies[2 + n * step : 1 + (n + 1) * step]
            out[agent_id] = self._ledger_from(agent_id, head, [v for lst in lists for v in lst])
        if moved:
            await self._move_heads(moved)
        return out

    async def _move_heads(self, old: Mapping[str, str]) -> None:
        """Earlier versions' per-agent heads into ``heads`` (a newer one there wins), then deleted."""
        pipe = self._client.pipeline(transaction=False)
        for agent_id, value in old.items():
            pipe.hsetnx(self._heads_key(), agent_id, value)
        await pipe.execute()  # before the deletes: on a cluster they are in other slots
        pipe = self._client.pipeline(transaction=False)
        for agent_id in old:
            pipe.delete(self._ledger_key(agent_id))
        await pipe.execute()

    def _head_from(self, agent_id: str, new: str | bytes | None, old: Mapping[str, str]) -> dict[str, str]:
        """The head as ``since``/``state``/``reason`` texts: ``heads``' field, else the old key's."""
        if new is None:
            return dict(old)
        try:
            since, state, reason = json.loads(new)
            return {"since": repr(float(since)), "state": str(state), "reason": str(reason)}
        except (TypeError, ValueError) as exc:
            raise BadSnapshotError(f"bad ledger head of {agent_id}: {new!r}") from exc

    def _head_parts(
        self, agent_id: str, head: Mapping[str, str]
    ) -> tuple[float, AgentState, NotReadyReason | None]:
        try:
            since = float(head["since"])
            state, reason = check_key(
                AgentState(head["state"]),
                NotReadyReason(head["reason"]) if head.get("reason") else None,
            )
        except (KeyError, ValueError) as exc:
            raise BadSnapshotError(f"bad ledger head of {agent_id}: {exc}") from exc
        return since, state, reason

    def _ledger_from(
        self, agent_id: str, head: Mapping[str, str], raw_intervals: Sequence[str | bytes]
    ) -> StoredLedger:
        since, state, reason = self._head_parts(agent_id, head)
        intervals = [Interval.from_list(json.loads(raw)) for raw in raw_intervals]
        # keep the suffix that leads up to the open interval (older days not loaded)
        chained, repairs = chain(intervals, since)
        return StoredLedger(AgentLedger(agent_id, since, state, reason, chained), repairs)

    async def intervals(self, agent_id: str, first: date, last: date) -> list[Interval]:
        """Closed intervals starting on ``first`` .. ``last`` (local dates), in order."""
        return (await self.intervals_of([agent_id], first, last))[agent_id]

    async def intervals_of(
        self, agent_ids: Sequence[str], first: date, last: date
    ) -> dict[str, list[Interval]]:
        if not agent_ids:
            return {}
        days = _days(first, last)
        pipe = self._client.pipeline(transaction=False)
        pipe.hmget(self._heads_key(), list(agent_ids))
        for agent_id in agent_ids:
            for day in days:
                pipe.lrange(self._intervals_key(agent_id, day), 0, -1)
            pipe.hgetall(self._ledger_key(agent_id))
        replies = await pipe.execute()
        self.round_trips += 1
        out: dict[str, list[Interval]] = {}
        step = len(days) + 1
        for n, agent_id in enumerate(agent_ids):
            at = 1 + n * step
            raw = [v for lst in replies[at : at + len(days)] for v in lst]
            head = self._head_from(agent_id, replies[0][n], _texts(replies[at + len(days)]))
            items = [Interval.from_list(json.loads(v)) for v in raw]
            until = float(head["since"]) if head else (max((i.end for i in items), default=0.0))
            chained, _ = chain(items, until) if items else ([], 0)
            if head:
                # the open interval, so a report of today includes the current state
                _, st, rs = self._head_parts(agent_id, head)
                chained.append(Interval(until, math.inf, st, rs))
            out[agent_id] = chained
        return out

    async def queues(self) -> list[str]:
        members = await self._client.smembers(self._key("queues"))
        self.round_trips += 1
        return sorted(_text(m) for m in members)

    async def buckets(self, keys: Sequence[BucketKey]) -> list[SLCounts]:
        """The counters of each bucket (empty ones as zeros), one round trip."""
        if not keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self._sl_key(key))
        replies = await pipe.execute()
        self.round_trips += 1
        return [SLCounts.from_fields(_texts(r)) for r in replies]

    def _window(self, queue: str, now: float) -> list[BucketKey]:
        first = rolling_window_start(now, self.sla)
        return [
            BucketKey(queue, BucketKind.SLOT, first + i * self.sla.slot_s)
            for i in range(self.sla.window_slots)
        ]

    async def rolling(self, queue: str, now: float) -> SLCounts:
        total = SLCounts()
        for counts in await self.buckets(self._window(queue, now)):
            total.add(counts)
        return total

    @property
    def client(self) -> Redis:
        return self._client

    def queue_read(self, pipe: Any) -> None:
        """Queue this site's set of queues and its heartbeat on ``pipe`` (two replies, in that
        order; the centre's figures read every site's together, ``agent_stats.centre``)."""
        pipe.smembers(self._key("queues"))
        pipe.hgetall(self._key("heartbeat"))

    def queue_buckets(self, pipe: Any, queues: Sequence[str], now: float) -> list[bool]:
        """Queue every bucket of the rolling window and of today, for each of ``queues``, on
        ``pipe``; one ``HGETALL`` each, and for each whether it is today's (else the window's)."""
        start, _ = self.day_bounds(self.day_of(now))
        kinds: list[bool] = []
        for queue in queues:
            for key in (*self._window(queue, now), BucketKey(queue, BucketKind.DAY, start)):
                pipe.hgetall(self._sl_key(key))
                kinds.append(key.kind is BucketKind.DAY)
        self.round_trips += 1
        return kinds

    async def day_counts(self, queue: str, day: date) -> SLCounts:
        start, _ = self.day_bounds(day)
        return (await self.buckets([BucketKey(queue, BucketKind.DAY, start)]))[0]

    async def interval_counts(
        self, queue: str, first: date, last: date
    ) -> list[tuple[float, SLCounts]]:
        """Every interval of the local dates ``first`` .. ``last``, in order."""
        starts: list[float] = []
        for day in _days(first, last):
            start, end = self.day_bounds(day)
            t = start
            while t < end:
                starts.append(t)
                t += self.sla.interval_s
        counts = await self.buckets([BucketKey(queue, BucketKind.INTERVAL, s) for s in starts])
        return list(zip(starts, counts, strict=True))

    async def agent_days(self, first: date, last: date) -> dict[str, dict[str, int]]:
        """Per agent: answered and hard calls over the dates."""
        days = _days(first, last)
        pipe = self._client.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(self._key("agentday", day.isoformat()))
        replies = await pipe.execute()
        self.round_trips += 1
        out: dict[str, dict[str, int]] = {}
        for reply in replies:
            for field, value in _texts(reply).items():
                agent_id, _, name = field.rpartition(":")
                slot = out.setdefault(agent_id, {})
                slot[name] = slot.get(name, 0) + int(value)
        return out

    async def break_line(self) -> list[BreakRecord]:
        raw = await self._client.hgetall(self._key("breakline"))
        self.round_trips += 1
        return sorted(
            (BreakRecord.from_json(v) for v in raw.values()), key=lambda r: r.requested_at
        )

    async def pending_grants(self) -> list[BreakRecord]:
        """Grants waiting for the agent's call to end, by grant time."""
        raw = await self._client.hgetall(self._key("breakpending"))
        self.round_trips += 1
        return sorted(
            (BreakRecord.from_json(v) for v in raw.values()),
            key=lambda r: (r.granted_at or 0.0, r.agent_id),
        )

    async def breaks(self, first: date, last: date) -> list[BreakRecord]:
        return [BreakRecord.from_json(v) for v in await self._lists("breaks", first, last)]

    async def alerts(self, first: date, last: date) -> list[AlertRecord]:
        return [AlertRecord.from_json(v) for v in await self._lists("alerts", first, last)]

    async def _lists(self, name: str, first: date, last: date) -> list[str | bytes]:
        pipe = self._client.pipeline(transaction=False)
        for day in _days(first, last):
            pipe.lrange(self._key(name, day.isoformat()), 0, -1)
        replies = await pipe.execute()
        self.round_trips += 1
        return [v for reply in replies for v in reply]


def _days(first: date, last: date) -> list[date]:
    n = (last - first).days
    return [first + timedelta(days=i) for i in range(n + 1)]

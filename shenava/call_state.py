"""Where every caller is, kept in Redis as it changes, so a new daemon can take over.

What is kept, per call (one JSON record, keyed by the caller channel's
Uniqueid): the channel, the caller's number, when they arrived, their AGI
step; in the IVR, the menu machine's state (menu, answers so far, the
complaint opened); in the waiting line, the join time (the service-level clock
never restarts), the score facts and the language; an agent leg in flight
(its ``ChannelId``, the agent); a bridged call (the agent, the leg's channel,
when it was answered). A record goes when its call has ended.

How it is written: code that changes a call only marks it (``mark``); once
per turn of the reactor the recorder asks the call's owners (the dispatcher,
the call flow) for its current form and writes every marked call in one
round trip: with a leader lease a Lua script (``HSET`` the live ones,
``HDEL`` the gone ones, after checking the writer still holds the lease),
without one a plain ``HSET`` and ``HDEL``. So a call event costs at most one
write, and many events in one turn share it (``CallStateStore.commands`` and
``round_trips`` count them). The daemon also spaces
the writes (``min_interval_s``, :data:`shenava.takeover.CALL_STATE_WRITE_S`):
under load one write carries every call that changed since the last, at the
price of that much more state a ``kill -9`` can lose; the first change after
a quiet spell still goes at the end of its turn.

Keys (one hash tag, so the script's keys are in one Redis Cluster slot):
``<prefix>:{calls}:live`` (hash: call id -> record), ``<prefix>:{calls}:step``
(the support line's AGI step, learned from ``AsyncAGIStart``) and the lease
(:mod:`shenava.leader`).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from shenava.call_state_spool import DROPPED, STAMP, CallStateSpool
from shenava_base.aio import as_deferred
from shenava_base.clock import Clock

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = Logger()

RECORD_VERSION = 1
OWN_MEMORY_S = 3600.0  # how long a call this process handled is remembered as its own
OWN_MAX = 200_000
"""At most this many calls remembered as this process's own (about 200 bytes each):
an hour of calls at 55 a second. Past it the oldest go early, with a warning."""
MAX_FLUSH_ROUNDS = 20  # flushed() gives up after this many writes in a row (Redis away)
RETRY_S = 0.5  # a failed write is tried again this much later (Redis away)
LAG_S = 0.25
"""A write still in flight this long after it started is lagging (Redis slow, the
pool busy, the daemon overloaded): from then until a write lands, what Redis may
lack is kept on this host too (``call-state.json``), as while Redis is away."""
SPOOL_EVERY_S = 0.1
"""A change is put in the host's file at most this long after it (the saves of a
burst of changes are one; each save fsyncs the file and its folder, in a thread)."""
TAG = "calls"
CARRIED = "journal"
"""The record's field holding the call's journal records not yet on disk when it was
written (``CallStateRecorder.carried``); the take-over submits them again."""

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
"""A record as compact JSON text: ``json.dumps`` with these options builds a new
encoder for every record (about nine records a call)."""

_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encode: Any = (
    _c_make_encoder(None, None, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    if _c_make_encoder is not None else None
)


def _record_text(record: Mapping[str, Any]) -> str:
    """A record as compact JSON, the same text as ``_encode`` gives: the C encoder
    made once and called directly (``JSONEncoder.encode`` builds one around every
    record, about 1.5 µs of the 12 a record takes).

    (Pre-encoded fragments, each field's text kept from the call's last write and
    only the changed fields encoded, were measured on a 50 calls/s run's 3,892
    records in order: 14.5 µs a record with the top-level fields, 28 with the IVR
    state's too, against 12.0 for the whole record: the C encoder does a field
    faster than Python can look one up, compare it and join it.)"""
    if _c_encode is None:
        return _encode(record)
    return "".join(_c_encode(record, 0))


# Write the marked calls in one go, if the fence (the lease's value) is ours.
# KEYS[1] live hash, KEYS[2] lease key (may be absent: no fence);
# ARGV[1] fence value ("" for none), ARGV[2] number of puts, then put pairs,
# then the ids to drop.
_WRITE = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return -1
end
local puts = tonumber(ARGV[2])
local n = 0
if puts > 0 then
  local args = {}
  for i = 3, 2 + 2 * puts do args[#args + 1] = ARGV[i] end
  n = n + redis.call('HSET', KEYS[1], unpack(args))
end
if #ARGV > 2 + 2 * puts then
  local ids = {}
  for i = 3 + 2 * puts, #ARGV do ids[#ids + 1] = ARGV[i] end
  n = n + redis.call('HDEL', KEYS[1], unpack(ids))
end
return n
"""


class FencedOffError(Exception):
    """The lease this writer was given is no longer the one in Redis: it is not the leader."""

    code = "call_state.fenced_off"


@dataclass(frozen=True, slots=True)
class AgiStep:
    """Where the support line runs ``AGI(agi:async)``: callers found there are Shenava's."""

    context: str
    exten: str
    priority: int

    def to_list(self) -> list[Any]:
        return [self.context, self.exten, self.priority]

    @classmethod
    def from_list(cls, raw: Any) -> AgiStep | None:
        try:
            context, exten, priority = raw
            return cls(str(context), str(exten), int(priority))
        except (TypeError, ValueError):
            return None


class CallStateStore:
    """Owns the ``{calls}`` keys. ``fence``: a callable giving the lease value to check (or None)."""

    def __init__(self, redis: Redis, prefix: str, site: str = "") -> None:
        from shenava_base.sites import site_tag

        self._redis = redis
        self.prefix = prefix
        tag = site_tag(TAG, site)  # one slot per site: the lease and the state in one script
        self.live_key = f"{prefix}:{tag}:live"
        self.step_key = f"{prefix}:{tag}:step"
        self.lease_key = f"{prefix}:{tag}:leader"
        self.epoch_key = f"{prefix}:{tag}:epoch"
        self.commands = 0  # Redis commands sent (the benchmark's and tests' count)
        self.round_trips = 0  # writes and reads, each one round trip
        self._script: Any = None

    async def write(
        self, puts: Mapping[str, dict[str, Any]], drops: Iterable[str], fence: str | None = None
    ) -> int:
        """Write records and drop ended calls in one command; FencedOffError if not the leader."""
        drops = list(drops)
        if not puts and not drops:
            return 0
        self.round_trips += 1
        if not fence:
            return await self._write_unfenced(puts, drops)
        if self._script is None:
            self._script = self._redis.register_script(_WRITE)
        args: list[str] = [fence or "", str(len(puts))]
        for call_id, record in puts.items():
            args += [call_id, _record_text(record)]
        args += drops
        self.commands += 1
        result = await self._script(keys=[self.live_key, self.lease_key], args=args)
        if int(result) < 0:
            raise FencedOffError("the leader lease has passed to another daemon")
        return int(result)

    async def _write_unfenced(self, puts: Mapping[str, dict[str, Any]], drops: list[str]) -> int:
        """No lease to check: a plain ``HSET`` and ``HDEL`` (one round trip), not the script.

        Each call's record is its own field, so the two need not be atomic
        together; the script cost Redis one command more per write (``EVALSHA``
        around them), at up to ten writes a second."""
        mapping: dict[Any, Any] = {  # redis-py's key type is wider than str
            call_id: _record_text(record) for call_id, record in puts.items()
        }
        if mapping and drops:
            self.commands += 2
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(self.live_key, mapping=mapping)
            pipe.hdel(self.live_key, *drops)
            added, removed = await pipe.execute()
            return int(added) + int(removed)
        self.commands += 1
        if mapping:
            return int(await self._redis.hset(self.live_key, mapping=mapping))
        return int(await self._redis.hdel(self.live_key, *drops))

    async def load(self) -> dict[str, dict[str, Any]]:
        """Every stored call record, by call id (records that do not parse are skipped)."""
        self.commands += 1
        raw = await self._redis.hgetall(self.live_key)
        records: dict[str, dict[str, Any]] = {}
        for key, value in raw.items():
            call_id = key.decode() if isinstance(key, bytes) else str(key)
            try:
                record = json.loads(value)
            except (TypeError, ValueError):
                log.error("call state of {call} unreadable; ignored", call=call_id)
                continue
            if isinstance(record, dict) and record.get("v") == RECORD_VERSION:
                records[call_id] = record
        return records

    async def save_step(self, step: AgiStep) -> None:
        self.commands += 1
        await self._redis.set(self.step_key, json.dumps(step.to_list()))

    async def load_step(self) -> AgiStep | None:
        self.commands += 1
        raw = await self._redis.get(self.step_key)
        if raw is None:
            return None
        try:
            return AgiStep.from_list(json.loads(raw))
        except ValueError:
            return None



def _run_inline(f: Callable[[], Any]) -> Deferred[Any]:
    return succeed(f())


def _live_ids(entries: Mapping[str, dict[str, Any]]) -> set[str]:
    """The calls ``entries`` keep as live (not as dropped)."""
    return {call_id for call_id, entry in entries.items() if not entry.get("dropped")}


class _SpoolWriter:
    """Replaces (or removes) the host's file off the reactor thread, one save at a time.

    Each save replaces the whole file, so only the latest request matters: one
    made while a save runs waits for it and replaces any other waiting.

    It also knows which calls the file may hold as live (``may_hold_live``):
    those of the content last saved, of the save running and of the one
    waiting. A call's drop from Redis waits until the file cannot hold it
    (``CallStateRecorder._flush``)."""

    def __init__(
        self, spool: CallStateSpool, run: Callable[[Callable[[], Any]], Deferred[Any]],
        on_disk: set[str],
    ) -> None:
        self.spool = spool
        self._run = run
        self._running: set[str] | None = None  # the live calls of the save running
        self._next: dict[str, dict[str, Any]] | None = None
        self._on_disk = on_disk
        self._idle: list[Deferred[None]] = []

    def save(self, entries: dict[str, dict[str, Any]]) -> None:
        """``entries``; an empty mapping removes the file."""
        self._next = entries
        if self._running is None:
            self._start()

    def may_hold_live(self) -> set[str]:
        held = self._on_disk | (self._running or set())
        if self._next is not None:
            held |= _live_ids(self._next)
        return held

    @property
    def busy(self) -> bool:
        return self._running is not None

    def idle(self) -> Deferred[None]:
        """Fires once no save runs or waits."""
        if self._running is None:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d

    def _start(self) -> None:
        entries, self._next = self._next, None
        if entries is None:
            return
        running = self._running = _live_ids(entries)
        spool = self.spool
        d = self._run(lambda: spool.save(entries))
        d.addErrback(lambda f: log.error("call state not kept on this host: {e}", e=f.getErrorMessage()))
        d.addBoth(self._done, running)

    def _done(self, _: object, running: set[str]) -> None:
        # (a save that failed is taken as done too: a drop must not wait for a
        # broken disk for ever, and the failure is logged)
        self._on_disk = running
        self._running = None
        if self._next is not None:
            self._start()
            return
        waiting, self._idle = self._idle, []
        for d in waiting:
            d.callback(None)


Snapshot = Callable[[str], "dict[str, Any] | None"]
"""Gives the current form of one call (its part of the record), or None if it holds none."""


class CallStateRecorder:
    """Marks calls as changed and writes them once per reactor turn (or ``min_interval_s``)."""

    def __init__(
        self,
        store: CallStateStore,
        clock: Clock,
        sources: Iterable[Snapshot],
        *,
        fence: Callable[[], str | None] | None = None,
        may_write: Callable[[], bool] | None = None,
        on_fenced_off: Callable[[], object] | None = None,
        min_interval_s: float = 0.0,
        records_kept: Callable[[], Deferred[Any]] | None = None,
        carried: Callable[[str], list[dict[str, Any]]] | None = None,
        run_in_thread: Callable[[Callable[[], Any]], Deferred[Any]] | None = None,
        lag_s: float = LAG_S,
    ) -> None:
        self.store = store
        self.records_kept = records_kept
        """Fires once every record submitted so far (the journal's entries) is on
        disk: an ended call is dropped from Redis only after it (``_flush``)."""
        self.carried = carried
        """A call's records not yet on disk (``shenava.journal.Journal.carried``):
        its record carries them (``"journal"``) so a state never reaches Redis,
        or this host's file, without the records its change made."""
        self.run_in_thread = run_in_thread or _run_inline
        """Where the host's file is written (a worker thread in the daemon)."""
        self.lag_s = lag_s
        self.min_interval_s = min_interval_s
        """At most one write started per this many seconds (0: one per reactor turn)."""
        self._last_start = -math.inf
        self._clock = clock
        self._sources = list(sources)
        self._fence = fence
        self._may_write = may_write
        self._on_fenced_off = on_fenced_off
        self._dirty: set[str] = set()
        self._in_flight: set[str] = set()
        self._flush_call: Any = None
        self._writing: Deferred[Any] | None = None
        self._again = False
        self.enabled = True
        # Call id -> when last marked, oldest first: pruned from the front as
        # it passes ``own_memory_s`` (or ``OWN_MAX``), one entry at a time.
        self._own: OrderedDict[str, float] = OrderedDict()
        self.own_memory_s = OWN_MEMORY_S
        self._own_due = -math.inf  # when the oldest own call passes own_memory_s
        self.own_forgotten_early = 0
        """Calls forgotten as this process's own before ``own_memory_s`` (``OWN_MAX`` reached)."""
        self.writes = 0
        self.failures = 0
        self._last_failed = False
        # With a durable state folder: the records Redis has not taken, kept on
        # this host while writes fail (shenava.call_state_spool).
        self.spool: CallStateSpool | None = None
        self._spooled: set[str] = set()
        self._spool_call: Any = None
        self._spool_writer: _SpoolWriter | None = None
        self._last_spooled: dict[str, dict[str, Any]] = {}
        self._last_spool_at = -math.inf
        self.spool_saves = 0
        # A write in flight past ``lag_s``: the host's file is kept as while Redis is away.
        self._lag_call: Any = None
        self.lagging = False
        self.lags = 0
        # Ended calls whose records (the journal's) are not yet known to be on
        # disk, and those that are: dropped from Redis in the next write.
        self._drops_waiting: set[str] = set()
        self._drops_ready: set[str] = set()
        # Ended calls whose drop from Redis waits for the host's file to stop
        # holding them as live (a save in flight, ``_drop_once_off_file``).
        self._drops_off_file: set[str] = set()
        self._file_live: set[str] = set()  # live in the file before this run's first save

    def add_source(self, source: Snapshot) -> None:
        self._sources.append(source)

    def mark(self, call_id: str) -> None:
        """``call_id`` changed: write its new form (or drop it) at the end of this turn."""
        if not self.enabled or not call_id:
            return
        # This process's own call from now (inline: about eleven marks a call).
        now = self._clock.seconds()
        own = self._own
        own[call_id] = now
        own.move_to_end(call_id)
        if now >= self._own_due or len(own) > OWN_MAX:
            self._forget_own(now)
        self._dirty.add(call_id)
        if (self._last_failed or self.lagging) and self.spool is not None:
            self._spool_soon()  # Redis is away or slow: the new place goes to this host at once
        if self._flush_call is None and self._writing is None:
            self._flush_call = self._clock.callLater(self._next_write_in(), self._flush)
        elif self._writing is not None:
            self._again = True

    def _next_write_in(self) -> float:
        if self.min_interval_s <= 0:
            return 0.0
        return max(0.0, self._last_start + self.min_interval_s - self._clock.seconds())

    def own(self, call_id: str) -> bool:
        """This process has handled the call (within ``OWN_MEMORY_S``): its own code
        settles it, never the take-over (whose Redis read may predate a drop)."""
        return call_id in self._own

    def _forget_own(self, now: float) -> None:
        """Forget the calls past ``own_memory_s`` (or over ``OWN_MAX``), oldest first;
        the next look is due when the oldest kept passes it (not at every mark)."""
        own = self._own
        horizon = now - self.own_memory_s
        self._own_due = -math.inf  # (none kept: the next mark looks)
        while own:
            oldest, at = next(iter(own.items()))
            if at >= horizon and len(own) <= OWN_MAX:
                self._own_due = at + self.own_memory_s
                break
            del own[oldest]
            if at >= horizon:
                self.own_forgotten_early += 1
                if self.own_forgotten_early == 1:
                    log.warn(
                        "more than {max} calls handled within {memory_s:.0f} s: the oldest are "
                        "forgotten as this daemon's own early (a take-over after an AMI "
                        "reconnect may settle one of them a second time)",
                        max=OWN_MAX, memory_s=self.own_memory_s,
                    )

    def own_kept(self) -> int:
        """How many calls are remembered as this process's own."""
        return len(self._own)

    def record(self, call_id: str) -> dict[str, Any] | None:
        """The call's record as it would be written now."""
        merged: dict[str, Any] = {}
        for source in self._sources:
            part = source(call_id)
            if part:
                merged.update(part)
        if not merged:
            return None
        merged["v"] = RECORD_VERSION
        merged["call_id"] = call_id
        if self.carried is not None:
            carried = self.carried(call_id)
            if carried:
                merged[CARRIED] = carried
        return merged

    def _flush(self) -> None:
        self._flush_call = None
        if not self._dirty:
            return
        if self._may_write is not None and not self._may_write():
            self._dirty.clear()  # not the leader: nothing of ours to write
            return
        dirty, self._dirty = self._dirty, set()
        puts: dict[str, dict[str, Any]] = {}
        drops: list[str] = []
        waiting: set[str] = set()
        now = self._clock.seconds()
        for call_id in sorted(dirty):
            record = self.record(call_id)
            if record is None:
                if self.records_kept is None or call_id in self._drops_ready:
                    drops.append(call_id)
                else:
                    waiting.add(call_id)
            else:
                record[STAMP] = now
                puts[call_id] = record
        if waiting:
            self._drop_once_kept(waiting)
        if drops and self.spool is not None:
            on_file = set(drops) & self._file_may_hold_live()
            if on_file:
                drops = [call_id for call_id in drops if call_id not in on_file]
                self._drop_once_off_file(on_file)
        if not puts and not drops:
            return
        fence = self._fence() if self._fence is not None else None
        if self._fence is not None and fence is None:
            log.warn("call state of {n} calls not written: this daemon holds no lease", n=len(dirty))
            return
        if self.min_interval_s > 0:
            self._last_start = self._clock.seconds()
        written = set(puts) | set(drops)
        d = as_deferred(self._write(puts, drops, fence))
        self._in_flight = written
        self._writing = d
        if self.spool is not None and self.lag_s > 0:
            self._lag_call = self._clock.callLater(self.lag_s, self._lag_check, d)
        d.addCallbacks(self._written, self._failed, callbackArgs=(written, drops), errbackArgs=(written,))
        d.addBoth(self._settled)

    def _drop_once_kept(self, call_ids: set[str]) -> None:
        """Drop these ended calls once the records their end made are on disk.

        The end of a call makes records (its SL outcome, an abandon's callback
        flag) that go to the journal, whose disk write runs in a thread.
        Dropping the call's record before they are on disk let a kill -9 in
        between lose them: the next daemon had neither the record (to count the
        end again) nor the journal entry (``benchmarks/chaos.py``). The drop
        waits for the journal on its own; the other calls' writes go on meanwhile
        (before, the whole write waited, and every write behind it)."""
        assert self.records_kept is not None
        self._drops_waiting |= call_ids

        def kept(result: object) -> None:
            if isinstance(result, Failure):
                log.failure("call state: the journal's write failed; dropping ended calls anyway", result)
            self._drops_waiting -= call_ids
            self._drops_ready |= call_ids
            for call_id in call_ids:
                self.mark(call_id)

        try:
            d = self.records_kept()
        except Exception:
            d = fail()
        d.addBoth(kept)

    def _file_may_hold_live(self) -> set[str]:
        if self._spool_writer is not None and self._spool_writer.spool is self.spool:
            return self._spool_writer.may_hold_live()
        return self._file_live | _live_ids(self._last_spooled)

    def _drop_once_off_file(self, call_ids: set[str]) -> None:
        """Drop these ended calls from Redis once the host's file cannot hold them as live.

        A lagging write that lands has the file saved again without its calls,
        in a thread. A drop that reached Redis while that save still ran, then
        a kill -9, left the file's old entry over nothing in Redis: the next
        daemon took the call up in an older place (waiting, when it had been
        answered) and counted its end as the wrong kind. So the file is saved
        with these calls as dropped (if its latest content keeps them, or no
        save runs to replace what is on disk), and the drop goes once no save
        runs or waits."""
        assert self.spool is not None
        self._drops_off_file |= call_ids
        writer = self._spool_writer
        latest = _live_ids(self._last_spooled)
        if writer is None or writer.spool is not self.spool or not writer.busy or latest & call_ids:
            now = self._clock.seconds()
            entries = dict(self._last_spooled)
            for call_id in call_ids:
                entries[call_id] = {**DROPPED, STAMP: now}
            self._spooled |= call_ids
            self._spool_save(entries)
        assert self._spool_writer is not None

        def off_file(_: object) -> None:
            self._drops_off_file -= call_ids
            for call_id in call_ids:
                self.mark(call_id)

        self._spool_writer.idle().addBoth(off_file)

    def _lag_check(self, writing: Deferred[Any]) -> None:
        """The write started ``lag_s`` ago: still in flight, Redis may lack its calls for long."""
        self._lag_call = None
        if self._writing is not writing or not self.enabled:
            return
        if not self.lagging:
            self.lagging = True
            self.lags += 1
            log.info("call state: a write is still in flight after {s:.2f} s; the places of "
                     "calls Redis may lack are kept on this host until one lands", s=self.lag_s)
        self._spool_now()

    async def _write(
        self, puts: dict[str, dict[str, Any]], drops: list[str], fence: str | None
    ) -> int:
        if not self.enabled:
            return 0  # stopped between the flush and the loop's turn: write nothing more
        return await self.store.write(puts, drops, fence)

    def _written(self, _: object, written: set[str], drops: list[str]) -> None:
        self.writes += 1
        self._last_failed = False
        self._drops_ready.difference_update(drops)
        if self._spooled & written:
            # Those just written are in Redis with a newer stamp than the file's
            # (and a dropped one must not come back from the file).
            self._spooled -= written
            for call_id in written:
                self._last_spooled.pop(call_id, None)
            if self.spool is not None:
                self._spool_save(dict(self._last_spooled) if self._spooled else {})

    def _spool_save(self, entries: dict[str, dict[str, Any]]) -> None:
        assert self.spool is not None
        if self._spool_writer is None or self._spool_writer.spool is not self.spool:
            on_disk = self._file_live | _live_ids(self._last_spooled)
            self._spool_writer = _SpoolWriter(self.spool, self.run_in_thread, on_disk)
        self._last_spooled = entries
        self._last_spool_at = self._clock.seconds()
        self.spool_saves += 1
        self._spool_writer.save(entries)

    def _spool_soon(self) -> None:
        if self._spool_call is None:
            delay = max(0.0, self._last_spool_at + SPOOL_EVERY_S - self._clock.seconds())
            self._spool_call = self._clock.callLater(delay, self._spool_now)

    def _spool_now(self) -> None:
        """Keep on this host the current form of every call Redis may lack.

        An ended call is kept as dropped only once the records its end made are
        on disk (the journal's); until then the file keeps its last form there."""
        if self._spool_call is not None and self._spool_call.active():
            self._spool_call.cancel()
        self._spool_call = None
        if self.spool is None or not self.enabled:
            return
        now = self._clock.seconds()
        entries: dict[str, dict[str, Any]] = {}
        for call_id in self._spooled | self._dirty | self._in_flight | self._drops_waiting | self._drops_off_file:
            record = self.record(call_id)
            if record is not None:
                entries[call_id] = {**record, STAMP: now}
            elif self.records_kept is None or call_id in self._drops_ready:
                entries[call_id] = {**DROPPED, STAMP: now}
            elif call_id in self._last_spooled:
                entries[call_id] = self._last_spooled[call_id]
        self._spooled = set(entries)
        self._spool_save(entries)

    def inherit_spool(self, call_ids: Iterable[str]) -> None:
        """Calls an earlier run kept on this host, newer than Redis: write them (or drop
        them) again now, and remove the file once they are in Redis."""
        ids = set(call_ids)
        held = self.spool.load() if self.spool is not None else {}
        # what the file keeps as live until this run's first save replaces it: a
        # drop of one of them waits for that save (``_drop_once_off_file``)
        self._file_live = _live_ids(held)
        if not ids:
            if self.spool is not None:
                self._spool_save({})
            return
        self._spooled |= ids
        if self.spool is not None:
            # the file keeps them until each is in Redis (or is replaced by a newer form)
            self._last_spooled.update((i, held[i]) for i in ids if i in held)
        for call_id in ids:
            self.mark(call_id)

    def _failed(self, failure: Any, written: set[str]) -> None:
        if failure.check(FencedOffError):
            log.warn("call state not written: this daemon is no longer the leader")
            if self._on_fenced_off is not None:
                self._on_fenced_off()
            return
        self.failures += 1
        self._last_failed = True
        log.error(
            "call state of {n} calls not written: {error}; retrying",
            n=len(written), error=failure.getErrorMessage(),
        )
        self._dirty |= written
        self._again = True
        if self.spool is not None:
            self._spool_now()

    @property
    def pending(self) -> int:
        """Calls whose latest state is not yet known to be in Redis."""
        return len(self._dirty | self._in_flight | self._drops_waiting | self._drops_off_file)

    def _settled(self, _: object) -> None:
        self._writing = None
        self._in_flight = set()
        self.lagging = False
        if self._lag_call is not None and self._lag_call.active():
            self._lag_call.cancel()
        self._lag_call = None
        if self._again or self._dirty:
            self._again = False
            if self._dirty and self._flush_call is None:
                delay = RETRY_S if self._last_failed else self._next_write_in()
                self._flush_call = self._clock.callLater(delay, self._flush)

    def flushed(self) -> Deferred[None]:
        """Fires once everything marked so far is written (or given up)."""
        return Deferred.fromCoroutine(self._flushed())

    async def _flushed(self) -> None:
        for _ in range(MAX_FLUSH_ROUNDS):
            if self._flush_call is not None and self._flush_call.active():
                self._flush_call.cancel()
                self._flush_call = None
            writing = self._writing
            if writing is not None:
                done: Deferred[None] = Deferred()

                def relay(result: object, done: Deferred[None] = done) -> object:
                    if not done.called:
                        done.callback(None)
                    return result

                writing.addBoth(relay)
                await done
                continue
            if self._drops_waiting and not self._dirty and self.records_kept is not None:
                # ended calls waiting for the journal's disk: they go in the next write
                await self.records_kept()
                continue
            if self._drops_off_file and not self._dirty and self._spool_writer is not None:
                # ended calls waiting for the host's file save: they go in the next write
                await self._spool_writer.idle()
                continue
            if not self._dirty:
                return
            self._flush()

    def stop(self) -> None:
        self.enabled = False
        if self._spool_call is not None and self._spool_call.active():
            self._spool_call.cancel()
        self._spool_call = None
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        if self._lag_call is not None and self._lag_call.active():
            self._lag_call.cancel()
        self._lag_call = None


__all__ = [
    "AgiStep",
    "CallStateRecorder",
    "CARRIED",
    "CallStateStore",
    "FencedOffError",
    "RECORD_VERSION",
]

"""A durable local journal: records reach Redis, or stay on this host's disk until they do.

Every record the daemon must not lose (a complaint opened by the IVR, a
callback flag's reason, a voicemail's intake, an SL outcome) is *submitted*
here as ``(kind, payload)``. The journal

1. appends it to ``journal.jsonl`` in ``state.folder`` and fsyncs (write-ahead:
   it is durable before anything else happens);
2. applies entries to Redis in journal order through the function registered
   for their kind: up to ``MAX_IN_FLIGHT`` at once, except that entries sharing
   a key (:func:`call_key`, :func:`number_key`: one caller's complaint, voicemail
   and flag) wait for each other; ``journal.cursor`` records how far every
   entry is applied;
3. answers the submitter once the entry is applied, or after
   ``answer_within_s`` with ``None`` if Redis is slow or away: the entry is
   safe on disk and will be applied when Redis answers again (retries back off
   from ``RETRY_INITIAL_S`` to ``RETRY_MAX_S``).

Exactly once: a crash between applying an entry and writing the cursor replays
that entry, so every apply function is idempotent by an id carried in the
payload (a complaint's reference, a voicemail id, a reason's ``(kind,
source)`` plus an operation marker, an SL outcome's id). An entry whose apply
fails for a reason that is not Redis being away (a bug, a malformed payload)
is moved to ``journal.rejected`` with an error in the log, so one bad entry
never blocks the others.

Files and threads: the reactor thread never calls ``write``/``fsync``. All file
work (appends, cursor, compaction) runs in one worker at a time through
``run_in_thread`` (``deferToThread`` on the daemon), in submission order;
appends that arrive while a flush is in flight are written and fsynced
together by the next one (group commit), so a burst costs one fsync, not one
per record. When everything is applied the file is truncated.

The cursor (and that truncation, or a compaction) is written at most once per
``ADVANCE_EVERY_S``: the first advance after a quiet spell at once, the rest
of that second's in one go at its end (and at ``stop``). Each advance cost a
worker thread hop, a cursor file written and renamed and, the journal being
empty again after nearly every record at a steady rate, a truncation with an
fsync: about 0.4 ms of CPU, per record. Nothing durable waits for it: a
kill -9 before it only replays entries already applied, which every apply
function takes as a no-op (above).

Batches: entries submitted inside ``with journal.batch():`` (a voicemail's
callback flag reason and its intake) are written as **one line** of the file
(``{"batch": [entry, ...]}``), in one append and one fsync: a crash keeps all
of them or none (a torn line is dropped whole), and each is then applied (and
replayed) like any other entry, exactly once by its id.

``folder=None`` keeps the same behaviour in memory only (tests, the demo).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from shenava_base.aio import as_deferred
from shenava_base.clock import Clock
from shenava_base.journal import Apply, RetryLaterError, call_key, is_transient, number_key

__all__ = [
    "call_key",
    "number_key",
    "Journal",
    "NotReplicatedError",
    "RetryLaterError",
    "JournalEntry",
    "JournalFile",
    "JournalFullError",
    "ADVANCE_EVERY_S",
    "is_transient",
]

log = Logger()

JOURNAL_NAME = "journal.jsonl"
CURSOR_NAME = "journal.cursor"
REJECTED_NAME = "journal.rejected"
RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 5.0
ANSWER_WITHIN_S = 2.0
"""How long a submitter (the caller's IVR) waits for Redis before being told "kept"."""
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
COMPACT_AT_BYTES = 16 * 1024 * 1024
"""An applied head of the file bigger than this is cut off (the rest copied to a new file)."""
MAX_IN_FLIGHT = 32
"""Entries applied at once (entries sharing a key wait for each other)."""
SCAN_LIMIT = 4096
"""Entries looked at per round for one that may start (a long run of one key waits)."""
ADVANCE_EVERY_S = 1.0
"""The cursor is written (the file emptied or compacted) at most this often."""

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""One entry as compact JSON (one encoder for every line, not one built per ``json.dumps``)."""


class JournalFullError(RuntimeError):
    """The journal file reached ``state.journal_max_bytes``; the record was not kept."""

    code = "journal.full"


class NotReplicatedError(RetryLaterError):
    """Redis took the write but its replicas did not confirm it (``WAIT``): kept, retried."""

    code = "journal.not_replicated"


Scheduler = Clock
"""The journal's clock (the one ``shenava_base.clock.Clock``)."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    kind: str
    at: float
    payload: dict[str, Any]
    keys: tuple[str, ...] = ()
    """Entries sharing a key are applied one after the other, in journal order."""

    def to_line(self) -> bytes:
        record: dict[str, Any] = {"seq": self.seq, "kind": self.kind, "at": self.at, "p": self.payload}
        if self.keys:
            record["k"] = list(self.keys)
        return _encode(record).encode("utf-8") + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> JournalEntry:
        record = json.loads(line)
        keys = tuple(str(k) for k in record.get("k", ()))
        return cls(int(record["seq"]), str(record["kind"]), float(record["at"]), dict(record["p"]), keys)


def unit_line(unit: list[JournalEntry]) -> bytes:
    """One entry's line, or a batch's: ``{"batch": [entry, ...]}`` on one line."""
    if len(unit) == 1:
        return unit[0].to_line()
    parts = b",".join(e.to_line().rstrip(b"\n") for e in unit)
    return b'{"batch":[' + parts + b"]}\n"


def entries_of_line(line: bytes) -> list[JournalEntry]:
    """The entries one line of the file holds (one, or a batch's)."""
    record = json.loads(line)
    if "batch" not in record:
        return [JournalEntry.from_line(line)]
    return [
        JournalEntry(
            int(r["seq"]), str(r["kind"]), float(r["at"]), dict(r["p"]), tuple(str(k) for k in r.get("k", ()))
        )
        for r in record["batch"]
    ]


class JournalFile:
    """The on-disk half (blocking I/O; the :class:`Journal` calls it from a worker thread)."""

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = folder
        self.path = folder / JOURNAL_NAME
        self.cursor_path = folder / CURSOR_NAME
        self.rejected_path = folder / REJECTED_NAME
        self.max_bytes = max_bytes
        self._last_written = 0
        self._size = 0
        self._ends: dict[int, int] = {}
        """Where each entry in the file ends (seq -> byte offset), for compaction."""
        self.rewrites = 0

    def load(self) -> tuple[int, list[JournalEntry]]:
        """The applied cursor and every entry after it (a torn last line is dropped)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        cursor = 0
        try:
            cursor = int(self.cursor_path.read_text(encoding="ascii").strip() or 0)
        except FileNotFoundError:
            pass
        entries: list[JournalEntry] = []
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        good = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn by a crash mid-write: never acknowledged
            try:
                unit = entries_of_line(line)
            except (ValueError, KeyError, TypeError):
                break
            start, good = good, good + len(line)
            self._note_ends(unit, start, good)
            for entry in unit:
                self._last_written = max(self._last_written, entry.seq)
                if entry.seq > cursor:
                    entries.append(entry)
        if good != len(data):
            with self.path.open("r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        self._last_written = max(self._last_written, cursor)
        self._size = good
        return cursor, entries

    def _note_ends(self, unit: list[JournalEntry], start: int, end: int) -> None:
        """Where the file may be cut once each entry of a line is applied: after the
        line for its last entry, before it for the others (a batch's line holds
        entries not yet applied until its last one is)."""
        for entry in unit[:-1]:
            self._ends[entry.seq] = start
        if unit:
            self._ends[unit[-1].seq] = end

    def append(self, entries: list[JournalEntry]) -> None:
        """One line per entry, all in one write and one fsync."""
        self.append_units([[e] for e in entries])

    def append_units(self, units: list[list[JournalEntry]]) -> None:
        """One line per unit (a unit of several entries is a batch: one line, kept whole
        or not at all), all in one write and one fsync."""
        lines = [unit_line(u) for u in units]
        data = b"".join(lines)
        if self._size + len(data) > self.max_bytes:
            raise JournalFullError(f"{self.path} would exceed {self.max_bytes} bytes")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        for unit, line in zip(units, lines, strict=True):
            start = self._size
            self._size += len(line)
            self._note_ends(unit, start, self._size)
            if unit:
                self._last_written = unit[-1].seq

    def write_cursor(self, seq: int) -> None:
        """Atomically (rename); no fsync needed: a lost cursor only replays idempotent entries."""
        tmp = self.cursor_path.with_suffix(".tmp")
        tmp.write_text(f"{seq}\n", encoding="ascii")
        os.replace(tmp, self.cursor_path)

    def advance(self, applied: int) -> None:
        """Every entry up to ``applied`` is in Redis: note it, and keep the file small.

        The cursor is written first. If every entry in the file is applied the
        file is emptied; if the applied part at its head is over
        ``COMPACT_AT_BYTES`` (a busy site may never be empty for long), the rest
        is copied to a new file that replaces it (fsynced, then renamed).
        """
        self.write_cursor(applied)
        if self._last_written <= applied:
            with self.path.open("wb") as f:
                os.fsync(f.fileno())
            self._ends.clear()
            self._size = 0
            return
        head = self._ends.get(applied)
        if head is None or head < COMPACT_AT_BYTES:
            return
        tmp = self.path.with_suffix(".compact")
        with self.path.open("rb") as src, tmp.open("wb") as dst:
            src.seek(head)
            shutil.copyfileobj(src, dst)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._ends = {seq: end - head for seq, end in self._ends.items() if seq > applied}
        self._size -= head
        self.rewrites += 1

    def reject(self, entry: JournalEntry, reason: str) -> None:
        record = {"entry": json.loads(entry.to_line()), "reason": reason}
        with self.rejected_path.open("ab") as f:
            f.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
            os.fsync(f.fileno())


def _run_inline(f: Callable[[], Any]) -> Deferred[Any]:
    return succeed(f())


def _default_thread_runner(reactor: Any) -> Callable[[Callable[[], Any]], Deferred[Any]]:
    from twisted.internet.threads import deferToThreadPool

    def run(f: Callable[[], Any]) -> Deferred[Any]:
        return deferToThreadPool(reactor, reactor.getThreadPool(), f)

    return run


class Journal:
    """The reactor-side journal: submit, apply in order, retry, report depth and age."""

    def __init__(
        self,
        clock: Scheduler,
        folder: Path | None = None,
        *,
        run_in_thread: Callable[[Callable[[], Any]], Deferred[Any]] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        answer_within_s: float = ANSWER_WITHIN_S,
        confirm: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self._clock = clock
        self._confirm = confirm
        self.file = JournalFile(folder, max_bytes) if folder is not None else None
        if run_in_thread is None:
            # a virtual clock (task.Clock in the end-to-end tests) has no threads: write inline
            threads = folder is not None and hasattr(clock, "getThreadPool")
            run_in_thread = _default_thread_runner(clock) if threads else _run_inline
        self._run = run_in_thread
        self._answer_within_s = answer_within_s
        self._appliers: dict[str, Apply] = {}
        self._seq = 0
        self._applied = 0
        # entries durable and not yet applied, in order (seq -> entry)
        self._queue: dict[int, JournalEntry] = {}
        self._in_flight: dict[int, JournalEntry] = {}
        self._busy_keys: set[str] = set()
        self._kicking = False
        self._kick_again = False
        # entries waiting for the next flush, with who waits on each
        self._to_write: list[tuple[JournalEntry, Deferred[Any]]] = []
        self._writing = False
        # entries submitted inside ``batch()``: seq -> the batch's first seq
        self._batch_of: dict[int, int] = {}
        self._batching = 0
        self._batch_first: int | None = None
        self._file_ops: deque[Callable[[], Any]] = deque()
        self._answers: dict[int, Deferred[Any]] = {}
        # (when, seq) of the submitters to answer "kept" if Redis has not answered
        # by then, in order; one timer for all of them (``_arm_answers``)
        self._answer_due: deque[tuple[float, int]] = deque()
        self._answer_timer: Any = None
        self._retry: Any = None
        self._retry_delay = RETRY_INITIAL_S
        self._started = False
        self._stopped = False
        self._advanced = 0  # the cursor last handed to the file worker
        self._advanced_at = -math.inf
        self._advance_call: Any = None
        self.advances = 0  # cursor writes queued (the tests' and benchmarks' count)
        self._drain_waiters: list[Deferred[None]] = []
        self._file_waiters: list[Deferred[None]] = []
        # Entries of a call not yet on disk, by call (``carried``), and the calls
        # of each such entry (seq -> calls), until its append is done.
        self._unkept: dict[str, list[JournalEntry]] = {}
        self._calls_of: dict[int, tuple[str, ...]] = {}
        self.applied_count = 0
        self.kept_count = 0
        self.rejected_count = 0
        self.redis_away_since: float | None = None

    # -- set-up -------------------------------------------------------------------

    def register(self, kind: str, apply: Apply) -> None:
        """The idempotent function that stores one ``kind`` of entry in Redis.

        Entries of a kind nobody registered yet (a previous run's, replayed while
        the packages are still being wired) wait for it.
        """
        self._appliers[kind] = apply
        if self._started:
            self._kick()

    def load(self) -> int:
        """Read what a previous run left (blocking; call once before the reactor runs)."""
        if self.file is None:
            return 0
        cursor, entries = self.file.load()
        self._applied = self._advanced = cursor
        self._seq = max([cursor, *(e.seq for e in entries)])
        self._queue.update((e.seq, e) for e in entries)
        if entries:
            log.warn(
                "journal: {count} records from a previous run not yet in Redis; replaying them in order",
                count=len(entries),
            )
        return len(entries)

    def start(self) -> None:
        """Begin applying (after every kind is registered)."""
        self._started = True
        self._kick()

    def stop(self) -> Deferred[None]:
        """Stop applying; fires once every submitted entry is on disk (and the cursor
        says how far they are applied)."""
        self._stopped = True
        retry, self._retry = self._retry, None
        if retry is not None and retry.active():
            retry.cancel()
        self._advance_now()
        return self.written()

    # -- figures ----------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Entries kept and not yet applied (including those being written)."""
        return len(self._queue) + len(self._to_write)

    def oldest_age(self, now: float | None = None) -> float:
        """Seconds since the oldest entry not yet applied was submitted (0 if none)."""
        if self._queue:
            at = next(iter(self._queue.values())).at
        elif self._to_write:
            at = self._to_write[0][0].at
        else:
            return 0.0
        return max(0.0, (self._clock.seconds() if now is None else now) - at)

    def pending(self, kind: str, key: str) -> list[dict[str, Any]]:
        """The payloads of ``kind`` entries ordered by ``key`` that are kept (or
        being written) and not yet applied, oldest first: what Redis does not
        show yet (a complaint opened while Redis was away, or before a kill -9
        and not yet replayed)."""
        entries = [*self._queue.values(), *(e for e, _ in self._to_write)]
        return [e.payload for e in entries if e.kind == kind and key in e.keys]

    def health(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "durable": self.file is not None,
            "depth": self.depth,
            "oldest_age_s": round(self.oldest_age(), 3),
            "applied": self.applied_count,
            "rejected": self.rejected_count,
            "redis_away_since": self.redis_away_since,
        }
        replication = getattr(self._confirm, "health", None)
        if replication is not None:
            found["replication"] = replication()
        return found

    # -- submitting ---------------------------------------------------------------------

    def submit(
        self, kind: str, payload: dict[str, Any], keys: Iterable[str] = (), *,
        wait_applied: bool = True, call: str = "",
    ) -> Deferred[Any]:
        """Keep ``payload`` durably and store it in Redis.

        Fires with the apply function's result once stored, or with ``None``
        after ``answer_within_s`` if Redis is slow or away (the entry is on
        disk by then). ``wait_applied=False``: fires with ``None`` as soon as the
        entry is on disk (a caller waiting in silence to hear "message saved"
        needs it kept, not yet in Redis). Fails only if the entry could not be
        kept at all (the disk is full or unwritable: :class:`JournalFullError`,
        ``OSError``).

        ``call``: the call this record goes with (a key :func:`call_key` names
        one too). Until the entry is on disk, :meth:`carried` gives it for that
        call, and the call state written meanwhile carries it.
        """
        if kind not in self._appliers:
            raise KeyError(f"journal: no apply function for {kind!r}")
        self._seq += 1
        entry = JournalEntry(self._seq, kind, self._clock.seconds(), payload, tuple(k for k in keys if k))
        if self.file is not None:  # (in memory, a kill loses everything anyway: nothing to carry)
            calls = {k[5:] for k in entry.keys if k.startswith("call:")}
            if call:
                calls.add(call)
            if calls:
                self._calls_of[entry.seq] = tuple(calls)
                for c in calls:
                    self._unkept.setdefault(c, []).append(entry)
        answer: Deferred[Any] = Deferred()
        durable: Deferred[Any] = Deferred()
        self._to_write.append((entry, durable))
        self._answers[entry.seq] = answer
        if self._batching:
            if self._batch_first is None:
                self._batch_first = entry.seq
            self._batch_of[entry.seq] = self._batch_first

        def kept(_: object) -> None:
            if not wait_applied:
                self._answer_kept(entry.seq)
            elif not answer.called:
                self._answer_due.append((self._clock.seconds() + self._answer_within_s, entry.seq))
                if self._answer_timer is None:
                    self._arm_answers()

        def lost(failure: Failure) -> None:
            self._answers.pop(entry.seq, None)
            if not answer.called:
                answer.errback(failure)

        durable.addCallbacks(kept, lost)
        self._flush()
        return answer

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Entries submitted inside are kept together: one line, one append, one
        fsync, so a crash keeps all or none of them (a voicemail's flag reason and
        its intake). Each is applied as usual (in journal order, once). Nested
        batches join the outer one."""
        self._batching += 1
        try:
            yield
        finally:
            self._batching -= 1
            if not self._batching:
                self._batch_first = None
                self._flush()

    def _arm_answers(self) -> None:
        """One timer for every submitter still waiting, at the due time of the first
        of them (a timer set and cancelled per record cost about 8 µs each)."""
        due, answers = self._answer_due, self._answers
        while due and due[0][1] not in answers:
            due.popleft()  # answered already (applied, or failed)
        if due:
            # (never longer than answer_within_s: a wall clock set back must not hold them)
            delay = min(max(0.0, due[0][0] - self._clock.seconds()), self._answer_within_s)
            self._answer_timer = self._clock.callLater(delay, self._answers_due)

    def _answers_due(self) -> None:
        self._answer_timer = None
        now, due, within = self._clock.seconds(), self._answer_due, self._answer_within_s
        while due and (due[0][0] <= now or due[0][0] - now > within):
            self._answer_kept(due.popleft()[1])
        self._arm_answers()

    def _answer_kept(self, seq: int) -> None:
        answer = self._answers.pop(seq, None)
        if answer is not None and not answer.called:
            self.kept_count += 1
            answer.callback(None)

    def written(self) -> Deferred[None]:
        """Fires once every entry submitted so far is on disk."""
        if not self._to_write and not self._writing and not self._file_ops:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._file_ops.append(lambda: None)
        self._file_waiters.append(d)
        self._flush()
        return d

    def drained(self) -> Deferred[None]:
        """Fires once everything submitted so far is applied (tests, benchmarks)."""
        if self.depth == 0 and not self._in_flight:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._drain_waiters.append(d)
        return d

    # -- the file worker (one operation at a time, in order) ------------------------------

    def _flush(self) -> None:
        if self._writing or self._batching:
            return  # (a batch being submitted goes whole, when it is closed)
        batch, self._to_write = self._to_write, []
        ops, self._file_ops = list(self._file_ops), deque()
        waiters, self._file_waiters = self._file_waiters, []
        if not batch and not ops:
            for w in waiters:
                w.callback(None)
            return
        self._writing = True
        entries = [e for e, _ in batch]
        units: list[list[JournalEntry]] = []
        last: int | None = None
        for e in entries:
            together = self._batch_of.pop(e.seq, None)
            if together is not None and together == last:
                units[-1].append(e)
            else:
                units.append([e])
            last = together
        file = self.file

        def work() -> None:
            if file is not None and units:
                file.append_units(units)
            for op in ops:
                op()

        d = self._run(work)

        def done(result: object) -> None:
            self._writing = False
            if self._calls_of:
                self._off_disk_wait(entries)
            if isinstance(result, Failure):
                log.error(
                    "journal: {count} records could not be kept on disk: {error}",
                    count=len(entries), error=result.getErrorMessage(),
                )
                for _e, durable in batch:
                    durable.errback(result)
            else:
                self._queue.update((e.seq, e) for e in entries)
                for _e, durable in batch:
                    durable.callback(None)
                self._kick()
            for w in waiters:
                w.callback(None)
            if self._to_write or self._file_ops or self._file_waiters:
                self._flush()

        d.addBoth(done)

    def _off_disk_wait(self, entries: list[JournalEntry]) -> None:
        """These entries' append is done (kept, or failed: then they are lost
        anyway): their calls no longer carry them."""
        calls_of, unkept = self._calls_of, self._unkept
        for e in entries:
            calls = calls_of.pop(e.seq, None)
            if calls is None:
                continue
            for c in calls:
                held = unkept.get(c)
                if held is not None:
                    held.remove(e)
                    if not held:
                        del unkept[c]

    def carried(self, call_id: str) -> list[dict[str, Any]]:
        """The records of ``call_id`` submitted and not yet on disk, as the call
        state carries them (``kind``, ``payload``, ``keys``).

        A change of a call that makes a record (an answer's or a hold choice's SL
        outcome, a flag reason) is marked in the call state at once, and written
        to Redis at the end of the turn; the record's append and fsync run in a
        thread and can land later. A ``kill -9`` in between left Redis with the
        new state and the disk without its record: the next daemon took the call
        up where it was (talking, serving a hold choice) and nobody counted what
        the record held. So a call-state write made meanwhile carries the
        records, and the take-over submits them again (:meth:`resubmit`): each
        apply function is idempotent by the id in its payload, so a record that
        reached the disk after all (replayed from it) is still stored once. A
        standby on another host, which cannot read this journal, gets them too."""
        held = self._unkept.get(call_id)
        if not held:
            return []
        return [{"kind": e.kind, "payload": e.payload, "keys": list(e.keys)} for e in held]

    def resubmit(self, call_id: str, carried: object) -> int:
        """Submit again the records a call's stored state carried (:meth:`carried`),
        in one batch; kinds nobody registered, or malformed items, are skipped
        with an error. Returns how many were submitted."""
        if not isinstance(carried, list):
            return 0
        count = 0
        with self.batch():
            for item in carried:
                try:
                    kind, payload = str(item["kind"]), item["payload"]
                    keys = tuple(str(k) for k in item.get("keys") or ())
                    if not isinstance(payload, dict):
                        raise TypeError("payload is not an object")
                    d = self.submit(kind, payload, keys, call=call_id)
                except (KeyError, TypeError, AttributeError) as exc:
                    log.error("journal: a record carried by call {call}'s state cannot be "
                              "submitted again ({error}); skipped", call=call_id, error=exc)
                    continue
                d.addErrback(lambda f: log.error(
                    "journal: a record carried by call {call}'s state not kept: {error}",
                    call=call_id, error=f.getErrorMessage()))
                count += 1
        return count

    def _file_op(self, op: Callable[[], Any]) -> None:
        if self.file is None:
            return
        self._file_ops.append(op)
        self._flush()

    # -- applying -------------------------------------------------------------------------

    def _kick(self) -> None:
        """Start entries in order, up to ``MAX_IN_FLIGHT`` at once.

        Entries sharing a key (a caller's number, a call id) are applied one after
        the other in journal order; others overlap, so Redis fsyncs many of them
        at once (``appendfsync always`` costs one disk flush per round, not per record).
        """
        if not self._started or self._stopped or self._retry is not None:
            return
        if self._kicking:  # an apply that finished at once, inside the loop below
            self._kick_again = True
            return
        if not self._queue and not self._in_flight:
            self._drained()
            return
        self._kicking = True
        try:
            self._kick_again = True
            while self._kick_again and self._retry is None and not self._stopped:
                self._kick_again = False
                self._start_some()
        finally:
            self._kicking = False
        if not self._queue and not self._in_flight:
            self._drained()

    def _start_some(self) -> None:
        blocked: set[str] = set(self._busy_keys)
        scanned = 0
        for entry in list(self._queue.values()):
            if len(self._in_flight) >= MAX_IN_FLIGHT or scanned >= SCAN_LIMIT:
                break
            if self._retry is not None:
                return
            scanned += 1
            if entry.seq not in self._queue:
                continue  # applied meanwhile
            if entry.seq in self._in_flight or entry.kind not in self._appliers:
                blocked.update(entry.keys)
                continue
            if blocked.intersection(entry.keys):
                blocked.update(entry.keys)
                continue
            blocked.update(entry.keys)
            self._launch(entry)

    def _launch(self, entry: JournalEntry) -> None:
        self._in_flight[entry.seq] = entry
        self._busy_keys.update(entry.keys)
        try:
            result = self._appliers[entry.kind](entry.payload)
            d = result if isinstance(result, Deferred) else as_deferred(result)
        except Exception:
            d = Deferred()
            d.errback(Failure())
        if self._confirm is not None:
            d.addCallback(self._confirmed)
        d.addCallbacks(self._applied_ok, self._apply_failed, callbackArgs=(entry,), errbackArgs=(entry,))

    def _confirmed(self, result: object) -> Deferred[Any]:
        """Keep the entry until the replicas have it too (``redis.wait_replicas``)."""
        assert self._confirm is not None
        d = as_deferred(self._confirm())

        def check(replicated: bool) -> object:
            if not replicated:
                raise NotReplicatedError("the write has not reached the replicas yet")
            return result

        return d.addCallback(check)

    def _landed(self, entry: JournalEntry) -> None:
        """``entry`` is done (stored or set aside): free its keys, move the cursor."""
        self._in_flight.pop(entry.seq, None)
        self._busy_keys.difference_update(entry.keys)
        self._queue.pop(entry.seq, None)
        first = next(iter(self._queue), None)
        applied = (first - 1) if first is not None else max(self._applied, entry.seq)
        if applied > self._applied:
            self._applied = applied
            if self.file is not None:
                self._advance_soon()

    def _advance_soon(self) -> None:
        """Write the cursor now if none was written within ``ADVANCE_EVERY_S``, else at
        the end of that interval (once, for every entry applied meanwhile)."""
        if self._advance_call is not None:
            return
        delay = self._advanced_at + ADVANCE_EVERY_S - self._clock.seconds()
        if delay <= 0:
            self._advance_now()
        else:
            self._advance_call = self._clock.callLater(delay, self._advance_now)

    def _advance_now(self) -> None:
        call, self._advance_call = self._advance_call, None
        if call is not None and call.active():
            call.cancel()
        file, applied = self.file, self._applied
        if file is None or applied <= self._advanced:
            return
        self._advanced = applied
        self._advanced_at = self._clock.seconds()
        self.advances += 1
        self._file_op(lambda: file.advance(applied))

    def _applied_ok(self, result: object, entry: JournalEntry) -> None:
        self._landed(entry)
        self.applied_count += 1
        self._retry_delay = RETRY_INITIAL_S
        if self.redis_away_since is not None and self._retry is None:
            log.info(
                "journal: Redis answers again after {away:.1f} s; {depth} records still to replay",
                away=self._clock.seconds() - self.redis_away_since, depth=len(self._queue),
            )
            self.redis_away_since = None
        answer = self._answers.pop(entry.seq, None)
        if answer is not None and not answer.called:
            answer.callback(result)
        self._kick()

    def _apply_failed(self, failure: Failure, entry: JournalEntry) -> None:
        error = failure.value
        if isinstance(error, BaseException) and is_transient(error):
            self._in_flight.pop(entry.seq, None)
            self._busy_keys.difference_update(entry.keys)
            # a package not ready yet (not Redis): retry soon, say nothing about Redis
            not_ready = isinstance(error, RetryLaterError) and not isinstance(error, NotReplicatedError)
            if self.redis_away_since is None and not not_ready:
                self.redis_away_since = self._clock.seconds()
                log.warn(
                    "journal: Redis is away or slow ({error}); records are kept on this host "
                    "and replayed in order when it answers",
                    error=failure.getErrorMessage(),
                )
            if self._retry is None and not self._stopped:
                if not_ready:
                    delay = RETRY_INITIAL_S
                else:
                    delay, self._retry_delay = self._retry_delay, min(RETRY_MAX_S, self._retry_delay * 2)
                self._retry = self._clock.callLater(delay, self._retry_now)
            return
        log.failure(
            "journal: entry {seq} ({kind}) cannot be applied; moved to {name}",
            failure, seq=entry.seq, kind=entry.kind, name=REJECTED_NAME,
        )
        self.rejected_count += 1
        file = self.file
        if file is not None:
            reason = failure.getErrorMessage()
            self._file_op(lambda: file.reject(entry, reason))
        self._landed(entry)
        answer = self._answers.pop(entry.seq, None)
        if answer is not None and not answer.called:
            answer.errback(failure)
        self._kick()

    def _retry_now(self) -> None:
        self._retry = None
        self._kick()

    def _drained(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            w.callback(None)


def install(app: Any) -> Journal:
    """The daemon's journal in ``state.folder`` (in memory without one), started."""
    state = app.config.state
    folder = Path(state.folder) if state.folder else None
    confirm = None
    replicas = app.config.redis.wait_replicas
    if replicas:
        from shenava.replicas import ReplicaConfirm
        from shenava_base.sites import site_tag

        tag = site_tag("journal", app.config.site.id)
        confirm = ReplicaConfirm(app.redis, f"{app.config.redis.key_prefix}:{tag}:ack", replicas, app.reactor)
    journal = Journal(app.reactor, folder, max_bytes=state.journal_max_bytes, confirm=confirm)
    try:
        journal.load()
    except OSError as exc:
        from shenava.state_folder import StateFolderError

        raise StateFolderError(
            f"state.folder {state.folder!r} cannot hold the journal ({exc.strerror or exc})"
        ) from exc
    if folder is None:
        log.warn("journal: state.folder is not set; records waiting for Redis are kept in memory only")
    journal.start()  # entries of kinds not yet registered wait for their package
    return journal

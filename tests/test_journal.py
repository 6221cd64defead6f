"""The durable journal: order, retries, answers while Redis is away, replay after a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from shenava.journal import ADVANCE_EVERY_S, ANSWER_WITHIN_S, Journal, JournalFile, is_transient


class FakeRedis:
    """An apply target: idempotent by ``id``; ``away`` makes every apply fail as Redis would."""

    def __init__(self) -> None:
        self.away = False
        self.stored: dict[str, int] = {}
        self.order: list[str] = []
        self.calls = 0

    def apply(self, payload: dict[str, Any]) -> Deferred[Any]:
        self.calls += 1
        if self.away:
            return fail(RedisConnectionError("Connection refused"))
        key = payload["id"]
        if key not in self.stored:
            self.stored[key] = 1
            self.order.append(key)
        return succeed(key)


def inline(f: Any) -> Deferred[Any]:
    return succeed(f())


def make(folder: Path | None, clock: Clock, target: FakeRedis) -> Journal:
    journal = Journal(clock, folder, run_in_thread=inline)
    journal.register("rec", target.apply)
    journal.load()
    journal.start()
    return journal


def results(d: Deferred[Any]) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def test_applied_at_once_when_redis_answers(tmp_path: Path) -> None:
    clock, target = Clock(), FakeRedis()
    journal = make(tmp_path, clock, target)
    got = results(journal.submit("rec", {"id": "a"}))
    assert got == ["a"] and target.order == ["a"]
    assert journal.depth == 0
    # everything applied: the file is emptied, the cursor kept
    assert (tmp_path / "journal.jsonl").read_bytes() == b""
    assert (tmp_path / "journal.cursor").read_text().strip() == "1"


def test_redis_away_answers_kept_then_replays_in_order(tmp_path: Path) -> None:
    clock, target = Clock(), FakeRedis()
    journal = make(tmp_path, clock, target)
    target.away = True
    answers = [results(journal.submit("rec", {"id": f"r{i}"})) for i in range(5)]
    assert all(a == [] for a in answers)  # waiting for Redis, within the bound
    assert journal.depth == 5
    lines = (tmp_path / "journal.jsonl").read_bytes().splitlines()
    assert [json.loads(x)["p"]["id"] for x in lines] == [f"r{i}" for i in range(5)]
    clock.advance(ANSWER_WITHIN_S)
    assert all(a == [None] for a in answers)  # the caller hears "kept": never an error
    clock.advance(3)
    assert journal.oldest_age() == ANSWER_WITHIN_S + 3
    assert journal.health()["redis_away_since"] == 0.0
    target.away = False
    for _ in range(10):
        clock.advance(5)
    assert target.order == [f"r{i}" for i in range(5)] and journal.depth == 0
    assert journal.oldest_age() == 0.0 and journal.health()["redis_away_since"] is None
    # new entries while the journal drains keep their place behind the old ones
    assert results(journal.submit("rec", {"id": "r5"})) == ["r5"]


def test_crash_mid_replay_applies_nothing_twice(tmp_path: Path) -> None:
    clock, target = Clock(), FakeRedis()
    journal = make(tmp_path, clock, target)
    target.away = True
    for i in range(4):
        journal.submit("rec", {"id": f"r{i}"})
    # Redis returns; two entries are applied, then the daemon dies before the
    # cursor of the second is written (simulated: the cursor says 1).
    target.away = False
    clock.advance(0.2)
    assert target.order == ["r0", "r1", "r2", "r3"]
    calls_before = target.calls
    (tmp_path / "journal.cursor").write_text("1\n")
    data = b"".join(
        json.dumps({"seq": i + 1, "kind": "rec", "at": 0.0, "p": {"id": f"r{i}"}}).encode() + b"\n"
        for i in range(4)
    )
    (tmp_path / "journal.jsonl").write_bytes(data + b'{"seq": 5, "kind": "rec", "a')  # torn line
    again_clock = Clock()
    again = make(tmp_path, again_clock, target)
    assert again.depth == 0
    assert target.order == ["r0", "r1", "r2", "r3"] and all(n == 1 for n in target.stored.values())
    assert target.calls == calls_before + 3  # r1..r3 offered again, each stored once
    again_clock.advance(ADVANCE_EVERY_S)  # the cursor of the last ones, written once
    assert (tmp_path / "journal.jsonl").read_bytes() == b""


def test_a_restart_replays_what_redis_never_got(tmp_path: Path) -> None:
    clock, target = Clock(), FakeRedis()
    journal = make(tmp_path, clock, target)
    target.away = True
    for i in range(3):
        journal.submit("rec", {"id": f"r{i}"})
    journal.stop()
    target.away = False
    fresh = FakeRedis()
    make(tmp_path, Clock(), fresh)
    assert fresh.order == ["r0", "r1", "r2"]


def test_a_bad_entry_is_set_aside_not_blocking(tmp_path: Path) -> None:
    clock, target = Clock(), FakeRedis()
    journal = make(tmp_path, clock, target)

    def broken(payload: dict[str, Any]) -> Deferred[Any]:
        return fail(ValueError("malformed"))

    journal.register("bad", broken)
    bad = results(journal.submit("bad", {"id": "x"}))
    ok = results(journal.submit("rec", {"id": "y"}))
    assert bad and bad[0].check(ValueError) and ok == ["y"]
    rejected = (tmp_path / "journal.rejected").read_text().splitlines()
    assert json.loads(rejected[0])["entry"]["kind"] == "bad"
    bad[0].trap(ValueError)


def test_in_memory_journal_works_the_same() -> None:
    clock, target = Clock(), FakeRedis()
    journal = make(None, clock, target)
    target.away = True
    got = results(journal.submit("rec", {"id": "a"}))
    clock.advance(ANSWER_WITHIN_S)
    assert got == [None] and journal.depth == 1
    target.away = False
    clock.advance(1)
    assert target.order == ["a"]


def test_transient_errors() -> None:
    from redis.exceptions import ResponseError, TimeoutError

    assert is_transient(RedisConnectionError("x")) and is_transient(TimeoutError("x"))
    assert is_transient(ResponseError("READONLY You can't write against a read only replica."))
    assert is_transient(ResponseError("LOADING Redis is loading the dataset in memory"))
    assert not is_transient(ResponseError("WRONGTYPE Operation against a key"))
    assert not is_transient(ValueError("x"))


def test_torn_file_is_cut_back(tmp_path: Path) -> None:
    (tmp_path / "journal.jsonl").write_bytes(b'{"seq":1,"kind":"rec","at":0,"p":{"id":"a"}}\n{"seq":2')
    cursor, entries = JournalFile(tmp_path).load()
    assert cursor == 0 and [e.payload["id"] for e in entries] == ["a"]
    assert (tmp_path / "journal.jsonl").read_bytes().endswith(b"}}\n")


def test_entries_of_one_key_wait_for_each_other_others_overlap() -> None:
    clock = Clock()
    started: list[str] = []
    pending: dict[str, Deferred[Any]] = {}

    def apply(payload: dict[str, Any]) -> Deferred[Any]:
        started.append(payload["id"])
        pending[payload["id"]] = Deferred()
        return pending[payload["id"]]

    journal = Journal(clock, None)
    journal.register("rec", apply)
    journal.start()
    journal.submit("rec", {"id": "a1"}, ("num:1",))
    journal.submit("rec", {"id": "a2"}, ("num:1", "call:9"))
    journal.submit("rec", {"id": "b"}, ("num:2",))
    journal.submit("rec", {"id": "c"}, ("call:9",))
    assert started == ["a1", "b"]  # a2 waits for a1; c waits behind a2 (same call)
    pending["b"].callback("b")
    assert started == ["a1", "b"] and journal.depth == 3
    pending["a1"].callback("a1")
    assert started == ["a1", "b", "a2"]
    pending["a2"].callback("a2")
    assert started == ["a1", "b", "a2", "c"]
    pending["c"].callback("c")
    assert journal.depth == 0


def test_a_previous_runs_entries_wait_for_their_kind_to_be_registered(tmp_path: Path) -> None:
    clock, target = Clock(), FakeRedis()
    first = make(tmp_path, clock, target)
    target.away = True
    first.submit("rec", {"id": "r0"})
    first.stop()
    target.away = False
    later = Journal(Clock(), tmp_path, run_in_thread=inline)
    later.load()
    later.start()  # nothing registered yet: the entry waits, it is not set aside
    assert later.depth == 1 and later.rejected_count == 0
    later.register("rec", target.apply)
    assert target.order == ["r0"] and later.depth == 0


def test_a_journal_that_is_never_empty_is_still_compacted(tmp_path: Path, monkeypatch: Any) -> None:
    import shenava.journal as journal_module

    monkeypatch.setattr(journal_module, "COMPACT_AT_BYTES", 2000)
    clock = Clock()
    pending: list[Deferred[Any]] = []

    def apply(payload: dict[str, Any]) -> Deferred[Any]:
        pending.append(Deferred())
        return pending[-1]

    journal = Journal(clock, tmp_path, run_in_thread=inline)
    journal.register("rec", apply)
    journal.start()
    for i in range(60):  # busy: a new record always arrives before the last is stored
        journal.submit("rec", {"id": f"r{i}", "pad": "x" * 40})
        if i:
            pending[i - 1].callback(None)
        clock.advance(ADVANCE_EVERY_S)  # the cursor moves (and the file is cut) once a second
    assert journal.depth == 1 and journal.file is not None and journal.file.rewrites >= 1
    lines = (tmp_path / "journal.jsonl").read_bytes().splitlines()
    assert len(lines) < 40 and b'"r59"' in lines[-1]
    again = Journal(Clock(), tmp_path, run_in_thread=inline)
    assert again.load() == 1  # after a restart only the last one is left to replay


def test_a_submitter_that_needs_it_kept_is_answered_once_on_disk_not_after_redis(tmp_path: Path) -> None:
    """``wait_applied=False`` (the voicemail intake before "message saved"): answered
    as soon as the entry is fsynced, not ``ANSWER_WITHIN_S`` later while Redis is away."""
    clock, target = Clock(), FakeRedis()
    target.away = True
    journal = make(tmp_path, clock, target)
    waits = results(journal.submit("rec", {"id": "a"}))
    kept = results(journal.submit("rec", {"id": "b"}, wait_applied=False))
    assert kept == [None] and waits == []
    assert b'"id":"b"' in (tmp_path / "journal.jsonl").read_bytes()
    clock.advance(ANSWER_WITHIN_S)
    assert waits == [None]
    target.away = False
    clock.advance(10)
    assert target.order == ["a", "b"]


def test_a_batch_is_one_line_kept_whole_or_not_at_all(tmp_path: Path) -> None:
    """Entries submitted in ``batch()`` (a voicemail's flag reason and its intake)
    are one line of the file, written by one append: a crash mid-write loses the
    whole line, never half of it; a whole line replays every entry once."""
    clock, target = Clock(), FakeRedis()
    journal = make(tmp_path, clock, target)
    target.away = True
    journal.submit("rec", {"id": "before"})
    with journal.batch():
        journal.submit("rec", {"id": "flag"})
        journal.submit("rec", {"id": "intake"})
    journal.submit("rec", {"id": "after"})
    lines = (tmp_path / "journal.jsonl").read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    assert [e["p"]["id"] for e in json.loads(lines[1])["batch"]] == ["flag", "intake"]
    journal.stop()

    # torn in the middle of the batch's line: neither entry survives, the line before does
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "journal.jsonl").write_bytes(lines[0] + lines[1][: len(lines[1]) // 2])
    again = FakeRedis()
    make(torn, Clock(), again)
    assert again.order == ["before"]

    # the whole file: every entry replayed in order, each once
    replay, replay_clock = FakeRedis(), Clock()
    make(tmp_path, replay_clock, replay)
    assert replay.order == ["before", "flag", "intake", "after"]
    replay_clock.advance(ADVANCE_EVERY_S)
    assert (tmp_path / "journal.jsonl").read_bytes() == b""


def test_a_half_applied_batch_keeps_its_line_through_compaction(tmp_path: Path, monkeypatch: Any) -> None:
    """The file is cut after applied entries; a batch whose first entry is applied
    and whose second is not keeps its whole line (the second is replayed, the
    first is skipped by the cursor)."""
    import shenava.journal as journal_module

    monkeypatch.setattr(journal_module, "COMPACT_AT_BYTES", 1)
    clock, target = Clock(), FakeRedis()
    held: dict[str, Deferred[Any]] = {}

    def held_apply(payload: dict[str, Any]) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        held[payload["id"]] = d
        return d

    def release(key: str) -> None:
        held.pop(key).callback(target.apply({"id": key}))

    journal = Journal(clock, tmp_path, run_in_thread=inline)
    journal.register("rec", held_apply)
    journal.load()
    journal.start()
    journal.submit("rec", {"id": "before"})
    with journal.batch():
        journal.submit("rec", {"id": "flag"}, ("num:1",))
        journal.submit("rec", {"id": "intake"}, ("num:1",))
    release("before")
    release("flag")
    clock.advance(ADVANCE_EVERY_S)  # the cursor of the flag's entry
    assert target.order == ["before", "flag"] and list(held) == ["intake"]
    # killed here: the cursor says the flag is applied, the intake is not; the
    # applied head was cut off, the batch's line kept whole
    assert (tmp_path / "journal.cursor").read_text().strip() == "2"
    assert journal.file is not None and journal.file.rewrites >= 1
    data = (tmp_path / "journal.jsonl").read_bytes()
    assert b'"before"' not in data and b'"flag"' in data and b'"intake"' in data
    replay = FakeRedis()
    make(tmp_path, Clock(), replay)
    assert replay.order == ["intake"]


def test_the_cursor_is_written_once_a_second_and_a_kill_before_it_loses_nothing(tmp_path: Path) -> None:
    """At a steady rate the journal empties after nearly every record: the cursor
    (and the emptied file) used to be written after each one, a worker thread hop, a
    rename and an fsync per record. Now the first advance after a quiet spell goes at
    once and the rest of that second's in one write at its end; a kill -9 before it
    only replays entries already stored, each a no-op; ``stop`` writes it at once."""
    clock, target = Clock(), FakeRedis()
    journal = make(tmp_path, clock, target)
    assert journal.file is not None
    writes: list[int] = []
    advance = journal.file.advance
    journal.file.advance = lambda applied: (writes.append(applied), advance(applied))[-1]  # type: ignore[method-assign]
    for i in range(50):
        assert results(journal.submit("rec", {"id": f"r{i}"})) == [f"r{i}"]
        clock.advance(0.01)
    assert writes == [1] and journal.advances == 1
    assert (tmp_path / "journal.cursor").read_text().strip() == "1"
    assert len((tmp_path / "journal.jsonl").read_bytes().splitlines()) == 49

    # killed here: the next daemon replays r1..r49, which Redis has; nothing twice
    calls = target.calls
    again_clock = Clock()
    again = make(tmp_path, again_clock, target)
    assert target.calls == calls + 49 and again.depth == 0
    assert target.order == [f"r{i}" for i in range(50)] and set(target.stored.values()) == {1}

    clock.advance(ADVANCE_EVERY_S)  # (the killed one's timer, had it lived)
    assert writes == [1, 50] and journal.advances == 2
    clock.advance(ADVANCE_EVERY_S)
    submitted = results(journal.submit("rec", {"id": "last"}))
    assert submitted == ["last"] and writes == [1, 50, 51]  # a quiet second since: at once
    journal.submit("rec", {"id": "after"})
    assert writes == [1, 50, 51]
    journal.stop()
    assert writes == [1, 50, 51, 52]
    assert (tmp_path / "journal.cursor").read_text().strip() == "52"


def test_waiting_submitters_are_told_kept_on_time_by_one_timer(tmp_path: Path) -> None:
    """Each submitter still waiting for Redis hears "kept" ``answer_within_s`` after
    its record is on disk, from one timer for all (not a timer set and cancelled
    per record); one answered by Redis first is not answered twice."""
    clock, target = Clock(), FakeRedis()
    journal = make(tmp_path, clock, target)
    target.away = True
    first = results(journal.submit("rec", {"id": "a"}))
    clock.advance(1.0)
    second = results(journal.submit("rec", {"id": "b"}))
    answer_timers = [c for c in clock.getDelayedCalls() if c.func.__name__ == "_answers_due"]
    assert len(answer_timers) == 1
    clock.advance(ANSWER_WITHIN_S - 1.0)
    assert first == [None] and second == []
    clock.advance(0.5)
    assert second == []
    clock.advance(0.5)
    assert second == [None]
    # Redis back (the journal's retries catch up): what answers now is Redis' result, once
    target.away = False
    for _ in range(5):
        clock.advance(5.0)
    assert target.order == ["a", "b"]
    third = results(journal.submit("rec", {"id": "c"}))
    assert third == ["c"]
    clock.advance(10 * ANSWER_WITHIN_S)
    assert third == ["c"] and not [c for c in clock.getDelayedCalls() if c.func.__name__ == "_answers_due"]


def test_a_wall_clock_set_back_does_not_hold_a_waiting_submitter(tmp_path: Path) -> None:
    """The reactor waits in monotonic time but ``seconds()`` is the wall clock: set
    back an hour, the due time of a waiting submitter is far ahead; it is answered
    ``answer_within_s`` later all the same."""

    class WallClock:
        def __init__(self) -> None:
            self.now = 3600.0
            self.timers: list[tuple[float, Any, tuple[Any, ...]]] = []

        def seconds(self) -> float:
            return self.now

        def callLater(self, delay: float, f: Any, *args: Any) -> Any:
            self.timers.append((delay, f, args))
            return Clock().callLater(delay, lambda: None)  # an IDelayedCall never run

    clock, target = WallClock(), FakeRedis()
    journal = Journal(clock, tmp_path, run_in_thread=inline)  # type: ignore[arg-type]
    journal.register("rec", target.apply)
    journal.start()
    target.away = True
    waiting = results(journal.submit("rec", {"id": "a"}))
    clock.now -= 3000.0  # the wall clock set back
    [(delay, fire, _)] = [t for t in clock.timers if t[1].__name__ == "_answers_due"]
    assert delay == ANSWER_WITHIN_S
    fire()
    assert waiting == [None]


def test_a_calls_records_are_carried_until_on_disk_then_submitted_again_once(tmp_path: Path) -> None:
    """``carried``: a call's records (named by ``call=`` or a ``call:`` key) not yet
    on disk, for its call-state write to carry; ``resubmit`` (the take-over) puts
    them in a journal again, stored once by their id whichever copy lands."""
    held: list[tuple[Deferred[Any], Any]] = []

    def slow_disk(work: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        held.append((d, work))
        return d

    clock, target = Clock(), FakeRedis()
    journal = Journal(clock, tmp_path, run_in_thread=slow_disk)
    journal.register("rec", target.apply)
    journal.start()
    journal.submit("rec", {"id": "o1"}, call="c1")  # an SL outcome names its call
    journal.submit("rec", {"id": "f1"}, ("num:0912", "call:c1"))  # a flag reason keys it
    journal.submit("rec", {"id": "x"}, ("num:0913",))  # nobody's call
    carried = journal.carried("c1")
    assert [c["payload"]["id"] for c in carried] == ["o1", "f1"]
    assert carried[1] == {"kind": "rec", "payload": {"id": "f1"}, "keys": ["num:0912", "call:c1"]}
    assert journal.carried("c2") == []
    while held:  # the first append (o1), then the rest together
        d, work = held.pop(0)
        d.callback(work())
    assert journal.carried("c1") == []
    assert sorted(target.stored) == ["f1", "o1", "x"]

    # The next daemon (its own folder here) finds them carried by the call's state.
    (tmp_path / "next").mkdir()
    again, target2 = Journal(clock, tmp_path / "next", run_in_thread=inline), FakeRedis()
    again.register("rec", target2.apply)
    again.start()
    assert again.resubmit("c1", [*carried, {"kind": "unknown", "payload": {}}, "junk"]) == 2
    assert again.resubmit("c1", "not a list") == 0
    assert sorted(target2.stored) == ["f1", "o1"]

"""The call state in Redis: batched writes, the fence, and resuming a menu from a saved state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from redis.asyncio import Redis
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock, deferLater

from ivr.machine import (
    Collect,
    Digits,
    MenuMachine,
    Phase,
    Play,
    SayDigits,
    SetVariable,
    Start,
    state_from_dict,
    state_to_dict,
)
from ivr.menu_schema import load_menus
from shenava.call_state import CallStateRecorder, CallStateStore, FencedOffError
from shenava.demo import luhn_complete
from shenava_base.aio import as_deferred

MACHINE = MenuMachine(load_menus())
ACCOUNT = luhn_complete("123456789")


def record_of(call_id: str) -> dict[str, object] | None:
    return {"phase": "waiting", "joined_at": 10.0, "n": int(call_id[1:])} if call_id != "gone" else None


@pytest_twisted.ensureDeferred
async def test_many_call_events_in_one_turn_are_one_redis_write(redis_client: Redis) -> None:
    store = CallStateStore(redis_client, "t")
    clock = Clock()
    recorder = CallStateRecorder(store, clock, [record_of])
    for n in range(200):
        recorder.mark(f"c{n % 50}")  # 200 events on 50 calls
    recorder.mark("gone")
    clock.advance(0)
    await recorder.flushed()
    # without a lease: one round trip, an HSET of the live calls and an HDEL of the gone one
    assert (store.round_trips, store.commands) == (1, 2)
    loaded = await as_deferred(store.load())
    assert sorted(loaded) == sorted(f"c{n}" for n in range(50))
    assert loaded["c7"]["n"] == 7 and loaded["c7"]["call_id"] == "c7"
    # a call whose owners hold nothing any more is dropped, in the same kind of single write
    recorder._sources = [lambda call_id: None]
    for n in range(50):
        recorder.mark(f"c{n}")
    clock.advance(0)
    await recorder.flushed()
    assert store.commands == 4  # one load, two writes (the second a lone HDEL)
    assert await as_deferred(store.load()) == {}


@pytest_twisted.ensureDeferred
async def test_a_writer_whose_lease_passed_writes_nothing(redis_client: Redis) -> None:
    store = CallStateStore(redis_client, "t")
    await as_deferred(redis_client.set(store.lease_key, "7|other-daemon"))
    fenced: list[bool] = []
    with pytest.raises(FencedOffError):
        await as_deferred(store.write({"c1": {"v": 1}}, [], fence="6|me"))
    assert await as_deferred(redis_client.hgetall(store.live_key)) == {}
    clock = Clock()
    recorder = CallStateRecorder(
        store, clock, [record_of], fence=lambda: "6|me", on_fenced_off=lambda: fenced.append(True)
    )
    recorder.mark("c1")
    clock.advance(0)
    await recorder.flushed()
    assert fenced == [True] and await as_deferred(redis_client.hgetall(store.live_key)) == {}
    await as_deferred(store.write({"c1": {"v": 1}}, [], fence="7|other-daemon"))
    stored = await as_deferred(redis_client.hgetall(store.live_key))
    assert json.loads(stored["c1"]) == {"v": 1}


def test_a_saved_menu_state_resumes_with_what_the_caller_entered() -> None:
    """Persian, urgent billing, no care, then half an account number typed."""
    step = MACHINE.start(Start(100.0, "09121234567", "call-1"))
    for keys in ("1", "1", "3", "1", "3"):
        step = MACHINE.step(step.state, Digits(101.0, keys))
    step = MACHINE.step(step.state, Digits(102.0, ACCOUNT[:4]))
    assert step.state.menu == "account" and step.state.entered == ACCOUNT[:4]
    saved = json.loads(json.dumps(state_to_dict(step.state)))
    state = state_from_dict(saved)
    assert state == step.state
    resumed = MACHINE.resume(state, 200.0, apology="resume-sorry")
    commands = resumed.commands
    assert commands[0] == SetVariable("CHANNEL(language)", "fa")
    assert commands[1] == Play("resume-sorry", "fa", interruptible=False)
    last = commands[-1]
    assert isinstance(last, Collect) and last.prompt is None  # carries on the number
    assert resumed.state.entered == ACCOUNT[:4] and resumed.state.category == "billing"
    # the rest of the number completes what was kept: read back whole
    done = MACHINE.step(resumed.state, Digits(201.0, ACCOUNT[4:] + "#"))
    assert done.state.phase is Phase.CONFIRM
    assert any(isinstance(c, SayDigits) and c.digits == ACCOUNT for c in done.commands)


def test_a_saved_state_at_a_choice_menu_asks_that_menu_again() -> None:
    step = MACHINE.start(Start(100.0, "09121234567", "call-2"))
    step = MACHINE.step(step.state, Digits(101.0, "2"))  # English
    step = MACHINE.step(step.state, Digits(102.0, "1"))  # new complaint -> category
    state = state_from_dict(json.loads(json.dumps(state_to_dict(step.state))))
    resumed = MACHINE.resume(state, 200.0, apology="resume-sorry")
    assert resumed.state.menu == step.state.menu
    assert resumed.state.path == step.state.path  # entered once
    last = resumed.commands[-1]
    assert isinstance(last, Collect) and last.lang == "en"
    assert Play("resume-sorry", "en", interruptible=False) in resumed.commands


def test_a_saved_state_mid_recording_or_look_up_starts_that_step_again() -> None:
    from ivr.machine import LookupComplaint, Record

    step = MACHINE.start(Start(100.0, "09121234567", "call-3"))
    for keys in ("1", "4"):  # Persian, leave a voicemail
        step = MACHINE.step(step.state, Digits(101.0, keys))
    assert isinstance(step.commands[-1], Record)
    resumed = MACHINE.resume(state_from_dict(state_to_dict(step.state)), 200.0)
    assert isinstance(resumed.commands[-1], Record)
    assert resumed.state.path.count(step.state.menu) == step.state.path.count(step.state.menu)

    step = MACHINE.start(Start(100.0, "09121234567", "call-4"))
    for keys in ("1", "2", "12345#", "1"):  # Persian, a status, the reference, confirmed
        step = MACHINE.step(step.state, Digits(101.0, keys))
    assert step.state.phase is Phase.LOOKUP and isinstance(step.commands[-1], LookupComplaint)
    resumed = MACHINE.resume(state_from_dict(state_to_dict(step.state)), 200.0)
    assert resumed.commands[-1] == step.commands[-1]


@pytest_twisted.ensureDeferred
async def test_writes_spaced_by_min_interval_carry_every_change_since_the_last(
    redis_client: Redis,
) -> None:
    store = CallStateStore(redis_client, "t")
    clock = Clock()
    recorder = CallStateRecorder(store, clock, [record_of], min_interval_s=0.1)
    recorder.mark("c1")
    clock.advance(0)  # the first change after a quiet spell: written at the turn's end
    await recorder.flushed()
    assert store.commands == 1
    for n in range(2, 12):
        clock.advance(0.005)
        recorder.mark(f"c{n}")
        clock.advance(0)
    assert store.commands == 1  # the next write waits out the interval
    clock.advance(0.1)
    await recorder.flushed()
    assert store.commands == 2
    assert sorted(await as_deferred(store.load())) == sorted(f"c{n}" for n in range(1, 12))


@pytest_twisted.ensureDeferred
async def test_an_ended_call_is_dropped_only_once_its_journal_records_are_on_disk(
    redis_client: Redis, tmp_path: Path
) -> None:
    """The end of a waiting call journals its records (an abandon's flag); the
    journal's disk write runs in a thread. A drop written to Redis before that
    write, then a kill -9, lost the flag: no record for the next daemon to
    count again, no journal entry to replay (benchmarks/chaos.py)."""
    from shenava.journal import Journal

    held: list[tuple[Deferred[object], object]] = []

    def slow_disk(work: Any) -> Deferred[object]:
        d: Deferred[object] = Deferred()
        held.append((d, work))
        return d

    clock = Clock()
    (tmp_path / "state").mkdir()
    journal = Journal(clock, tmp_path / "state", run_in_thread=slow_disk)
    journal.register("flag", lambda entry: succeed(None))
    store = CallStateStore(redis_client, "t")
    live = {"c1"}
    recorder = CallStateRecorder(
        store, clock, [lambda call_id: record_of(call_id) if call_id in live else None],
        records_kept=journal.written,
    )
    recorder.mark("c1")
    clock.advance(0)
    await recorder.flushed()
    assert "c1" in await as_deferred(store.load())

    live.clear()  # the caller hung up: the flag is journalled, the record dropped
    journal.submit("flag", {"call": "c1"}, ("call:c1",))
    recorder.mark("c1")
    clock.advance(0)
    for _ in range(20):  # give the (real) Redis every chance to take a write
        await deferLater(reactor, 0.01, lambda: None)
    assert "c1" in await as_deferred(store.load()), "dropped before the journal entry was on disk"
    while held:
        d, work = held.pop(0)
        d.callback(work())  # type: ignore[operator]
    await recorder.flushed()
    assert await as_deferred(store.load()) == {}
    assert [e.payload for e in journal.file.load()[1]] == [{"call": "c1"}]  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_an_ended_call_waiting_for_the_journal_does_not_hold_other_writes(
    redis_client: Redis, tmp_path: Path
) -> None:
    """While the journal's disk write of an ended call's records is in flight, the
    places of other callers (one who just joined the line) are written anyway.
    Before, the whole write waited for the journal's disk, and every write
    behind it: a join could lag seconds behind an overloaded daemon's disk."""
    from shenava.journal import Journal

    held: list[tuple[Deferred[object], object]] = []

    def slow_disk(work: Any) -> Deferred[object]:
        d: Deferred[object] = Deferred()
        held.append((d, work))
        return d

    clock = Clock()
    (tmp_path / "state").mkdir()
    journal = Journal(clock, tmp_path / "state", run_in_thread=slow_disk)
    journal.register("flag", lambda entry: succeed(None))
    store = CallStateStore(redis_client, "t")
    live = {"c1"}
    recorder = CallStateRecorder(
        store, clock, [lambda call_id: record_of(call_id) if call_id in live else None],
        records_kept=journal.written,
    )
    recorder.mark("c1")
    clock.advance(0)
    await recorder.flushed()

    live.clear()
    journal.submit("flag", {"call": "c1"}, ("call:c1",))
    recorder.mark("c1")  # ended: its drop waits for the journal's disk
    live.add("c2")
    recorder.mark("c2")  # joined in the same turn
    clock.advance(0)
    for _ in range(20):
        await deferLater(reactor, 0.01, lambda: None)
    live.add("c3")
    recorder.mark("c3")  # and one more, a turn later
    clock.advance(0)
    for _ in range(20):
        await deferLater(reactor, 0.01, lambda: None)
    loaded = await as_deferred(store.load())
    assert sorted(loaded) == ["c1", "c2", "c3"], "a drop waiting for the disk held the other writes"
    assert recorder.pending == 1  # c1, until its records are on disk
    while held:
        d, work = held.pop(0)
        d.callback(work())  # type: ignore[operator]
    await recorder.flushed()
    assert sorted(await as_deferred(store.load())) == ["c2", "c3"]


@pytest_twisted.ensureDeferred
async def test_a_lagging_write_keeps_the_places_on_this_host_until_one_lands(
    redis_client: Redis, tmp_path: Path
) -> None:
    """Redis pauses writes (``CLIENT PAUSE ... WRITE``: slow, not away, so the write
    does not fail). Past ``lag_s`` the recorder keeps every place Redis may lack in
    ``call-state.json`` (one save per interval, not one per caller); when a write
    lands the file goes. Healthy writes never touch the disk."""
    from shenava.call_state_spool import CallStateSpool, lay_over

    clock = Clock()
    store = CallStateStore(redis_client, "t")
    live: set[str] = set()
    recorder = CallStateRecorder(
        store, clock, [lambda call_id: record_of(call_id) if call_id in live else None],
        min_interval_s=0.1,
    )
    spool = CallStateSpool(tmp_path)
    recorder.spool = spool
    live.add("c1")
    recorder.mark("c1")
    clock.advance(0)
    await recorder.flushed()
    assert recorder.spool_saves == 0 and not spool.path.exists()  # healthy: no disk

    client: Any = redis_client
    await as_deferred(client.execute_command("CLIENT", "PAUSE", "60000", "WRITE"))
    try:
        live.add("c2")
        recorder.mark("c2")
        clock.advance(0.1)  # its write goes, and hangs
        await deferLater(reactor, 0.05, lambda: None)
        assert recorder.spool_saves == 0
        clock.advance(0.3)
        assert recorder.lagging and recorder.spool_saves == 1
        for n in range(3, 13):  # ten callers join in one turn behind the stuck write
            live.add(f"c{n}")
            recorder.mark(f"c{n}")
        clock.advance(0.1)
        assert recorder.spool_saves == 2  # one save for the ten, not one each
        kept, _ = lay_over(await as_deferred(store.load()), spool.load())
        assert sorted(kept) == sorted(f"c{n}" for n in range(1, 13))  # what a kill -9 now leaves
    finally:
        await as_deferred(client.execute_command("CLIENT", "UNPAUSE"))
    for _ in range(5):
        clock.advance(0.1)
        await recorder.flushed()
    assert sorted(await as_deferred(store.load())) == sorted(f"c{n}" for n in range(1, 13))
    assert not recorder.lagging and not spool.path.exists()


@pytest_twisted.ensureDeferred
async def test_a_drop_waits_for_the_host_file_save_in_flight(redis_client: Redis, tmp_path: Path) -> None:
    """A lagging write lands: the host's file is saved again without its calls, in a
    thread. A caller of that write who is then answered and hangs up was dropped from
    Redis while that save was still running: a kill -9 then left the file's old
    entry (the caller waiting) over nothing in Redis, and the next daemon counted
    the end of an answered call as an abandon. The drop now waits for the save."""
    from shenava.call_state_spool import CallStateSpool, lay_over

    saves: list[tuple[Deferred[object], Any]] = []

    def held_thread(work: Any) -> Deferred[object]:
        d: Deferred[object] = Deferred()
        saves.append((d, work))
        return d

    def finish_saves() -> None:
        while saves:
            d, work = saves.pop(0)
            d.callback(work())

    def after_a_kill() -> dict[str, dict[str, Any]]:
        kept, _ = lay_over(redis_records, spool.load())
        return kept

    clock = Clock()
    store = CallStateStore(redis_client, "t")
    phase: dict[str, str] = {}
    recorder = CallStateRecorder(
        store, clock,
        [lambda call_id: {"phase": phase[call_id]} if call_id in phase else None],
        records_kept=lambda: succeed(None), run_in_thread=held_thread,
    )
    spool = CallStateSpool(tmp_path)
    recorder.spool = spool
    client: Any = redis_client
    await as_deferred(client.execute_command("CLIENT", "PAUSE", "60000", "WRITE"))
    try:
        phase["c1"] = "waiting"
        recorder.mark("c1")
        clock.advance(0)  # the write goes, and hangs
        clock.advance(0.3)  # it lags: c1's place goes to this host's file
        assert recorder.lagging and len(saves) == 1
        finish_saves()
        assert spool.load()["c1"]["phase"] == "waiting"
    finally:
        await as_deferred(client.execute_command("CLIENT", "UNPAUSE"))
    await recorder.flushed()  # the write lands: the file is saved without c1, slowly
    assert len(saves) == 1 and spool.load()["c1"]["phase"] == "waiting"

    phase["c1"] = "answered"
    recorder.mark("c1")
    clock.advance(0)
    await recorder.flushed()
    del phase["c1"]  # the caller hangs up
    recorder.mark("c1")
    for _ in range(5):
        clock.advance(0)
        for _ in range(5):  # give the (real) Redis every chance to take a write
            await deferLater(reactor, 0.01, lambda: None)
    redis_records = await as_deferred(store.load())
    # what a kill -9 now leaves: c1 answered (Redis, newer) or nothing; never the old wait
    assert after_a_kill().get("c1", {}).get("phase", "answered") == "answered"
    assert recorder.pending == 1

    for _ in range(5):
        finish_saves()
        clock.advance(0.1)
        await recorder.flushed()
    redis_records = await as_deferred(store.load())
    assert redis_records == {} and after_a_kill() == {} and recorder.pending == 0


@pytest_twisted.ensureDeferred
async def test_a_drop_waits_for_the_removal_of_the_file_an_earlier_run_left(
    redis_client: Redis, tmp_path: Path
) -> None:
    """The killed daemon's file keeps c1 waiting; Redis has c1 answered, newer, so the
    take-over inherits nothing from the file and removes it (in a thread). c1 hangs
    up before that removal is on disk: its drop waits for it, or a kill -9 then
    would leave the file's wait over nothing in Redis."""
    from shenava.call_state_spool import STAMP, CallStateSpool, lay_over

    saves: list[tuple[Deferred[object], Any]] = []

    def held_thread(work: Any) -> Deferred[object]:
        d: Deferred[object] = Deferred()
        saves.append((d, work))
        return d

    clock = Clock()
    clock.advance(100)
    store = CallStateStore(redis_client, "t")
    spool = CallStateSpool(tmp_path)
    spool.save({"c1": {"phase": "waiting", "v": 1, "call_id": "c1", STAMP: 50.0}})
    await as_deferred(store.write({"c1": {"phase": "answered", "v": 1, "call_id": "c1", STAMP: 90.0}}, []))
    phase = {"c1": "answered"}
    recorder = CallStateRecorder(
        store, clock,
        [lambda call_id: {"phase": phase[call_id]} if call_id in phase else None],
        records_kept=lambda: succeed(None), run_in_thread=held_thread,
    )
    recorder.spool = spool
    records, won = lay_over(await as_deferred(store.load()), spool.load())
    assert won == [] and records["c1"]["phase"] == "answered"
    recorder.inherit_spool(won)  # the file's removal starts, and is slow
    assert len(saves) == 1 and spool.path.exists()

    del phase["c1"]
    recorder.mark("c1")
    for _ in range(5):
        clock.advance(0)
        for _ in range(5):
            await deferLater(reactor, 0.01, lambda: None)
    kept, _ = lay_over(await as_deferred(store.load()), spool.load())
    assert kept.get("c1", {}).get("phase", "answered") == "answered"

    for _ in range(5):
        while saves:
            d, work = saves.pop(0)
            d.callback(work())
        clock.advance(0.1)
        await recorder.flushed()
    assert await as_deferred(store.load()) == {} and not spool.path.exists()


@pytest_twisted.ensureDeferred
async def test_a_write_carries_the_calls_journal_records_not_yet_on_disk(
    redis_client: Redis, tmp_path: Path
) -> None:
    """A change that makes a journal record (an answer's SL outcome) is written to
    Redis at the end of its turn; the record's append runs in a thread and can land
    later. A kill -9 in between left Redis with ``talking`` and no outcome anywhere
    (the next daemon took the conversation up and nobody counted it). So the
    write carries the records its call has not yet on disk; once they are, the
    next write no longer does, and another call's write never carries them."""
    from shenava.journal import Journal

    held: list[tuple[Deferred[object], object]] = []

    def slow_disk(work: Any) -> Deferred[object]:
        d: Deferred[object] = Deferred()
        held.append((d, work))
        return d

    clock = Clock()
    (tmp_path / "state").mkdir()
    journal = Journal(clock, tmp_path / "state", run_in_thread=slow_disk)
    journal.register("stats.outcome", lambda entry: succeed(None))
    store = CallStateStore(redis_client, "t")
    live = {"c1", "c2"}
    recorder = CallStateRecorder(
        store, clock, [lambda call_id: record_of(call_id) if call_id in live else None],
        records_kept=journal.written, carried=journal.carried,
    )
    journal.submit("stats.outcome", {"call_id": "c1", "outcome": "answered"}, call="c1")
    recorder.mark("c1")
    recorder.mark("c2")
    clock.advance(0)
    await recorder.flushed()
    stored = await as_deferred(store.load())
    assert stored["c1"]["journal"] == [
        {"kind": "stats.outcome", "payload": {"call_id": "c1", "outcome": "answered"}, "keys": []}
    ]
    assert "journal" not in stored["c2"]

    while held:
        d, work = held.pop(0)
        d.callback(work())  # type: ignore[operator]
    recorder.mark("c1")
    clock.advance(0)
    await recorder.flushed()
    assert "journal" not in (await as_deferred(store.load()))["c1"]

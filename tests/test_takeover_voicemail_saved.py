"""A caller who heard "message saved" keeps their voicemail across a kill -9.

The IVR hands the voicemail to the intake (which journals it, fsynced) before
it plays ``message-saved`` (``ivr.runner.KEPT_BEFORE_TOLD``). It used to play
the prompt first and hand the voicemail on only when it had played. A daemon killed in
between (under load the intake ran seconds later) left a call state whose IVR
was done, with the voicemail outcome in it; the caller hung up while no daemon
ran, and the next daemon counted the call as ended and dropped the record:
no voicemail, no complaint, no flag (``benchmarks/chaos.py``: 5 at 5 calls/s
with 12 faults). The take-over now hands such an outcome on, as the killed
daemon would have. In process, virtual time, real Redis (``tests.e2e_harness``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest_twisted
from redis.asyncio import Redis
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater

from shenava.takeover import CallStateExtension
from shenava_base.aio import as_deferred
from testpbx.scripts import CallerScript
from tests.e2e_harness import E2E, e2e_config

NUMBER = "0935444001"


async def _voicemails_of(client: Any, call_id: str) -> list[str]:
    found = []
    for raw in await as_deferred(client.zrange("shenava:{vm}:index", 0, -1)):
        vm_id = raw.decode() if isinstance(raw, bytes) else raw
        owner = await as_deferred(client.hget(f"shenava:{{vm}}:vm:{vm_id}", "call_id"))
        if (owner.decode() if isinstance(owner, bytes) else owner) == call_id:
            found.append(vm_id)
    return found


@pytest_twisted.ensureDeferred
async def test_a_voicemail_confirmed_before_a_kill_is_kept_once(
    redis_client: Redis, tmp_path: Path
) -> None:
    folder = tmp_path / "recordings" / "voicemail"
    folder.mkdir(parents=True)
    config = e2e_config()
    config = dataclasses.replace(config, recordings=dataclasses.replace(config.recordings, dir=folder))
    h = E2E.build(tmp_path, config=config, redis=redis_client, killable=True)
    call = h.call(CallerScript(number=NUMBER, language="fa", answers=("1", "4"), patience_s=900.0))
    extension = h.app.takeover
    assert isinstance(extension, CallStateExtension)
    client: Any = redis_client

    await h.run_until_async(lambda: "message-saved" in h.prompts(call), limit_s=120)
    await extension.recorder.flushed()
    record = (await as_deferred(extension.store.load()))[call.uniqueid]
    assert record["ivr"]["phase"] == "done"
    assert record["ivr"]["outcome"]["requested"] == "voicemail"
    # handed on (journalled) before the prompt plays; the take-over hands it on
    # again from the call state, and it is kept once
    assert h.outcome_of(call) is not None
    h.kill()
    call.hang_up()  # heard "message saved" and hung up while no daemon ran
    h.pump()

    h.start_again(redis=redis_client)

    async def kept() -> bool:
        return bool(await _voicemails_of(client, call.uniqueid))

    state = {"kept": False}

    def check() -> bool:
        d = ensureDeferred(kept())
        d.addCallback(lambda v: state.__setitem__("kept", v))
        return state["kept"]

    await h.run_until_async(check, limit_s=120)
    assert len(await _voicemails_of(client, call.uniqueid)) == 1
    flag_id = await as_deferred(client.hget("shenava:{callbacks}:open", NUMBER))
    assert flag_id is not None
    flag = json.loads(await as_deferred(client.get(
        f"shenava:{{callbacks}}:flag:{flag_id.decode() if isinstance(flag_id, bytes) else flag_id}")))
    assert [r["kind"] for r in flag["reasons"]].count("voicemail") == 1


@pytest_twisted.ensureDeferred
async def test_a_voicemail_kept_before_the_kill_is_not_kept_twice(
    redis_client: Redis, tmp_path: Path
) -> None:
    """The killed daemon had stored the voicemail, but the write that dropped the
    call's record never reached Redis: the take-over hands it on again, and the
    intake keeps one voicemail, one complaint and one flag reason."""
    folder = tmp_path / "recordings" / "voicemail"
    folder.mkdir(parents=True)
    config = e2e_config()
    config = dataclasses.replace(config, recordings=dataclasses.replace(config.recordings, dir=folder))
    h = E2E.build(tmp_path, config=config, redis=redis_client, killable=True)
    call = h.call(CallerScript(number=NUMBER, language="fa", answers=("1", "4"), patience_s=900.0))
    extension = h.app.takeover
    assert isinstance(extension, CallStateExtension)
    client: Any = redis_client

    await h.run_until_async(lambda: "message-saved" in h.prompts(call), limit_s=120)
    await extension.recorder.flushed()
    record = (await as_deferred(extension.store.load()))[call.uniqueid]
    state = {"kept": False}

    def kept() -> bool:
        d = ensureDeferred(_voicemails_of(client, call.uniqueid))
        d.addCallback(lambda v: state.__setitem__("kept", bool(v)))
        return state["kept"]

    await h.run_until_async(kept, limit_s=120)
    h.kill()
    await as_deferred(client.hset("shenava:{calls}:live", call.uniqueid, json.dumps(record)))
    call.hang_up()
    h.pump()

    h.start_again(redis=redis_client)
    until = h.now + 30.0
    await h.run_until_async(lambda: h.now >= until, limit_s=60)
    assert len(await _voicemails_of(client, call.uniqueid)) == 1
    refs = await as_deferred(client.zrange("shenava:{complaints}:all", 0, -1))
    mine = 0
    for ref in refs:
        key = ref.decode() if isinstance(ref, bytes) else ref
        mine += json.loads(await as_deferred(client.get(f"shenava:{{complaints}}:c:{key}")))["call_id"] == call.uniqueid
    assert mine == 1
    flag_id = await as_deferred(client.hget("shenava:{callbacks}:open", NUMBER))
    flag = json.loads(await as_deferred(client.get(
        f"shenava:{{callbacks}}:flag:{flag_id.decode() if isinstance(flag_id, bytes) else flag_id}")))
    assert [r["kind"] for r in flag["reasons"]].count("voicemail") == 1


@pytest_twisted.ensureDeferred
async def test_a_caller_still_on_the_line_after_message_saved_is_hung_up(
    redis_client: Redis, tmp_path: Path
) -> None:
    """The daemon died during "message saved", before it hung up, and the caller
    stayed on the line: the next daemon handed the voicemail on but left them in
    AGI, so the take-over after that took them for a new caller and they left a
    second voicemail (``benchmarks/chaos.py``). Now they hear the prompt again
    and are hung up; one voicemail."""
    folder = tmp_path / "recordings" / "voicemail"
    folder.mkdir(parents=True)
    config = e2e_config()
    config = dataclasses.replace(config, recordings=dataclasses.replace(config.recordings, dir=folder))
    h = E2E.build(tmp_path, config=config, redis=redis_client, killable=True)
    call = h.call(CallerScript(number=NUMBER, language="fa", answers=("1", "4"), patience_s=900.0))
    extension = h.app.takeover
    assert isinstance(extension, CallStateExtension)
    client: Any = redis_client

    await h.run_until_async(lambda: "message-saved" in h.prompts(call), limit_s=120)
    await extension.recorder.flushed()
    h.kill()
    h.start_again(redis=redis_client)
    await h.run_until_async(lambda: not h.alive(call), limit_s=120)
    assert h.prompts(call).count("message-saved") == 2
    state = {"kept": False}

    def kept() -> bool:
        d = ensureDeferred(_voicemails_of(client, call.uniqueid))
        d.addCallback(lambda v: state.__setitem__("kept", bool(v)))
        return state["kept"]

    await h.run_until_async(kept, limit_s=60)
    assert len(await _voicemails_of(client, call.uniqueid)) == 1


def _durable(tmp_path: Path) -> Any:
    """The e2e config with a voicemail folder and a durable state folder (the journal on disk)."""
    folder = tmp_path / "recordings" / "voicemail"
    folder.mkdir(parents=True)
    config = e2e_config()
    return dataclasses.replace(
        config, recordings=dataclasses.replace(config.recordings, dir=folder),
        state=dataclasses.replace(config.state, folder=str(tmp_path / "state")),
    )


def _journalled(tmp_path: Path, kind: str, call_id: str) -> list[dict[str, Any]]:
    """The entries of ``kind`` for the call in the journal file on disk (what survives a kill -9)."""
    path = tmp_path / "state" / "journal.jsonl"
    lines = path.read_bytes().splitlines() if path.exists() else []
    entries = [e for r in map(json.loads, lines) for e in (r["batch"] if "batch" in r else [r])]
    return [e["p"] for e in entries if e["kind"] == kind and e["p"].get("call_id") == call_id]


@pytest_twisted.ensureDeferred
async def test_the_voicemail_is_on_disk_before_message_saved_plays_and_survives_a_kill(
    redis_client: Redis, tmp_path: Path
) -> None:
    """The intake is journalled (fsynced in ``state.folder``) before the caller hears
    "message saved": before, the IVR played the prompt first and handed the
    voicemail on only after it, so a kill -9 at the prompt left it to the call
    state's last write (0.1 s old at best; a caller still on the line was resumed
    recording, and the message they were told was saved had no record). The
    daemon is killed the moment the prompt starts, with nothing flushed."""
    h = E2E.build(tmp_path, config=_durable(tmp_path), redis=redis_client, killable=True)
    call = h.call(CallerScript(number=NUMBER, language="fa", answers=("1", "4"), patience_s=900.0))
    client: Any = redis_client

    await h.run_until_async(lambda: "message-saved" in h.prompts(call), limit_s=120)
    # durable now: still in the journal on disk, or applied to Redis already
    kept = [p["vm_id"] for p in _journalled(tmp_path, "voicemail.intake", call.uniqueid)]
    kept += await _voicemails_of(client, call.uniqueid)
    assert len(set(kept)) == 1, kept
    h.kill()
    call.hang_up()  # heard "message saved" and hung up while no daemon ran
    h.pump()

    h.start_again(redis=redis_client)
    state = {"kept": False}

    def check() -> bool:
        d = ensureDeferred(_voicemails_of(client, call.uniqueid))
        d.addCallback(lambda v: state.__setitem__("kept", bool(v)))
        return state["kept"]

    await h.run_until_async(check, limit_s=120)
    until = h.now + 30.0
    await h.run_until_async(lambda: h.now >= until, limit_s=60)
    (vm_id,) = await _voicemails_of(client, call.uniqueid)
    assert vm_id == kept[0]  # the recording the caller was told was saved


async def _recorded_then_killed(h: Any, call: Any, extension: Any) -> dict[str, Any]:
    """The caller records; the call state says "recording" (returned); "message saved"
    plays and the daemon is killed -9."""
    await h.run_until_async(
        lambda: any(c.startswith("RECORD FILE") for c in h.agi_commands(call)), limit_s=120)
    await extension.recorder.flushed()
    recording: dict[str, Any] = (await as_deferred(extension.store.load()))[call.uniqueid]
    assert recording["ivr"]["phase"] == "record" and recording["recording"]
    await h.run_until_async(lambda: "message-saved" in h.prompts(call), limit_s=120)
    h.kill()
    return recording


async def _dead_daemon_settled(journal: Any) -> None:
    """An in-process kill stops the dead daemon's timers, not what it had already
    started: a journal entry's Redis writes in flight, a file operation in its
    thread. A real kill -9 stops those too; here they land, so wait (in real time,
    the test clock untouched) until they have, before the test edits Redis or the
    journal file behind them (in CI a voicemail intake in flight landed after the
    test had deleted it)."""
    for _ in range(3000):
        if not journal._in_flight and not journal._writing and not journal._file_ops:
            return
        await deferLater(reactor, 0.01, lambda: None)  # type: ignore[arg-type]
    raise AssertionError("the dead daemon's journal work never settled")


async def _recorded_once_and_kept_once(h: Any, client: Any, call: Any) -> None:
    """After the take-over: one recording, "message saved" heard again (not a second
    recording), and one voicemail kept, still one 30 s later."""
    await h.run_until_async(lambda: not h.alive(call), limit_s=120)
    assert sum(c.startswith("RECORD FILE") for c in h.agi_commands(call)) == 1
    assert h.prompts(call).count("message-saved") == 2
    state = {"kept": False}

    def kept() -> bool:
        d = ensureDeferred(_voicemails_of(client, call.uniqueid))
        d.addCallback(lambda v: state.__setitem__("kept", bool(v)))
        return state["kept"]

    await h.run_until_async(kept, limit_s=60)
    until = h.now + 30.0
    await h.run_until_async(lambda: h.now >= until, limit_s=60)
    assert len(await _voicemails_of(client, call.uniqueid)) == 1


@pytest_twisted.ensureDeferred
async def test_a_caller_whose_kept_voicemail_the_call_state_missed_is_not_recorded_again(
    redis_client: Redis, tmp_path: Path
) -> None:
    """The killed daemon had journalled the voicemail (before "message saved") but its
    last call-state write still said "recording" (Redis slow under load:
    ``benchmarks/chaos.py`` found 13 at 10 calls/s). The caller, still on the line,
    was resumed at the recording and left a second voicemail. Now the take-over
    asks the intake first: "message saved" again, the hang-up, one voicemail."""
    h = E2E.build(tmp_path, config=_durable(tmp_path), redis=redis_client, killable=True)
    call = h.call(CallerScript(number=NUMBER, language="fa", answers=("1", "4"), patience_s=900.0))
    extension = h.app.takeover
    assert isinstance(extension, CallStateExtension)
    client: Any = redis_client

    recording = await _recorded_then_killed(h, call, extension)
    # the write that said "done" never reached Redis
    await as_deferred(client.hset("shenava:{calls}:live", call.uniqueid, json.dumps(recording)))

    h.start_again(redis=redis_client)
    await _recorded_once_and_kept_once(h, client, call)
    assert await as_deferred(client.hgetall("shenava:{calls}:live")) == {}


async def _voicemail_reasons(client: Any, number: str) -> list[str]:
    flag_id = await as_deferred(client.hget("shenava:{callbacks}:open", number))
    if flag_id is None:
        return []
    flag_id = flag_id.decode() if isinstance(flag_id, bytes) else flag_id
    raw = await as_deferred(client.get(f"shenava:{{callbacks}}:flag:{flag_id}"))
    return [r["source"] for r in json.loads(raw)["reasons"] if r["kind"] == "voicemail"]


@pytest_twisted.ensureDeferred
async def test_a_voicemail_whose_flag_was_kept_but_not_its_intake_is_not_recorded_again(
    redis_client: Redis, tmp_path: Path
) -> None:
    """The flag reason of an IVR voicemail is kept and its intake is not, and the
    call state still says "recording": what a standby on another host finds when
    the flag reason reached Redis and the intake (applied after it) is still in
    the dead leader's journal. (On one host they are one journal batch now and a
    kill cannot part them: ``tests/test_journal_process.py``; before, they were
    two entries and a ``kill -9`` fell between them.) Resumed at the
    recording, the caller recorded again and their flag got a second voicemail
    reason (``benchmarks/chaos.py``: the one doubled flag at 10 calls/s). Now the
    take-over finds the flag reason, hands the first recording on again and says
    "message saved": one recording, one voicemail, one reason."""
    h = E2E.build(tmp_path, config=_durable(tmp_path), redis=redis_client, killable=True)
    call = h.call(CallerScript(number=NUMBER, language="fa", answers=("1", "4"), patience_s=900.0))
    extension = h.app.takeover
    assert isinstance(extension, CallStateExtension)
    client: Any = redis_client

    dead_journal = h.app.journal
    recording = await _recorded_then_killed(h, call, extension)
    await _dead_daemon_settled(dead_journal)
    # The kill came between the two entries: the intake's never reached the disk
    # (nor Redis); the flag reason's did. The call state still says "recording".
    journal = tmp_path / "state" / "journal.jsonl"
    if journal.exists():  # (applied by now and compacted away, or still there)
        kept = []
        for record in map(json.loads, journal.read_bytes().splitlines()):
            for entry in record["batch"] if "batch" in record else [record]:
                if entry["kind"] != "voicemail.intake":
                    kept.append(json.dumps(entry).encode() + b"\n")
        journal.write_bytes(b"".join(kept))
    for vm_id in await _voicemails_of(client, call.uniqueid):
        await as_deferred(client.zrem("shenava:{vm}:index", vm_id))
        await as_deferred(client.delete(f"shenava:{{vm}}:vm:{vm_id}"))
    await as_deferred(client.hset("shenava:{calls}:live", call.uniqueid, json.dumps(recording)))
    assert await _voicemails_of(client, call.uniqueid) == []
    assert await _voicemail_reasons(client, NUMBER) == [recording["recording"]]

    h.start_again(redis=redis_client)
    await _recorded_once_and_kept_once(h, client, call)
    assert await _voicemail_reasons(client, NUMBER) == [recording["recording"]]
    assert await as_deferred(client.hgetall("shenava:{calls}:live")) == {}

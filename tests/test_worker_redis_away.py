"""A transcription worker while Redis is killed -9 and restarted (benchmarks/chaos.py).

Before, every Redis restart killed the worker processes with a traceback
(``ConnectionError`` out of the loop): a file already decoded was thrown away,
its job waited ``claim_idle_s`` for another worker and its attempt was spent,
so a few restarts during one voicemail parked it ("gave up after 3 attempts: a
worker stopped while transcribing it", 2 of 613 voicemails at 10 calls/s).
Now the worker waits for Redis and carries on: one attempt, transcribed.

A real ``redis-server`` (AOF, ``appendfsync always``) killed with SIGKILL and
started again on its data; the decoder is faked (fast) and the worker's sleep
is the hook that restarts Redis, so every step happens in a fixed order.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from recordings.layout import GROUP, Keys
from recordings.queue import JobQueue
from recordings.store import RecordingFolder, VoicemailMeta, VoicemailStore
from recordings.transcript import Transcript
from recordings.worker import Worker, WorkerSettings
from shenava.redis_server import RedisServer, start_redis_server
from tests.paths import SAMPLE_RECORDING
from tests.test_recordings_queue import NOW, fake_transcribe, folder


class RestartableRedis:
    def __init__(self, data: Path) -> None:
        self.server: RedisServer = start_redis_server(data, extra_args=("--appendfsync", "always"))
        self.kills = 0
        self.restarts = 0

    def kill(self) -> None:
        self.server.process.kill()
        self.server.process.wait()
        self.kills += 1

    def restart(self) -> None:
        if self.server.process.poll() is not None:
            self.server = start_redis_server(self.server.data_dir, port=self.server.port,
                                             extra_args=("--appendfsync", "always"))
            self.restarts += 1

    def stop(self) -> None:
        if self.server.process.poll() is None:
            self.server.stop()


@pytest.fixture
def rr(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path / "redis")
    yield server
    server.stop()


def _registered(rr: RestartableRedis, rf: RecordingFolder) -> str:
    """A voicemail registered through the daemon's store (redis.asyncio), as the IVR does."""
    from benchmarks._takeover_rig import run_async

    async def go() -> str:
        from redis.asyncio import Redis

        client = Redis.from_url(rr.server.url, decode_responses=True)
        try:
            store = VoicemailStore(client, rf)
            alloc = store.allocate(NOW)
            shutil.copy(SAMPLE_RECORDING, alloc.path)
            meta = VoicemailMeta("09121234567", "ko", NOW, f"c{alloc.vm_id[-2:]}", "R-1", {"category": "billing"})
            assert await store.register(alloc.vm_id, meta)
            return alloc.vm_id
        finally:
            await client.aclose()

    return run_async(go)


def _worker(rr: RestartableRedis, rf: RecordingFolder, transcribe: Callable[..., Any],
            said: list[str]) -> tuple[Worker, redis.Redis]:
    client = redis.Redis.from_url(rr.server.url, decode_responses=True)
    settings = WorkerSettings(redis_url=rr.server.url, recordings_dir=str(rf.dir), models={"ko": "/m"},
                              block_s=0.05, claim_idle_s=5.0)
    queue = JobQueue(client, "w1", max_attempts=settings.max_attempts, claim_idle_s=settings.claim_idle_s)
    queue.ensure_group()
    worker = Worker(queue, rf, {"ko": "ko"}, transcribe, settings, now=lambda: NOW + 60,
                    sleep=lambda _s: rr.restart(), say=said.append)
    return worker, client


def test_a_file_decoded_while_redis_was_killed_is_stored_when_it_returns(
    rr: RestartableRedis, tmp_path: Path
) -> None:
    """Redis is killed while the worker decodes; storing the transcript waits for it
    (the worker's next wait starts it again): transcribed at the first attempt."""
    (tmp_path / "vm").mkdir()
    rf = folder(tmp_path / "vm")
    vm_id = _registered(rr, rf)

    def decode_while_redis_dies(loaded: Any, path: Path, *, on_progress: Any = None) -> Transcript:
        rr.kill()
        return fake_transcribe(loaded, path, on_progress=on_progress)

    said: list[str] = []
    worker, client = _worker(rr, rf, decode_while_redis_dies, said)
    try:
        assert worker.run_once() == "transcribed"
        vm = worker.queue.get(vm_id)
        assert vm is not None and vm.status == "transcribed" and vm.attempts == 1
        assert client.xpending(Keys().jobs, GROUP)["pending"] == 0
        assert (rr.kills, rr.restarts, worker.redis_waits) == (1, 1, 1)
        assert said[0].startswith("Redis away (ConnectionError") and said[-1] == "Redis is back"
    finally:
        client.close()


def test_the_worker_loop_outlives_a_redis_restart_and_takes_the_next_job(
    rr: RestartableRedis, tmp_path: Path
) -> None:
    """Redis is killed between two jobs: ``run`` waits for it instead of ending the
    process, then takes the next voicemail (queued before the kill, kept by the AOF)."""
    (tmp_path / "vm").mkdir()
    rf = folder(tmp_path / "vm")
    first, second = _registered(rr, rf), _registered(rr, rf)
    done: list[str] = []

    def decode_then_kill_after_first(loaded: Any, path: Path, *, on_progress: Any = None) -> Transcript:
        out = fake_transcribe(loaded, path, on_progress=on_progress)
        done.append(path.stem)
        return out

    said: list[str] = []
    worker, client = _worker(rr, rf, decode_then_kill_after_first, said)
    original_complete = worker.queue.complete

    def complete_then_kill(*args: Any) -> bool:
        stored = original_complete(*args)
        if len(done) == 1:
            rr.kill()  # the first job is stored; Redis dies before the worker asks for the next
        return stored

    worker.queue.complete = complete_then_kill  # type: ignore[method-assign,assignment]
    try:
        worker.run(lambda: len(done) >= 2 and worker.done >= 2)
        assert done == [first, second]
        for vm_id in (first, second):
            vm = worker.queue.get(vm_id)
            assert vm is not None and vm.status == "transcribed" and vm.attempts == 1
        assert (rr.kills, rr.restarts) == (1, 1) and worker.redis_waits >= 1
    finally:
        client.close()



@pytest.mark.slow
def test_a_worker_process_outlives_a_redis_kill_minus_9_mid_job(rr: RestartableRedis, tmp_path: Path) -> None:
    """The real thing: ``shenava worker``'s pool (one process, the Vosk model), stopped
    (SIGSTOP) once it has started a job, Redis killed -9, the worker let go, Redis
    started again on its AOF 8 s later. The same process stores the transcript: one
    attempt. Before, the process died on the lost connection (once redis-py's own
    few retries were spent) and the job waited for another worker."""
    import os
    import signal
    import time

    from recordings.worker import WorkerPool
    from tests.test_transcription_workers import LOAD_TIMEOUT_S, ko_model_path, stopped

    (tmp_path / "vm").mkdir()
    rf = folder(tmp_path / "vm")
    pool = WorkerPool(WorkerSettings(redis_url=rr.server.url, recordings_dir=str(rf.dir),
                                     models={"ko": ko_model_path()}, claim_idle_s=3.0), 1, name="t")
    client = redis.Redis.from_url(rr.server.url, decode_responses=True)
    pool.start()
    try:
        assert pool.wait_ready(LOAD_TIMEOUT_S)
        vm_id = _registered(rr, rf)
        pid = pool.processes[0].pid
        assert pid is not None
        deadline = time.monotonic() + 60
        while True:  # started: its attempt counted, not finished (a stopped worker cannot move)
            assert time.monotonic() < deadline, "the worker never started the job"
            os.kill(pid, signal.SIGSTOP)
            while not stopped(pid):
                time.sleep(0.001)
            if client.hget(Keys().record(vm_id), "attempts") == "1" and \
                    client.hget(Keys().record(vm_id), "status") == "pending":
                break
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.01)
        client.close()
        rr.kill()
        os.kill(pid, signal.SIGCONT)
        time.sleep(8.0)  # away longer than redis-py's own retries (3, backing off)
        assert pool.processes[0].is_alive(), "the worker process died with Redis"
        rr.restart()
        client = redis.Redis.from_url(rr.server.url, decode_responses=True)
        deadline = time.monotonic() + 180
        while client.hget(Keys().record(vm_id), "status") == "pending":
            assert pool.processes[0].is_alive(), "the worker process died with Redis"
            assert time.monotonic() < deadline, "not transcribed"
            time.sleep(0.2)
        assert client.hget(Keys().record(vm_id), "status") == "transcribed"
        assert client.hget(Keys().record(vm_id), "attempts") == "1"
        assert pool.processes[0].pid == pid and pool.processes[0].is_alive()
    finally:
        pool.stop()
        client.close()

"""A parked voicemail (its transcription given up after ``recordings.max_attempts``) is
not lost silently: the daemon counts it (``/api/health``, the wallboard's health
line, ``/metrics``), logs a warning when the count grows, and an operator lists
and queues it again with ``shenava voicemail parked|retry``. Its complaint and
callback flag were raised at intake and stay; only the transcript waits.

Real Redis; the worker's side is ``JobQueue`` (the scripts a worker runs), the
command a real ``shenava`` process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest_twisted
import redis
from redis.asyncio import Redis
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from benchmarks._daemon_rig import shenava_command
from recordings.follower import TranscriptFollower
from recordings.queue import JobQueue
from recordings.store import RecordingFolder, VoicemailMeta, VoicemailStore
from shenava.http.health import ParkedCollector, parked_voicemails
from shenava_base.aio import as_deferred
from tests.paths import SAMPLE_RECORDING

NOW = 1_767_260_000.0
ROOT = Path(__file__).resolve().parents[1]


def _command(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*shenava_command(), "voicemail", *args, "--redis-url", redis_url],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest_twisted.ensureDeferred
async def test_a_parked_voicemail_is_counted_shown_and_queued_again(
    redis_client: Redis, redis_url: str, tmp_path: Path
) -> None:
    store = VoicemailStore(redis_client, RecordingFolder(tmp_path))
    alloc = store.allocate(NOW)
    shutil.copy(SAMPLE_RECORDING, alloc.path)
    meta = VoicemailMeta("09121234567", "fa", NOW, "1767260000.7", "R-7", {"category": "billing"})
    assert await as_deferred(store.register(alloc.vm_id, meta))
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        queue = JobQueue(sync, "w1", max_attempts=1)
        queue.ensure_group()
        job = queue.next_job(0.01)
        assert job is not None and queue.start(job, NOW).action == "go"
        assert queue.fail(job, "RuntimeError: decoder died", permanent=False, now=NOW) == "parked"
    finally:
        sync.close()

    clock = Clock()
    clock.advance(NOW)

    async def nothing(_event: Any) -> None:
        return None

    follower = TranscriptFollower(store, nothing, clock)
    warnings: list[dict[str, Any]] = []

    def observer(event: dict[str, Any]) -> None:
        if "parked" in event and event.get("log_namespace") == "recordings.follower":
            warnings.append(event)

    globalLogPublisher.addObserver(observer)
    try:
        await as_deferred(follower.catch_up())
    finally:
        globalLogPublisher.removeObserver(observer)
    assert follower.parked == 1 and [w["parked"] for w in warnings] == [1]
    app = SimpleNamespace(recordings=SimpleNamespace(follower=follower))
    assert parked_voicemails(app) == 1  # /api/health and the wallboard's health line
    [gauge] = ParkedCollector(app).collect()
    assert gauge.name == "shenava_voicemails_parked" and gauge.samples[0].value == 1

    listed = _command(redis_url, "parked")
    assert listed.returncode == 0, listed.stderr
    [line] = [json.loads(x) for x in listed.stdout.splitlines()]
    assert line["vm"] == alloc.vm_id and line["complaint_ref"] == "R-7"
    assert line["error"].endswith("RuntimeError: decoder died") and "09121234567" not in listed.stdout

    retried = _command(redis_url, "retry", "--all")
    assert retried.returncode == 0, retried.stderr
    vm = await as_deferred(store.get(alloc.vm_id))
    assert vm is not None and vm.status == "pending" and vm.attempts == 0
    assert await as_deferred(store.queue_length()) == 1
    assert _command(redis_url, "retry", alloc.vm_id).returncode == 1  # no longer parked

    clock.advance(follower.parked_every_s)
    await as_deferred(follower.catch_up())
    assert follower.parked == 0 and parked_voicemails(app) == 0

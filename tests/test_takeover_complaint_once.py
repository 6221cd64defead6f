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

import json
from pathlib import Path
from typing import Any

import pytest_twisted
from redis.asyncio import Redis

from ami_bridge.testpbx.scripts import CallerScript
from routing.dispatch import CallQueued
from shenava.aio import as_deferred
from shenava.demo import luhn_complete
from shenava.takeover import CallStateExtension
from tests.e2e_harness import E2E

ACCOUNT = luhn_complete("123456789")
ANSWERS = {"choose-language": "1", "main-menu": "1", "category-menu": "3", "urgency-menu": "2",
           "care-menu": "3", "enter-account": ACCOUNT + "#", "confirm-number": "1"}


@pytest_twisted.ensureDeferred
async def test_a_caller_resumed_before_their_complaint_gets_the_same_complaint(
    redis_client: Redis, tmp_path: Path
) -> None:
    h = E2E.build(tmp_path, redis=redis_client, killable=True)
    call = h.call(CallerScript(number="0935333001", menu_answers=ANSWERS, patience_s=900.0))
    extension = h.app.extensions["takeover"]
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

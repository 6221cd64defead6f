"""A caller who hangs up between the channel list and the take-over is counted.

The take-over reads the call state from Redis after ``CoreShowChannels``
listed the channels; a caller who hangs up in between (a busy restart: the
Redis read waits behind a replaying journal) was adopted from the stale list
as still waiting, on a channel already gone: no abandon was ever counted and
no callback flag raised (``benchmarks/chaos.py`` found 53 at 5 calls/s).
In process, virtual time, real Redis (``tests.e2e_harness``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from redis.asyncio import Redis

from ami_bridge.testpbx.scripts import CallerScript
from routing.dispatch import CallAbandoned, CallQueued
from shenava.aio import as_deferred
from shenava.call_state import CallStateStore
from shenava.takeover import CallStateExtension
from tests.e2e_harness import E2E


@pytest_twisted.ensureDeferred
async def test_a_caller_gone_after_the_channel_list_is_counted_not_adopted(
    redis_client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = E2E.build(tmp_path, redis=redis_client, killable=True)
    late = h.call(CallerScript(number="0935222001", answers=("1", "3")))
    await h.run_until_async(lambda: h.events(CallQueued, late), limit_s=60)
    h.advance(10.0)  # past the short-abandon threshold
    extension = h.app.extensions["takeover"]
    assert isinstance(extension, CallStateExtension)
    await extension.recorder.flushed()
    h.kill()

    original = CallStateStore.load

    async def load_then_hang_up(self: CallStateStore) -> Any:
        records = await original(self)
        if late.caller_channel.findable:
            late.hang_up()  # after CoreShowChannels listed them, before the adoption
            for _ in range(200):  # until the new daemon's tracker has seen the hang-up
                h.pump()
                if h.app.tracker.channel(late.uniqueid) is None:
                    break
                await asyncio.sleep(0.01)
        return records

    monkeypatch.setattr(CallStateStore, "load", load_then_hang_up)
    app = h.start_again(redis=redis_client)
    extension = app.extensions["takeover"]
    assert isinstance(extension, CallStateExtension)
    await h.run_until_async(lambda: extension.takeover.rounds >= 1, limit_s=30)
    await h.run_until_async(lambda: h.events(CallAbandoned, late), limit_s=60)
    assert extension.takeover.adopted == {}
    assert extension.takeover.ended_away == [late.uniqueid]
    assert len(h.events(CallAbandoned, late)) == 1
    await extension.recorder.flushed()
    assert await as_deferred(extension.store.load()) == {}

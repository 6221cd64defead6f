"""benchmarks/_loop_counts.py counts the Redis sends the daemon's client really makes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest_twisted

from benchmarks._loop_counts import LoopCounts
from shenava.config import RedisConfig
from shenava.redis_client import QuickConnection, make_redis_client
from shenava_base.aio import as_deferred


async def _exercise(client: Any) -> None:
    await client.set("k", 1)  # alone in its turn: one send
    await client.incr("k")  # one more
    await asyncio.gather(*(client.incr("k") for _ in range(10)))  # one turn's batch: one send
    pipe = client.pipeline(transaction=False)
    for _ in range(5):
        pipe.incr("k")
    await pipe.execute()  # a pipeline: one send
    assert int(await client.get("k")) == 17  # and the read's own send


@pytest_twisted.ensureDeferred
async def test_redis_sends_counts_every_write_of_the_daemons_client(redis_url: str) -> None:
    """``loop_per_call.redis_sends`` read 0 in every benchmarks/system.py run: it hooked
    ``send_packed_command`` of redis-py's base class, which the client's fast path
    (``QuickConnection``) and its turn batches never call."""
    from twisted.internet import reactor

    client = make_redis_client(RedisConfig(url=redis_url))
    assert client.connection_pool.connection_class is QuickConnection
    try:
        await as_deferred(client.ping())  # connected, its HELLO/handshake sent, before counting
        counts = LoopCounts(reactor, None)
        try:
            mark = counts.mark()
            await as_deferred(_exercise(client))
            per = counts.per_call(mark, 1)
        finally:
            counts.close()
        assert per["redis_sends"] == 5, per
        # closed: nothing counts any more, and the transport class is as it was
        mark = counts.mark()
        await as_deferred(client.ping())
        assert counts.per_call(mark, 1)["redis_sends"] == 0
        from asyncio import selector_events

        transport: Any = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]  # private: no stub
        assert "counted" not in transport.write.__qualname__
    finally:
        await as_deferred(client.aclose())

"""The end-to-end harness holds its virtual clock while the app's Redis commands
are on the wire (``E2E.run_until_async``): a loaded machine must not let
virtual time run ahead of real Redis. This checks the "busy" look it relies on,
on one server and on the daemon's own cluster client (which has no single
connection pool; the look missed it, and a two-site test's last caller, held
up in the IVR by a slow Redis, was then answered instead of giving up)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from shenava_base.aio import as_deferred
from tests.e2e_harness import E2E


@pytest.fixture(params=["cluster", "one-redis"])
def any_redis(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("cluster_client" if request.param == "cluster" else "redis_client")


@pytest_twisted.ensureDeferred
async def test_a_command_in_flight_holds_the_virtual_clock(any_redis: Any, tmp_path: Path) -> None:
    h = E2E.build(tmp_path, redis=any_redis)
    try:
        await as_deferred(any_redis.ping())  # connections made
        for _ in range(5000):  # the app's own start-up commands end (no virtual time passes)
            if not h._redis_busy():
                break
            await as_deferred(_yield())
        assert not h._redis_busy()
        pending = as_deferred(any_redis.get("e2e-harness-busy"))
        seen_busy = h._redis_busy()
        while not pending.called:
            seen_busy = seen_busy or h._redis_busy()
            await as_deferred(_yield())
        await pending
        assert seen_busy, "a GET on the wire was not seen as busy"
        assert not h._redis_busy()
    finally:
        h.stop()


async def _yield() -> None:
    import asyncio

    await asyncio.sleep(0)

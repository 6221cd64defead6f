"""The leader lease against a real Redis: one leader, fencing values that rise, a
lapse seen without I/O, a clean release, and the in-process Redis gate."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.task import Clock

from shenava.leader import LEADER, STANDBY, LeaderLease, NotLeaderError, guard_redis
from shenava_base.aio import as_deferred


async def tick(lease: LeaderLease) -> None:
    """One turn of the lease's loop, waited for."""
    await lease._renew_or_acquire()


@pytest_twisted.ensureDeferred
async def test_one_leader_at_a_time_and_a_paused_one_knows_it_without_asking(
    redis_client: Redis,
) -> None:
    clock = Clock()
    roles: list[tuple[str, str]] = []
    a = LeaderLease(redis_client, "t", "a", clock, lease_s=3.0,
                    on_role=lambda r: roles.append(("a", r)))
    b = LeaderLease(redis_client, "t", "b", clock, lease_s=3.0,
                    on_role=lambda r: roles.append(("b", r)))
    await tick(a)
    await tick(b)
    assert (a.role, b.role) == (LEADER, STANDBY)
    assert a.fence == "1|a" and a.holds() and not b.holds()
    assert roles == [("a", LEADER)]
    # Paused past the lease (the clock jumps): no longer the leader, before any I/O.
    clock.advance(3.5)
    assert not a.holds() and a.fence_value() is None
    a._tick()  # the loop's next turn sees the lapse first
    assert a.role == STANDBY and roles[-1] == ("a", STANDBY)
    # The key is still in Redis (real time), so b waits; once it is gone b leads, epoch 2.
    await as_deferred(redis_client.delete(a.key))
    await tick(b)
    assert b.role == LEADER and b.fence == "2|b"


@pytest_twisted.ensureDeferred
async def test_a_clean_release_lets_the_standby_in_at_once(redis_client: Redis) -> None:
    clock = Clock()
    a = LeaderLease(redis_client, "t", "a", clock, lease_s=30.0)
    b = LeaderLease(redis_client, "t", "b", clock, lease_s=30.0)
    await tick(a)
    await a.release()
    await tick(b)
    assert b.role == LEADER and not a.holds()


@pytest_twisted.ensureDeferred
async def test_the_redis_gate_refuses_every_command_while_not_allowed(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    allowed = [True]
    guard_redis(client, lambda: allowed[0])
    try:
        await as_deferred(client.set("k", "1"))
        allowed[0] = False
        with pytest.raises(NotLeaderError):
            await as_deferred(client.set("k", "2"))
        with pytest.raises(NotLeaderError):
            await as_deferred(client.pipeline(transaction=True).set("k", "3").execute())
        allowed[0] = True
        assert await as_deferred(client.get("k")) == b"1"
    finally:
        await as_deferred(client.aclose())


def test_the_ami_gate_sends_nothing_and_hears_nothing_while_not_allowed(tmp_path: Path) -> None:
    from ami_bridge.errors import ConnectionLostError
    from testpbx.scripts import CallerScript
    from tests.e2e_harness import E2E

    h = E2E.build(tmp_path)
    try:
        allowed = [False]
        h.app.connection.may_act = lambda: allowed[0]
        before = len(h.endpoint.actions)
        failures: list[object] = []
        h.app.connection.send_action("Ping").addErrback(failures.append)
        h.app.connection.agi("Local/x;1", "ANSWER").addErrback(failures.append)
        assert len(failures) == 2 and all(f.check(ConnectionLostError) for f in failures)  # type: ignore[attr-defined]
        call = h.call(CallerScript(answers=("1", "3")))
        h.advance(3.0)
        assert h.app.callflow.in_ivr == 0 and len(h.endpoint.actions) == before
        # Allowed again (a new leader on a warm link): a resync finds the caller.
        allowed[0] = True
        seen: list[int] = []
        h.app.connection.add_resync_observer(lambda items: seen.append(len(items)))
        h.app.connection.resync_now()
        h.pump()
        assert seen and seen[0] >= 1 and h.app.tracker.channel(call.uniqueid) is not None
    finally:
        h.stop()

"""The leader lease: which of two daemons serves the calls, and a fence for the other.

Two ``shenava run`` share one Asterisk and one Redis. The one holding the
lease (a Redis key with a time to live, ``<prefix>:{calls}:leader``) is the
leader: it runs the IVRs, routes, dials callbacks and writes statistics. The
other, the standby, keeps its AMI link warm and tries to take the lease every
quarter second; when the leader dies the key expires and the standby takes
over (:mod:`shenava.takeover`) at most ``lease_s`` (+ a tick) later.

The value of the key is ``<epoch>|<owner>``: the epoch is a counter raised on
every acquisition, so the value is a fencing token. Every call-state write
checks it in Redis (:class:`shenava.call_state.CallStateStore`), so an old
leader that was paused past its lease (SIGSTOP, a long GC, a frozen VM) and
wakes up cannot write over the new leader's state.

It also must not act. :meth:`LeaderLease.holds` answers without any I/O: the
lease is held until ``renewed_at + lease_s``, where ``renewed_at`` is when the
last successful renewal was *sent* (Redis counts the time to live from when it
received it, which is later). A paused process wakes up with its clock past
that point and so, before its first timer or socket read runs, every gate
(AMI actions, Redis commands) already says no; the next tick sees the lapse,
and the daemon exits so that its supervisor restarts it as a standby.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from shenava_base.aio import as_deferred
from shenava_base.clock import Clock

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = Logger()

LEADER = "leader"
STANDBY = "standby"
RENEWS_PER_LEASE = 3
TICK_S = 0.25
"""The loop's period at most: the standby sees a lapsed lease this soon (one
``EXISTS``-and-``SET`` script a tick), the leader renews this often."""

_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local epoch = redis.call('INCR', KEYS[2])
local value = epoch .. '|' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class NotLeaderError(Exception):
    """This daemon does not hold the leader lease: it may not act on calls nor write state."""

    code = "leader.not_leader"



class LeaderLease:
    """Acquire, renew and release the lease; ``on_role(role)`` when it changes."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        owner: str,
        clock: Clock,
        *,
        lease_s: float = 3.0,
        on_role: Callable[[str], object] | None = None,
        on_refused: Callable[[], object] | None = None,
        site: str = "",
    ) -> None:
        from shenava_base.sites import site_tag

        self._redis = redis
        tag = site_tag("calls", site)  # the same slot as the call state it fences
        self.key = f"{prefix}:{tag}:leader"
        self.epoch_key = f"{prefix}:{tag}:epoch"
        self.owner = owner
        self._clock = clock
        self.lease_s = lease_s
        self._on_role = on_role
        self.role = STANDBY
        self.fence: str | None = None
        self._valid_until = 0.0
        self._loop: LoopingCall | None = None
        self._busy = False
        self._scripts: dict[str, Any] = {}
        self.acquired_at: float | None = None
        # Another daemon held the lease when this one asked: it stands by, and
        # that daemon (perhaps a deposed one on this host) may still hold ports.
        self.waited = False
        self._on_refused = on_refused

    # -- what the gates ask -------------------------------------------------------

    def holds(self) -> bool:
        """True while the lease is surely ours (no I/O: see the module's doc)."""
        return self.role == LEADER and self._clock.seconds() < self._valid_until

    def fence_value(self) -> str | None:
        return self.fence if self.holds() else None

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        loop = LoopingCall(self._tick)
        loop.clock = self._clock  # type: ignore[assignment]
        self._loop = loop
        loop.start(min(self.lease_s / RENEWS_PER_LEASE, TICK_S), now=True).addErrback(
            lambda f: log.failure("leader lease loop failed", f)
        )

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()

    def release(self) -> Deferred[Any]:
        """Give the lease up at once (a clean stop): the standby need not wait it out."""
        self.stop()
        fence, self.fence = self.fence, None
        was_leader = self.role == LEADER
        self.role = STANDBY
        self._valid_until = 0.0
        if fence is None or not was_leader:
            return Deferred.fromCoroutine(_nothing())
        return as_deferred(self._run("release", _RELEASE, [self.key], [fence]))

    # -- the loop ---------------------------------------------------------------------

    def _tick(self) -> None:
        if self.role == LEADER and not self.holds():
            self._lost("the lease ran out before it could be renewed (paused?)")
            return
        if self._busy:
            return
        self._busy = True
        d = Deferred.fromCoroutine(self._renew_or_acquire())
        d.addErrback(self._failed)
        d.addBoth(self._idle)

    def _idle(self, _: object) -> None:
        self._busy = False

    def _failed(self, failure: Any) -> None:
        log.warn("leader lease: Redis said no ({error})", error=failure.getErrorMessage())
        if self.role == LEADER and not self.holds():
            self._lost("the lease could not be renewed in time")

    async def _renew_or_acquire(self) -> None:
        sent_at = self._clock.seconds()
        ttl_ms = str(int(self.lease_s * 1000))
        if self.role == LEADER:
            assert self.fence is not None
            renewed = await as_deferred(self._run("renew", _RENEW, [self.key], [self.fence, ttl_ms]))
            if self.role != LEADER:
                return
            if int(renewed or 0) == 1:
                self._valid_until = sent_at + self.lease_s
            else:
                self._lost("another daemon holds the lease")
            return
        value = await as_deferred(
            self._run("acquire", _ACQUIRE, [self.key, self.epoch_key], [self.owner, ttl_ms])
        )
        if not value:
            self.waited = True
            if self._on_refused is not None:
                self._on_refused()
            return
        self.fence = value.decode() if isinstance(value, bytes) else str(value)
        self._valid_until = sent_at + self.lease_s
        self.role = LEADER
        self.acquired_at = self._clock.seconds()
        log.info("this daemon is now the leader (lease {fence})", fence=self.fence)
        if self._on_role is not None:
            self._on_role(LEADER)

    def _lost(self, why: str) -> None:
        self.role = STANDBY
        self.fence = None
        self._valid_until = 0.0
        log.warn("this daemon lost the leader lease: {why}", why=why)
        if self._on_role is not None:
            self._on_role(STANDBY)

    async def _run(self, name: str, source: str, keys: list[str], args: list[str]) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self._redis.register_script(source)
        return await script(keys=keys, args=args)


async def _nothing() -> None:
    return None


def guard_redis(client: Any, allowed: Callable[[], bool]) -> None:
    """Refuse every command of ``client`` while ``allowed()`` is false (a fence in
    the process itself: a deposed leader cannot even start a write). Gates the
    client's connection pool, which every command and pipeline goes through."""
    if getattr(client, "connection_pool", None) is None:  # a Redis Cluster client: no one pool
        from shenava.cluster_guard import guard_cluster

        guard_cluster(client, allowed, lambda: NotLeaderError("not the leader: this daemon may not write to Redis"))
        return
    pool = client.connection_pool
    get_connection = pool.get_connection

    async def gated(*args: Any, **kwargs: Any) -> Any:
        if not allowed():
            raise NotLeaderError("not the leader: this daemon may not write to Redis")
        return await get_connection(*args, **kwargs)

    pool.get_connection = gated


__all__ = ["LEADER", "STANDBY", "LeaderLease", "NotLeaderError", "guard_redis"]

"""The register's periodic jobs on the injected clock: the stale-complaint sweep and the retention purge.

Both are idempotent, so two daemons running them on one Redis do no harm: a
complaint's callback reason merges into the customer's open flag as one
reason, and a purge skips what was purged already.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from complaints.service import ComplaintRegister
from routing.callback_store import CallbackStore
from routing.callbacks import CallbackError, unresolved_complaint_reason
from shenava_base.aio import as_deferred
from shenava_base.clock import Clock

log = Logger()

SWEEP_EVERY_S = 3600.0
PURGE_EVERY_S = 6 * 3600.0
FIRST_RUN_AFTER_S = 60.0
"""Let the daemon settle (AMI login, resync) before the first run."""


class RegisterJobs:
    def __init__(
        self,
        register: ComplaintRegister,
        callbacks: CallbackStore,
        clock: Clock,
        *,
        callback_retention_s: float,
        sweep_every_s: float = SWEEP_EVERY_S,
        purge_every_s: float = PURGE_EVERY_S,
        on_flag_raised: Callable[[], object] | None = None,
    ) -> None:
        self._register = register
        self._callbacks = callbacks
        self._clock = clock
        self._callback_retention_s = callback_retention_s
        self._sweep_every_s = sweep_every_s
        self._purge_every_s = purge_every_s
        self._on_flag_raised = on_flag_raised
        self._timers: dict[str, Any] = {}
        self._running: dict[str, Deferred[Any]] = {}

    def start(self, first_after_s: float = FIRST_RUN_AFTER_S) -> None:
        self._schedule("sweep", first_after_s, self.sweep, self._sweep_every_s)
        self._schedule("purge", first_after_s, self.purge, self._purge_every_s)

    def stop(self) -> None:
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()

    def _schedule(
        self, name: str, delay: float, job: Callable[[], Deferred[Any]], every_s: float
    ) -> None:
        def run() -> None:
            job()
            self._schedule(name, every_s, job, every_s)

        self._timers[name] = self._clock.callLater(delay, run)

    def sweep(self) -> Deferred[list[str]]:
        """Raise a callback flag for every complaint unresolved too long; returns their references."""
        return self._once("sweep", self._sweep)

    def purge(self) -> Deferred[dict[str, list[str]]]:
        """Purge recordings and transcripts past retention (complaints and callback flags)."""
        return self._once("purge", self._purge)

    def _once(self, name: str, job: Callable[[], Awaitable[Any]]) -> Deferred[Any]:
        running = self._running.get(name)
        if running is not None:
            # the previous run is still going: this one waits for it rather than overlap
            follower: Deferred[Any] = Deferred()

            def follow(result: object) -> object:
                follower.callback(result)
                return result

            running.addBoth(follow)
            return follower
        d = as_deferred(job())

        def done(result: object) -> object:
            self._running.pop(name, None)
            return result

        d.addBoth(done)
        self._running[name] = d
        d.addErrback(lambda f: log.failure("complaints job {job} failed", f, job=name))
        return d

    async def _sweep(self) -> list[str]:
        now = self._clock.seconds()
        raised = []
        for c in await self._register.stale_for_callback(now):
            if c.number is None:
                continue
            reason = unresolved_complaint_reason(c.reference, now, now - c.opened_at)
            try:
                await self._callbacks.raise_reason(c.number, reason, now)
            except CallbackError as exc:
                log.warn("no callback for complaint {ref}: {error}", ref=c.reference, error=str(exc))
            await self._register.mark_callback_raised(c.reference, now)
            raised.append(c.reference)
        if raised:
            log.info("{n} unresolved complaints flagged for a callback", n=len(raised))
            if self._on_flag_raised is not None:
                self._on_flag_raised()
        return raised

    async def _purge(self) -> dict[str, list[str]]:
        now = self._clock.seconds()
        complaints = await self._register.purge_expired(now)
        flags = await self._callbacks.purge_closed(now, self._callback_retention_s)
        if flags:
            log.info("{n} closed callback flags' transcripts purged after retention", n=len(flags))
        return {"complaints": complaints, "callback_flags": flags}

"""Following the ``transcribed`` stream on the reactor, from a stored position.

A ``LoopingCall`` on the injected clock reads, every ``poll_s``, the entries
after the position stored in Redis (``VoicemailStore.followed(name)``), with a
non-blocking ``XREAD`` through redis.asyncio, hands each to ``handle`` in order
and stores the position after each one. The position is read from Redis once
(at the start, and again after a failed pass) and kept in memory after each
store: an idle poll is one ``XREAD``, not a ``GET`` too. So:

- the reactor never blocks and no connection is held in a blocking read;
- a restart resumes after the last entry handled: nothing is missed, and at
  most the one entry in hand when the daemon died is handled again (attaching
  a transcript twice sets the same text);
- a Redis error stops the pass where it was; the next tick retries from there.

It also reads, every ``parked_every_s``, how many voicemails are parked (their
transcription given up after ``recordings.max_attempts``): ``parked`` is shown
in ``/api/health``, on the wallboard's health line and in ``/metrics``, and a
warning is logged when it grows. A parked voicemail keeps its recording, its
complaint and its callback flag; only the transcript is missing until an
operator queues it again (``shenava voicemail retry``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from recordings.store import TranscribedEvent, VoicemailStore
from shenava_base.aio import as_deferred

__all__ = ["TranscriptFollower"]

POLL_S = 1.0
PARKED_EVERY_S = 15.0
BATCH = 100
FOLLOWER = "daemon"

log = Logger()


class TranscriptFollower:
    def __init__(
        self,
        store: VoicemailStore,
        handle: Callable[[TranscribedEvent], Awaitable[None]],
        clock: Any,
        *,
        name: str = FOLLOWER,
        poll_s: float = POLL_S,
        parked_every_s: float = PARKED_EVERY_S,
    ) -> None:
        self.store = store
        self._handle = handle
        self._clock = clock
        self.name = name
        self.poll_s = poll_s
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock
        self._busy: Deferred[int] | None = None
        self.handled = 0
        self.errors = 0
        self._position: str | None = None
        """The position as last stored by this follower (None: read it from Redis)."""
        self.parked_every_s = parked_every_s
        self.parked: int | None = None
        """Voicemails parked at the last count (None: not read yet)."""
        self._parked_read_at: float | None = None

    def start(self) -> None:
        self._position = None
        if not self._loop.running:
            self._loop.start(self.poll_s, now=True)

    def stop(self) -> Deferred[None] | None:
        """Stop polling; a pass in progress is cancelled (its position is already stored)."""
        if self._loop.running:
            self._loop.stop()
        busy, self._busy = self._busy, None
        if busy is not None and not busy.called:
            busy.cancel()
        return None

    def _tick(self) -> None:
        if self._busy is not None:
            return  # the previous pass is still going
        d = as_deferred(self.catch_up())
        self._busy = d

        def done(result: object) -> None:
            if self._busy is d:
                self._busy = None

        d.addErrback(self._failed)
        d.addBoth(done)

    def _failed(self, failure: Any) -> None:
        from twisted.internet.defer import CancelledError

        self._position = None
        if failure.check(CancelledError):
            return
        self.errors += 1
        log.error("following transcripts: {error} (retrying from the stored position)",
                  error=failure.getErrorMessage())

    async def catch_up(self) -> int:
        """Handle every entry after the stored position; how many were handled."""
        position = self._position
        if position is None:
            position = await self.store.followed(self.name)
            self._position = position
        await self._count_parked()
        count = 0
        while True:
            events = await self.store.transcribed_after(position, count=BATCH)
            for event in events:
                try:
                    await self._handle(event)
                except RedisError:
                    raise  # retried from this entry at the next tick
                except Exception:
                    # A bug, not an outage: log it and go on, or one entry would stall them all.
                    log.failure("transcript of voicemail {vm} could not be handled", vm=event.vm_id)
                position = event.entry_id
                self._position = None  # unknown until the store answers
                await self.store.set_followed(self.name, position)
                self._position = position
                count += 1
                self.handled += 1
            if len(events) < BATCH:
                return count

    async def _count_parked(self) -> None:
        now = self._clock.seconds()
        if self._parked_read_at is not None and now - self._parked_read_at < self.parked_every_s:
            return
        self._parked_read_at = now
        parked = await self.store.parked_count()
        if parked > (self.parked or 0):
            log.warn(
                "{parked} voicemail(s) parked: their transcription was given up after "
                "recordings.max_attempts; each keeps its recording, complaint and callback flag. "
                "'shenava voicemail parked' lists them, 'shenava voicemail retry --all' queues them again",
                parked=parked)
        self.parked = parked

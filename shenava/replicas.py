"""``redis.wait_replicas``: does a record the master took reach its replicas too?

The journal (:mod:`shenava.journal`) lets an entry go once Redis stored it and,
with ``redis.wait_replicas = N``, once ``WAIT N`` says N replicas have it, so a
failover cannot drop a record the old master took but never passed on. Two
cases look alike to ``WAIT`` and need opposite answers:

* **replicas attached but behind** (a burst, a slow link): the entry stays in
  the journal and is confirmed again shortly; they catch up;
* **fewer replicas attached than ``wait_replicas``** (the replica is down, or
  was never set up): waiting would keep every record in the journal for as
  long as the replica is missing, the journal would grow until
  ``state.journal_max_bytes`` and then refuse new records, and records past the
  first few in flight would never reach Redis at all. Instead the record counts
  as stored (it *is* on the master, with its AOF): it leaves the journal,
  counted in ``unreplicated`` (``shenava_journal_unreplicated`` in /metrics),
  with one error in the log when replicas go missing (the records at risk if
  the master is lost before a replica attaches) and one line when they are
  back (how long, how many records went unreplicated). While they are missing,
  ``WAIT`` (which would cost its timeout per record) is skipped and ``INFO replication``
  is asked again every ``recheck_s``.

``shenava check-config --redis`` says so before the daemon starts.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.logger import Logger

__all__ = ["ReplicaConfirm", "attached_replicas"]

log = Logger()

WAIT_TIMEOUT_MS = 1000
RECHECK_S = 5.0
"""While replicas are missing: how often ``INFO replication`` is asked whether they are back."""


class _Clock(Protocol):
    def seconds(self) -> float: ...


def attached_replicas(info: Any) -> int:
    """Replicas attached to a master (syncing ones too), from its ``INFO replication``
    (0 for a replica or anything else)."""
    if not isinstance(info, dict) or info.get("role") != "master":
        return 0
    try:
        return int(info.get("connected_slaves", 0))
    except (TypeError, ValueError):
        return 0


class ReplicaConfirm:
    """The journal's ``confirm``: True once the replicas have every write made so far, or
    when fewer than ``replicas`` are attached at all (counted as ``unreplicated``)."""

    def __init__(
        self, client: Any, key: str, replicas: int, clock: _Clock,
        *, timeout_ms: int = WAIT_TIMEOUT_MS, recheck_s: float = RECHECK_S,
    ) -> None:
        self._client = client
        self._key = key
        self.replicas = replicas
        self._clock = clock
        self._timeout_ms = timeout_ms
        self._recheck_s = recheck_s
        self._recheck_at = 0.0
        self.unreplicated = 0
        """Records let go while fewer than ``replicas`` replicas were attached (since the start)."""
        self.missing_since: float | None = None
        self.attached: int | None = None
        """Replicas attached when last asked (None: not asked yet)."""
        self._unreplicated_at_missing = 0

    async def __call__(self) -> bool:
        now = self._clock.seconds()
        if self.missing_since is not None and now < self._recheck_at:
            self.unreplicated += 1
            return True
        if self.missing_since is not None:
            # are they back? INFO is one quick reply; WAIT would cost its timeout
            self.attached = attached_replicas(await self._client.info("replication"))
            if self.attached < self.replicas:
                self._recheck_at = now + self._recheck_s
                self.unreplicated += 1
                return True
            self._back(now)  # attached again: WAIT says whether they have caught up
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.incr(self._key)
            pipe.execute_command("WAIT", self.replicas, self._timeout_ms)
            _, acked = await pipe.execute()
        if int(acked) >= self.replicas:
            self._back(self._clock.seconds())
            return True
        self.attached = attached_replicas(await self._client.info("replication"))
        if self.attached >= self.replicas:
            return False  # attached but behind: the journal keeps the entry and asks again
        self._missing(self._clock.seconds())
        self.unreplicated += 1
        return True

    def _missing(self, now: float) -> None:
        self._recheck_at = now + self._recheck_s
        if self.missing_since is not None:
            return
        self.missing_since = now
        self._unreplicated_at_missing = self.unreplicated
        log.error(
            "journal: redis.wait_replicas is {wanted} but the master has {attached} replica(s) "
            "attached; records are stored on the master only (not kept back in the journal, which "
            "would fill) and counted in shenava_journal_unreplicated; if the master is lost before "
            "a replica attaches, they are lost with it",
            wanted=self.replicas, attached=self.attached,
        )

    def _back(self, now: float) -> None:
        since, self.missing_since = self.missing_since, None
        if since is None:
            return
        log.info(
            "journal: {wanted} replica(s) attached again after {away:.1f} s; {count} records were "
            "stored on the master only meanwhile",
            wanted=self.replicas, away=now - since,
            count=self.unreplicated - self._unreplicated_at_missing,
        )

    def health(self) -> dict[str, Any]:
        return {
            "wait_replicas": self.replicas,
            "replicas_attached": self.attached,
            "replicas_missing_since": self.missing_since,
            "unreplicated": self.unreplicated,
        }

"""One ``MULTI``/``EXEC`` per Cluster slot, for a batch whose keys span several slots.

On a Redis Cluster a transaction may touch one slot only. A statistics batch
touches the site's keys (``{stats:SITE}``: SL counters, heartbeat, breaks) and
each agent's own (``{stats:SITE:AGENT}``: ledger, intervals), so on a cluster
the batch becomes one transaction per slot, sent together. Each agent's
transition stays atomic (its ledger and its intervals share a slot), and so
does each outcome (its buckets, seen set and agent-day share the site's slot).
A failed batch is retried whole; what a slot had already applied is then
applied again, which the store tolerates (outcomes are counted once by id,
overlapping intervals are cut when a ledger is read: ``store.chain``).

On one Redis server the store keeps a single transaction: no wrapper.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.crc import key_slot

__all__ = ["CONCURRENCY", "SlotPipes", "is_cluster"]

CONCURRENCY = 8
"""Slot transactions of one batch in flight at once."""


def is_cluster(client: Any) -> bool:
    from redis.asyncio.cluster import RedisCluster

    return isinstance(client, RedisCluster)


class SlotPipes:
    """Looks like a transactional pipeline; queues each command on its key's slot's pipeline.

    Every command's first key decides (``EVAL``'s first key, after the script
    and the key count); the store never puts keys of two slots in one command.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._pipes: dict[int, Any] = {}

    def _pipe(self, key: str | bytes) -> Any:
        slot = key_slot(key.encode() if isinstance(key, str) else key)
        pipe = self._pipes.get(slot)
        if pipe is None:
            pipe = self._pipes[slot] = self._client.pipeline(transaction=True)
        return pipe

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> None:
        self._pipe(keys_and_args[0]).eval(script, numkeys, *keys_and_args)

    def __getattr__(self, name: str) -> Any:
        def queue(key: Any, *args: Any, **kwargs: Any) -> None:
            getattr(self._pipe(key), name)(key, *args, **kwargs)

        return queue

    def __len__(self) -> int:
        return sum(len(p) for p in self._pipes.values())

    @property
    def slots(self) -> int:
        return len(self._pipes)

    async def execute(self) -> list[Any]:
        """Every slot's transaction, ``CONCURRENCY`` at a time; raises the first error after all settle.

        Bounded: each transaction holds a connection of its node, and a batch
        touching hundreds of agents would otherwise open as many (past
        ``redis.max_connections`` a command fails, and the batch is retried).
        """
        gate = asyncio.Semaphore(CONCURRENCY)

        async def run(pipe: Any) -> Any:
            async with gate:
                return await pipe.execute()

        results = await asyncio.gather(*(run(p) for p in self._pipes.values()), return_exceptions=True)
        replies: list[Any] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            replies.extend(result)
        return replies

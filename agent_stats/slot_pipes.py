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

On one Redis server (``split=False``) the batch is one group, one
transaction. Either way a group of a single command goes without
``MULTI``/``EXEC`` (a ledger-only batch is one script: ``store.LEDGER``).

Scripts go as ``EVALSHA`` (their SHA1 computed here once), not their whole text
every batch. A server that does not have the script (``NOSCRIPT``: restarted,
failed over to a replica, ``SCRIPT FLUSH``, a cluster node that never ran it)
ran nothing of that command: it is sent again as ``EVAL``, which loads it
there. In a transaction the group's other commands did run (an error inside
``EXEC`` stops nothing else), so only the missing scripts are sent again, in
one transaction with the group's ``EXPIRE`` commands that came after them (an
``EXPIRE`` of a key a script makes was a no-op before it): each command of the
batch still lands once, the scripts a moment after the rest, once per server
and script cache.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from redis.crc import key_slot
from redis.exceptions import NoScriptError

__all__ = ["CONCURRENCY", "SlotPipes", "is_cluster", "key_slot", "script_sha"]

_SHAS: dict[str, str] = {}

CONCURRENCY = 8
"""Slot transactions of one batch in flight at once."""


def script_sha(script: str) -> str:
    """The SHA1 ``EVALSHA`` names ``script`` by (computed once per script text)."""
    sha = _SHAS.get(script)
    if sha is None:
        sha = _SHAS[script] = hashlib.sha1(script.encode()).hexdigest()
    return sha


def is_cluster(client: Any) -> bool:
    from redis.asyncio.cluster import RedisCluster

    return isinstance(client, RedisCluster)


class SlotPipes:
    """Looks like a transactional pipeline; queues each command on its key's slot.

    Every command's first key decides (``EVAL``'s first key, after the script
    and the key count); the store never puts keys of two slots in one command.
    With ``split=False`` (one Redis server) every command is in one group.
    A group of one command (a script, a lone ``HSET``) is sent as it is: one
    command is atomic without ``MULTI``/``EXEC`` around it.
    """

    def __init__(self, client: Any, *, split: bool = True) -> None:
        self._client = client
        self._split = split
        self._groups: dict[int, list[tuple[str, tuple[Any, ...], dict[str, Any]]]] = {}
        self._sources: dict[str, str] = {}  # SHA1 -> script, for a server without it
        self._replies: dict[int, list[Any]] = {}  # by id() of the group, after execute

    def _group(self, key: str | bytes) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
        slot = key_slot(key.encode() if isinstance(key, str) else key) if self._split else 0
        group = self._groups.get(slot)
        if group is None:
            group = self._groups[slot] = []
        return group

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> tuple[int, int]:
        """Queue ``script`` as ``EVALSHA`` (``EVAL`` where the server has not got it).

        Returns where its reply will be: ``reply(place)`` after ``execute``."""
        sha = script_sha(script)
        self._sources[sha] = script
        group = self._group(keys_and_args[0])
        group.append(("evalsha", (sha, numkeys, *keys_and_args), {}))
        return id(group), len(group) - 1

    def reply(self, place: tuple[int, int]) -> Any:
        """The reply of the command ``eval`` queued at ``place`` (after ``execute``)."""
        return self._replies[place[0]][place[1]]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def queue(key: Any, *args: Any, **kwargs: Any) -> None:
            self._group(key).append((name, (key, *args), kwargs))

        return queue

    def __len__(self) -> int:
        return sum(len(g) for g in self._groups.values())

    @property
    def slots(self) -> int:
        return len(self._groups)

    @property
    def transactions(self) -> int:
        """Groups sent as ``MULTI``/``EXEC`` (more than one command)."""
        return sum(1 for g in self._groups.values() if len(g) > 1)

    async def execute(self) -> list[Any]:
        """Every slot's commands, ``CONCURRENCY`` groups at a time; raises the first error after all settle.

        Bounded: each transaction holds a connection of its node, and a batch
        touching hundreds of agents would otherwise open as many (past
        ``redis.max_connections`` a command fails, and the batch is retried).
        """
        gate = asyncio.Semaphore(CONCURRENCY)

        async def run(group: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
            async with gate:
                if len(group) == 1:
                    name, args, kwargs = group[0]
                    try:
                        return [await getattr(self._client, name)(*args, **kwargs)]
                    except NoScriptError:
                        if name != "evalsha":
                            raise
                        return [await self._client.eval(self._sources[args[0]], *args[1:])]
                pipe = self._client.pipeline(transaction=True)
                for name, args, kwargs in group:
                    getattr(pipe, name)(*args, **kwargs)
                replies = list(await pipe.execute(raise_on_error=False))
                if any(isinstance(r, NoScriptError) for r in replies):
                    await self._load_missing(group, replies)
                for reply in replies:
                    if isinstance(reply, Exception):
                        raise reply
                return replies

        groups = list(self._groups.values())
        results = await asyncio.gather(*(run(g) for g in groups), return_exceptions=True)
        replies: list[Any] = []
        for group, result in zip(groups, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            self._replies[id(group)] = result
            replies.extend(result)
        return replies

    async def _load_missing(
        self, group: list[tuple[str, tuple[Any, ...], dict[str, Any]]], replies: list[Any]
    ) -> None:
        """The group's scripts the server had not got, as ``EVAL``, with the ``EXPIRE`` commands
        after them (module doc); their replies replace the errors in ``replies``."""
        again = self._client.pipeline(transaction=True)
        places: list[int] = []
        missing = False
        for n, ((name, args, kwargs), reply) in enumerate(zip(group, replies, strict=True)):
            if name == "evalsha" and isinstance(reply, NoScriptError):
                again.eval(self._sources[args[0]], *args[1:])
                missing = True
            elif missing and name == "expire":
                again.expire(*args, **kwargs)
            else:
                continue
            places.append(n)
        for n, reply in zip(places, await again.execute(), strict=True):
            replies[n] = reply

"""Complaint references without Redis at hand: counter blocks reserved ahead, kept on disk.

A daemon must give the caller a reference even while Redis is away, and two
daemons must never give the same one. So the counter behind
:class:`complaints.reference.KeyedReferences` is reserved in blocks
(``INCRBY <prefix>:{complaints}:refctr <block>``) while Redis answers, and the
blocks are kept in ``references.json`` in ``state.folder``; references are
then made locally, with no round trip. Two blocks are kept in hand, and a new
one is reserved in the background whenever one is used up.

After a crash nobody knows how far the block in use had got, so on start the
first block on file (the one that was in use) is dropped, never reused. The
file is written (and fsynced) only when a block is reserved or one is used up:
once per ``state.reference_block`` references, so that rare write is done in
place rather than in a thread.

The site's key and base are shared through Redis (``refkey``, made once;
``refkeyid``, a fingerprint of the key in use, so daemons configured with
different ``state.reference_secret`` values refuse to start; ``refbase``, the
legacy serial counter when the switch happened) and cached in the same file,
so a restart with Redis away still knows them.

Keys: ``<prefix>:{complaints}:refkey``, ``refkeyid``, ``refbase``, ``refctr``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from twisted.logger import Logger

from complaints.errors import ComplaintsError, ReferenceSpaceExhaustedError
from complaints.reference import KeyedReferences
from shenava_base.aio import as_deferred

__all__ = ["ReferenceBlocks", "ReferenceKeyMismatchError", "ReferencesNotReadyError"]

log = Logger()

FILE_NAME = "references.json"
BLOCKS_IN_HAND = 2


class ReferencesNotReadyError(ComplaintsError):
    """No reserved block is left (Redis away longer than the blocks in hand last)."""

    code = "complaints.references_not_ready"


class ReferenceKeyMismatchError(ComplaintsError):
    """This daemon's reference key is not the one the site's references are made with."""

    code = "complaints.reference_key_mismatch"


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"shenava-reference-key-id" + key).hexdigest()[:16]


class ReferenceBlocks:
    """Hands out references from reserved counter blocks (``next``), refills from Redis."""

    def __init__(
        self, client: Any, prefix: str, *, folder: Path | None, secret: str = "", block: int = 1000
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._path = folder / FILE_NAME if folder is not None else None
        self._secret = secret.encode("utf-8")
        self._block = block
        self._key: bytes | None = None
        self._base: int | None = None
        self._blocks: list[list[int]] = []  # [start, end); blocks[0] is in use
        self._next = 0
        self._refs: KeyedReferences | None = None
        self._refilling = False
        self.handed_out = 0

    def _k(self, name: str) -> str:
        return f"{self._prefix}:{{complaints}}:{name}"

    # -- start ------------------------------------------------------------------

    def load(self) -> None:
        """Read the file a previous run left (blocking; before the reactor runs)."""
        if self._path is None or not self._path.exists():
            return
        data = json.loads(self._path.read_text(encoding="utf-8"))
        if data.get("key"):
            self._key = bytes.fromhex(data["key"])
        if self._secret:
            if data.get("key_id") not in (None, key_id(self._secret)):
                raise ReferenceKeyMismatchError(
                    f"state.reference_secret is not the key of the blocks in {self._path}"
                )
            self._key = self._secret
        self._base = data.get("base")
        kept = [list(b) for b in data.get("blocks", [])]
        self._blocks = kept[1:]  # the block in use when we stopped is never reused
        if self._blocks:
            self._next = self._blocks[0][0]
        self._save()
        self._make()

    async def prepare(self) -> None:
        """Fetch the key and base if unknown, and reserve blocks up to the number kept in hand."""
        client = self._client
        if self._key is None or self._base is None:
            if self._secret:
                self._key = self._secret
            else:
                await client.set(self._k("refkey"), secrets.token_hex(32), nx=True)
                self._key = bytes.fromhex(_text(await client.get(self._k("refkey"))))
            seq = await client.get(self._k("seq"))
            await client.set(self._k("refbase"), int(seq or 0), nx=True)
            self._base = int(_text(await client.get(self._k("refbase"))))
        assert self._key is not None
        await client.set(self._k("refkeyid"), key_id(self._key), nx=True)
        stored = _text(await client.get(self._k("refkeyid")))
        if stored != key_id(self._key):
            raise ReferenceKeyMismatchError(
                "the site's references are made with another key: give every daemon the same "
                "state.reference_secret (or none, to share the one kept in Redis)"
            )
        self._make()
        while len(self._blocks) < BLOCKS_IN_HAND:
            end = int(await client.incrby(self._k("refctr"), self._block))
            if not self._blocks:
                self._next = end - self._block
            self._blocks.append([end - self._block, end])
            self._save()

    @property
    def ready(self) -> bool:
        return self._refs is not None and bool(self._blocks)

    @property
    def in_hand(self) -> int:
        """References that can still be handed out without Redis."""
        if not self._blocks:
            return 0
        return (self._blocks[0][1] - self._next) + sum(e - s for s, e in self._blocks[1:])

    # -- handing out ---------------------------------------------------------------

    def next(self) -> str:
        """A fresh reference, made here without Redis."""
        if self._refs is None or not self._blocks:
            raise ReferencesNotReadyError("no reserved block of references left")
        if self._next >= self._blocks[0][1]:
            self._blocks.pop(0)
            self._save()
            self._refill()
            if not self._blocks:
                raise ReferencesNotReadyError("no reserved block of references left")
            self._next = self._blocks[0][0]
        n = self._next
        self._next += 1
        if len(self._blocks) < BLOCKS_IN_HAND:
            self._refill()
        self.handed_out += 1
        return self._refs.reference(n)

    def _refill(self) -> None:
        if self._refilling:
            return
        self._refilling = True
        d = as_deferred(self.prepare())

        def done(result: object) -> object:
            self._refilling = False
            return result

        d.addBoth(done)
        d.addErrback(
            lambda f: log.warn(
                "references: no new block reserved yet ({error}); {left} in hand",
                error=f.getErrorMessage(), left=self.in_hand,
            )
        )

    # -- plumbing --------------------------------------------------------------------------

    def _make(self) -> None:
        if self._key is not None and self._base is not None and self._refs is None:
            refs = KeyedReferences(self._key, self._base)
            if self._blocks and self._blocks[-1][1] > refs.capacity:
                raise ReferenceSpaceExhaustedError("the reference counter passed the 9 M serials")
            self._refs = refs

    def _save(self) -> None:
        if self._path is None:
            return
        data: dict[str, Any] = {"version": 1, "base": self._base, "blocks": self._blocks}
        if self._key is not None:
            data["key_id"] = key_id(self._key)
            if not self._secret:
                data["key"] = self._key.hex()  # shared through Redis; cached for a start without it
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(data).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._path)


def _text(value: bytes | str | None) -> str:
    if value is None:
        raise ReferencesNotReadyError("a reference setting is missing in Redis")
    return value.decode("utf-8") if isinstance(value, bytes) else value

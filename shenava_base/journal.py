"""What the packages see of the daemon's journal (``shenava.journal``): its seam.

A package that must not lose a record (a complaint, a callback reason, a
voicemail's intake, an SL outcome) is handed a :class:`RecordJournal` by the
composition root and submits ``(kind, payload, keys)`` to it; it registers the
idempotent function that stores its ``kind`` in Redis. The journal itself, its
file and its replay, live in ``shenava.journal``; this module holds only what
both sides name, so no package imports the top floor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from twisted.internet.defer import Deferred

__all__ = ["Apply", "RecordJournal", "RetryLaterError", "call_key", "is_transient", "number_key"]

_TRANSIENT_REPLIES = ("READONLY", "LOADING", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS")

Apply = Callable[[dict[str, Any]], "Awaitable[Any] | Deferred[Any]"]
"""Stores one entry's payload in Redis; idempotent (a replay may apply it again)."""


class RetryLaterError(RuntimeError):
    """An apply function is not ready yet (e.g. statistics not restored): kept, retried."""

    code = "journal.retry_later"


class RecordJournal(Protocol):
    """The journal as a package uses it (``shenava.journal.Journal`` is one)."""

    def register(self, kind: str, apply: Apply) -> None: ...

    def submit(
        self, kind: str, payload: dict[str, Any], keys: Iterable[str] = (), *, call: str = ""
    ) -> Deferred[Any]:
        """``call``: the call the record goes with (a :func:`call_key` in ``keys``
        names one too): its call state carries the record until it is on disk."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """Entries submitted inside are written together (one line, one fsync): all kept or none."""
        ...

    def health(self) -> dict[str, Any]: ...

    def pending(self, kind: str, key: str) -> list[dict[str, Any]]: ...

    @property
    def redis_away_since(self) -> float | None: ...


def call_key(call_id: str | None) -> str:
    """The ordering key of a call's records (its complaint, voicemail, flag reason)."""
    return f"call:{call_id}" if call_id else ""


def number_key(number: str | None) -> str:
    """The ordering key of a caller's records (digits only, as their flag is keyed)."""
    digits = "".join(c for c in number or "" if c.isdigit())
    return f"num:{digits}" if digits else ""


def is_transient(failure: BaseException) -> bool:
    """Redis away, slow, failing over or loading: keep the entry and retry."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(failure, RedisConnectionError | RedisTimeoutError | OSError | TimeoutError):
        return True
    if isinstance(failure, asyncio.TimeoutError | asyncio.CancelledError | RetryLaterError):
        return True
    if str(getattr(failure, "code", "")).endswith(".concurrent_update"):
        return True  # too many writers on one key this time: try again later
    if isinstance(failure, ResponseError):
        return str(failure).startswith(_TRANSIENT_REPLIES)
    from redis.exceptions import RedisError

    return type(failure) is RedisError

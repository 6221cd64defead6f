"""Twisted on the asyncio reactor: calling asyncio coroutines (redis.asyncio) from Twisted.

Shenava runs Twisted's ``AsyncioSelectorReactor``, so Twisted and asyncio share
one event loop and one thread. A storage coroutine becomes a Deferred with
:func:`as_deferred`; nothing blocks and no thread is involved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore

T = TypeVar("T")


class WrongReactorError(RuntimeError):
    """Another reactor was installed before the asyncio reactor could be."""

    code = "aio.wrong_reactor"


def as_deferred(coro: Awaitable[T], *, loop: asyncio.AbstractEventLoop | None = None) -> Deferred[T]:
    """Schedule ``coro`` on the asyncio loop and return a Deferred of its result.

    Cancelling the Deferred cancels the asyncio task. ``loop`` defaults to the
    current event loop, which under the asyncio reactor is the reactor's loop.
    """
    future = asyncio.ensure_future(coro, loop=loop)
    return Deferred.fromFuture(future)


def install_asyncio_reactor() -> IReactorCore:
    """Install (once) Twisted's asyncio reactor and return it; later calls return it too.

    Meant for the composition root (``shenava.cli``) before anything imports
    ``twisted.internet.reactor``. Raises :class:`WrongReactorError` if another
    reactor is already installed.
    """
    import sys

    from twisted.internet import asyncioreactor

    if "twisted.internet.reactor" not in sys.modules:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
        asyncioreactor.install(loop)  # type: ignore[no-untyped-call]  # untyped in Twisted
    from twisted.internet import reactor

    if not isinstance(reactor, asyncioreactor.AsyncioSelectorReactor):
        raise WrongReactorError(
            f"the asyncio reactor is needed but {type(reactor).__name__} is already installed"
        )
    return reactor

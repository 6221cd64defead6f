"""Twisted on the asyncio reactor: calling asyncio coroutines (redis.asyncio) from Twisted.

Shenava runs Twisted's ``AsyncioSelectorReactor``, so Twisted and asyncio share
one event loop and one thread. A storage coroutine becomes a Deferred with
:func:`as_deferred`; nothing blocks and no thread is involved.

The loop under the reactor is the standard library's selector loop unless
``[daemon] event_loop`` or ``SHENAVA_EVENT_LOOP`` says ``uvloop`` (libuv; the
optional ``uvloop`` extra): see :func:`install_asyncio_reactor` and
docs/scaling.md, "Per-call CPU" (measured: no gain once the AMI writes left
Twisted's write-behind).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore
from twisted.python.failure import Failure

T = TypeVar("T")

EVENT_LOOPS = ("asyncio", "uvloop")
"""What ``[daemon] event_loop`` and ``SHENAVA_EVENT_LOOP`` take; the first is the default."""
EVENT_LOOP_ENV = "SHENAVA_EVENT_LOOP"


class WrongReactorError(RuntimeError):
    """Another reactor was installed before the asyncio reactor could be."""

    code = "aio.wrong_reactor"


class EventLoopError(ValueError):
    """An event loop that is not one of :data:`EVENT_LOOPS`, or uvloop asked for and missing."""

    code = "aio.event_loop"


def event_loop_kind(configured: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The loop to run: ``SHENAVA_EVENT_LOOP`` if set, else ``configured``, else asyncio.

    The environment wins so that one run of a daemon, the demo or a benchmark can
    be switched without editing its config."""
    env = os.environ if environ is None else environ
    kind = (env.get(EVENT_LOOP_ENV) or configured or EVENT_LOOPS[0]).strip().lower()
    if kind not in EVENT_LOOPS:
        where = EVENT_LOOP_ENV if env.get(EVENT_LOOP_ENV) else "[daemon] event_loop"
        raise EventLoopError(f"{where}: {kind!r} is not one of {', '.join(EVENT_LOOPS)}")
    return kind


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A new loop of ``kind`` (one of :data:`EVENT_LOOPS`)."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            raise EventLoopError(
                f"uvloop is not installed ({exc}); install it (pip install 'shenava[uvloop]') or set "
                f'[daemon] event_loop = "asyncio" or {EVENT_LOOP_ENV}=asyncio'
            ) from exc
        return uvloop.new_event_loop()
    if kind == "asyncio":
        return asyncio.SelectorEventLoop()
    raise EventLoopError(f"{kind!r} is not one of {', '.join(EVENT_LOOPS)}")


def loop_kind_of(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which kind ``loop`` is (for logs and benchmarks)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def as_deferred(coro: Awaitable[T], *, loop: asyncio.AbstractEventLoop | None = None) -> Deferred[T]:
    """Schedule ``coro`` on the asyncio loop and return a Deferred of its result.

    Cancelling the Deferred cancels the asyncio task; it then fails with
    asyncio's ``CancelledError`` once the task has ended. ``loop`` defaults to
    the current event loop, which under the asyncio reactor is the reactor's loop.

    As ``Deferred.fromFuture(ensure_future(coro))`` does, but the Deferred fires
    in the task's last step, when ``coro`` returns or raises, not from a done
    callback that asyncio schedules for the next loop turn: one loop turn and
    one handle less per Redis command (docs/scaling.md, "Per-call CPU").
    """
    cancelled = object()
    actual: Deferred[Any] | None = None
    fired = False

    async def settle() -> None:
        try:
            result: Any = await coro
        except BaseException as error:
            result = Failure(error)  # type: ignore[no-untyped-call]  # untyped in Twisted
            if not isinstance(error, (Exception, asyncio.CancelledError)):
                fire(result)
                raise  # KeyboardInterrupt, SystemExit: the loop's to handle
        fire(result)

    def fire(result: Any) -> None:
        nonlocal fired
        if not fired:
            fired = True
            (actual or deferred).callback(result)

    def cancel(d: Deferred[Any]) -> None:
        task.cancel()
        d.callback(cancelled)
        task.add_done_callback(ended)

    def ended(task: asyncio.Future[None]) -> None:
        # Cancelled before its first step, ``settle`` never ran: fail here, and
        # close ``coro``, never started (as the task would have closed it).
        if not fired:
            close = getattr(coro, "close", None)
            if close is not None:
                close()
            fire(Failure(asyncio.CancelledError()))  # type: ignore[no-untyped-call]

    def uncancel(result: Any) -> Any:
        # Cancelled: wait for the task to end (its CancelledError), as fromFuture does.
        nonlocal actual
        if result is cancelled:
            actual = Deferred()
            return actual
        return result

    deferred: Deferred[T] = Deferred(cancel)
    deferred.addCallback(uncancel)
    task = asyncio.ensure_future(settle(), loop=loop)
    return deferred


def install_asyncio_reactor(event_loop: str | None = None) -> IReactorCore:
    """Install (once) Twisted's asyncio reactor and return it; later calls return it too.

    Meant for the composition root (``shenava.cli``) before anything imports
    ``twisted.internet.reactor``. The loop under it is :func:`event_loop_kind`'s
    (``event_loop`` is ``[daemon] event_loop``); a loop already running is kept.
    Raises :class:`WrongReactorError` if another reactor is already installed,
    :class:`EventLoopError` for an unknown loop or a missing uvloop.
    """
    import sys

    from twisted.internet import asyncioreactor

    if "twisted.internet.reactor" not in sys.modules:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = new_event_loop(event_loop_kind(event_loop))
            asyncio.set_event_loop(loop)
        from shenava_base.reactor import install

        install(loop)  # Twisted's asyncio reactor, without callWithLogger per read
    from twisted.internet import reactor

    if not isinstance(reactor, asyncioreactor.AsyncioSelectorReactor):
        raise WrongReactorError(
            f"the asyncio reactor is needed but {type(reactor).__name__} is already installed"
        )
    return reactor

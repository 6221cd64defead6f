"""The one clock every package is handed: the reactor, or a ``task.Clock`` in tests.

It is the part of Twisted's ``IReactorTime`` that Shenava uses, typed
structurally so a ``task.Clock``, the reactor and a test's own fake all fit
without a zope declaration. Domain functions take ``now`` (a float, POSIX
seconds) instead; only the objects that schedule their own work hold a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall

__all__ = ["Clock"]


class Clock(Protocol):
    """``seconds()`` and ``callLater()`` of ``IReactorTime``."""

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., object], /, *args: object, **kw: object
    ) -> IDelayedCall: ...

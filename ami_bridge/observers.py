"""Event observers told only of the AMI events they name.

A busy call sends about 39 AMI events; a third of them (``AsyncAGIExec``,
answered inside the protocol) are of no use to the call tracker, the daemon's
one observer, which still paid a call, a clock read and a look-up for each.
An observer added with ``names`` is told of events of those names only; one
added without is told of every event. Who is told of a name is worked out
once, on the first event of that name, and kept until the observers change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ami_bridge.message import Message

__all__ = ["EventObserver", "EventObservers"]

EventObserver = Callable[[Message], object]
_MAX_NAMES = 512
"""Event names remembered at most (Asterisk has a few hundred)."""


class EventObservers:
    """Observers in the order added, each with the event names it wants (None: all)."""

    __slots__ = ("_by_name", "_entries")

    def __init__(self) -> None:
        self._entries: tuple[tuple[EventObserver, frozenset[str] | None], ...] = ()
        self._by_name: dict[str | None, tuple[EventObserver, ...]] = {}
        """Who is told of each event name, in the order added (made on first use)."""

    def add(self, observer: EventObserver, names: Iterable[str] | None = None) -> None:
        wanted = None if names is None else frozenset(names)
        self._entries = (*self._entries, (observer, wanted))
        self._by_name = {}

    def remove_first(self, observer: EventObserver) -> None:
        """Forget the first registration equal to ``observer`` (as ``list.remove``)."""
        entries = list(self._entries)
        for i, (known, _) in enumerate(entries):
            if known == observer:
                del entries[i]
                break
        self._entries = tuple(entries)
        self._by_name = {}

    def remove_every(self, observer: EventObserver) -> None:
        """Forget every registration of this very ``observer`` (by identity)."""
        self._entries = tuple(entry for entry in self._entries if entry[0] is not observer)
        self._by_name = {}

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def observers(self) -> tuple[EventObserver, ...]:
        return tuple(observer for observer, _ in self._entries)

    def told_of(self, name: str | None) -> tuple[EventObserver, ...]:
        """The observers of an event named ``name`` (None: a message with no name)."""
        told = self._by_name.get(name)
        if told is None:
            if len(self._by_name) >= _MAX_NAMES:
                self._by_name.clear()  # a peer sending endless new names
            told = tuple(
                observer for observer, wanted in self._entries
                if wanted is None or name in wanted
            )
            self._by_name[name] = told
        return told

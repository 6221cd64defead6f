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


class EventObservers(dict[str | None, tuple[EventObserver, ...]]):
    """Observers in the order added, each with the event names it wants (None: all).

    The mapping itself is the table: ``observers[name]`` is who is told of an
    event of that name (a dictionary look-up in C on every event; worked out
    on the first event of the name, and again after a change)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        super().__init__()
        self._entries: tuple[tuple[EventObserver, frozenset[str] | None], ...] = ()

    def __missing__(self, name: str | None) -> tuple[EventObserver, ...]:
        if len(self) >= _MAX_NAMES:
            self.clear()  # a peer sending endless new names
        told = tuple(
            observer for observer, wanted in self._entries if wanted is None or name in wanted
        )
        self[name] = told
        return told

    def add(self, observer: EventObserver, names: Iterable[str] | None = None) -> None:
        wanted = None if names is None else frozenset(names)
        self._entries = (*self._entries, (observer, wanted))
        self.clear()

    def remove_first(self, observer: EventObserver) -> None:
        """Forget the first registration equal to ``observer`` (as ``list.remove``)."""
        entries = list(self._entries)
        for i, (known, _) in enumerate(entries):
            if known == observer:
                del entries[i]
                break
        self._entries = tuple(entries)
        self.clear()

    def remove_every(self, observer: EventObserver) -> None:
        """Forget every registration of this very ``observer`` (by identity)."""
        self._entries = tuple(entry for entry in self._entries if entry[0] is not observer)
        self.clear()

    @property
    def names(self) -> frozenset[str] | None:
        """Every name some observer wants; None when one wants every event."""
        wanted: set[str] = set()
        for _, names in self._entries:
            if names is None:
                return None
            wanted |= names
        return frozenset(wanted)

    @property
    def observers(self) -> tuple[EventObserver, ...]:
        """Every observer, in the order added."""
        return tuple(observer for observer, _ in self._entries)

    def told_of(self, name: str | None) -> tuple[EventObserver, ...]:
        """The observers of an event named ``name`` (None: a message with no name)."""
        return self[name]

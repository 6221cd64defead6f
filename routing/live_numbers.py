"""Which customer numbers are on a call right now, from the call tracker's events.

The callback dialler asks before it dials: a customer still in the IVR, waiting
in line or talking to an agent must not have their phone rung by their own
callback (a second call to a busy line, or a call waiting tone in the middle of
their complaint). A number counts as live from the moment its call arrives (or
a resync adopts its channel) until the last channel carrying it as caller ID
hangs up (Asterisk may set the number after ``Newchannel``, with
``NewCallerid``; the AsyncAGI start's ``agi_callerid`` is the number the IVR
itself reads); the tracker reports
every removal, dropped channels included, so nothing here outlives its call.
Numbers are keyed as callback flags key them (:func:`routing.callbacks.normalize_number`).

A customer who calls in (a new call, ``CallArrived``, or a caller reaching the
IVR's AGI step) is told to ``on_call_in`` as well, even while their number is
live already: the dialler then gives way if it is ringing an agent for that
customer's callback (:meth:`routing.callback_dialer.CallbackDialer`). A
callback's own customer leg is not a call in: it shares the agent leg's
Linkedid (no ``CallArrived``), though it carries the number it dials.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import lru_cache

from ami_bridge.events import (
    AgiSessionStarted,
    CallArrived,
    CallerIdChanged,
    ChannelAdopted,
    ChannelCreated,
    ChannelHungUp,
    TrackerEvent,
)
from ami_bridge.tracker import handles
from routing.callbacks import CallbackError, normalize_number


@lru_cache(maxsize=4096)
def flag_number(caller_num: str) -> str | None:
    """The number as a flag keys it; None for what cannot be called back (``anonymous``).
    Cached: a call's channels and its AGI start repeat the same caller ID."""
    if not caller_num:
        return None
    try:
        return normalize_number(caller_num)
    except CallbackError:
        return None


_WITH_NUMBER = frozenset({CallArrived, ChannelAdopted, CallerIdChanged})


class LiveNumbers:
    """Callers' numbers with a channel up, counted by channel."""

    def __init__(self, *, caller_of: Callable[[str], str | None] = lambda uniqueid: None,
                 ignore: Callable[[str], bool] = lambda uniqueid: False) -> None:
        self._caller_of = caller_of
        """A channel's caller ID number, as the tracker has it (``ChannelCreated`` has none)."""
        self._ignore = ignore
        """Channels not to count (the dialler's own legs, which carry the customer's number)."""
        self._of_channel: dict[str, str] = {}
        """Channels with a number that can be called back (only those: the rest cost nothing)."""
        self._live: Counter[str] = Counter()
        self._calling_in: set[str] = set()
        """Channels of calls that came in (``CallArrived``, an AGI start), until they hang up."""
        self.on_free: Callable[[str], object] = lambda number: None
        """Told when a number's last channel hangs up."""
        self.on_call_in: Callable[[str], object] = lambda number: None
        """Told when a call that came in gets its number (its arrival, its AGI start,
        or its caller ID set after ``Newchannel``)."""

    def __contains__(self, number: object) -> bool:
        return number in self._live

    def __len__(self) -> int:
        return len(self._of_channel)

    @handles(ChannelHungUp, ChannelCreated, AgiSessionStarted, *_WITH_NUMBER)
    def on_tracker_event(self, event: TrackerEvent) -> None:
        kind = type(event)
        if kind is ChannelHungUp:
            self._calling_in.discard(event.uniqueid)  # type: ignore[attr-defined]
            if event.uniqueid in self._of_channel:  # type: ignore[attr-defined]
                self._set(event.uniqueid, None)  # type: ignore[attr-defined]
        elif kind is ChannelCreated:
            uniqueid = event.uniqueid  # type: ignore[attr-defined]
            self._set(uniqueid, flag_number(self._caller_of(uniqueid) or ""))
        elif kind in _WITH_NUMBER:
            if kind is CallArrived and not self._ignore(event.uniqueid):  # type: ignore[attr-defined]
                self._calling_in.add(event.uniqueid)  # type: ignore[attr-defined]
            self._set(event.uniqueid, flag_number(event.caller_num))  # type: ignore[attr-defined]
        elif kind is AgiSessionStarted:
            # The number the IVR reads: the caller is in the menus or on hold now.
            number = flag_number(event.env.get("agi_callerid", ""))  # type: ignore[attr-defined]
            if number is not None and not self._ignore(event.uniqueid):  # type: ignore[attr-defined]
                self._calling_in.add(event.uniqueid)  # type: ignore[attr-defined]
                self._set(event.uniqueid, number)  # type: ignore[attr-defined]

    def _set(self, uniqueid: str, number: str | None) -> None:
        if number is not None and self._ignore(uniqueid):
            return
        before = self._of_channel.get(uniqueid)
        if before == number:
            return
        if number is None:
            del self._of_channel[uniqueid]
        else:
            self._of_channel[uniqueid] = number
            self._live[number] += 1
        if before is not None:
            self._live[before] -= 1
            if self._live[before] <= 0:
                del self._live[before]
                self.on_free(before)
        if number is not None and uniqueid in self._calling_in:
            self.on_call_in(number)

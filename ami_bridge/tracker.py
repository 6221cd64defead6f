"""Channels and calls, followed from AMI events; typed events out.

Pure: ``handle(message, now)`` and ``resync(items, now)`` update the state and
return the events they produce (also handed to subscribers). No I/O, no clock.

Facts from the captures it relies on: every channel event carries
``Uniqueid`` and ``Linkedid``; a Local channel's two halves (``...;1`` and
``...;2``) are separate channels created together; a channel's ``Linkedid``
can change mid-call (transcript 43: the originated agent leg's ``;1`` takes
the caller's Linkedid once bridged), so it moves to the caller's call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from twisted.logger import Logger

from ami_bridge import events as events_module
from ami_bridge.agi import decode_env
from ami_bridge.codec import Message
from ami_bridge.events import (
    AgiSessionEnded,
    AgiSessionStarted,
    BridgeJoined,
    BridgeLeft,
    CallAdopted,
    CallArrived,
    CallEnded,
    CallerIdChanged,
    ChannelAdopted,
    ChannelCreated,
    ChannelHungUp,
    ChannelRelinked,
    ChannelStateChanged,
    DialEnded,
    DialStarted,
    DtmfReceived,
    OriginateFinished,
    TrackerEvent,
    VariableSet,
)
from ami_bridge.protocol import Scheduler

Subscriber = Callable[[TrackerEvent], object]
F = TypeVar("F", bound=Callable[..., object])
KINDS_ATTRIBUTE = "tracker_event_kinds"

EVERY_KIND: frozenset[type[TrackerEvent]] = frozenset(
    kind for kind in vars(events_module).values()
    if isinstance(kind, type) and issubclass(kind, TrackerEvent)
)
"""Every kind of change (all of ``ami_bridge.events``, so a kind added there
is made by :meth:`CallTracker.handle` without more ado)."""


def handles(*kinds: type[TrackerEvent]) -> Callable[[F], F]:
    """Mark a subscriber (function or method) as acting only on events of ``kinds``.

    :meth:`CallTracker.subscribe` then tells it of those kinds (and their
    subclasses) only, instead of every event the tracker makes (a few dozen
    per call, most of which a subscriber ignores after an ``isinstance`` or
    two). The subscriber keeps its own checks (whoever feeds it events
    otherwise, a test's tracker, still may pass any); when it comes to act on
    another kind, add that kind here.
    """

    def mark(subscriber: F) -> F:
        setattr(subscriber, KINDS_ATTRIBUTE, tuple(kinds))
        return subscriber

    return mark

_UNKNOWN = "<unknown>"

DEFAULT_MAX_CHANNELS = 100_000
"""Channels kept at most (``ami.max_channels``): a busy centre has a few
thousand; 200,000 channels that never hung up once kept 200 MB."""
_EVICT_SCAN = 4  # look this many times the batch ahead for idle channels


@dataclass(slots=True, eq=False)
class Channel:
    uniqueid: str
    name: str
    linkedid: str
    state: int
    state_desc: str
    caller_num: str
    caller_name: str
    context: str
    exten: str
    created_at: float
    adopted: bool = False
    local_peer: str | None = None
    bridge_id: str | None = None
    in_agi: bool = False
    application: str = ""
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Call:
    """Everything sharing one Linkedid: the caller's channel and those it led to."""

    linkedid: str
    started_at: float
    adopted: bool = False
    channels: dict[str, Channel] = field(default_factory=dict)

    @property
    def origin(self) -> Channel | None:
        """The channel that started the call (Uniqueid == Linkedid), if still up."""
        return self.channels.get(self.linkedid)


def _local_half(name: str) -> tuple[str, str] | None:
    """``Local/x@ctx-0000000a;1`` -> (``Local/x@ctx-0000000a``, ``1``)."""
    if name.startswith("Local/") and len(name) > 2 and name[-2] == ";":
        return name[:-2], name[-1]
    return None


def _caller(value: str | None) -> str:
    """Caller ID as sent, with Asterisk's ``<unknown>`` as ""."""
    return "" if not value or value == _UNKNOWN else value


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def _hms(value: str | None) -> float:
    """``00:01:05`` -> 65.0 (CoreShowChannel ``Duration``)."""
    if not value:
        return 0.0
    total = 0.0
    for part in value.split(":"):
        total = total * 60 + _int(part)
    return total


class CallTracker:
    """Channels and calls from AMI events.

    At most ``max_channels`` channels are kept: past that the oldest idle
    ones (not in AGI, not bridged; the oldest of all if none is) are dropped,
    a hundredth of the cap at a time, with a warning and a missed hang-up
    (``ChannelHungUp(missed=True)``) so that what hangs on them is pruned
    too. The next resync adopts any of them that is still up.
    """

    log = Logger()

    def __init__(self, *, max_channels: int = DEFAULT_MAX_CHANNELS) -> None:
        self.max_channels = max_channels
        self.channels_dropped = 0
        self.channels: dict[str, Channel] = {}
        self.calls: dict[str, Call] = {}
        self._by_name: dict[str, str] = {}
        self._locals: dict[str, dict[str, str]] = {}
        self._subscribers: tuple[Subscriber, ...] = ()
        self._kinds: tuple[tuple[type[TrackerEvent], ...] | None, ...] = ()
        """Per subscriber, the event kinds it asked for (None: every kind)."""
        self._by_kind: dict[type[TrackerEvent], tuple[Subscriber, ...]] = {}
        """Who is told of each kind of event, in subscription order (made on
        first use): an event goes only to those who asked for its kind."""
        self._heard: frozenset[type[TrackerEvent]] = frozenset()
        """The kinds some subscriber is told of (:meth:`observe` makes only those)."""
        self._keep: frozenset[type[TrackerEvent]] = EVERY_KIND
        """The kinds the handler running now makes: every kind, but while
        :meth:`observe` runs one, those heard."""
        self._handlers: dict[str, Callable[[Message, float, list[TrackerEvent]], None]] = {
            "Newchannel": self._on_newchannel,
            "Newstate": self._on_newstate,
            "Hangup": self._on_hangup,
            "DialBegin": self._on_dial_begin,
            "DialEnd": self._on_dial_end,
            "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave,
            "VarSet": self._on_varset,
            "DTMFEnd": self._on_dtmf_end,
            "AsyncAGIStart": self._on_agi_start,
            "AsyncAGIEnd": self._on_agi_end,
            "OriginateResponse": self._on_originate_response,
            "NewCallerid": self._on_new_callerid,
            "Rename": self._on_rename,
        }

    # -- subscribers -----------------------------------------------------------------

    def subscribe(
        self, subscriber: Subscriber, kinds: Iterable[type[TrackerEvent]] | None = None
    ) -> None:
        """Tell ``subscriber`` of every event, or only of those of ``kinds`` (and their
        subclasses). A busy tracker makes a few dozen events per call: a subscriber
        that names what it handles is not called for the rest. Without ``kinds``,
        those the subscriber was marked with (:func:`handles`), if any."""
        if kinds is None:
            kinds = getattr(subscriber, KINDS_ATTRIBUTE, None)
        self._subscribers = (*self._subscribers, subscriber)
        self._kinds = (*self._kinds, None if kinds is None else tuple(kinds))
        self._by_kind = {}
        self._heard = self._kinds_heard()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        kept = [(s, k) for s, k in zip(self._subscribers, self._kinds, strict=True)
                if s is not subscriber]
        self._subscribers = tuple(s for s, _ in kept)
        self._kinds = tuple(k for _, k in kept)
        self._by_kind = {}
        self._heard = self._kinds_heard()

    def _kinds_heard(self) -> frozenset[type[TrackerEvent]]:
        return frozenset(kind for kind in EVERY_KIND if self._told_of(kind))

    def _told_of(self, kind: type[TrackerEvent]) -> tuple[Subscriber, ...]:
        told = tuple(
            s for s, k in zip(self._subscribers, self._kinds, strict=True)
            if k is None or issubclass(kind, k)
        )
        self._by_kind[kind] = told
        return told

    def _emit(self, events: list[TrackerEvent]) -> list[TrackerEvent]:
        by_kind = self._by_kind
        for event in events:
            told = by_kind.get(type(event))
            if told is None:
                told = self._told_of(type(event))
            for subscriber in told:
                try:
                    subscriber(event)
                except Exception:
                    self.log.failure(
                        "tracker subscriber {subscriber!r} failed on {event}",
                        subscriber=subscriber,
                        event=type(event).__name__,
                    )
        return events

    @property
    def event_names(self) -> frozenset[str]:
        """The AMI events :meth:`handle` acts on: any other returns nothing and
        changes nothing, so a source need not hand it over (``attach_tracker``)."""
        return frozenset(self._handlers)

    # -- look-ups ----------------------------------------------------------------------

    def channel(self, uniqueid: str) -> Channel | None:
        return self.channels.get(uniqueid)

    def channel_by_name(self, name: str) -> Channel | None:
        uniqueid = self._by_name.get(name)
        return self.channels.get(uniqueid) if uniqueid is not None else None

    def call(self, linkedid: str) -> Call | None:
        return self.calls.get(linkedid)

    def call_of(self, uniqueid: str) -> Call | None:
        channel = self.channels.get(uniqueid)
        return self.calls.get(channel.linkedid) if channel is not None else None

    # -- input -------------------------------------------------------------------------

    def handle(self, message: Message, now: float) -> list[TrackerEvent]:
        """Apply one AMI event; return (and publish) the domain events it caused."""
        name = message.event
        handler = self._handlers.get(name) if name is not None else None
        if handler is None:
            return []
        events: list[TrackerEvent] = []
        handler(message, now, events)
        if events and self._subscribers:
            self._emit(events)
        return events

    def observe(self, message: Message, now: float) -> None:
        """As :meth:`handle` (the same state), publishing only the kinds of change
        some subscriber is told of: the others are never made (``attach_tracker``
        feeds the tracker this way; a call's ``Newstate``, ``BridgeLeave`` and
        hang-ups make changes the daemon's subscribers do not ask for)."""
        name = message.event
        handler = self._handlers.get(name) if name is not None else None
        if handler is None:
            return
        events: list[TrackerEvent] = []
        self._keep = self._heard
        try:
            handler(message, now, events)
        finally:
            self._keep = EVERY_KIND
        if events:
            self._emit(events)

    def resync(self, items: Iterable[Message], now: float) -> list[TrackerEvent]:
        """Reconcile with a ``CoreShowChannels`` list taken after a (re)connection.

        Channels not known are adopted (``ChannelAdopted``, and ``CallAdopted``
        for a call not known: never ``CallArrived``, so nothing is counted
        twice); channels known but absent hung up while we were away.
        """
        events: list[TrackerEvent] = []
        present: set[str] = set()
        new_calls: dict[str, Call] = {}
        adopted: list[Channel] = []
        skipped = 0
        for item in items:
            uniqueid = item.get("Uniqueid")
            if not uniqueid:
                continue
            present.add(uniqueid)
            linkedid = item.get("Linkedid") or uniqueid
            known = self.channels.get(uniqueid)
            if known is not None:
                self._relink(known, linkedid, now, events)
                known.state = _int(item.get("ChannelState"), known.state)
                known.state_desc = item.get("ChannelStateDesc") or known.state_desc
                known.application = item.get("Application") or known.application
                continue
            started = now - _hms(item.get("Duration"))
            if len(self.channels) >= self.max_channels and not self._make_room(
                now, events, keep=present
            ):
                # More channels listed than the cap: the rest are not kept.
                present.discard(uniqueid)
                skipped += 1
                continue
            call = self.calls.get(linkedid)
            if call is None:
                call = Call(linkedid=linkedid, started_at=started, adopted=True)
                self.calls[linkedid] = call
                new_calls[linkedid] = call
            elif call.adopted:
                call.started_at = min(call.started_at, started)
            channel = self._add_channel(item, uniqueid, linkedid, started, adopted=True)
            channel.application = item.get("Application") or ""
            channel.in_agi = channel.application == "AGI"
            channel.bridge_id = item.get("BridgeId") or None
            adopted.append(channel)
        for channel in adopted:
            self._link_local(channel)
        for call in new_calls.values():
            events.append(
                CallAdopted(
                    at=now,
                    linkedid=call.linkedid,
                    uniqueids=tuple(call.channels),
                    started_at=call.started_at,
                )
            )
        for channel in adopted:
            events.append(
                ChannelAdopted(
                    at=now,
                    uniqueid=channel.uniqueid,
                    linkedid=channel.linkedid,
                    channel=channel.name,
                    state=channel.state,
                    application=channel.application,
                    caller_num=channel.caller_num,
                    local_peer=channel.local_peer,
                )
            )
        for uniqueid in [u for u in self.channels if u not in present]:
            self._remove(self.channels[uniqueid], now, None, "", events, missed=True)
        if skipped:
            self.channels_dropped += skipped
            self.log.warn(
                "call tracker at its cap of {limit} channels (ami.max_channels): "
                "{skipped} channels of the resync not kept",
                limit=self.max_channels,
                skipped=skipped,
            )
        return self._emit(events)

    # -- state helpers -----------------------------------------------------------------

    def _add_channel(
        self, message: Message, uniqueid: str, linkedid: str, now: float, *, adopted: bool
    ) -> Channel:
        get = message.get
        channel = Channel(
            uniqueid=uniqueid,
            name=get("Channel") or "",
            linkedid=linkedid,
            state=_int(get("ChannelState")),
            state_desc=get("ChannelStateDesc") or "",
            caller_num=_caller(get("CallerIDNum")),
            caller_name=_caller(get("CallerIDName")),
            context=get("Context") or "",
            exten=get("Exten") or "",
            created_at=now,
            adopted=adopted,
        )
        self.channels[uniqueid] = channel
        self._by_name[channel.name] = uniqueid
        self.calls[linkedid].channels[uniqueid] = channel
        half = _local_half(channel.name)
        if half is not None:
            self._locals.setdefault(half[0], {})[half[1]] = uniqueid
        return channel

    def _make_room(
        self, now: float, events: list[TrackerEvent], keep: set[str] | frozenset[str] = frozenset()
    ) -> int:
        """Drop the oldest idle channels (dict order is creation order); how many."""
        batch = max(1, self.max_channels // 100)
        excess = len(self.channels) - self.max_channels + 1
        want = max(batch, excess)
        idle: list[Channel] = []
        oldest: list[Channel] = []
        for scanned, channel in enumerate(self.channels.values()):
            if scanned >= want * _EVICT_SCAN or len(idle) >= want:
                break
            if channel.uniqueid in keep:
                continue
            if not channel.in_agi and channel.bridge_id is None:
                idle.append(channel)
            elif len(oldest) < want:
                oldest.append(channel)
        victims = (idle + oldest)[:want]
        for channel in victims:
            if channel.uniqueid in self.channels:
                self._remove(channel, now, None, "", events, missed=True)
        if not victims:
            return 0
        self.channels_dropped += len(victims)
        self.log.warn(
            "call tracker at its cap of {limit} channels (ami.max_channels): dropped the "
            "{dropped} oldest idle ones ({total} so far); a resync adopts any still up",
            limit=self.max_channels,
            dropped=len(victims),
            total=self.channels_dropped,
        )
        return len(victims)

    def _link_local(self, channel: Channel) -> None:
        half = _local_half(channel.name)
        if half is None:
            return
        other = self._locals.get(half[0], {}).get("2" if half[1] == "1" else "1")
        if other is not None and other in self.channels:
            channel.local_peer = other
            self.channels[other].local_peer = channel.uniqueid

    def _known(self, message: Message, now: float, events: list[TrackerEvent]) -> Channel | None:
        """The channel an event is about, moved to its call if its Linkedid changed."""
        uniqueid = message.get("Uniqueid")
        channel = self.channels.get(uniqueid) if uniqueid is not None else None
        if channel is not None:
            linkedid = message.get("Linkedid")
            if linkedid and linkedid != channel.linkedid:
                self._relink(channel, linkedid, now, events)
        return channel

    def _relink(
        self, channel: Channel, linkedid: str, now: float, events: list[TrackerEvent]
    ) -> None:
        previous = channel.linkedid
        if linkedid == previous:
            return
        old = self.calls.get(previous)
        if old is not None:
            old.channels.pop(channel.uniqueid, None)
        new = self.calls.get(linkedid)
        if new is None:
            new = Call(linkedid=linkedid, started_at=now, adopted=channel.adopted)
            self.calls[linkedid] = new
        new.channels[channel.uniqueid] = channel
        channel.linkedid = linkedid
        keep = self._keep
        if ChannelRelinked in keep:
            events.append(
                ChannelRelinked(
                    at=now,
                    uniqueid=channel.uniqueid,
                    linkedid=linkedid,
                    channel=channel.name,
                    previous_linkedid=previous,
                )
            )
        if old is not None and not old.channels:
            del self.calls[previous]
            if CallEnded in keep:
                events.append(CallEnded(
                    at=now, linkedid=previous, started_at=old.started_at, adopted=old.adopted
                ))

    def _remove(
        self,
        channel: Channel,
        now: float,
        cause: int | None,
        cause_txt: str,
        events: list[TrackerEvent],
        *,
        missed: bool = False,
    ) -> None:
        del self.channels[channel.uniqueid]
        if self._by_name.get(channel.name) == channel.uniqueid:
            del self._by_name[channel.name]
        half = _local_half(channel.name)
        if half is not None:
            halves = self._locals.get(half[0])
            if halves is not None:
                halves.pop(half[1], None)
                if not halves:
                    del self._locals[half[0]]
        keep = self._keep
        if ChannelHungUp in keep:
            events.append(
                ChannelHungUp(
                    at=now,
                    uniqueid=channel.uniqueid,
                    linkedid=channel.linkedid,
                    channel=channel.name,
                    cause=cause,
                    cause_txt=cause_txt,
                    missed=missed,
                )
            )
        call = self.calls.get(channel.linkedid)
        if call is not None:
            call.channels.pop(channel.uniqueid, None)
            if not call.channels:
                del self.calls[call.linkedid]
                if CallEnded in keep:
                    events.append(
                        CallEnded(
                            at=now,
                            linkedid=call.linkedid,
                            started_at=call.started_at,
                            adopted=call.adopted,
                            missed=missed,
                        )
                    )

    # -- handlers ------------------------------------------------------------------------
    # Each checks ``self._keep`` before making a change (and before reading the
    # headers only that change needs): under :meth:`observe`, a kind no
    # subscriber is told of is not made. The state is updated either way.

    def _on_newchannel(self, message: Message, now: float, events: list[TrackerEvent]) -> None:
        uniqueid = message.get("Uniqueid")
        if not uniqueid or uniqueid in self.channels:
            return
        linkedid = message.get("Linkedid") or uniqueid
        if len(self.channels) >= self.max_channels:
            self._make_room(now, events)
        call = self.calls.get(linkedid)
        arrived = call is None
        if call is None:
            call = Call(linkedid=linkedid, started_at=now)
            self.calls[linkedid] = call
        channel = self._add_channel(message, uniqueid, linkedid, now, adopted=False)
        self._link_local(channel)
        keep = self._keep
        if arrived and CallArrived in keep:
            events.append(
                CallArrived(
                    at=now,
                    uniqueid=uniqueid,
                    linkedid=linkedid,
                    channel=channel.name,
                    caller_num=channel.caller_num,
                    caller_name=channel.caller_name,
                    context=channel.context,
                    exten=channel.exten,
                )
            )
        if ChannelCreated in keep:
            events.append(
                ChannelCreated(
                    at=now,
                    uniqueid=uniqueid,
                    linkedid=linkedid,
                    channel=channel.name,
                    state=channel.state,
                    local_peer=channel.local_peer,
                )
            )

    def _on_newstate(self, message: Message, now: float, events: list[TrackerEvent]) -> None:
        channel = self._known(message, now, events)
        if channel is None:
            return
        state = _int(message.get("ChannelState"), channel.state)
        previous = channel.state
        channel.state = state
        channel.state_desc = message.get("ChannelStateDesc") or channel.state_desc
        if state != previous and ChannelStateChanged in self._keep:
            events.append(
                ChannelStateChanged(
                    at=now,
                    uniqueid=channel.uniqueid,
                    linkedid=channel.linkedid,
                    channel=channel.name,
                    state=state,
                    state_desc=channel.state_desc,
                    previous=previous,
                )
            )

    def _on_hangup(self, message: Message, now: float, events: list[TrackerEvent]) -> None:
        channel = self._known(message, now, events)
        if channel is None:
            return
        cause = _int(message.get("Cause"))
        self._remove(channel, now, cause, message.get("Cause-txt") or "", events)

    def _dial_parties(self, message: Message) -> tuple[str | None, str, str, str]:
        caller = message.get("Uniqueid")
        dest = message.get("DestUniqueid") or ""
        linkedid = message.get("DestLinkedid") or message.get("Linkedid") or dest
        return caller, dest, message.get("DestChannel") or "", linkedid

    def _on_dial_begin(self, message: Message, now: float, events: list[TrackerEvent]) -> None:
        self._known(message, now, events)
        if DialStarted not in self._keep:
            return
        caller, dest, dest_channel, linkedid = self._dial_parties(message)
        events.append(
            DialStarted(
                at=now,
                caller_uniqueid=caller,
                dest_uniqueid=dest,
                dest_channel=dest_channel,
                linkedid=linkedid,
                dial_string=message.get("DialString") or "",
            )
        )

    def _on_dial_end(self, message: Message, now: float, events: list[TrackerEvent]) -> None:
        self._known(message, now, events)
        if DialEnded not in self._keep:
            return
        caller, dest, dest_channel, linkedid = self._dial_parties(message)
        events.append(
            DialEnded(
                at=now,
                caller_uniqueid=caller,
                dest_uniqueid=dest,
                dest_channel=dest_channel,
                linkedid=linkedid,
                status=message.get("DialStatus") or "",
            )
        )

    def _on_bridge_enter(self, message: Message, now: float, events: list[TrackerEvent]) -> None:
        channel = self._known(message, now, events)
        if channel is None:
            return
        bridge_id = message.get("BridgeUniqueid") or ""
        channel.bridge_id = bridge_id
        if BridgeJoined in self._keep:
            events.append(
                BridgeJoined(
                    at=now,
                    uniqueid=channel.uniqueid,
                    linkedid=channel.linkedid,
                    channel=channel.name,
                    bridge_id=bridge_id,
                    members=_int(message.get("BridgeNumChannels")),
                )
            )

    def _on_bridge_leave(self, message: Message, now: float, events: list[TrackerEvent]) -> None:
        channel = self._known(message, now, events)
        if channel is None:
            return
        channel.bridge_id = None
        if BridgeLeft in self._keep:
            events.append(
                BridgeLeft(
                    at=now,
                    uniqueid=channel.uniqueid,
                    linkedid=channel.linkedid,
                    channel=channel.name,
                    bridge_id=message.get("BridgeUniqueid") or "",
                    members=_int(message.get("BridgeNumChannels")),
                )
            )

    def _on_varset(self, message: Message, now: float, events: list[TrackerEvent]) -> None:
        channel = self._known(message, now, events)
        if channel is None:
            return
        name = message.get("Variable") or ""
        value = message.get("Value") or ""
        channel.variables[name] = value
        if VariableSet in self._keep:
            events.append(
                VariableSet(
                    at=now,
                    uniqueid=channel.uniqueid,
                    linkedid=channel.linkedid,
                    channel=channel.name,
                    name=name,
                    value=value,
                )
            )

    def _on_dtmf_end(self, message: Message, now: float, events: list[TrackerEvent]) -> None:
        channel = self._known(message, now, events)
        if channel is None or DtmfReceived not in self._keep:
            return
        events.append(
            DtmfReceived(
                at=now,
                uniqueid=channel.uniqueid,
                linkedid=channel.linkedid,
                channel=channel.name,
                digit=message.get("Digit") or "",
                duration_ms=_int(message.get("DurationMs")),
                direction=message.get("Direction") or "",
            )
        )

    def _on_agi_start(self, message: Message, now: float, events: list[TrackerEvent]) -> None:
        channel = self._known(message, now, events)
        if channel is None:
            return
        channel.in_agi = True
        if message.get("ChanVariable") is not None:
            # manager.conf's ``channelvars`` (ChanVariable: NAME=value, an
            # empty value when unset): kept for the IVR, which then need not
            # ask with GET VARIABLE. Read here only, once per AGI session.
            for pair in message.get_all("ChanVariable"):
                name, sep, value = pair.partition("=")
                if sep and name:
                    channel.variables[name] = value
        if AgiSessionStarted in self._keep:
            events.append(
                AgiSessionStarted(
                    at=now,
                    uniqueid=channel.uniqueid,
                    linkedid=channel.linkedid,
                    channel=channel.name,
                    env=decode_env(message.get("Env") or ""),
                )
            )

    def _on_agi_end(self, message: Message, now: float, events: list[TrackerEvent]) -> None:
        channel = self._known(message, now, events)
        if channel is None:
            return
        channel.in_agi = False
        if AgiSessionEnded in self._keep:
            events.append(
                AgiSessionEnded(
                    at=now, uniqueid=channel.uniqueid, linkedid=channel.linkedid,
                    channel=channel.name,
                )
            )

    def _on_originate_response(
        self, message: Message, now: float, events: list[TrackerEvent]
    ) -> None:
        if OriginateFinished not in self._keep:
            return
        uniqueid = message.get("Uniqueid")
        if not uniqueid or uniqueid in (_UNKNOWN, "<null>"):
            uniqueid = None
        events.append(
            OriginateFinished(
                at=now,
                action_id=message.get("ActionID") or "",
                success=(message.get("Response") or "").lower() == "success",
                reason=_int(message.get("Reason")),
                uniqueid=uniqueid,
                channel=message.get("Channel") or "",
            )
        )

    def _on_new_callerid(self, message: Message, now: float, events: list[TrackerEvent]) -> None:
        channel = self._known(message, now, events)
        if channel is None:
            return
        channel.caller_num = _caller(message.get("CallerIDNum"))
        channel.caller_name = _caller(message.get("CallerIDName"))
        if CallerIdChanged in self._keep:
            events.append(
                CallerIdChanged(
                    at=now,
                    uniqueid=channel.uniqueid,
                    linkedid=channel.linkedid,
                    channel=channel.name,
                    caller_num=channel.caller_num,
                    caller_name=channel.caller_name,
                )
            )

    def _on_rename(self, message: Message, now: float, events: list[TrackerEvent]) -> None:
        channel = self._known(message, now, events)
        new_name = message.get("Newname")
        if channel is None or not new_name:
            return
        self._by_name.pop(channel.name, None)
        half = _local_half(channel.name)
        if half is not None:
            halves = self._locals.get(half[0])
            if halves is not None and halves.get(half[1]) == channel.uniqueid:
                del halves[half[1]]
                if not halves:
                    del self._locals[half[0]]
        channel.name = new_name
        self._by_name[new_name] = channel.uniqueid
        half = _local_half(new_name)
        if half is not None:
            self._locals.setdefault(half[0], {})[half[1]] = channel.uniqueid


class _EventSource(Protocol):
    def add_event_observer(
        self, observer: Callable[[Message], object], names: Iterable[str] | None = None
    ) -> None: ...

    def add_resync_observer(self, observer: Callable[[list[Message]], object]) -> None: ...


def attach_tracker(tracker: CallTracker, source: _EventSource, clock: Scheduler) -> None:
    """Feed a tracker from an ``AMIConnection``: events live (only those it acts
    on: about a third of a call's events, its ``AsyncAGIExec``, are not), resync
    after each login."""
    observe = tracker.observe
    source.add_event_observer(
        lambda message: observe(message, clock.seconds()), names=tracker.event_names
    )
    source.add_resync_observer(lambda items: tracker.resync(items, clock.seconds()))

"""Channels and bridges as the test PBX keeps them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.interfaces import IDelayedCall


class AgiSlot(Protocol):
    """A channel's AsyncAGI session (``agi_engine.AgiSession``) as the other modules use it."""

    def add(self, line: str, command_id: str | None) -> None: ...

    def digit(self, digit: str) -> None: ...

    def interrupt(self, hung_up: bool) -> None: ...


class DialerSlot(Protocol):
    """Whoever waits on a leg (``originate.Dialer``) as the other modules use it."""

    def began(self) -> None: ...

    def ringing(self) -> None: ...

    def answer(self) -> None: ...

    def leg_gone(self, leg: Channel) -> None: ...


class CallerSlot(Protocol):
    """The scripted caller on a channel (``caller.CallerRun``) as the other modules use it."""

    def begin(self) -> None: ...

    def prompt_started(self, prompt: str = "") -> None: ...

    def record_started(self) -> None: ...

    def bridged(self) -> None: ...

    def unbridged(self) -> None: ...

    def channel_gone(self, ch: Channel) -> None: ...

STATE_DOWN = 0
STATE_RING = 4
STATE_RINGING = 5
STATE_UP = 6
STATE_BUSY = 7

STATE_DESC = {
    STATE_DOWN: "Down",
    1: "Rsrvd",
    2: "OffHook",
    3: "Dialing",
    STATE_RING: "Ring",
    STATE_RINGING: "Ringing",
    STATE_UP: "Up",
    STATE_BUSY: "Busy",
}

CAUSE_UNKNOWN = 0
CAUSE_NORMAL_CLEARING = 16
CAUSE_USER_BUSY = 17
CAUSE_NO_ANSWER = 19
CAUSE_CONGESTION = 34

CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
}

UNKNOWN = "<unknown>"


@dataclass(eq=False)
class Channel:
    """One channel. ``partner`` is the other half of a Local channel."""

    name: str
    tech: str
    uniqueid: str
    linkedid: str
    created_at: float
    context: str
    exten: str
    priority: int = 1
    state: int = STATE_DOWN
    caller_num: str = UNKNOWN
    caller_name: str = UNKNOWN
    connected_num: str = UNKNOWN
    connected_name: str = UNKNOWN
    language: str = "en"
    accountcode: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    manager_vars: tuple[str, ...] = ()  # manager.conf's channelvars, set by the world
    # the sound files played to this channel, as Asterisk would find them
    # (``agi_commands.heard_as``): what the caller heard, in order
    heard: list[str] = field(default_factory=list)
    hangupcause: int = CAUSE_UNKNOWN
    application: str = ""
    appdata: str = ""
    in_autoloop: bool = False
    partner: Channel | None = None
    bridge: Bridge | None = None
    after_bridge: Callable[[], None] | None = None
    agi: AgiSlot | None = None
    dialer: DialerSlot | None = None
    caller: CallerSlot | None = None
    moh_class: str | None = None
    alive: bool = True
    dying: bool = False
    soft_causes: set[int] = field(default_factory=set)
    timers: list[IDelayedCall] = field(default_factory=list)
    # audio this channel sends to its Local partner: (start time, 16-bit samples)
    speech: list[tuple[float, bytes]] = field(default_factory=list)
    # what runs the channel's dialplan, to resume or stop it (see dialplan.py)
    program: Any = None
    steps_override: list[tuple[str, str]] | None = None

    @property
    def state_desc(self) -> str:
        return STATE_DESC.get(self.state, "Unknown")

    @property
    def half(self) -> int | None:
        if self.name.endswith(";1"):
            return 1
        if self.name.endswith(";2"):
            return 2
        return None

    @property
    def findable(self) -> bool:
        return self.alive and not self.dying

    def cancel_timers(self) -> None:
        for call in self.timers:
            if call.active():
                call.cancel()
        self.timers.clear()


@dataclass(eq=False)
class Bridge:
    uniqueid: str
    channels: list[Channel] = field(default_factory=list)

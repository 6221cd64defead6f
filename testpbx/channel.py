"""Channels and bridges as the test PBX keeps them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall

if TYPE_CHECKING:
    from testpbx.agi_engine import AgiSession
    from testpbx.caller import CallerRun
    from testpbx.originate import Dialer

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
    hangupcause: int = CAUSE_UNKNOWN
    application: str = ""
    appdata: str = ""
    in_autoloop: bool = False
    partner: Channel | None = None
    bridge: Bridge | None = None
    after_bridge: Callable[[], None] | None = None
    agi: AgiSession | None = None
    dialer: Dialer | None = None
    caller: CallerRun | None = None
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

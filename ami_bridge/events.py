"""Typed domain events of the call tracker: what happened to channels and calls.

Each carries ``at``, the injected clock's time (float POSIX seconds) when the
tracker saw it. Caller numbers are in the events because the domain needs
them; mask them before logging (``shenava_base.privacy.mask_number``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# OriginateResponse ``Reason`` codes (transcripts 40-42, README).
ORIGINATE_FAILED = 0
ORIGINATE_HUNG_UP = 1
ORIGINATE_NO_ANSWER = 3
ORIGINATE_ANSWERED = 4
ORIGINATE_BUSY = 5
ORIGINATE_CONGESTION = 8


@dataclass(frozen=True, slots=True)
class TrackerEvent:
    at: float


@dataclass(frozen=True, slots=True)
class ChannelEvent(TrackerEvent):
    uniqueid: str
    linkedid: str
    channel: str


@dataclass(frozen=True, slots=True)
class CallArrived(ChannelEvent):
    """A new call (a new Linkedid) seen live: its first channel was created."""

    caller_num: str
    caller_name: str
    context: str
    exten: str


@dataclass(frozen=True, slots=True)
class CallAdopted(TrackerEvent):
    """A call already in progress, found by a resync: not a new arrival."""

    linkedid: str
    uniqueids: tuple[str, ...]
    started_at: float


@dataclass(frozen=True, slots=True)
class ChannelCreated(ChannelEvent):
    state: int
    local_peer: str | None  # the Uniqueid of the other half of a Local channel


@dataclass(frozen=True, slots=True)
class ChannelAdopted(ChannelEvent):
    """A channel found by a resync; ``application`` is what it runs (``AGI``...)."""

    state: int
    application: str
    caller_num: str
    local_peer: str | None


@dataclass(frozen=True, slots=True)
class ChannelStateChanged(ChannelEvent):
    state: int
    state_desc: str
    previous: int


@dataclass(frozen=True, slots=True)
class CallerIdChanged(ChannelEvent):
    caller_num: str
    caller_name: str


@dataclass(frozen=True, slots=True)
class ChannelRelinked(ChannelEvent):
    """The channel's Linkedid changed (an agent leg bridged to a caller): it moved call."""

    previous_linkedid: str


@dataclass(frozen=True, slots=True)
class ChannelHungUp(ChannelEvent):
    """``cause`` None when the hang-up happened while disconnected (found by resync)."""

    cause: int | None
    cause_txt: str
    missed: bool = False


@dataclass(frozen=True, slots=True)
class CallEnded(TrackerEvent):
    """The call's last channel is gone."""

    linkedid: str
    started_at: float
    adopted: bool
    missed: bool = False


@dataclass(frozen=True, slots=True)
class DialStarted(TrackerEvent):
    caller_uniqueid: str | None  # None for an Originate's own dial
    dest_uniqueid: str
    dest_channel: str
    linkedid: str
    dial_string: str


@dataclass(frozen=True, slots=True)
class DialEnded(TrackerEvent):
    caller_uniqueid: str | None
    dest_uniqueid: str
    dest_channel: str
    linkedid: str
    status: str  # ANSWER, NOANSWER, BUSY, CANCEL, CONGESTION, CHANUNAVAIL...

    @property
    def answered(self) -> bool:
        return self.status == "ANSWER"


@dataclass(frozen=True, slots=True)
class BridgeJoined(ChannelEvent):
    bridge_id: str
    members: int


@dataclass(frozen=True, slots=True)
class BridgeLeft(ChannelEvent):
    bridge_id: str
    members: int


@dataclass(frozen=True, slots=True)
class VariableSet(ChannelEvent):
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class DtmfReceived(ChannelEvent):
    digit: str
    duration_ms: int
    direction: str  # "Received" from the caller, "Sent" towards it


@dataclass(frozen=True, slots=True)
class AgiSessionStarted(ChannelEvent):
    env: dict[str, str] = field(hash=False)


@dataclass(frozen=True, slots=True)
class AgiSessionEnded(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class OriginateFinished(TrackerEvent):
    action_id: str
    success: bool
    reason: int
    uniqueid: str | None  # None when no channel was made (``<unknown>``)
    channel: str

    @property
    def answered(self) -> bool:
        return self.reason == ORIGINATE_ANSWERED

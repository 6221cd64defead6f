"""What routing tells the rest of the daemon: one event type per fact about a call.

The dispatcher (:mod:`routing.dispatch`) publishes these to its subscribers
(``CallDispatcher.subscribe``); the statistics, the metrics, the wallboard,
the screen-pop and the routing log listen. A listener imports these types and
keys its handlers by type (``{CallAnswered: self._answered, ...}``), never by
class name: renaming an event is then an import error, not silence. Every
event is frozen, carries the call's id and ``at`` (POSIX seconds), and holds
plain values only, so this module imports nothing of the project.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CallAbandoned",
    "CallAnswered",
    "CallAnsweredBefore",
    "CallCompleted",
    "CallLeftForChoice",
    "CallOffered",
    "CallQueued",
    "RoutingEvent",
]


@dataclass(frozen=True, slots=True)
class RoutingEvent:
    call_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallQueued(RoutingEvent):
    arrived_at: float
    language: str
    category: str
    caller_number: str


@dataclass(frozen=True, slots=True)
class CallOffered(RoutingEvent):
    agent_id: str


@dataclass(frozen=True, slots=True)
class CallAnswered(RoutingEvent):
    agent_id: str
    joined_at: float
    hard: bool


@dataclass(frozen=True, slots=True)
class CallAnsweredBefore(RoutingEvent):
    """A call an earlier daemon answered, found by a take-over (still bridged, or
    ended while no daemon watched): its answer's SL outcome is counted again,
    ``at`` the original answer, under the same outcome id, so the store counts it
    once whether or not the earlier daemon's journal kept it. (A ``kill -9``
    between the call state's ``talking``, a Redis write, and the outcome's
    journal append, a disk write in a thread, kept only the first: the call was
    never counted.) Only the stored record: no live figure, call log or look."""

    agent_id: str
    joined_at: float
    arrived_at: float
    hard: bool


@dataclass(frozen=True, slots=True)
class CallAbandoned(RoutingEvent):
    joined_at: float
    caller_number: str
    while_ringing_agent: str | None
    found_after_restart: bool = False
    """Counted by a take-over (the caller hung up while no daemon watched): the
    killed daemon may have counted it already, so the live figures take it only
    if its store write is the one that counts it (like ``CallAnsweredBefore``)."""


@dataclass(frozen=True, slots=True)
class CallLeftForChoice(RoutingEvent):
    """The caller chose to be called back or to leave a voicemail instead of waiting."""

    joined_at: float
    choice: str  # "callback" or "voicemail"
    caller_number: str
    position: int | None
    channel: str
    language: str


@dataclass(frozen=True, slots=True)
class CallCompleted(RoutingEvent):
    agent_id: str
    answered_at: float


"""One ``info`` line per routing step of an inbound call, for operators.

It listens to the same routing events the statistics consume (and the
tracker's bridge events, for the moment caller and agent are joined), so the
dispatcher needs no logging of its own. Each line carries the call id and how
long the caller has waited; never the caller's number.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from ami_bridge.events import BridgeJoined, ChannelHungUp, TrackerEvent
from ami_bridge.tracker import handles
from routing.events import (
    CallAbandoned,
    CallAnswered,
    CallCompleted,
    CallLeftForChoice,
    CallOffered,
    CallQueued,
    RoutingEvent,
)

log = Logger(namespace="shenava.routing")


class RoutingLog:
    """Subscribe with :meth:`attach`; keeps only the calls between answer and bridge."""

    def __init__(self) -> None:
        self._joined: dict[str, float] = {}
        self._answered: dict[str, tuple[str, float]] = {}

    def attach(self, dispatcher: Any, tracker: Any) -> RoutingLog:
        dispatcher.subscribe(self.on_routing_event)
        tracker.subscribe(self.on_tracker_event)
        return self

    def on_routing_event(self, event: RoutingEvent) -> None:
        call = event.call_id
        if isinstance(event, CallQueued):
            self._joined[call] = event.at
            log.info(
                "call {call_id} joined the waiting line ({language}, {category})",
                call_id=call, language=event.language, category=event.category,
                step="joined", wait_s=0.0,
            )
        elif isinstance(event, CallOffered):
            log.info(
                "call {call_id}: agent {agent_id} rung after {wait_s:.1f} s waiting",
                call_id=call, agent_id=event.agent_id, step="agent_rung",
                wait_s=self._wait(call, event.at),
            )
        elif isinstance(event, CallAnswered):
            self._joined.pop(call, None)
            self._answered[call] = (event.agent_id, event.at - event.joined_at)
            log.info(
                "call {call_id} answered by agent {agent_id} after {wait_s:.1f} s waiting",
                call_id=call, agent_id=event.agent_id, step="answered",
                wait_s=event.at - event.joined_at, hard=event.hard,
            )
        elif isinstance(event, CallAbandoned):
            self._joined.pop(call, None)
            ringing = event.while_ringing_agent
            log.info(
                "call {call_id} abandoned after {wait_s:.1f} s waiting{ringing_text}",
                call_id=call, step="abandoned", wait_s=event.at - event.joined_at,
                agent_id=ringing,
                ringing_text=f" (agent {ringing} was being rung)" if ringing else "",
            )
        elif isinstance(event, CallLeftForChoice):
            self._joined.pop(call, None)
            log.info(
                "call {call_id} left the line for a {choice} after {wait_s:.1f} s waiting",
                call_id=call, choice=event.choice, step="left_for_choice",
                wait_s=event.at - event.joined_at,
            )
        elif isinstance(event, CallCompleted):
            self._answered.pop(call, None)
            log.info(
                "call {call_id} with agent {agent_id} ended after {talk_s:.1f} s",
                call_id=call, agent_id=event.agent_id, step="completed",
                talk_s=event.at - event.answered_at,
            )

    @handles(BridgeJoined, ChannelHungUp)
    def on_tracker_event(self, event: TrackerEvent) -> None:
        if isinstance(event, BridgeJoined):
            answered = self._answered.pop(event.uniqueid, None)
            if answered is not None:
                agent_id, wait_s = answered
                log.info(
                    "call {call_id} bridged to agent {agent_id} (bridge {bridge_id})",
                    call_id=event.uniqueid, agent_id=agent_id, bridge_id=event.bridge_id,
                    step="bridged", wait_s=wait_s,
                )
        elif isinstance(event, ChannelHungUp):
            self._joined.pop(event.uniqueid, None)
            self._answered.pop(event.uniqueid, None)

    def _wait(self, call: str, now: float) -> float:
        joined = self._joined.get(call)
        return now - joined if joined is not None else 0.0

"""Two-party bridges: enter, leave, and what each side does afterwards."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from testpbx.channel import CAUSE_NORMAL_CLEARING, Bridge, Channel
from testpbx.formatting import bridge_event

if TYPE_CHECKING:
    from testpbx.hub import Hub


def create(world: Hub) -> Bridge:
    bridge = world.new_bridge()
    world.emit(bridge_event("BridgeCreate", bridge, 0))
    return bridge


def enter(world: Hub, bridge: Bridge, ch: Channel, after: Callable[[], None] | None) -> None:
    """``after`` runs when the bridge breaks and ``ch`` is still up."""
    if ch.program is not None:
        ch.program.stop()
    ch.cancel_timers()
    ch.bridge = bridge
    ch.after_bridge = after
    bridge.channels.append(ch)
    world.emit(bridge_event("BridgeEnter", bridge, len(bridge.channels), ch))
    if ch.caller is not None:
        ch.caller.bridged()


def leave(world: Hub, ch: Channel) -> None:
    """``ch`` leaves; a basic two-party bridge then dissolves."""
    bridge = ch.bridge
    if bridge is None:
        return
    _leave_one(world, bridge, ch)
    others = list(bridge.channels)
    for other in others:
        _leave_one(world, bridge, other)
    for other in others:
        after, other.after_bridge = other.after_bridge, None
        if other.alive and after is not None:
            after()
    world.emit(bridge_event("BridgeDestroy", bridge, 0))


def _leave_one(world: Hub, bridge: Bridge, ch: Channel) -> None:
    bridge.channels.remove(ch)
    ch.bridge = None
    if not ch.hangupcause:
        ch.hangupcause = CAUSE_NORMAL_CLEARING
    world.emit(bridge_event("BridgeLeave", bridge, len(bridge.channels), ch))
    if ch.caller is not None:
        ch.caller.unbridged()

"""Keys pressed on a channel: ``DTMFBegin``, ``DTMFEnd``, then the running AGI command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from testpbx.channel import Channel
from testpbx.options import DTMF_DURATION_S

if TYPE_CHECKING:
    from testpbx.hub import Hub

PRESS_LATENCY_S = 0.1  # SendDTMF to DTMFBegin on the far half, as captured


def press(world: Hub, ch: Channel, digit: str) -> None:
    """``digit`` reaches ``ch`` a moment from now (its DTMFBegin), then ends."""
    world.later(None, PRESS_LATENCY_S, _begin, world, ch, digit)


def _begin(world: Hub, ch: Channel, digit: str) -> None:
    if not ch.findable:
        return
    world.emit_channel(
        "DTMFBegin", ch, ("Digit", digit), ("Direction", "Received"), privilege="dtmf,all"
    )
    world.later(None, DTMF_DURATION_S, _end, world, ch, digit)


def _end(world: Hub, ch: Channel, digit: str) -> None:
    if not ch.findable:
        return
    world.emit_channel(
        "DTMFEnd",
        ch,
        ("Digit", digit),
        ("DurationMs", str(int(DTMF_DURATION_S * 1000))),
        ("Direction", "Received"),
        privilege="dtmf,all",
    )
    # Only a running command hears the key; type-ahead is lost (README).
    if ch.agi is not None:
        ch.agi.digit(digit)

"""Music on hold on a channel: its start and stop events (``MusicOnHoldStart``/``Stop``)."""

from __future__ import annotations

from testpbx.channel import Channel
from testpbx.hub import Hub


def stop_moh(world: Hub, ch: Channel) -> None:
    if ch.moh_class is not None:
        ch.moh_class = None
        world.emit_channel("MusicOnHoldStop", ch)


def start_moh(world: Hub, ch: Channel, moh_class: str) -> None:
    ch.moh_class = moh_class or "default"
    world.emit_channel("MusicOnHoldStart", ch, ("Class", ch.moh_class))

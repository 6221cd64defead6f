"""How channels hang up, in the order Asterisk 22 reports it.

The captures fix the choreography: a Local half that ends sends its partner a
``HangupRequest`` carrying its cause, then its own ``Hangup``; the partner then
reacts by what it was doing (in a bridge: it leaves and hangs up at once; in
AsyncAGI: the running command ends with ``result=-1`` and ``AsyncAGIEnd``;
elsewhere: ``SoftHangupRequest`` then ``Hangup``, a tick later).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from testpbx import agi_engine, bridges, moh
from testpbx.channel import CAUSE_NORMAL_CLEARING, Channel
from testpbx.formatting import hangup_event
from testpbx.options import LOCAL_PROPAGATION_S

if TYPE_CHECKING:
    from testpbx.hub import Hub


def soft_hangup(world: Hub, ch: Channel, cause: int = CAUSE_NORMAL_CLEARING) -> None:
    if cause in ch.soft_causes or not ch.alive:
        return
    ch.soft_causes.add(cause)
    world.emit_channel("SoftHangupRequest", ch, ("Cause", str(cause)))


def request_hangup(world: Hub, ch: Channel) -> None:
    """Hang ``ch`` up from outside (``Hangup`` action, a caller putting the phone down).

    A bridged channel shows no ``SoftHangupRequest`` (transcript 43)."""
    if not ch.findable:
        return
    if ch.bridge is None:
        soft_hangup(world, ch)
    end(world, ch)


def pbx_hangup(world: Hub, ch: Channel, cause: int | None = None) -> None:
    """The channel's own dialplan hangs it up (``Hangup()``, AGI ``HANGUP``, falling off the end)."""
    if not ch.alive:
        return
    if cause:
        ch.hangupcause = cause
    elif not ch.hangupcause:
        ch.hangupcause = CAUSE_NORMAL_CLEARING
    soft_hangup(world, ch)
    end(world, ch)


def end(world: Hub, ch: Channel) -> None:
    """Destroy ``ch`` now, telling whoever depends on it."""
    if not ch.alive:
        return
    ch.dying = True
    ch.cancel_timers()
    if ch.program is not None:
        ch.program.stop()
    if ch.agi is not None:
        agi_engine.abort(world, ch, hung_up=True)
    elif ch.moh_class is not None:
        moh.stop_moh(world, ch)
    if ch.bridge is not None:
        bridges.leave(world, ch)
    partner = ch.partner
    tell_partner = partner is not None and partner.alive and not partner.dying
    if partner is not None and tell_partner:
        world.emit_channel("HangupRequest", partner, ("Cause", str(ch.hangupcause)))
    ch.alive = False
    world.forget_channel(ch)
    world.emit(hangup_event(ch))
    if ch.dialer is not None:
        ch.dialer.leg_gone(ch)
    if ch.caller is not None:
        ch.caller.channel_gone(ch)
    if partner is not None and tell_partner:
        remote_hangup(world, partner, ch.hangupcause)


def remote_hangup(world: Hub, ch: Channel, cause: int) -> None:
    """``ch`` learns that its far end is gone."""
    if not ch.alive or ch.dying:
        return
    if cause:
        ch.hangupcause = cause
    if ch.bridge is not None:
        end(world, ch)
        return
    if ch.agi is not None:
        agi_engine.abort(world, ch, hung_up=True)
    ch.dying = True
    ch.cancel_timers()
    if ch.program is not None:
        ch.program.stop()
    world.later(None, LOCAL_PROPAGATION_S, _finish_remote, world, ch)


def _finish_remote(world: Hub, ch: Channel) -> None:
    soft_hangup(world, ch)
    end(world, ch)

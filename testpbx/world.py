"""The PBX world: channels, the event bus, ids, phones and callers.

The hub of the test PBX: it implements :class:`testpbx.hub.Hub`, which the
behaviour modules take, and is the only module that imports them (lazily, as
it wires each call that goes up to the module that does it).

Everything happens on the injected clock. The world knows no sockets: AMI
sessions subscribe to its events (see ``server.py``).
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from ami_bridge.codec import Header
from testpbx.channel import STATE_DOWN, STATE_RING, AgiSlot, Bridge, Channel
from testpbx.formatting import channel_event
from testpbx.hub import Application, RunningCommand
from testpbx.options import CAPTURED_BUSY_ORDERS, BusyOrder, PbxOptions
from testpbx.scripts import CallerScript, PhoneScript

Listener = Callable[[list[Header]], None]
Step = tuple[str, str]

_LOCAL = re.compile(r"^Local/(?P<exten>[^@/]+)@(?P<context>[^/]+)(?:/n)?$", re.I)


@dataclass(frozen=True, slots=True)
class CallHandle:
    """An inbound call placed with :meth:`PbxWorld.place_call`."""

    agi_channel: Channel
    caller_channel: Channel
    world: PbxWorld

    @property
    def uniqueid(self) -> str:
        return self.agi_channel.uniqueid

    def hang_up(self) -> None:
        """The caller hangs up now."""
        from testpbx import teardown

        teardown.request_hangup(self.world, self.caller_channel)


class PbxWorld:
    """One imitation Asterisk. Create it with a clock and options."""

    def __init__(
        self,
        clock: IReactorTime,
        options: PbxOptions | None = None,
        *,
        dialplan: Mapping[str, Sequence[Step]] | None = None,
    ) -> None:
        from testpbx.dialplan import BUILTIN_DIALPLAN

        self.clock = clock
        self.options = options or PbxOptions()
        self.dialplan: dict[str, list[Step]] = {
            k: list(v) for k, v in (dialplan or BUILTIN_DIALPLAN).items()
        }
        support = self.options.support_context
        if support not in self.dialplan:
            self.dialplan[support] = list(self.dialplan["complaints-ivr"])
        self.started_at = clock.seconds()
        self.global_vars: dict[str, str] = {}
        self._listeners: list[Listener] = []
        self._channels: dict[str, Channel] = {}
        self._phones: dict[str, PhoneScript] = {}
        self._uniqueid_seq = 0
        self._local_seq = 0
        self._tech_seq = 0
        self.rng = random.Random(self.options.seed)
        # Its own generator, so drawing busy orders moves no other random value.
        self._busy_rng = random.Random(f"busy-{self.options.seed}")
        self._busy_count = 0

    # -- time -------------------------------------------------------------

    def now(self) -> float:
        return self.clock.seconds()

    def later(
        self, owner: Channel | None, delay: float, fn: Callable[..., Any], *args: Any
    ) -> IDelayedCall:
        """Schedule ``fn``; with an owner, the call dies with its current activity."""
        call = self.clock.callLater(max(0.0, delay), fn, *args)
        if owner is not None:
            owner.timers = [c for c in owner.timers if c.active()]
            owner.timers.append(call)
        return call

    # -- events -----------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def emit(self, headers: list[Header]) -> None:
        for listener in list(self._listeners):
            listener(headers)

    def emit_channel(self, name: str, ch: Channel, *extra: Header, privilege: str = "call,all") -> None:
        self.emit(channel_event(name, ch, *extra, privilege=privilege))

    # -- ids and channels -------------------------------------------------

    def new_uniqueid(self) -> str:
        uid = f"{int(self.now())}.{self._uniqueid_seq}"
        self._uniqueid_seq += 1
        return uid

    def new_bridge_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add_channel(self, ch: Channel) -> Channel:
        ch.manager_vars = self.options.channelvars
        self._channels[ch.name] = ch
        return ch

    def forget_channel(self, ch: Channel) -> None:
        if self._channels.get(ch.name) is ch:
            del self._channels[ch.name]

    def find(self, name: str) -> Channel | None:
        ch = self._channels.get(name)
        if ch is None:
            lowered = name.lower()
            ch = next((c for c in self._channels.values() if c.name.lower() == lowered), None)
        return ch if ch is not None and ch.findable else None

    def channels(self) -> list[Channel]:
        """Live channels, oldest first."""
        return [c for c in self._channels.values() if c.findable]

    def new_local_pair(
        self,
        exten: str,
        context: str,
        *,
        uniqueids: tuple[str | None, str | None] = (None, None),
        linkedid: str | None = None,
    ) -> tuple[Channel, Channel]:
        base = f"Local/{exten}@{context}-{self._local_seq:08x}"
        self._local_seq += 1
        uid1 = uniqueids[0] or self.new_uniqueid()
        uid2 = uniqueids[1] or self.new_uniqueid()
        link = linkedid or uid1
        now = self.now()
        one = Channel(base + ";1", "Local", uid1, link, now, context, exten, state=STATE_DOWN)
        two = Channel(base + ";2", "Local", uid2, link, now, context, exten, state=STATE_RING)
        one.partner, two.partner = two, one
        return self.add_channel(one), self.add_channel(two)

    def new_device_channel(
        self, endpoint: str, *, uniqueid: str | None = None, linkedid: str | None = None
    ) -> Channel:
        tech, _, resource = endpoint.partition("/")
        name = f"{tech}/{resource}-{self._tech_seq:08x}"
        self._tech_seq += 1
        uid = uniqueid or self.new_uniqueid()
        ch = Channel(name, tech, uid, linkedid or uid, self.now(), "default", resource)
        return self.add_channel(ch)

    def parse_local(self, dial: str) -> tuple[str, str] | None:
        match = _LOCAL.match(dial)
        if match is None:
            return None
        return match.group("exten"), match.group("context")

    def busy_order(self) -> BusyOrder:
        """The order of a busy Local leg's last events (see ``PbxOptions.busy_orders``)."""
        fixed = self.options.busy_orders
        index, self._busy_count = self._busy_count, self._busy_count + 1
        if fixed:
            return fixed[min(index, len(fixed) - 1)]
        orders = [order for order, _ in CAPTURED_BUSY_ORDERS]
        weights = [weight for _, weight in CAPTURED_BUSY_ORDERS]
        return self._busy_rng.choices(orders, weights)[0]

    # -- dialplan and phones ----------------------------------------------

    def register_phone(self, endpoint: str, script: PhoneScript) -> None:
        """``PJSIP/101`` answers by ``script``; so do ``Local/101@agent-leg``
        and ``Local/101@agent-phone`` (the transcripts' agent contexts)."""
        self._phones[endpoint.lower()] = script

    def phone(self, endpoint: str) -> PhoneScript | None:
        return self._phones.get(endpoint.lower())

    def phone_for_exten(self, exten: str) -> PhoneScript | None:
        for endpoint, script in self._phones.items():
            if endpoint.rpartition("/")[2] == exten.lower():
                return script
        return None

    def steps(self, context: str, exten: str) -> list[Step] | None:
        from testpbx.dialplan import phone_program

        if context in ("agent-leg", "agent-phone"):
            script = self.phone_for_exten(exten)
            if script is not None:
                return phone_program(script)
        return self.dialplan.get(context)

    # -- the calls that go up (testpbx.hub.Hub) ----------------------------

    def goto(self, ch: Channel, context: str, exten: str, priority: int = 1) -> None:
        from testpbx import dialplan

        dialplan.goto(self, ch, context, exten, priority)

    def resume_next(self, ch: Channel) -> None:
        from testpbx import dialplan

        dialplan.resume_next(self, ch)

    def application(self, name: str) -> Application | None:
        from testpbx import dialplan

        return dialplan.APPS.get(name)

    def agi_command(self, session: AgiSlot, line: str, command_id: str | None) -> RunningCommand:
        from testpbx.agi_commands import make_command
        from testpbx.agi_engine import AgiSession

        assert isinstance(session, AgiSession), "an AGI command runs on the world's own sessions"
        return make_command(session, line, command_id)

    # -- bridges ------------------------------------------------------------

    def new_bridge(self) -> Bridge:
        return Bridge(self.new_bridge_id())

    # -- scripted callers --------------------------------------------------

    def place_call(self, script: CallerScript) -> CallHandle:
        """An inbound call arrives on the support line, played by ``script``."""
        from testpbx.caller import start_scripted_call

        one, two = start_scripted_call(self, script)
        return CallHandle(one, two, self)

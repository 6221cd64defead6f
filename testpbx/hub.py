"""The world as the other modules of the test PBX see it: the hub they hang from.

:class:`testpbx.world.PbxWorld` is the one implementation. The behaviour
modules (calls, the dialplan, originate, AsyncAGI, bridges, tear-down) take a
:class:`Hub` and never import the world, nor a module above them: a call that
must go up (an originated leg entering the dialplan, an AGI session starting
a command) goes through the hub, which the world wires to the module that
does it. So the imports of the test PBX run one way (docs/architecture.md).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.interfaces import IDelayedCall

from ami_bridge.message import Header
from testpbx.channel import AgiSlot, Bridge, Channel
from testpbx.options import BusyOrder, PbxOptions
from testpbx.scripts import PhoneScript

Step = tuple[str, str]
"""One dialplan step: ``(application, data)``."""

Application = Callable[["Hub", Channel, str], "float | None"]
"""A dialplan application: runs on a channel, returns how long it takes (None: it settles itself)."""


class RunningCommand(Protocol):
    """An AsyncAGI command (``agi_commands.AgiCommand``) as its session drives it."""

    internal_id: str

    @property
    def line(self) -> str: ...

    @property
    def command_id(self) -> str | None: ...

    def start(self) -> None: ...

    def digit(self, digit: str) -> None: ...

    def cancel(self) -> None: ...

    def interrupted(self, hung_up: bool) -> str: ...


class Hub(Protocol):
    """What a behaviour module may ask of the world."""

    @property
    def options(self) -> PbxOptions: ...

    @property
    def rng(self) -> random.Random: ...

    @property
    def global_vars(self) -> dict[str, str]: ...

    # time and events
    def now(self) -> float: ...

    def later(
        self, owner: Channel | None, delay: float, fn: Callable[..., Any], *args: Any
    ) -> IDelayedCall: ...

    def emit(self, headers: list[Header]) -> None: ...

    def emit_channel(self, name: str, ch: Channel, *extra: Header, privilege: str = "call,all") -> None: ...

    # channels, bridges, phones
    def find(self, name: str) -> Channel | None: ...

    def forget_channel(self, ch: Channel) -> None: ...

    def new_local_pair(
        self,
        exten: str,
        context: str,
        *,
        uniqueids: tuple[str | None, str | None] = (None, None),
        linkedid: str | None = None,
    ) -> tuple[Channel, Channel]: ...

    def new_device_channel(
        self, endpoint: str, *, uniqueid: str | None = None, linkedid: str | None = None
    ) -> Channel: ...

    def new_bridge(self) -> Bridge: ...

    def parse_local(self, dial: str) -> tuple[str, str] | None: ...

    def busy_order(self) -> BusyOrder: ...

    def phone(self, endpoint: str) -> PhoneScript | None: ...

    def steps(self, context: str, exten: str) -> list[Step] | None: ...

    # calls that go up, wired by the world
    def goto(self, ch: Channel, context: str, exten: str, priority: int = 1) -> None:
        """Send ``ch`` into the dialplan (``dialplan.goto``)."""
        ...

    def resume_next(self, ch: Channel) -> None:
        """Carry on with ``ch``'s next dialplan step (``dialplan.resume_next``)."""
        ...

    def application(self, name: str) -> Application | None:
        """The dialplan application called ``name`` (``dialplan.APPS``)."""
        ...

    def agi_command(self, session: AgiSlot, line: str, command_id: str | None) -> RunningCommand:
        """The AsyncAGI command ``line`` on ``session`` (``agi_commands.make_command``)."""
        ...

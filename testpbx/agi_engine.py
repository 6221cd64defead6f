"""AsyncAGI: the session on a channel and its queue of commands.

The ``AGI`` action queues a command; a moment later it starts
(``AGIExecStart``), and when it is over ``AsyncAGIExec`` carries its
URL-encoded ``Result`` and the client's ``CommandId``. The commands
themselves live in ``agi_commands.py``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall

from testpbx import moh
from testpbx.channel import Channel
from testpbx.formatting import agi_env, uri_encode

if TYPE_CHECKING:
    from testpbx.hub import Hub, RunningCommand

AGI_PRIVILEGE = "agi,all"


class AgiSession:
    def __init__(self, world: Hub, ch: Channel) -> None:
        self.world = world
        self.channel = ch
        self.queue: deque[tuple[str, str | None]] = deque()
        self.running: RunningCommand | None = None
        self.pickup: IDelayedCall | None = None

    def add(self, line: str, command_id: str | None) -> None:
        self.queue.append((line, command_id))
        self._schedule()

    def _schedule(self) -> None:
        if self.running is None and self.pickup is None and self.queue:
            self.pickup = self.world.later(None, self.world.options.agi_pickup_s, self._next)

    def _next(self) -> None:
        self.pickup = None
        ch = self.channel
        if ch.agi is not self or not self.queue:
            return
        line, command_id = self.queue.popleft()
        command = self.world.agi_command(self, line, command_id)
        self.running = command
        ch_fields = [("CommandId", str(self.world.rng.getrandbits(31))), ("Command", line)]
        command.internal_id = ch_fields[0][1]
        self.world.emit_channel("AGIExecStart", ch, *ch_fields, privilege=AGI_PRIVILEGE)
        command.start()

    def digit(self, digit: str) -> None:
        if self.running is not None:
            self.running.digit(digit)

    def finish(self, command: RunningCommand, result: str) -> None:
        """``command`` is over with ``result`` (one AGI reply line)."""
        if self.running is not command:
            return
        command.cancel()
        self.running = None
        ch = self.channel
        code = result[:3]
        self.world.emit_channel(
            "AGIExecEnd", ch, ("CommandId", command.internal_id), ("Command", command.line),
            ("ResultCode", code), ("Result", "Success" if code == "200" else "Failure"),
            privilege=AGI_PRIVILEGE,
        )
        self._send_exec(command, result)
        self._schedule()

    def _send_exec(self, command: RunningCommand, result: str) -> None:
        extra = [("Result", uri_encode(result + "\n"))]
        if command.command_id:
            extra.append(("CommandId", command.command_id))
        self.world.emit_channel("AsyncAGIExec", self.channel, *extra, privilege=AGI_PRIVILEGE)

    def interrupt(self, hung_up: bool) -> None:
        if self.pickup is not None and self.pickup.active():
            self.pickup.cancel()
        self.pickup = None
        command, self.running = self.running, None
        if command is not None:
            command.cancel()
            self._send_exec(command, command.interrupted(hung_up))


def start_session(world: Hub, ch: Channel) -> None:
    ch.agi = AgiSession(world, ch)
    world.emit_channel(
        "AsyncAGIStart", ch, ("Env", agi_env(ch, world.options.asterisk_version)),
        privilege=AGI_PRIVILEGE,
    )


def end_session(world: Hub, ch: Channel) -> None:
    if ch.agi is None:
        return
    ch.agi = None
    world.emit_channel("AsyncAGIEnd", ch, privilege=AGI_PRIVILEGE)


def abort(world: Hub, ch: Channel, *, hung_up: bool) -> None:
    """Hang-up or Redirect: the running command ends with ``result=-1``, then ``AsyncAGIEnd``."""
    session = ch.agi
    if session is None:
        return
    moh.stop_moh(world, ch)
    session.interrupt(hung_up)
    end_session(world, ch)


def drop(world: Hub, ch: Channel) -> None:
    """An AMI ``Bridge`` takes the channel: the session ends with no event (transcripts 40, 43)."""
    session = ch.agi
    if not isinstance(session, AgiSession):
        return
    if session.pickup is not None and session.pickup.active():
        session.pickup.cancel()
    if session.running is not None:
        session.running.cancel()
        session.running = None
    ch.agi = None

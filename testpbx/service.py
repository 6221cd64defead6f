"""Starting a test PBX for the demo and the ``shenava testpbx`` subcommand."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from testpbx.options import AmiRights, PbxOptions
from testpbx.scripts import CallerScript, PhoneMode, PhoneScript
from testpbx.server import listen_testpbx, port_number
from testpbx.world import PbxWorld

DEMO_CALL_EVERY_S = 20.0
SUPPORT_CONTEXT = "shenava-complaints"
"""The support line of the shipped dialplan (etc/asterisk/extensions.conf) and
of ``site.support_context``'s default; the captures used ``complaints-ivr``."""
log = Logger()

DEMO_PHONES = {
    "PJSIP/101": PhoneScript(answer_after_s=2.0, talk_s=30.0),
    "PJSIP/102": PhoneScript(answer_after_s=4.0, talk_s=45.0),
    "PJSIP/103": PhoneScript(mode=PhoneMode.NO_ANSWER),
}


def demo_callers(audio: Path | None = None) -> list[CallerScript]:
    """A few callers that exercise the menus: quick, slow, impatient, voicemail."""
    return [
        CallerScript(number="09121234567", name="Sara", language="fa", answers=("1", "2", "12345#")),
        CallerScript(number="09351112233", name="John", language="en", answers=("2", "1", "", "3"),
                     patience_s=90.0),
        CallerScript(number="09187654321", name="Maryam", answers=("1",), hangup_after_s=8.0),
        CallerScript(number="02188776655", name="Ali", answers=("1", "4", "9"), audio=audio),
    ]


def start_testpbx(
    reactor: Any,
    host: str,
    port: int,
    username: str,
    secret: str,
    recordings_root: Path,
    demo_callers_on: bool = False,
    caller_audio: Path | None = None,
    support_context: str = SUPPORT_CONTEXT,
    rights: AmiRights | None = None,
    channelvars: tuple[str, ...] = (),
) -> tuple[PbxWorld, IListeningPort]:
    """Create a world on ``reactor``, register the demo phones and listen.

    With ``demo_callers_on`` a scripted caller arrives every 20 s. ``rights``:
    what ``username`` may see and do (default: everything); ``channelvars``:
    manager.conf's, sent as ``ChanVariable`` with every channel event."""
    options = PbxOptions(
        users={username: secret}, recordings_root=recordings_root, support_context=support_context,
        rights={username: rights} if rights is not None else {}, channelvars=channelvars,
    )
    world = PbxWorld(reactor, options)
    for endpoint, script in DEMO_PHONES.items():
        world.register_phone(endpoint, script)
    listening = listen_testpbx(reactor, port, world, interface=host)
    if demo_callers_on:
        scripts = demo_callers(caller_audio)
        turn = iter(range(1 << 62))

        def next_caller() -> None:
            world.place_call(scripts[next(turn) % len(scripts)])

        loop = LoopingCall(next_caller)
        loop.clock = reactor
        loop.start(DEMO_CALL_EVERY_S, now=False)
    log.info("test PBX listening on {host}:{port}", host=host, port=port_number(listening))
    return world, listening


def run(reactor: Any, argv: Sequence[str]) -> Deferred[None]:
    """``shenava testpbx`` body: parse options, start, run until the reactor stops.

    Options: ``--host``, ``--port``, ``--username``, ``--secret``,
    ``--recordings``, ``--demo-callers``, ``--caller-audio``."""
    parser = argparse.ArgumentParser(prog="shenava testpbx", description="Run the test PBX (AMI).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5038)
    parser.add_argument("--username", default="shenava")
    parser.add_argument("--secret", default="s3cret")
    parser.add_argument("--recordings", type=Path, default=Path("recordings"))
    parser.add_argument("--demo-callers", action="store_true")
    parser.add_argument("--caller-audio", type=Path, default=None)
    parser.add_argument("--support-context", default=SUPPORT_CONTEXT)
    args = parser.parse_args(list(argv))
    start_testpbx(reactor, args.host, args.port, args.username, args.secret, args.recordings,
                  args.demo_callers, args.caller_audio, args.support_context)
    return Deferred()

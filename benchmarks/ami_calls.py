"""The daemon's AMI layer per call, in memory: actions out, responses and events in.

    .venv/bin/python benchmarks/ami_calls.py [--calls 2000] [--repeat 5]

What ``benchmarks/system.py`` profiles as "AMI input" without the rest of the
daemon: an ``AMIProtocol`` on a ``task.Clock`` with a transport that keeps
nothing, its events handed to a ``CallTracker`` (no subscribers), and for
each call the AMI traffic of one caller of the demo's mix as the test PBX
sends it (``system.py`` counts about 48 events per call), built before\nthe clock starts: two Local channel
halves created, three state changes, the AGI session, 22 AGI commands (each an
``Action: AGI`` written, its ``Response: Success`` and its ``AsyncAGIExec``
read together), 11 DTMF digits, a dial, two bridge entries and a leave, an
originate's response and the two hang-ups. Reads are one message each (the
AGI response and its result together), as on a socket with ``TCP_NODELAY``.

It times the whole of it (CPU time of this process, so a busy machine
matters less) and reports microseconds per call and per message
(messages read, actions written); the best round counts. The last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twisted.internet.task import Clock  # noqa: E402

from ami_bridge.protocol import AMIProtocol  # noqa: E402
from ami_bridge.tracker import CallTracker  # noqa: E402

AGI_COMMANDS = 22
DIGITS = 11

CHANNEL = (
    "Privilege: call,all\r\nChannel: Local/s@caller-sim-{n:08x};{half}\r\nChannelState: {state}\r\n"
    "ChannelStateDesc: Up\r\nCallerIDNum: 09121234567\r\nCallerIDName: Test Caller\r\n"
    "ConnectedLineNum: 09121234567\r\nConnectedLineName: Test Caller\r\nLanguage: fa\r\n"
    "AccountCode: \r\nContext: complaints-ivr\r\nExten: s\r\nPriority: 1\r\n"
    "Uniqueid: 1795339506.{u}\r\nLinkedid: 1795339506.{link}"
)


class _Sink:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def loseConnection(self) -> None:
        pass


def event(name: str, n: int, half: int, extra: str = "", state: int = 6) -> bytes:
    u = 2 * n + half - 1
    body = CHANNEL.format(n=n, half=half, state=state, u=u, link=2 * n)
    return (f"Event: {name}\r\n{body}{extra}\r\n\r\n").encode()


Step = tuple[str, str, bytes]
"""(AGI channel, command id, bytes read after sending it), or ("", "", bytes) for a read."""


def call_traffic(n: int, first_action: int) -> list[Step]:
    """One call's reads, built before timing (ActionIDs are the protocol's, in order)."""
    steps: list[Step] = []

    def read(data: bytes) -> None:
        steps.append(("", "", data))

    channel = f"Local/s@caller-sim-{n:08x};1"
    for half in (1, 2):
        read(event("Newchannel", n, half, state=0))
    for half in (1, 2, 1):
        read(event("Newstate", n, half))
    read(event("AsyncAGIStart", n, 1, "\r\nEnv: agi_request%3A%20async%0Aagi_channel%3A%20x%0A%0A"))
    for i in range(AGI_COMMANDS):
        action_id = f"shenava-{first_action + i}"
        steps.append((channel, f"c{n}-{i}", (
            f"Response: Success\r\nActionID: {action_id}\r\nMessage: Added AGI command to queue"
            "\r\n\r\n".encode()
            + event("AsyncAGIExec", n, 1, f"\r\nResult: 200%20result%3D1%0A\r\nCommandId: c{n}-{i}")
        )))
    for _ in range(DIGITS):
        read(event("DTMFEnd", n, 1, "\r\nDigit: 1\r\nDurationMs: 120\r\nDirection: Received"))
    read(event("DialBegin", n, 1, "\r\nDestChannel: PJSIP/3001-01\r\nDestUniqueid: 1795339507.1"
                                  "\r\nDestLinkedid: 1795339506.1\r\nDialString: 3001"))
    read(event("DialEnd", n, 1, "\r\nDestChannel: PJSIP/3001-01\r\nDestUniqueid: 1795339507.1"
                                "\r\nDestLinkedid: 1795339506.1\r\nDialStatus: ANSWER"))
    for half in (1, 2):
        read(event("BridgeEnter", n, half, "\r\nBridgeUniqueid: b-1\r\nBridgeNumChannels: 2"))
    read(event("BridgeLeave", n, 2, "\r\nBridgeUniqueid: b-1\r\nBridgeNumChannels: 1"))
    read(event("OriginateResponse", n, 2, "\r\nActionID: x-1\r\nResponse: Success\r\nReason: 4"))
    read(event("AsyncAGIEnd", n, 1))
    for half in (1, 2):
        read(event("Hangup", n, half, "\r\nCause: 16\r\nCause-txt: Normal Clearing"))
    return steps


def run_round(calls: int) -> tuple[float, int, int]:
    clock = Clock()
    protocol = AMIProtocol(cast(Any, clock))
    sink = _Sink()
    protocol.makeConnection(cast(Any, sink))
    protocol.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
    tracker = CallTracker()
    # as ``attach_tracker`` wires it: only the events the tracker acts on
    protocol.add_event_observer(
        lambda message: tracker.handle(message, 0.0), names=tracker.event_names
    )
    traffic = [call_traffic(n, 1 + (n - 1) * AGI_COMMANDS) for n in range(1, calls + 1)]
    # each AGI step reads two messages (its response and its result)
    messages = sum(len(steps) for steps in traffic) + calls * AGI_COMMANDS
    results: list[object] = []
    keep = results.append
    feed = protocol.dataReceived
    agi = protocol.agi
    started = time.process_time()
    for steps in traffic:
        for channel, command_id, data in steps:
            if channel:
                agi(channel, "SET VARIABLE IVR_STEP 3", command_id=command_id).addCallback(keep)
            feed(data)
        sink.written.clear()
    took = time.process_time() - started
    if tracker.channels or protocol.pending_count or len(results) != calls * AGI_COMMANDS:
        raise SystemExit("calls left behind: the traffic is not what the protocol expects")
    return took, messages, calls * AGI_COMMANDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    best: tuple[float, int, int] | None = None
    for _ in range(args.repeat):
        result = run_round(args.calls)
        if best is None or result[0] < best[0]:
            best = result
    assert best is not None
    took, messages, actions = best
    out: dict[str, Any] = {
        "bench": "ami_calls",
        "calls": args.calls,
        "messages_per_call": round(messages / args.calls, 1),
        "actions_per_call": round(actions / args.calls, 1),
        "us_per_call": round(took * 1e6 / args.calls, 1),
        "us_per_message": round(took * 1e6 / (messages + actions), 2),
        "python": platform.python_version(),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

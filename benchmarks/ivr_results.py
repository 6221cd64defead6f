"""The IVR's work per AGI result, in memory: result read, menus stepped, next command written.

    .venv/bin/python benchmarks/ivr_results.py [--sessions 2000] [--repeat 5] [--profile PATH]

What ``benchmarks/system.py`` profiles as "``_on_agi_exec`` and what it
triggers", without sockets, a reactor, Redis or a PBX process: ``--sessions``
callers each walk the default menus with an :class:`~ivr.runner.IVRRunner`
(the real :class:`~ivr.machine.MenuMachine`) whose commands go through an
:class:`~ami_bridge.protocol.AMIProtocol` on a transport that keeps the bytes.
A scripted PBX in the same process (its time not counted) reads the
``Action: AGI`` written, and answers each with its ``Response: Success`` and
its ``AsyncAGIExec`` in one read, as the test PBX does: ``GET DATA`` with the
caller's next keys, prompts played to the end, variables set. The caller mix
is ``ivr_sessions.py``'s (a new complaint, a status look-up, voicemail,
callback, an agent), seeded; the outcome goes to a sink that keeps nothing.

Timed: this process's CPU time inside ``AMIProtocol.dataReceived`` (the
result read, the Deferred chain into the runner, the machine's step, the next
command written), per AGI result and per session; the best round counts. The
garbage collector is tuned as ``shenava run`` tunes it.
``--profile PATH`` writes a cProfile of one more round (exact call counts per
result, which load does not move). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twisted.internet.defer import Deferred, succeed  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

from ami_bridge.agi import AGIResult  # noqa: E402
from ami_bridge.codec import AMIDecoder  # noqa: E402
from ami_bridge.protocol import AMIProtocol  # noqa: E402
from ivr.machine import MenuMachine, Outcome  # noqa: E402
from ivr.menu_schema import load_menus  # noqa: E402
from ivr.runner import IVRRunner  # noqa: E402


def caller_answers(count: int, seed: int) -> list[list[str]]:
    """Each caller's keys, one entry per ``GET DATA`` (``ivr_sessions.py``'s mix)."""
    from shenava.demo import luhn_complete

    rng = random.Random(seed)
    out = []
    for _ in range(count):
        lang = rng.choice("12")
        path = rng.choices(["complaint", "status", "voicemail", "callback", "agent"],
                           weights=[50, 15, 10, 10, 15])[0]
        if path == "complaint":
            account = luhn_complete("".join(rng.choice("0123456789") for _ in range(9)))
            answers = [lang, "1", str(rng.randint(1, 6)), rng.choice("12"), rng.choice("123"),
                       account, "1"]
        elif path == "status":
            answers = [lang, "2", "".join(rng.choice("0123456789") for _ in range(7)), "1", ""]
        elif path == "voicemail":
            answers = [lang, "4"]
        elif path == "callback":
            answers = [lang, "5", "1"]
        else:
            answers = [lang, "3"]
        out.append(answers)
    return out


class _Sink:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def loseConnection(self) -> None:
        pass


class _Channel:
    def __init__(self, ami: AMIProtocol, name: str) -> None:
        self.ami = ami
        self.name = name

    def execute(self, command: str) -> Deferred[AGIResult]:
        return self.ami.agi(self.name, command)


class _ReplyChannel(_Channel):
    """As the daemon's channel (``shenava.callflow``) when the protocol has
    ``agi_reply``: one reply callable per command instead of a Deferred."""

    def start(self, command: str, reply: Any) -> str:
        return self.ami.agi_reply(self.name, command, reply)

    def forget(self, command_id: str) -> None:
        self.ami.forget_agi(command_id)


class _Outcomes:
    def __init__(self) -> None:
        self.count = 0

    def on_outcome(self, outcome: Outcome) -> None:
        self.count += 1


def _answer(command: str, keys: list[str]) -> str:
    if command.startswith("GET DATA"):
        if not keys:
            return "200 result= (timeout)"
        return f"200 result={keys.pop(0)}"
    if command.startswith("STREAM FILE"):
        return "200 result=0 endpos=16000"
    if command.startswith(("SAY DIGITS", "EXEC", "RECORD FILE")):
        return "200 result=0"
    if command.startswith("HANGUP"):
        return "200 result=1"
    return "200 result=1"


def run_round(sessions: int, seed: int = 7, profiler: Any = None) -> tuple[float, int, int]:
    """(CPU seconds in dataReceived, AGI results, outcomes); ``profiler`` (a
    ``cProfile.Profile``) is enabled around the reads only."""
    clock = Clock()
    protocol = AMIProtocol(cast(Any, clock))
    sink = _Sink()
    protocol.makeConnection(cast(Any, sink))
    protocol.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
    machine = MenuMachine(load_menus())
    channel_kind = _ReplyChannel if hasattr(protocol, "agi_reply") else _Channel
    outcomes = _Outcomes()
    keys: dict[str, list[str]] = {}
    for n, answers in enumerate(caller_answers(sessions, seed)):
        channel = f"Local/s@caller-sim-{n:08x};1"
        keys[channel] = list(answers)
        runner = IVRRunner(machine, channel_kind(protocol, channel), cast(Any, clock), outcomes,
                           lambda ref: succeed("in_progress"), channel_language="en",
                           recording_name=lambda: "shenava-vm/vm-0")
        runner.run(f"1795339506.{n}", "09121234567")
    decoder = AMIDecoder(expect_banner=False)
    results = 0
    took = 0.0
    feed = protocol.dataReceived
    while sink.written:
        data = b"".join(sink.written)
        sink.written.clear()
        reads = []
        for action in decoder.feed(data):
            command = action.get("Command") or ""
            channel = action.get("Channel") or ""
            result = quote(_answer(command, keys[channel]) + "\n")
            reads.append((
                f"Response: Success\r\nActionID: {action.get('ActionID')}\r\n"
                "Message: Added AGI command to queue\r\n\r\n"
                f"Event: AsyncAGIExec\r\nPrivilege: agi,all\r\nChannel: {channel}\r\n"
                "ChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: 09121234567\r\n"
                "CallerIDName: Test Caller\r\nLanguage: fa\r\nContext: complaints-ivr\r\n"
                f"Exten: s\r\nPriority: 1\r\nUniqueid: 1795339506.1\r\n"
                f"CommandId: {action.get('CommandID')}\r\nResult: {result}\r\n\r\n"
            ).encode())
        results += len(reads)
        if profiler is not None:
            profiler.enable()
        started = time.process_time()
        for read in reads:
            feed(read)
        took += time.process_time() - started
        if profiler is not None:
            profiler.disable()
    if protocol.pending_count:
        raise SystemExit("commands left unanswered")
    return took, results, outcomes.count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", help="write a cProfile of one more round here")
    args = parser.parse_args(argv)
    # the collector as ``shenava run`` tunes it (shenava/daemon.py): start-up
    # frozen, a young collection every 50,000 new containers
    from shenava.daemon import tune_gc

    tune_gc(50_000)
    best: tuple[float, int, int] | None = None
    for _ in range(args.repeat):
        result = run_round(args.sessions)
        if best is None or result[0] < best[0]:
            best = result
    assert best is not None
    took, results, outcomes = best
    out: dict[str, Any] = {
        "bench": "ivr_results",
        "sessions": args.sessions,
        "outcomes": outcomes,
        "agi_results_per_session": round(results / args.sessions, 2),
        "us_per_agi_result": round(took * 1e6 / results, 2),
        "us_per_session": round(took * 1e6 / args.sessions, 1),
        "python": platform.python_version(),
    }
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        _, results, _ = run_round(args.sessions, profiler=profiler)
        profiler.dump_stats(args.profile)
        calls = pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]
        out["python_calls_per_agi_result"] = round(calls / results, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

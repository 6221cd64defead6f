"""Many callers in the IVR at once: the daemon against the test PBX over loopback TCP.

    .venv/bin/python benchmarks/ivr_sessions.py [--sessions 500] [--ramp-s 2] [--limit-s 180]
                                                [--reactor default|asyncio] [--no-channelvars]

A child process (``multiprocessing``, spawn) runs the test PBX on a free
loopback port with its own reactor. This process runs the daemon as
``shenava run`` builds it (:class:`shenava.app.Shenava`: AMI connection,
tracker, call flow, IVR runners, dispatcher) on the real reactor, but
**without Redis** (``redis=None``): the packages that need it are not
installed at all, so no complaint is registered, no statistics, SLA or agent
time are written and no recording is kept. The figures are the IVR and
routing alone; ``benchmarks/stats_pipeline.py`` measures the statistics with a
real Redis, and the whole system with Redis is issue #16's ``system.py``
(not written yet).
Once the daemon is logged in, the child places ``--sessions`` scripted
callers within ``--ramp-s`` seconds, each walking the default menus (a
seeded mix: a full new complaint, status look-up, voicemail, callback, agent),
so that all of them are in the IVR at the same time.

A session is *completed* when the call flow hands on its outcome with what the
caller asked for; *lost* when it never started, never ended, or ended as a
failure or a hang-up the caller did not make. ``max_in_ivr`` is the largest
number of IVR sessions seen running at once (sampled every 100 ms).
``daemon_cpu_s_per_session`` is this process's CPU time (user + system) from
the first call to the last outcome, divided by the sessions: the PBX's work is
in the child and not counted. ``agi_commands_per_session``: the AGI commands
answered over the run (``AsyncAGIExec``), per session. The test PBX sends
the shipped manager.conf's ``channelvars`` (``ChanVariable: SHENAVA_LANG=``)
with channel events, as an Asterisk configured so does; ``--no-channelvars``
for one that is not (the daemon then asks with ``GET VARIABLE``). No agent is logged in: callers who ask for one
wait on hold. Loopback only; the run is bounded by ``--limit-s``. The last line
of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HOST = "127.0.0.1"
USER, SECRET = "shenava", "bench-secret"
DEFAULT_SESSIONS = 500
DEFAULT_RAMP_S = 2.0
DEFAULT_LIMIT_S = 180.0
PROMPT_S = 0.5  # every prompt plays this long (the PBX's default is 1 s)
SAMPLE_EVERY_S = 0.1


# --- the scripted callers ----------------------------------------------------------


def caller_scripts(count: int, seed: int) -> list[Any]:
    from shenava.demo import luhn_complete
    from testpbx.scripts import AfterSpeaking, CallerScript

    rng = random.Random(seed)
    scripts = []
    for i in range(count):
        lang = rng.choice("12")
        path = rng.choices(["complaint", "status", "voicemail", "callback", "agent"],
                           weights=[50, 15, 10, 10, 15])[0]
        if path == "complaint":
            account = luhn_complete("".join(rng.choice("0123456789") for _ in range(9))) + "#"
            answers = [lang, "1", str(rng.randint(1, 6)), rng.choice("12"), rng.choice("123"),
                       account, "1"]
        elif path == "status":
            answers = [lang, "2", "".join(rng.choice("0123456789") for _ in range(7)) + "#", "1", ""]
        elif path == "voicemail":
            answers = [lang, "4"]
        elif path == "callback":
            answers = [lang, "5", "1"]
        else:
            answers = [lang, "3"]
        scripts.append(CallerScript(
            number=f"0912{i:07d}", name=f"Caller {i}", language=None, answers=tuple(answers),
            answer_delay_s=rng.uniform(0.3, 0.8), digit_gap_s=0.1,
            after_speaking=AfterSpeaking.PRESS_HASH, speak_after_s=0.5,
        ))
    return scripts


# --- the PBX child -----------------------------------------------------------------


def pbx_child(
    conn: Connection, sessions: int, ramp_s: float, seed: int, root: str,
    channelvars: tuple[str, ...] = (),
) -> None:
    from twisted.internet import reactor as global_reactor
    from twisted.internet.task import LoopingCall

    from shenava.config import default_config
    from testpbx.options import PbxOptions
    from testpbx.server import listen_testpbx
    from testpbx.world import PbxWorld

    reactor: Any = global_reactor
    support = default_config().site.support_context
    prompt_names = _prompt_names()
    world = PbxWorld(reactor, PbxOptions(
        users={USER: SECRET}, recordings_root=Path(root), support_context=support,
        prompt_lengths_s={f"shenava/{name}": PROMPT_S for name in prompt_names}
        | {name: PROMPT_S for name in prompt_names},
        seed=seed, channelvars=channelvars,
    ))
    port: Any = listen_testpbx(reactor, 0, world, interface=HOST)
    conn.send(("port", port.getHost().port))
    scripts = caller_scripts(sessions, seed)

    def place(i: int) -> None:
        world.place_call(scripts[i])

    def poll() -> None:
        while conn.poll():
            message = conn.recv()
            if message == "go":
                for i in range(sessions):
                    reactor.callLater(ramp_s * i / max(1, sessions), place, i)
                conn.send(("placed", sessions))
            elif message == "stop":
                reactor.stop()

    loop = LoopingCall(poll)
    loop.start(0.05)
    reactor.run()


def _prompt_names() -> list[str]:
    import tomllib

    import ivr.prompt_texts as texts

    folder = Path(texts.__file__).parent
    names: set[str] = set()
    for path in folder.glob("*.toml"):
        names.update(_flat_keys(tomllib.loads(path.read_text(encoding="utf-8"))))
    return sorted(names)


def _flat_keys(table: dict[str, Any]) -> list[str]:
    keys = []
    for key, value in table.items():
        keys.extend(_flat_keys(value) if isinstance(value, dict) else [key])
    return keys


# --- the daemon side -----------------------------------------------------------------


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _channelvars(args: argparse.Namespace) -> tuple[str, ...]:
    """The shipped manager.conf's ``channelvars`` (``SHENAVA_LANG``: the test PBX
    sends it with every channel event), none with ``--no-channelvars``."""
    if args.no_channelvars:
        return ()
    from shenava.check_config import manager_channelvars

    return manager_channelvars(Path(__file__).resolve().parents[1] / "etc" / "asterisk" / "manager.conf")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    if args.reactor == "asyncio":
        from shenava_base.aio import install_asyncio_reactor

        install_asyncio_reactor()
    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    from ivr.menu_schema import Request
    from shenava.app import Shenava
    from shenava.config import default_config

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    root = tempfile.mkdtemp(prefix="shenava-bench-ivr-")
    proc = ctx.Process(
        target=pbx_child, args=(child, args.sessions, args.ramp_s, args.seed, root, _channelvars(args)),
        daemon=True
    )
    proc.start()
    result: dict[str, Any] = {}
    try:
        if not parent.poll(60):
            raise SystemExit("the test PBX child did not start")
        _, port = parent.recv()
        config = default_config()
        config = replace(config, ami=replace(config.ami, host=HOST, port=port, secret=SECRET))
        app = Shenava(config, reactor=reactor, redis=None)
        outcomes: dict[str, Any] = {}
        app.callflow.subscribe(lambda o: outcomes.__setitem__(o.call_id, o))
        state: dict[str, Any] = {"max_in_ivr": 0, "cpu0": 0.0, "t0": 0.0, "t_end": None,
                                 "agi": 0}
        app.connection.add_agi_observer(
            lambda _command, _took: state.__setitem__("agi", state["agi"] + 1))

        def sample() -> None:
            state["max_in_ivr"] = max(state["max_in_ivr"], app.callflow.in_ivr)
            done = len(outcomes) >= args.sessions
            late = time.monotonic() - state["t0"] > args.limit_s
            if state["t0"] and (done or late) and state["t_end"] is None:
                state["t_end"] = time.monotonic()
                state["cpu1"] = cpu_s()
                reactor.stop()

        def connected(_: object) -> None:
            state["t0"] = time.monotonic()
            state["cpu0"] = cpu_s()
            parent.send("go")

        from twisted.internet.task import LoopingCall

        app.start(serve_http=False)
        app.when_connected().addCallback(connected)
        sampler = LoopingCall(sample)
        sampler.start(SAMPLE_EVERY_S)
        reactor.callLater(args.limit_s + 60, reactor.stop)  # a hard bound, whatever happens
        reactor.run()
        asked = Counter(o.requested.value for o in outcomes.values())
        completed = sum(
            1 for o in outcomes.values()
            if o.requested is not Request.HUNG_UP_IN_IVR and o.ended.value != "failed"
        )
        wall = (state["t_end"] or time.monotonic()) - (state["t0"] or time.monotonic())
        cpu = state.get("cpu1", cpu_s()) - state["cpu0"]
        result = {
            "bench": "ivr_sessions",
            "concurrent_sessions": args.sessions,
            "sessions_started": app.callflow.sessions_started,
            "max_in_ivr": state["max_in_ivr"],
            "completed_sessions": completed,
            "lost_sessions": args.sessions - completed,
            "outcomes": dict(sorted(asked.items())),
            "waiting_on_hold": app.dispatcher.waiting,
            "wall_s": round(wall, 2),
            "daemon_cpu_s": round(cpu, 3),
            "daemon_cpu_s_per_session": round(cpu / max(1, args.sessions), 5),
            "agi_commands_per_session": round(state["agi"] / max(1, args.sessions), 2),
            "ramp_s": args.ramp_s,
            "channelvars": list(_channelvars(args)),
            "prompt_s": PROMPT_S,
            "reactor": type(reactor).__name__,
            "python": platform.python_version(),
        }
    finally:
        if parent is not None:
            try:
                parent.send("stop")
            except OSError:
                pass
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=DEFAULT_SESSIONS)
    parser.add_argument("--ramp-s", type=float, default=DEFAULT_RAMP_S)
    parser.add_argument("--limit-s", type=float, default=DEFAULT_LIMIT_S)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reactor", choices=["default", "asyncio"], default="default")
    parser.add_argument("--no-channelvars", action="store_true",
                        help="the test PBX sends no ChanVariable (an Asterisk without "
                             "channelvars = SHENAVA_LANG): the daemon asks with GET VARIABLE")
    args = parser.parse_args(argv)
    result = run(args)
    print(json.dumps(result))
    return 0 if result.get("lost_sessions") == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

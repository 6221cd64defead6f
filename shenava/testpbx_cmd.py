"""``shenava testpbx``: serve the test PBX alone, until stopped."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

DEFAULT_SECRET = "s3cret"
"""The test PBX's own default (it stands in for Asterisk on loopback, in tests and demos)."""


def ami_secret(args: argparse.Namespace) -> str:
    """``--secret-file``, else the ``--secret-env`` variable, else :data:`DEFAULT_SECRET`:
    never from argv, where ``ps`` would show it."""
    if args.secret_file is not None:
        text = args.secret_file.read_text(encoding="utf-8")
        return text.splitlines()[0].strip() if text.strip() else ""
    return os.environ.get(args.secret_env) or DEFAULT_SECRET


CALLER_MIXES = ("demo", "agents", "complaints")
AGENT_ENDPOINT_BASE = 3000


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """``shenava testpbx``'s load options (a whole-system run without a real Asterisk)."""
    parser.add_argument("--call-rate", type=float, default=0.0, metavar="PER_S",
                        help="place callers at this many per second, Poisson arrivals (default 0)")
    parser.add_argument("--caller-mix", choices=CALLER_MIXES, default="demo",
                        help="what the callers do: the demo's mix (complaints, agents, look-ups, "
                             "voicemail, callbacks), all ask for an agent, or all file a complaint")
    parser.add_argument("--patience-s", type=float, default=120.0,
                        help="a caller waiting for an agent hangs up after this long (default 120)")
    parser.add_argument("--agents", type=int, default=0, metavar="N",
                        help=f"register N agent phones PJSIP/{AGENT_ENDPOINT_BASE}.. that answer "
                             "after 1 s and talk --talk-s (default 0)")
    parser.add_argument("--talk-s", type=float, default=30.0,
                        help="how long an agent phone talks (default 30)")
    parser.add_argument("--load-seed", type=int, default=1, help="seed of the callers' choices")


class CallerLoad:
    """Callers placed at a steady Poisson rate on ``world``, and agent phones that answer."""

    def __init__(self, reactor: Any, world: Any, *, call_rate: float, caller_mix: str = "demo",
                 patience_s: float = 120.0, agents: int = 0, talk_s: float = 30.0,
                 seed: int = 1) -> None:
        import random

        from testpbx.scripts import PhoneScript

        self.reactor = reactor
        self.world = world
        self.call_rate = call_rate
        self.caller_mix = caller_mix
        self.patience_s = patience_s
        self.placed = 0
        self._rng = random.Random(seed)
        self._mix: Any = None
        self._call: Any = None
        self._next_at = 0.0
        for i in range(agents):
            world.register_phone(f"PJSIP/{AGENT_ENDPOINT_BASE + i}",
                                 PhoneScript(answer_after_s=1.0, talk_s=talk_s))

    def start(self) -> None:
        if self.call_rate > 0:
            # arrivals on their own schedule: a late timer places what is due at once,
            # so the reactor's lateness under load does not lower the rate
            self._next_at = self.reactor.seconds() + self._rng.expovariate(self.call_rate)
            self._call = self.reactor.callLater(self._next_at - self.reactor.seconds(), self._place)

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def next_script(self) -> Any:
        from dataclasses import replace

        from shenava.demo import CallerMix
        from testpbx.scripts import CallerScript

        rng = self._rng
        if self.caller_mix == "demo":
            if self._mix is None:
                self._mix = CallerMix(rng, None)
            return replace(self._mix.next(), patience_s=self.patience_s)
        number = "0912" + "".join(rng.choice("0123456789") for _ in range(7))
        lang = rng.choice("12")
        if self.caller_mix == "agents":
            answers: tuple[str, ...] = (lang, "3")
        else:
            from shenava.demo import luhn_complete

            account = luhn_complete("".join(rng.choice("0123456789") for _ in range(9)))
            answers = (lang, "1", str(rng.randint(1, 6)), "2", "3", account + "#", "1")
        return CallerScript(number=number, name=f"Caller {self.placed + 1}", language=None,
                            answers=answers, answer_delay_s=rng.uniform(0.5, 2.0),
                            patience_s=self.patience_s)

    def _place(self) -> None:
        from testpbx.scripts import PhoneMode, PhoneScript

        now = self.reactor.seconds()
        while self._next_at <= now:
            script = self.next_script()
            # the caller's own phone, should Shenava call them back: no answer
            self.world.register_phone(f"PJSIP/{script.number}", PhoneScript(mode=PhoneMode.NO_ANSWER))
            self.world.place_call(script)
            self.placed += 1
            self._next_at += self._rng.expovariate(self.call_rate)
        self._call = self.reactor.callLater(self._next_at - now, self._place)


def _cut_on_sigusr1(reactor: Any, listening: Any) -> None:
    """``kill -USR1`` cuts every AMI connection (the calls go on): the chaos
    benchmark's "AMI link cut", seen by the daemon as a dropped TCP link."""
    import signal

    from twisted.logger import Logger

    def cut() -> None:
        n = listening.factory.cut()
        Logger().warn("SIGUSR1: cut {n} AMI connection(s)", n=n)

    signal.signal(signal.SIGUSR1, lambda _sig, _frame: reactor.callFromThread(cut))


def serve_testpbx(args: argparse.Namespace) -> int:
    from shenava.logs import start_logging
    from shenava_base.aio import install_asyncio_reactor
    from testpbx.server import port_number
    from testpbx.service import start_testpbx

    try:
        secret = ami_secret(args)
    except OSError as exc:
        print(f"shenava testpbx: cannot read --secret-file: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if not secret:
        print("shenava testpbx: the secret file is empty", file=sys.stderr)
        return 2
    rights = None
    channelvars: tuple[str, ...] = ()
    if args.manager_conf is not None:
        from shenava.asterisk_conf import AsteriskConfError
        from shenava.check_config import ami_rights, manager_channelvars

        try:
            rights = ami_rights(args.manager_conf, args.username)
            channelvars = manager_channelvars(args.manager_conf)
        except (AsteriskConfError, ValueError) as exc:
            print(f"shenava testpbx: {exc}", file=sys.stderr)
            return 2
    reactor: Any = install_asyncio_reactor()
    start_logging("info", stream=sys.stderr)
    args.recordings.mkdir(parents=True, exist_ok=True)

    def start() -> None:
        try:
            _world, port = start_testpbx(
                reactor, args.host, args.port, args.username, secret,
                args.recordings, args.demo_callers, args.caller_audio, args.support_context,
                rights, channelvars,
            )
        except Exception as exc:  # e.g. the port is taken: say so and stop
            print(f"shenava testpbx: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            reactor.stop()
            return
        scenario = getattr(args, "scenario", None)
        if scenario is not None:
            from testpbx.scenario import ScenarioRun, load_scenario

            report_path = getattr(args, "report", None)
            report = report_path.open("a", encoding="utf-8") if report_path is not None else None
            ScenarioRun(_world, load_scenario(scenario), report).start()
        _cut_on_sigusr1(reactor, port)
        print(f"test PBX listening on {args.host}:{port_number(port)}", flush=True)
        if getattr(args, "call_rate", 0) or getattr(args, "agents", 0):
            CallerLoad(
                reactor, _world, call_rate=args.call_rate, caller_mix=args.caller_mix,
                patience_s=args.patience_s, agents=args.agents, talk_s=args.talk_s,
                seed=args.load_seed,
            ).start()

    reactor.callWhenRunning(start)
    reactor.run()
    return 0

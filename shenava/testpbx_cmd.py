"""``shenava testpbx``: serve the test PBX alone, until stopped."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def serve_testpbx(args: argparse.Namespace) -> int:
    from ami_bridge.testpbx.server import port_number
    from ami_bridge.testpbx.service import start_testpbx
    from shenava.aio import install_asyncio_reactor
    from shenava.logs import start_logging

    rights = None
    if args.manager_conf is not None:
        from shenava.asterisk_conf import AsteriskConfError
        from shenava.check_config import ami_rights

        try:
            rights = ami_rights(args.manager_conf, args.username)
        except (AsteriskConfError, ValueError) as exc:
            print(f"shenava testpbx: {exc}", file=sys.stderr)
            return 2
    reactor: Any = install_asyncio_reactor()
    start_logging("info", stream=sys.stderr)
    args.recordings.mkdir(parents=True, exist_ok=True)

    def start() -> None:
        try:
            _world, port = start_testpbx(
                reactor, args.host, args.port, args.username, args.secret,
                args.recordings, args.demo_callers, args.caller_audio, args.support_context,
                rights,
            )
        except Exception as exc:  # e.g. the port is taken: say so and stop
            print(f"shenava testpbx: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            reactor.stop()
            return
        scenario = getattr(args, "scenario", None)
        if scenario is not None:
            from ami_bridge.testpbx.scenario import ScenarioRun, load_scenario

            report_path = getattr(args, "report", None)
            report = report_path.open("a", encoding="utf-8") if report_path is not None else None
            ScenarioRun(_world, load_scenario(scenario), report).start()
        print(f"test PBX listening on {args.host}:{port_number(port)}", flush=True)

    reactor.callWhenRunning(start)
    reactor.run()
    return 0

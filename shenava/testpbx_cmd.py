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


def serve_testpbx(args: argparse.Namespace) -> int:
    from ami_bridge.testpbx.server import port_number
    from ami_bridge.testpbx.service import start_testpbx
    from shenava.aio import install_asyncio_reactor
    from shenava.logs import start_logging

    try:
        secret = ami_secret(args)
    except OSError as exc:
        print(f"shenava testpbx: cannot read --secret-file: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if not secret:
        print("shenava testpbx: the secret file is empty", file=sys.stderr)
        return 2
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
                reactor, args.host, args.port, args.username, secret,
                args.recordings, args.demo_callers, args.caller_audio, args.support_context,
                rights,
            )
        except Exception as exc:  # e.g. the port is taken: say so and stop
            print(f"shenava testpbx: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            reactor.stop()
            return
        print(f"test PBX listening on {args.host}:{port_number(port)}", flush=True)

    reactor.callWhenRunning(start)
    reactor.run()
    return 0

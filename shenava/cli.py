"""The ``shenava`` command: one entry point, one subcommand per job.

Exit codes (stable, documented in the README):

- 0  success
- 1  the job ran and found problems (``check-config`` findings, a failed run)
- 2  bad usage or an invalid configuration file
- 3  a required component is missing or unreachable (redis-server, espeak-ng,
     a Vosk model, Redis, the daemon)

No command ends in a traceback: an unreachable Redis is one line and exit
code 3, an unexpected error one line and exit code 1 (``SHENAVA_TRACEBACK=1``
prints the traceback too), and a reader that closes the pipe early (``| head``)
ends the command quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_MISSING = 3

Command = Callable[[argparse.Namespace], int]


def _add_config_argument(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        required=required,
        help="the Shenava TOML config file" + ("" if required else " (default: the embedded demo config)"),
    )


def _add_log_format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="text (default; with <N> priority prefixes for journald under systemd) "
             "or json (one object per line)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shenava",
        description="Shenava: a complaint line for call centres that run Asterisk.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="run the daemon against Asterisk (or a test PBX)")
    _add_config_argument(run, required=True)
    _add_log_format_argument(run)
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser(
        "demo",
        help="run the whole system on this machine: Redis, the test PBX, simulated callers and agents",
    )
    _add_config_argument(demo, required=False)
    _add_log_format_argument(demo)
    demo.add_argument("--duration", type=float, default=60.0, help="stop after S seconds (default 60)")
    demo.add_argument("--calls-per-minute", type=float, default=6.0, help="simulated arrival rate (default 6)")
    demo.add_argument("--seed", type=int, default=1, help="random seed for the simulated traffic")
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON object last")
    demo.add_argument("--quiet", action="store_true", help="no live figures while running")
    demo.add_argument("--http-port", type=int, default=0,
                      help="the daemon's HTTP listener port (default 0: any free port)")
    demo.add_argument("--ui-port", type=int, default=0,
                      help="no longer used: the pages are on the daemon's own listener, "
                           "and the demo prints sign-in links")
    demo.set_defaults(func=_cmd_demo)

    pbx = sub.add_parser("testpbx", help="serve the test PBX: an AMI server that imitates Asterisk 22")
    pbx.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    pbx.add_argument("--port", type=int, default=5038, help="TCP port (default 5038; 0 picks one)")
    pbx.add_argument("--username", default="shenava", help="AMI user (default shenava)")
    pbx.add_argument("--secret-file", type=Path, default=None,
                     help="read the AMI secret from this file's first line (never give a secret "
                          "on the command line: ps shows it)")
    pbx.add_argument("--secret-env", metavar="NAME", default="SHENAVA_AMI_SECRET",
                     help="else from this environment variable (default SHENAVA_AMI_SECRET); "
                          "else the test PBX's s3cret")
    pbx.add_argument("--recordings", type=Path, default=Path("var/testpbx-recordings"),
                     help="where RECORD FILE writes (Asterisk's sounds dir stand-in)")
    pbx.add_argument("--demo-callers", action="store_true",
                     help="also place a scripted caller every 20 s")
    pbx.add_argument("--caller-audio", type=Path, default=None,
                     help="a WAV the scripted callers speak into voicemail")
    pbx.add_argument("--support-context", default="shenava-complaints",
                     help="the dialplan context of the support line (site.support_context)")
    pbx.add_argument("--manager-conf", type=Path, default=None,
                     help="apply this manager.conf's read/write classes and event filters of "
                          "--username, as Asterisk does (e.g. etc/asterisk/manager.conf)")
    pbx.add_argument("--scenario", type=Path, default=None,
                     help="a JSON traffic plan: phones and scripted callers (testpbx/scenario.py)")
    pbx.add_argument("--report", type=Path, default=None,
                     help="append one JSON line per scenario caller when their call ends")
    from shenava.testpbx_cmd import add_load_options

    add_load_options(pbx)
    pbx.set_defaults(func=_cmd_testpbx)

    check = sub.add_parser("check-config", help="validate the config and the operator's Asterisk files")
    _add_config_argument(check, required=True)
    check.add_argument("--asterisk-dir", type=Path, help="the Asterisk config folder, e.g. /etc/asterisk")
    check.add_argument("--sounds-dir", type=Path,
                       help="Asterisk's sounds folder, e.g. /var/lib/asterisk/sounds: check that "
                            "every prompt the menus play, the digits and the beep are there")
    check.add_argument("--redis", action="store_true",
                       help="also read the live Redis server's durability settings (AOF, fsync, eviction)")
    check.set_defaults(func=_cmd_check_config)

    sites = sub.add_parser(
        "check-sites",
        help="check that the sites of one centre agree: the same [sla], agent ids unique across sites",
    )
    sites.add_argument("configs", type=Path, nargs="+", metavar="CONFIG",
                       help="each site's Shenava TOML config file (an active/standby pair may give both)")
    sites.add_argument("--redis", action="store_true",
                       help="also compare what the running daemons registered in their shared Redis "
                            "(each site's [sla]) and stored (each site's agents)")
    sites.set_defaults(func=_cmd_check_sites)

    prompts = sub.add_parser("prompts", help="prompt audio: build WAV files from the prompt texts")
    prompts.add_argument("action", choices=["build"], help="build: espeak-ng + sox -> 8 kHz WAV")
    prompts.add_argument("out", type=Path, help="output folder (copy into Asterisk's sounds dir)")
    prompts.add_argument("--language", action="append",
                         help="only this language (repeatable; default: every language, or "
                              "site.languages of --config)")
    prompts.add_argument("-c", "--config", type=Path, default=None,
                         help="build the languages this config's site.languages names")
    prompts.add_argument("--with-digits", action="append", default=[], help=argparse.SUPPRESS)
    prompts.add_argument("--skip-digits", action="append", default=[], metavar="LANG",
                         help="no digits/0-9 for LANG (Asterisk's recorded ones are installed); "
                              "by default every language gets them")
    prompts.add_argument("--no-beep", action="store_true",
                         help="no beep.wav for RECORD FILE ... BEEP (made by default)")
    prompts.set_defaults(func=_cmd_prompts)

    # Each package adds its own subcommands (they set ``func`` themselves).
    from agent_stats.report import add_report_parser
    from complaints.cli import add_complaints_parser
    from recordings.cli import (
        add_models_parser,
        add_transcribe_parser,
        add_voicemail_parser,
        add_worker_parser,
    )
    from shenava.agent_cli import add_agent_parser, add_explain_parser
    from shenava.config import load_config
    from shenava.users_cli import add_users_parser

    add_worker_parser(sub, load_config)
    add_models_parser(sub, load_config)
    add_transcribe_parser(sub, load_config)
    add_voicemail_parser(sub, load_config)
    from shenava.redis_client import make_redis_client

    add_report_parser(sub, load_config, make_redis_client)
    add_agent_parser(sub)
    add_explain_parser(sub)
    add_complaints_parser(sub, load_config)
    add_users_parser(sub)

    bench = sub.add_parser("bench", help="run benchmarks from benchmarks/ and print their JSON lines")
    bench.add_argument("names", nargs="*", help="benchmark names (default: all)")
    bench.set_defaults(func=_cmd_bench)

    return parser


NEEDS_TRANSCRIBE = frozenset({"worker", "transcribe"})
"""Subcommands that run Vosk, which comes with the ``transcribe`` extra."""


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def missing_extra(command: str, installed: Callable[[str], bool] = _installed) -> str | None:
    """Why ``command`` cannot run in this installation (a missing extra), or None."""
    if command in NEEDS_TRANSCRIBE and not installed("vosk"):
        return (
            f"shenava {command} needs Vosk, which is not installed: "
            "pip install 'shenava[transcribe]' (in a checkout: pip install -e '.[transcribe]')"
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = missing_extra(args.command)
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_MISSING
    func: Command = args.func
    try:
        return func(args)
    except BrokenPipeError:
        return _closed_pipe()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _report_error(args.command, exc)


def _closed_pipe() -> int:
    """The reader went away (``shenava complaints list | head``): stop without a word.

    Python would complain again when it flushes stdout at exit, so stdout is
    pointed at /dev/null first."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_OK


def unreachable_reason(exc: BaseException) -> str | None:
    """What could not be reached, when ``exc`` (or its cause) says a component is away."""
    import redis.exceptions as redis_errors

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, redis_errors.ConnectionError | redis_errors.TimeoutError):
            return f"Redis is unreachable: {current}"
        if isinstance(current, ConnectionError | TimeoutError):
            return f"a component is unreachable: {current}"
        current = current.__cause__ or current.__context__
    return None


def _report_error(command: str, exc: Exception) -> int:
    reason = unreachable_reason(exc)
    if reason is not None:
        print(f"shenava {command}: {reason}", file=sys.stderr)
        code = EXIT_MISSING
    else:
        print(f"shenava {command}: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = EXIT_PROBLEMS
    if os.environ.get("SHENAVA_TRACEBACK"):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    return code


def _load(path: Path | None) -> object:
    from shenava.config import ConfigError, default_config, load_config

    try:
        return load_config(path) if path is not None else default_config()
    except ConfigError as exc:
        print(f"shenava: invalid config: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def _cmd_run(args: argparse.Namespace) -> int:
    from shenava.daemon import run_daemon

    config = _load(args.config)
    return run_daemon(config, log_format=args.log_format)  # type: ignore[arg-type]


def _cmd_demo(args: argparse.Namespace) -> int:
    from shenava.demo import DemoOptions, run_demo

    config = _load(args.config)
    options = DemoOptions(
        duration_s=args.duration,
        calls_per_minute=args.calls_per_minute,
        seed=args.seed,
        json=args.json,
        quiet=args.quiet,
        http_port=args.http_port,
        ui_port=args.ui_port,
        log_format=args.log_format,
    )
    return run_demo(config, options)  # type: ignore[arg-type]


def _cmd_testpbx(args: argparse.Namespace) -> int:
    from shenava.testpbx_cmd import serve_testpbx

    return serve_testpbx(args)


def _cmd_check_config(args: argparse.Namespace) -> int:
    from shenava.check_config import run_check

    return run_check(args.config, args.asterisk_dir, sounds_dir=args.sounds_dir, redis=args.redis)


def _cmd_check_sites(args: argparse.Namespace) -> int:
    from shenava.check_config.run import run_check_sites

    return run_check_sites(args.configs, redis=args.redis)


def _cmd_prompts(args: argparse.Namespace) -> int:

    argv = [str(args.out)]
    for lang in args.language or []:
        argv += ["--language", lang]
    for lang in args.with_digits:
        argv += ["--with-digits", lang]
    for lang in args.skip_digits:
        argv += ["--skip-digits", lang]
    if args.config is not None:
        argv += ["--config", str(args.config)]
    if args.no_beep:
        argv.append("--no-beep")
    return prompts_main(argv)


def prompts_main(argv: Sequence[str] | None = None) -> int:
    """``ivr.prompts.main`` with this daemon's config reader (for ``--config``)."""
    from ivr.prompts import main
    from shenava.config import load_config

    return main(argv, load_config=load_config)


def _cmd_bench(args: argparse.Namespace) -> int:
    from shenava.bench import run_benchmarks

    return run_benchmarks(args.names)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""``shenava complaints list|show|update|export``: the register from a terminal, straight to Redis.

The CLI acts as ``--as NAME`` (recorded in the history) with ``--role``
(default ``supervisor``: whoever runs it can read Redis anyway). No reactor is
needed: the register's coroutines run on a plain asyncio loop.

Exit codes: 0 done; 1 the register refused (unknown reference, not allowed,
invalid change); 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from shenava_base.config_table import ConfigError, ConfigLoader
from shenava_base.redis_url_args import RedisUrlError, add_redis_url_arguments, redis_url_from

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


def add_complaints_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    load_config: ConfigLoader | None = None,
) -> argparse.ArgumentParser:
    """``load_config`` reads ``--config`` (the composition root passes it); without it, no ``--config``."""
    p = subparsers.add_parser("complaints", help="list, show, update and export complaints")
    p.set_defaults(load_config=load_config)
    p.add_argument("-c", "--config", type=Path, help="the Shenava TOML config file")
    add_redis_url_arguments(p)
    p.add_argument("--key-prefix", help="Redis key prefix (default: redis.key_prefix)")
    p.add_argument("--as", dest="actor", default="cli", help="who you are, for the history")
    p.add_argument("--role", choices=("agent", "supervisor", "admin"), default="supervisor")
    sub = p.add_subparsers(dest="complaints_command", metavar="ACTION")
    sub.required = True

    lst = sub.add_parser("list", help="complaints, newest first (JSON lines)")
    _filters(lst)
    lst.add_argument("--limit", type=int, default=50)
    lst.add_argument("--offset", type=int, default=0)

    show = sub.add_parser("show", help="one complaint with its history (JSON)")
    show.add_argument("reference")

    upd = sub.add_parser("update", help="change a complaint's status, add a note, ...")
    upd.add_argument("reference")
    upd.add_argument("--status", choices=("open", "in_progress", "waiting_for_customer", "resolved", "closed"))
    upd.add_argument("--note")
    upd.add_argument("--category")
    upd.add_argument("--escalate-to")
    upd.add_argument("--escalation-reason", default="")
    upd.add_argument("--redress")
    upd.add_argument("--redress-amount", type=int)
    upd.add_argument("--redress-currency")

    exp = sub.add_parser("export", help="every matching complaint as JSON or CSV")
    _filters(exp)
    exp.add_argument("--format", choices=("json", "csv"), default="json")
    exp.add_argument("--output", type=Path, help="write here instead of stdout")
    p.set_defaults(func=run_complaints)
    return p


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", action="append", default=[], help="repeatable")
    p.add_argument("--category")
    p.add_argument("--number")
    p.add_argument("--text", help="in the reference, category, notes, transcript, account")


def run_complaints(args: argparse.Namespace) -> int:
    try:
        url, prefix, tz = _redis_settings(args)
    except _UsageError as exc:
        print(f"shenava: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_run(args, url, prefix, tz))


class _UsageError(Exception):
    pass


def _redis_settings(args: argparse.Namespace) -> tuple[str, str, tzinfo]:
    """Redis URL, key prefix and the site's time zone (exported times are local)."""
    url, prefix = "", "shenava"
    tz: tzinfo = UTC
    if args.config is not None:
        if args.load_config is None:
            raise _UsageError("--config is read by the shenava command (shenava complaints)")
        try:
            config = args.load_config(args.config)
        except ConfigError as exc:
            raise _UsageError(f"invalid config: {exc}") from None
        url, prefix, tz = config.redis.url, config.redis.key_prefix, config.site.tzinfo
    try:
        url = redis_url_from(args, url, sys.stderr, "shenava complaints")
    except RedisUrlError as exc:
        raise _UsageError(f"complaints: {exc}") from None
    if not url:
        raise _UsageError("complaints: no Redis URL (set redis.url in the config, or give "
                          "--redis-url-file or $SHENAVA_REDIS_URL)")
    return url, args.key_prefix or prefix, tz


async def _run(args: argparse.Namespace, url: str, prefix: str, tz: tzinfo = UTC) -> int:
    from complaints.complaint import ComplaintStatus
    from complaints.errors import ComplaintsError
    from complaints.roles import Actor, Role
    from complaints.service import ComplaintRegister, ComplaintUpdate
    from complaints.store import ComplaintQuery, ComplaintStore
    from shenava_base.redis_urls import async_client_from_url

    client = async_client_from_url(url, decode_responses=True)
    register = ComplaintRegister(ComplaintStore(client, prefix), tz=tz)
    actor = Actor(args.actor, Role(args.role))
    command = args.complaints_command
    try:
        if command in ("list", "export"):
            query = ComplaintQuery(
                statuses=frozenset(ComplaintStatus(s) for s in args.status),
                category=args.category, number=args.number, text=args.text,
                offset=getattr(args, "offset", 0), limit=getattr(args, "limit", 100),
            )
            if command == "list":
                for view in await register.search(actor, query):
                    _print(view)
            else:
                text = await register.export(actor, query, args.format)
                if args.output is not None:
                    args.output.write_text(text, encoding="utf-8")
                else:
                    sys.stdout.write(text if text.endswith("\n") else text + "\n")
        elif command == "show":
            _print(await register.get(actor, args.reference), indent=2)
        elif command == "update":
            change = ComplaintUpdate(
                status=ComplaintStatus(args.status) if args.status else None,
                note=args.note, category=args.category, escalate_to=args.escalate_to,
                escalation_reason=args.escalation_reason, redress=args.redress,
                redress_amount=args.redress_amount, redress_currency=args.redress_currency,
            )
            _print(await register.update(actor, args.reference, change, time.time()), indent=2)
    except (ComplaintsError, ValueError) as exc:
        print(f"shenava: complaints {command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        await client.aclose()
    return EXIT_OK


def _print(value: Any, indent: int | None = None) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=indent))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shenava")
    add_complaints_parser(parser.add_subparsers(dest="command"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result

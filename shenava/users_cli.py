"""``shenava users add|passwd|remove|list``: who may sign in to the pages and the API.

Passwords are never taken from the command line (``ps`` would show them): from
a prompt (the default, asked twice), ``--password-file FILE`` (its first line),
or ``--password-env NAME`` (an environment variable). Users go where the
daemon reads them: ``[http] users_file`` or, without one, Redis
(``{key_prefix}:users``). A running daemon sees a change at the next sign-in,
and ends the open sessions of a removed user, or of one whose password or role
changed, within 30 s of their next use.

Exit codes: 0 done, 1 no such user, 2 bad usage (a weak password, a bad name),
3 the store cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from complaints.roles import Role

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def add_users_parser(sub: Any) -> None:
    users = sub.add_parser("users", help="who may sign in: add, passwd, remove, list")
    users.add_argument("-c", "--config", type=Path, help="the Shenava TOML config file (required)")
    actions = users.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    add = actions.add_parser("add", help="add a person (an agent: NAME is the agent id)")
    add.add_argument("name")
    add.add_argument("--role", choices=[r.value for r in Role], required=True)
    passwd = actions.add_parser("passwd", help="set a new password or PIN")
    passwd.add_argument("name")
    for parser in (add, passwd):
        parser.add_argument("--password-file", type=Path, help="read the password from this file's first line")
        parser.add_argument("--password-env", metavar="NAME", help="read the password from this environment variable")
    remove = actions.add_parser("remove", help="remove a person")
    remove.add_argument("name")
    listing = actions.add_parser("list", help="list people and roles (never hashes)")
    for parser in (add, passwd, remove, listing):
        # "shenava users add sara --role agent -c FILE" works too (the -c after the action)
        parser.add_argument("-c", "--config", type=Path, default=argparse.SUPPRESS,
                            help="the Shenava TOML config file")
    users.set_defaults(func=run_users)


def read_password(args: argparse.Namespace) -> str:
    if args.password_file is not None:
        text = args.password_file.read_text(encoding="utf-8")
        return text.splitlines()[0] if text else ""
    if args.password_env is not None:
        value = os.environ.get(args.password_env)
        if value is None:
            raise ValueError(f"the environment variable {args.password_env} is not set")
        return value
    from shenava.password_prompt import NoPasswordError, ask_password

    try:
        first = ask_password("password (an agent may use a PIN of 4-12 digits): ")
        if sys.stdin is None or not sys.stdin.isatty():
            return first  # piped in: nothing to type twice
        again = ask_password("again: ")
    except NoPasswordError as exc:  # a script, a service: nothing piped, no terminal
        raise ValueError(f"no password ({exc}): give --password-file FILE or "
                         "--password-env NAME, or pipe it on standard input") from None
    if again != first:
        raise ValueError("the two entries differ")
    return first


def run_users(args: argparse.Namespace) -> int:
    from shenava.config import ConfigError, load_config
    from shenava.users import UserError, check_person, make_user, store_for

    if getattr(args, "config", None) is None:
        print("shenava users: give the config file: shenava users -c /etc/shenava/shenava.toml "
              f"{args.action} ...", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"shenava users: invalid config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store = store_for(config)
    if store is None:
        print("shenava users: set [http] users_file or [redis] url: there is nowhere to keep users",
              file=sys.stderr)
        return EXIT_USAGE
    agent_ids = {a.id for a in config.agents}
    try:
        if args.action == "list":
            for user in store.all():
                print(f"{user.name}\t{user.role.value}")
            return EXIT_OK
        check_person(args.name)
        if args.action == "remove":
            if not store.remove(args.name):
                print(f"shenava users: no user {args.name}", file=sys.stderr)
                return EXIT_NOT_FOUND
            print(f"removed {args.name}")
            return EXIT_OK
        existing = store.get(args.name)
        if args.action == "add":
            role = Role(args.role)
            if existing is not None:
                print(f"shenava users: {args.name} exists; use passwd", file=sys.stderr)
                return EXIT_USAGE
            if role is Role.AGENT and args.name not in agent_ids:
                print(f"shenava users: no agent {args.name} in the config's [[agents]]", file=sys.stderr)
                return EXIT_USAGE
        else:
            if existing is None:
                print(f"shenava users: no user {args.name}", file=sys.stderr)
                return EXIT_NOT_FOUND
            role = existing.role
        store.put(make_user(args.name, role, read_password(args), time.time()))
    except (UserError, ValueError, OSError) as exc:
        print(f"shenava users: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # redis.ConnectionError and kin: the store is away
        print(f"shenava users: the user store cannot be reached: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return EXIT_UNREACHABLE
    print(f"{'added' if args.action == 'add' else 'changed the password of'} {args.name} ({role.value})")
    return EXIT_OK

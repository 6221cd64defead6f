"""``shenava agent ...`` and ``shenava explain ...``: the HTTP API from a terminal.

A separate, short-lived process, so a blocking client (urllib) is right here;
the daemon itself never blocks. It signs in as ``--user`` (default: the agent
for ``agent`` commands) with the password from ``--password-file``, the
environment variable ``--password-env`` (default ``SHENAVA_PASSWORD``),
standard input's first line when it is not a terminal, or a prompt that does
not echo (:mod:`shenava.password_prompt`), never from the command line; then sends the session cookie and the
CSRF token as the pages do. Exit codes:

- 0  done
- 1  refused: the daemon said no (404 unknown agent or call, 409 busy, 403, 503)
- 2  bad usage (argparse, or a 400 from the daemon)
- 3  the daemon could not be reached
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "SHENAVA_URL"
TIMEOUT_S = 10.0
PASSWORD_ENV = "SHENAVA_PASSWORD"
NOT_READY_REASONS = (
    "break", "lunch", "personal", "training", "meeting", "coaching", "recovery", "technical",
)


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One request to the daemon, built apart from sending so it can be tested alone."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    status: int
    body: dict[str, Any]


class DaemonUnreachableError(Exception):
    code = "cli.daemon_unreachable"


# -- parsers -------------------------------------------------------------------------


def _add_client_options(parser: argparse.ArgumentParser, default_role: str) -> None:
    parser.add_argument(
        "--url", default=None,
        help=f"the daemon's HTTP API (default ${URL_ENV}, else [http] bind and port of "
             f"--config, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "-c", "--config", type=Path, default=None,
        help="the daemon's config file: its [http] bind and port give the URL",
    )
    parser.add_argument(
        "--user", "--as", dest="person", metavar="NAME",
        help="sign in as NAME (default: the agent id of an agent command)"
        + ("" if default_role == "agent" else "; required here"),
    )
    parser.add_argument("--password-file", help="read the password from this file's first line")
    parser.add_argument(
        "--password-env", default=PASSWORD_ENV, metavar="NAME",
        help=f"read the password from this environment variable (default {PASSWORD_ENV}); "
        "else from standard input's first line when it is not a terminal, else it is asked for",
    )
    parser.add_argument("--json", action="store_true", help="print the daemon's JSON answer")
    parser.add_argument(
        "--timeout", type=float, default=TIMEOUT_S, help=f"seconds to wait (default {TIMEOUT_S:g})"
    )


def add_agent_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``shenava agent ACTION ... AGENT_ID``; the lead's cli.py calls this."""
    agent = subparsers.add_parser(
        "agent", help="log an agent in or out, set ready / not ready, ask for a break, show status",
        description="Change or show an agent's state through the daemon's HTTP API. "
        "Exit codes: 0 done, 1 refused (unknown agent, busy on a call), 2 bad usage, "
        "3 daemon unreachable.",
    )
    actions = agent.add_subparsers(dest="agent_action", metavar="ACTION")
    actions.required = True
    for name, text in (
        ("login", "log the agent in (ready)"),
        ("logout", "log the agent out"),
        ("ready", "ready for calls"),
        ("break", "ask for a break: granted now or queued fairly"),
        ("status", "show the agent's state"),
        ("call", "show the agent's current call (the screen pop)"),
    ):
        p = actions.add_parser(name, help=text)
        if name == "break":
            p.add_argument("--lunch", action="store_true", help="a lunch break rather than a break")
        p.add_argument("agent_id", metavar="AGENT_ID")
        _add_client_options(p, "agent")
    nr = actions.add_parser("not-ready", help="not ready, with a reason")
    nr.add_argument("reason", metavar="REASON", choices=NOT_READY_REASONS,
                    help=" | ".join(NOT_READY_REASONS))
    nr.add_argument("agent_id", metavar="AGENT_ID")
    _add_client_options(nr, "agent")
    agent.set_defaults(func=run_agent)
    return agent


def add_explain_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``shenava explain CALL_ID``: why this call was (or was not) first."""
    explain = subparsers.add_parser(
        "explain", help="why a waiting call was (or was not) first",
        description="Ask the daemon why a call stands where it does in the waiting line.",
    )
    explain.add_argument("call_id", metavar="CALL_ID")
    _add_client_options(explain, "supervisor")
    explain.set_defaults(func=run_explain)
    return explain


# -- building requests -----------------------------------------------------------------


def _headers(args: argparse.Namespace, agent_id: str | None) -> dict[str, str]:
    return {"Accept": "application/json"}


def user_of(args: argparse.Namespace) -> str | None:
    person: str | None = args.person or getattr(args, "agent_id", None)
    return person


def password_of(args: argparse.Namespace) -> str:
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    value = os.environ.get(args.password_env)
    if value is not None:
        return value
    from shenava.password_prompt import ask_password

    return ask_password(f"password of {user_of(args)}: ")


def base_url(args: argparse.Namespace, environ: dict[str, str] | None = None) -> str:
    """``--url``, else ``$SHENAVA_URL``, else the config's ``[http]``, else the default.

    A config error is a usage error (exit 2), named by its key."""
    if getattr(args, "url", None):
        return str(args.url)
    env = os.environ if environ is None else environ
    if env.get(URL_ENV):
        return env[URL_ENV]
    config_path = getattr(args, "config", None)
    if config_path is None:
        return DEFAULT_URL
    from shenava.config import ConfigError, load_config

    try:
        http = load_config(config_path).http
    except ConfigError as exc:
        raise ConfigUnusableError(f"invalid config: {exc}") from None
    host = http.bind
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # listening everywhere: this machine is one of them
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{http.port}"


class ConfigUnusableError(Exception):
    code = "cli.invalid_config"


def _url(base: str, *segments: str) -> str:
    path = "/".join(urllib.parse.quote(s, safe="") for s in segments)
    return f"{base.rstrip('/')}/api/{path}"


def agent_request(args: argparse.Namespace) -> ApiCall:
    action: str = args.agent_action
    agent_id: str = args.agent_id
    headers = _headers(args, agent_id)
    if action == "status":
        return ApiCall("GET", _url(base_url(args), "agents", agent_id), headers)
    if action == "call":
        return ApiCall("GET", _url(base_url(args), "agents", agent_id, "call"), headers)
    body: dict[str, Any] = {}
    if action == "not-ready":
        body = {"reason": args.reason}
    elif action == "break" and args.lunch:
        body = {"reason": "lunch"}
    headers["Content-Type"] = "application/json"
    return ApiCall(
        "POST", _url(base_url(args), "agents", agent_id, action), headers, json.dumps(body).encode()
    )


def explain_request(args: argparse.Namespace) -> ApiCall:
    return ApiCall("GET", _url(base_url(args), "calls", args.call_id, "explain"), _headers(args, None))


# -- sending -------------------------------------------------------------------------------


def sign_in(base: str, name: str, password: str, timeout: float = TIMEOUT_S) -> tuple[ApiAnswer, dict[str, str]]:
    """Sign in; the answer, and the headers later calls send (cookie, CSRF token)."""
    call = ApiCall("POST", _url(base, "session"),
                   {"Accept": "application/json", "Content-Type": "application/json"},
                   json.dumps({"name": name, "password": password}).encode())
    answer, headers = _send(call, timeout)
    cookie = next((c.split(";")[0] for c in headers.get_all("set-cookie") or []
                   if c.startswith("shenava_session=")), None)
    if answer.status != 200 or cookie is None:
        return answer, {}
    return answer, {"Cookie": cookie, "X-CSRF-Token": str(answer.body.get("csrf", ""))}


def send(call: ApiCall, timeout: float = TIMEOUT_S, session: dict[str, str] | None = None) -> ApiAnswer:
    """Send ``call`` (with a session's headers); an HTTP error status is an answer."""
    sent = ApiCall(call.method, call.url, {**call.headers, **(session or {})}, call.body)
    if call.method != "GET":
        sent.headers.setdefault("Content-Type", "application/json")
    return _send(sent, timeout)[0]


def _send(call: ApiCall, timeout: float) -> tuple[ApiAnswer, Any]:
    request = urllib.request.Request(call.url, data=call.body, headers=call.headers, method=call.method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return ApiAnswer(response.status, _decode(response.read())), response.headers
    except urllib.error.HTTPError as exc:
        with exc:
            return ApiAnswer(exc.code, _decode(exc.read())), exc.headers
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DaemonUnreachableError(f"cannot reach the daemon at {call.url}: {reason}") from None


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw.decode("utf-8")) if raw else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"error": {"code": "cli.not_json", "message": "the answer was not JSON"}}
    return body if isinstance(body, dict) else {"value": body}


def exit_code(status: int) -> int:
    if 200 <= status < 300:
        return EXIT_OK
    if status == 400 or status == 413:
        return EXIT_USAGE
    return EXIT_REFUSED


# -- running -------------------------------------------------------------------------------


def run_agent(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    try:
        args.url = base_url(args)
    except ConfigUnusableError as exc:
        print(f"shenava: {exc}", file=err or sys.stderr)
        return EXIT_USAGE
    return _run(agent_request(args), args, _show_agent, out or sys.stdout, err or sys.stderr)


def run_explain(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    try:
        args.url = base_url(args)
    except ConfigUnusableError as exc:
        print(f"shenava: {exc}", file=err or sys.stderr)
        return EXIT_USAGE
    return _run(explain_request(args), args, _show_explain, out or sys.stdout, err or sys.stderr)


def _run(call: ApiCall, args: argparse.Namespace, show: Any, out: TextIO, err: TextIO) -> int:
    name = user_of(args)
    if not name:
        print("shenava: say who signs in: --user NAME", file=err)
        return EXIT_USAGE
    from shenava.password_prompt import NoPasswordError

    try:
        password = password_of(args)
    except (OSError, NoPasswordError) as exc:
        print(f"shenava: no password ({exc}): give --password-file FILE, --password-env NAME, "
              "$SHENAVA_PASSWORD, or pipe it on standard input", file=err)
        return EXIT_USAGE
    try:
        answer, session = sign_in(args.url, name, password, args.timeout)
        if session:
            answer = send(call, args.timeout, session)
    except DaemonUnreachableError as exc:
        print(f"shenava: {exc}", file=err)
        return EXIT_UNREACHABLE
    code = exit_code(answer.status)
    if args.json:
        print(json.dumps(answer.body, ensure_ascii=False, indent=1), file=out)
    elif code == EXIT_OK:
        show(answer.body, args, out)
    if code != EXIT_OK:
        error = answer.body.get("error") or {}
        print(
            f"shenava: {error.get('message', 'HTTP ' + str(answer.status))} "
            f"({error.get('code', 'http.' + str(answer.status))})",
            file=err,
        )
    return code


def _ago(now: float, at: float | None) -> str:
    if at is None:
        return "-"
    seconds = max(0, int(now - at))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _show_agent(body: dict[str, Any], args: argparse.Namespace, out: TextIO) -> None:
    now = float(body.get("now", time.time()))
    agent = body.get("agent") or {}
    state = agent.get("state", "?")
    if agent.get("reason"):
        state += f" ({agent['reason']})"
    line = f"{agent.get('id')} {agent.get('name', '')}: {state} for {_ago(now, agent.get('since'))}"
    if agent.get("current_call"):
        line += f", call {agent['current_call']}"
    if args.agent_action not in ("status", "call") and body.get("changed") is False:
        line += " (unchanged)"
    print(line, file=out)
    if "break" in body:
        brk = body["break"] or {}
        print(f"break: {brk.get('status', json.dumps(brk, ensure_ascii=False))}", file=out)
    if args.agent_action == "call":
        call = body.get("call")
        if call is None:
            print("no call", file=out)
            return
        for key in ("call_id", "language", "category", "account", "reference", "urgency",
                    "vulnerable", "care", "caller_number", "waited_s"):
            if call.get(key) not in (None, "", False):
                print(f"  {key}: {call[key]}", file=out)
        if call.get("transcript"):
            print(f"  transcript: {call['transcript']}", file=out)
        for c in call.get("earlier_complaints") or []:
            print(f"  earlier: {c.get('reference')} {c.get('category')} {c.get('status')}", file=out)


def _show_explain(body: dict[str, Any], args: argparse.Namespace, out: TextIO) -> None:
    print(body.get("explanation", ""), file=out)

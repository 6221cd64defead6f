"""``shenava agent`` and ``shenava explain``: request building, and the real client
against the running HTTP API (the blocking client runs in a thread)."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import deferToThread

from shenava.agent_cli import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    add_agent_parser,
    add_explain_parser,
    agent_request,
    explain_request,
    run_agent,
    run_explain,
    user_of,
)
from tests.http_helpers import PASSWORD, Running, outcome, running_app


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shenava")
    sub = p.add_subparsers(dest="command")
    add_agent_parser(sub)
    add_explain_parser(sub)
    return p


def test_agent_requests_are_built_from_arguments() -> None:
    args = parser().parse_args(["agent", "not-ready", "personal", "a1", "--url", "http://h:1/"])
    call = agent_request(args)
    assert (call.method, call.url) == ("POST", "http://h:1/api/agents/a1/not-ready")
    assert json.loads(call.body or b"") == {"reason": "personal"}
    assert "X-Shenava-Role" not in call.headers and user_of(args) == "a1"

    args = parser().parse_args(["agent", "status", "a/1", "--as", "sara"])
    call = agent_request(args)
    assert (call.method, call.url, call.body) == (
        "GET", "http://127.0.0.1:8080/api/agents/a%2F1", None,
    )
    assert user_of(args) == "sara"

    args = parser().parse_args(["agent", "break", "--lunch", "a2"])
    assert json.loads(agent_request(args).body or b"") == {"reason": "lunch"}

    args = parser().parse_args(["explain", "1712-1.5"])
    call = explain_request(args)
    assert call.url.endswith("/api/calls/1712-1.5/explain")
    assert user_of(args) is None


def test_bad_usage_exits_2() -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["agent", "not-ready", "nap", "a1"])
    assert exc.value.code == EXIT_USAGE
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["agent", "dance", "a1"])
    assert exc.value.code == EXIT_USAGE


@pytest_twisted.async_yield_fixture()
async def api() -> AsyncIterator[Running]:
    from twisted.internet import reactor

    async for running in running_app(reactor):
        yield running


async def cli(api: Running, *argv: str) -> tuple[int, str, str]:
    args = parser().parse_args([*argv, "--url", api.base, "--password-env", "SHENAVA_TEST_PASSWORD"])
    out, err = io.StringIO(), io.StringIO()
    run = run_agent if argv[0] == "agent" else run_explain
    code: int = await deferToThread(run, args, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest_twisted.ensureDeferred
async def test_agent_commands_against_the_daemon(api: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHENAVA_TEST_PASSWORD", PASSWORD)
    for name in ("a1", "a2", "a3", "zz"):
        api.add_user(name, "agent")
    code, out, _ = await cli(api, "agent", "login", "a1")
    assert code == EXIT_OK and "a1 Maryam: ready" in out
    code, out, _ = await cli(api, "agent", "not-ready", "personal", "a1")
    assert code == EXIT_OK and "not_ready (personal)" in out
    code, out, _ = await cli(api, "agent", "status", "a1")
    assert code == EXIT_OK and "not_ready (personal)" in out
    code, out, _ = await cli(api, "agent", "status", "a1", "--json")
    assert code == EXIT_OK and json.loads(out)["agent"]["reason"] == "personal"
    code, out, _ = await cli(api, "agent", "call", "a1")
    assert code == EXIT_OK and "no call" in out

    code, _, err = await cli(api, "agent", "ready", "a3")  # logged out: 409
    assert code == EXIT_REFUSED and "agent_stats.agent_busy" in err
    code, _, err = await cli(api, "agent", "login", "zz")
    assert code == EXIT_REFUSED and "agent_stats.unknown_agent" in err
    code, _, err = await cli(api, "agent", "break", "a1")  # no stats service here: 503
    assert code == EXIT_REFUSED and "http.breaks_unavailable" in err
    code, _, err = await cli(api, "agent", "login", "a2", "--as", "a1")
    assert code == EXIT_REFUSED and "http.forbidden" in err
    monkeypatch.setenv("SHENAVA_TEST_PASSWORD", "wrong-password")
    code, _, err = await cli(api, "agent", "login", "a1")
    assert code == EXIT_REFUSED and "http.bad_credentials" in err


@pytest_twisted.ensureDeferred
async def test_explain_command_against_the_daemon(api: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHENAVA_TEST_PASSWORD", PASSWORD)
    api.add_user("sara", "supervisor")
    await ensureDeferred(api.app.callflow.deliver(outcome("c1"), "PJSIP/caller-c1"))
    code, out, _ = await cli(api, "explain", "c1", "--user", "sara")
    assert code == EXIT_OK and "call c1" in out and "position 1 of 1" in out
    code, _, err = await cli(api, "explain", "c1")
    assert code == EXIT_USAGE and "--user" in err
    code, out, _ = await cli(api, "explain", "c1", "--user", "sara")
    assert code == EXIT_OK and "call c1" in out and "position 1 of 1" in out
    code, _, err = await cli(api, "explain", "nope", "--user", "sara")
    assert code == EXIT_REFUSED and "routing.unknown_call" in err


@pytest_twisted.ensureDeferred
async def test_unreachable_daemon_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHENAVA_PASSWORD", PASSWORD)
    from twisted.internet import reactor as running_reactor
    from twisted.internet.protocol import Factory

    reactor: Any = running_reactor
    port: Any = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
    closed = port.getHost().port
    await port.stopListening()
    args = parser().parse_args(["agent", "status", "a1", "--url", f"http://127.0.0.1:{closed}"])
    err = io.StringIO()
    code = await deferToThread(run_agent, args, io.StringIO(), err)
    assert code == EXIT_UNREACHABLE and "cannot reach the daemon" in err.getvalue()


def test_the_url_comes_from_the_config_http_section(tmp_path: Any) -> None:
    from shenava.agent_cli import base_url

    config = tmp_path / "shenava.toml"
    config.write_text('[ami]\nsecret = "x"\n[http]\nbind = "0.0.0.0"\nport = 8181\n')
    args = parser().parse_args(["agent", "status", "a1", "-c", str(config)])
    assert base_url(args, environ={}) == "http://127.0.0.1:8181"
    assert agent_request(args).url.startswith(("http://127.0.0.1:8181/", "http://"))
    # --url, then $SHENAVA_URL, win over the config
    assert base_url(args, environ={"SHENAVA_URL": "http://h:2"}) == "http://h:2"
    args = parser().parse_args(["agent", "status", "a1", "-c", str(config), "--url", "http://h:1"])
    assert base_url(args, environ={"SHENAVA_URL": "http://h:2"}) == "http://h:1"


def test_an_invalid_config_is_bad_usage(tmp_path: Any) -> None:
    config = tmp_path / "shenava.toml"
    config.write_text('[ami]\nsecret = "x"\n[http]\nport = "eighty"\n')
    args = parser().parse_args(["agent", "status", "a1", "-c", str(config)])
    err = io.StringIO()
    assert run_agent(args, out=io.StringIO(), err=err) == EXIT_USAGE
    assert "http.port" in err.getvalue()


def test_no_password_and_no_terminal_says_where_it_goes() -> None:
    """From a script with no terminal, ``shenava agent`` said only "no password: "."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "SHENAVA_PASSWORD"}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from shenava.cli import main; sys.exit(main(sys.argv[1:]))",
         "agent", "status", "a1", "--url", "http://127.0.0.1:9"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=env,
        start_new_session=True,
    )
    assert done.returncode == 2, done.stderr
    assert "--password-file" in done.stderr and "no terminal to ask on" in done.stderr


def test_a_piped_password_is_read_without_a_warning_or_echo() -> None:
    """With no terminal (a script, ``ssh host shenava agent ...``), getpass warned
    ``GetPassWarning``, wrote its prompt and read standard input where what is typed
    may show; now standard input's first line is the password, silently. The daemon
    here is away (exit 3): the password was read and the sign-in tried."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "SHENAVA_PASSWORD"}
    command = [sys.executable, "-c", "import sys; from shenava.cli import main; sys.exit(main(sys.argv[1:]))",
               "agent", "status", "a1", "--url", "http://127.0.0.1:9"]
    done = subprocess.run(command, input="s3cret-piped\n", capture_output=True, text=True,
                          timeout=60, env=env, start_new_session=True)
    assert done.returncode == 3, done.stderr
    assert "Warning" not in done.stderr and "password of" not in done.stderr, done.stderr
    assert "s3cret-piped" not in done.stdout + done.stderr
    # an empty first line is no password, said plainly
    done = subprocess.run(command, input="\n", capture_output=True, text=True,
                          timeout=60, env=env, start_new_session=True)
    assert done.returncode == 2 and "standard input is empty" in done.stderr, done.stderr


"""The asyncio loop under Twisted's reactor: the stdlib loop by default, uvloop on request.

The in-process tests run on pytest-twisted's reactor (``--reactor=asyncio``, the
standard library's loop); the daemons that tests start as processes run what
``shenava run`` runs, which these tests pin down.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from shenava.config import Config, ConfigError
from shenava_base.aio import (
    EVENT_LOOPS,
    EventLoopError,
    as_deferred,
    event_loop_kind,
    loop_kind_of,
    new_event_loop,
)
from tests.test_config import VALID, with_change


def test_asyncio_is_the_default_and_the_environment_overrides_the_config() -> None:
    assert EVENT_LOOPS[0] == "asyncio"
    assert event_loop_kind(None, {}) == "asyncio"
    assert event_loop_kind("asyncio", {}) == "asyncio"
    assert event_loop_kind("uvloop", {"SHENAVA_EVENT_LOOP": "asyncio"}) == "asyncio"
    assert event_loop_kind("asyncio", {"SHENAVA_EVENT_LOOP": " UVLOOP "}) == "uvloop"
    with pytest.raises(EventLoopError, match="SHENAVA_EVENT_LOOP: 'tokio' is not one of"):
        event_loop_kind(None, {"SHENAVA_EVENT_LOOP": "tokio"})


@pytest.mark.parametrize("kind", EVENT_LOOPS)
def test_each_kind_makes_its_loop(kind: str) -> None:
    loop = new_event_loop(kind)  # not run here: pytest-twisted's loop is the running one
    try:
        assert loop_kind_of(loop) == kind
        assert isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()


def test_the_config_takes_only_known_loops() -> None:
    assert Config.from_mapping(VALID).daemon.event_loop == "asyncio"
    assert Config.from_mapping(with_change("daemon.event_loop", "uvloop")).daemon.event_loop == "uvloop"
    with pytest.raises(ConfigError, match="daemon.event_loop"):
        Config.from_mapping(with_change("daemon.event_loop", "trio"))


@pytest.mark.parametrize(("env", "expected"), [(None, "asyncio"), ("uvloop", "uvloop")])
def test_the_installed_reactor_runs_on_the_chosen_loop(env: str | None, expected: str) -> None:
    """A fresh process, as ``shenava run`` installs its reactor: asyncio unless told otherwise."""
    script = (
        "from shenava_base.aio import install_asyncio_reactor, loop_kind_of\n"
        "reactor = install_asyncio_reactor()\n"
        "reactor.callWhenRunning(lambda: (print(loop_kind_of(reactor._asyncioEventloop)), reactor.stop()))\n"
        "reactor.run()\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "SHENAVA_EVENT_LOOP"}
    if env is not None:
        environ["SHENAVA_EVENT_LOOP"] = env
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=environ, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


# -- as_deferred: a coroutine's result as a Deferred, without an extra loop turn ------


@pytest_twisted.ensureDeferred
async def test_as_deferred_gives_the_result_or_the_error() -> None:
    async def five() -> int:
        await asyncio.sleep(0)
        return 5

    async def broken() -> None:
        raise KeyError("x")

    assert await as_deferred(five()) == 5
    with pytest.raises(KeyError):
        await as_deferred(broken())


@pytest_twisted.ensureDeferred
async def test_as_deferred_fires_in_the_tasks_own_step() -> None:
    """Not from a done callback asyncio schedules for the next turn: a handle queued
    just behind the task's step already sees the Deferred fired."""
    loop = asyncio.get_running_loop()

    async def at_once() -> str:
        return "done"

    d = as_deferred(at_once())
    seen: Deferred[bool] = Deferred()
    loop.call_soon(lambda: seen.callback(d.called))
    assert await seen is True
    assert await d == "done"


@pytest_twisted.ensureDeferred
async def test_cancelling_waits_for_the_task_to_end_and_fails_with_cancelled() -> None:
    ended: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            ended.append("finally")

    d = as_deferred(slow())
    await deferLater(reactor, 0, lambda: None)  # the task is in its sleep
    d.cancel()
    with pytest.raises(asyncio.CancelledError):
        await d
    assert ended == ["finally"]

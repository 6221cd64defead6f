"""``shenava run``'s start-up tunes Python's garbage collector ([daemon] gc_gen0_threshold)."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_twisted

from shenava.config import RedisConfig
from shenava.daemon import DaemonRun, tune_gc
from shenava.redis_client import make_redis_client
from tests.http_helpers import config_with_users


@pytest.fixture
def gc_restored() -> Iterator[None]:
    """The test process's collector as it was (the daemon's tuning is for the daemon)."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_twisted.ensureDeferred
async def test_the_leaders_start_up_freezes_its_objects_and_raises_the_young_threshold(
    redis_url: str, gc_restored: None
) -> None:
    from twisted.internet import reactor

    gc.unfreeze()
    gc.set_threshold(700, 10, 10)  # Python's own
    config = config_with_users(port=_closed_port(), bind="127.0.0.1")
    config = replace(
        config,
        ami=replace(config.ami, host="127.0.0.1", port=_closed_port()),  # nobody answers: it retries
        redis=replace(config.redis, url=redis_url),
        daemon=replace(config.daemon, leader_lease=False),
    )
    redis_config = RedisConfig(url=redis_url, connect_timeout_s=0.5, socket_timeout_s=1.0)
    run = DaemonRun(config, reactor, make_redis_client(redis_config), make_redis_client(redis_config))
    run.start()
    try:
        assert run.app is not None and run.app.http_port is not None
        assert gc.get_threshold() == (50_000, 10, 10)
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()  # cycles are still collected
    finally:
        await run.stop()


def test_zero_leaves_the_collector_as_python_sets_it(gc_restored: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    assert tune_gc(0) is None
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0


def test_the_setting_is_read_from_the_daemon_section() -> None:
    from shenava.config.daemon import parse_daemon
    from shenava_base.config_table import Table

    table: Any = Table({"gc_gen0_threshold": 20_000}, "daemon")
    assert parse_daemon(table).gc_gen0_threshold == 20_000

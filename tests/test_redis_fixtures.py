"""The Redis plumbing: the real server, the fixtures, and asyncio from Twisted."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import pytest_twisted
import redis
from redis.asyncio import Redis
from twisted.internet import defer

from shenava.redis_server import (
    RedisServerError,
    RedisServerMissingError,
    ping,
    start_redis_server,
)
from shenava_base.aio import as_deferred, install_asyncio_reactor


@pytest_twisted.ensureDeferred
async def test_async_client_round_trip_through_as_deferred(redis_client: Redis) -> None:
    await as_deferred(redis_client.set("greeting", "salam"))
    assert await as_deferred(redis_client.get("greeting")) == "salam"


@pytest_twisted.ensureDeferred
async def test_each_test_starts_with_an_empty_database(redis_client: Redis) -> None:
    # test_async_client_round_trip... wrote a key; the fixture flushed it
    assert await as_deferred(redis_client.dbsize()) == 0


@pytest_twisted.inlineCallbacks
def test_as_deferred_from_inline_callbacks(redis_client: Redis):  # type: ignore[no-untyped-def]
    yield as_deferred(redis_client.incr("n"))
    value = yield as_deferred(redis_client.incr("n"))
    assert value == 2


@pytest_twisted.ensureDeferred
async def test_as_deferred_propagates_redis_errors(redis_client: Redis) -> None:
    await as_deferred(redis_client.set("text", "not a number"))
    with pytest.raises(redis.ResponseError):
        await as_deferred(redis_client.incr("text"))


@pytest_twisted.ensureDeferred
async def test_cancelling_the_deferred_cancels_the_task(redis_client: Redis) -> None:
    d = as_deferred(redis_client.blpop(["never"], timeout=5))
    d.cancel()
    with pytest.raises((defer.CancelledError, asyncio.CancelledError)):
        await d


def test_install_asyncio_reactor_is_idempotent() -> None:
    # pytest-twisted already installed the asyncio reactor: both calls return it
    first = install_asyncio_reactor()
    assert install_asyncio_reactor() is first


def test_server_started_in_a_given_dir_runs_with_aof(tmp_path: Path) -> None:
    with start_redis_server(tmp_path / "data") as server:
        assert ping(server.port)
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(server.url) as client:
            config = client.config_get("appendonly")
            assert config == {"appendonly": "yes"} or config == {b"appendonly": b"yes"}
            assert client.config_get("dir")["dir"] == str(tmp_path / "data")
    assert not server.running
    assert (tmp_path / "data").is_dir()  # a given folder is kept


def test_temporary_dir_is_removed_on_stop() -> None:
    server = start_redis_server()
    folder = server.data_dir
    assert folder.is_dir()
    server.stop()
    assert not folder.exists()
    server.stop()  # stopping twice is harmless


def test_missing_redis_server_says_how_to_install() -> None:
    with pytest.raises(RedisServerMissingError, match="apt-get install redis-server"):
        start_redis_server(executable="redis-server-not-installed")


def test_a_busy_fixed_port_is_a_clear_error(redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RedisServerError, match="did not start"):
        start_redis_server(tmp_path, port=redis_server.port, startup_timeout_s=5)


@pytest.mark.slow
def test_a_server_restarted_on_a_big_aof_is_ready_only_once_loaded(tmp_path: Path) -> None:
    """Redis answers INFO (the pid check) while it reads its AOF, and LOADING to
    everything else: start_redis_server returns only once the data is in (the
    demo's embedded Redis restarted on its folder; a test restarting Redis failed
    with BusyLoadingError on a loaded machine)."""
    data = tmp_path / "big"
    first = start_redis_server(data, extra_args=["--enable-debug-command", "local"])
    try:
        with redis.Redis.from_url(first.url) as client:
            client.execute_command("DEBUG", "POPULATE", 1_500_000)
            client.bgrewriteaof()
            # POPULATE is not in the AOF: only the rewrite puts the keys there.
            # Wait for it however long a loaded machine takes (it took over 30 s).
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                info = client.info("persistence")
                if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the AOF rewrite did not finish in 300 s")
    finally:
        first.stop(timeout_s=120)

    second = start_redis_server(data, startup_timeout_s=300)
    try:
        with redis.Redis.from_url(second.url) as client:
            assert client.ping()  # no BusyLoadingError: the data is in
            assert client.dbsize() == 1_500_000
    finally:
        second.stop()

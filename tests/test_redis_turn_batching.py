"""Commands issued in one turn of the event loop go to Redis as one pipeline (``shenava.redis_client``).

Against a real redis-server (and the 3-master cluster): the replies, the
errors and the order are those of each command sent alone; only the round
trips are fewer (one connection taken for the turn, not one per command).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_twisted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from shenava.config import RedisConfig
from shenava.redis_client import (
    BlockingSentinelPool,
    QuickConnection,
    QuickSentinelConnection,
    TurnBatchingCluster,
    TurnBatchingRedis,
    make_redis_client,
)
from shenava.redis_server import free_port
from shenava_base.aio import as_deferred


def _connections(client: Any) -> int:
    pool = client.connection_pool
    return len(pool._available_connections) + len(pool._in_use_connections)


def _client(url: str, **kwargs: Any) -> Any:
    return make_redis_client(RedisConfig(url=url, **kwargs), decode_responses=True)


def _mixed(client: Any) -> list[Any]:
    """Thirteen commands (their coroutines), replies of several shapes, each depending on the last."""
    return [
        client.set("n", 1), client.incr("n"), client.incrby("n", 5), client.get("n"),
        client.hset("h", mapping={"a": "1", "b": "2"}), client.hgetall("h"),
        client.zadd("z", {"x": 2.0, "y": 1.0}), client.zrange("z", 0, -1, withscores=True),
        client.rpush("l", "a", "b"), client.lrange("l", 0, -1), client.hexists("h", "a"),
        client.exists("n", "h", "none"), client.delete("n", "h", "z", "l"),
    ]


@pytest_twisted.ensureDeferred
async def test_one_turns_commands_share_one_connection_and_keep_their_order(redis_url: str) -> None:
    alone = _client(redis_url, batch_turns=False)
    client = _client(redis_url)
    assert isinstance(client, TurnBatchingRedis) and not isinstance(alone, TurnBatchingRedis)
    try:
        async def one_by_one() -> list[Any]:
            return [await command for command in _mixed(alone)]

        expected = await as_deferred(one_by_one())
        assert expected[:4] == [True, 2, 7, "7"] and expected[-1] == 4
        before = TurnBatchingRedis.turns_batched
        replies = await as_deferred(asyncio.gather(*_mixed(client)))
        # issued at once, they ran in the order issued, with the replies parsed as one by one
        assert replies == expected
        assert _connections(client) == 1  # thirteen commands, one connection, one round trip
        assert TurnBatchingRedis.turns_batched == before + 1
    finally:
        await as_deferred(client.aclose())
        await as_deferred(alone.aclose())


@pytest_twisted.ensureDeferred
async def test_without_batching_each_command_takes_a_connection(redis_url: str) -> None:
    alone = _client(redis_url, batch_turns=False)
    try:
        await as_deferred(asyncio.gather(*(alone.set(f"k{i}", i) for i in range(5))))
        assert _connections(alone) == 5
    finally:
        await as_deferred(alone.aclose())


@pytest_twisted.ensureDeferred
async def test_a_failed_command_fails_its_own_caller_only_with_its_own_error(redis_url: str) -> None:
    client = _client(redis_url)
    try:
        replies = await as_deferred(asyncio.gather(
            client.set("s", "text"), client.hset("s", "f", "v"), client.get("s"),
            client.evalsha("0" * 40, 0), client.incr("s"), client.set("t", "u"),
            return_exceptions=True,
        ))
        assert replies[0] is True and replies[2] == "text" and replies[5] is True
        assert isinstance(replies[1], ResponseError) and str(replies[1]).startswith("WRONGTYPE")
        assert isinstance(replies[3], NoScriptError)
        assert isinstance(replies[4], ResponseError) and "not an integer" in str(replies[4])
        # the message is Redis's, not a pipeline's ("Command # 2 (...) of pipeline caused error")
        assert "pipeline" not in str(replies[1]) + str(replies[4])
    finally:
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_scripts_load_themselves_when_batched(redis_url: str) -> None:
    client = _client(redis_url)
    try:
        script = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        replies = await as_deferred(asyncio.gather(*(script(keys=["k"], args=[i]) for i in range(1, 6))))
        assert sorted(replies) == [1, 3, 6, 10, 15] and replies == [1, 3, 6, 10, 15]
    finally:
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_a_cancelled_caller_does_not_cancel_the_others(redis_url: str) -> None:
    client = _client(redis_url)
    try:
        async def turn() -> tuple[Any, ...]:
            first = asyncio.ensure_future(client.set("a", "1"))
            second = asyncio.ensure_future(client.set("b", "2"))
            third = asyncio.ensure_future(client.get("missing"))
            await asyncio.sleep(0)  # all three have joined the turn
            second.cancel()
            return tuple(await asyncio.gather(first, second, third, return_exceptions=True))

        first, second, third = await as_deferred(turn())
        assert first is True and isinstance(second, asyncio.CancelledError) and third is None
        assert await as_deferred(client.mget("a", "b")) == ["1", "2"]  # sent all the same
    finally:
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_redis_away_fails_every_command_of_the_turn_each_with_its_own_error() -> None:
    client = _client(f"redis://127.0.0.1:{free_port()}/0", connect_timeout_s=0.5)
    try:
        replies = await as_deferred(asyncio.gather(
            client.set("a", 1), client.get("a"), client.hset("h", "f", "v"), return_exceptions=True,
        ))
        assert all(isinstance(r, RedisConnectionError) for r in replies)
        assert len({id(r) for r in replies}) == 3
    finally:
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_the_cluster_client_batches_per_turn_and_splits_per_node(cluster_url: str) -> None:
    client = _client(cluster_url)
    assert isinstance(client, TurnBatchingCluster)
    try:
        before = TurnBatchingCluster.commands_batched
        keys = [f"{{site{i}}}:n" for i in range(12)]  # hash tags on all three masters
        replies = await as_deferred(asyncio.gather(
            *(client.incrby(k, i + 1) for i, k in enumerate(keys)),
            client.set("{site0}:s", "text"), client.hset("{site0}:s", "f", "v"),
            *(client.get(k) for k in keys),
            return_exceptions=True,
        ))
        assert replies[:12] == list(range(1, 13))
        assert replies[12] is True
        assert isinstance(replies[13], ResponseError) and str(replies[13]).startswith("WRONGTYPE")
        assert replies[14:] == [str(i) for i in range(1, 13)]
        assert TurnBatchingCluster.commands_batched == before + 26
        # commands of several keys and keyless ones are sent as before
        assert await as_deferred(client.delete(*keys[:3])) == 3
        assert await as_deferred(client.ping()) is True
    finally:
        await as_deferred(client.aclose())


def test_commands_that_hold_the_connection_are_never_batched() -> None:
    client = _client("redis://127.0.0.1:1/0")
    for name in ("BLPOP", "XREAD", "WAIT", "WATCH", "MULTI", "SELECT", "CLIENT SETNAME"):
        assert not client._batchable((name, "x"), {}), name
    assert client._batchable(("HSET", "x"), {}) and client._batchable(("SCRIPT LOAD", "x"), {})


@pytest.mark.parametrize("name", ["DEL", "MGET", "SCRIPT LOAD", "PING", "ZUNION"])
def test_the_cluster_client_batches_one_key_commands_only(name: str) -> None:
    assert not TurnBatchingCluster._name_batchable(None, name.split()[0])  # type: ignore[arg-type]


def test_every_kind_of_client_batches_its_turns() -> None:
    sentinel = _client("redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster/0")
    assert isinstance(sentinel, TurnBatchingRedis)
    assert sentinel.connection_pool.connection_class is QuickSentinelConnection
    assert isinstance(sentinel.connection_pool, BlockingSentinelPool)
    single = _client("redis://127.0.0.1:1/0")
    assert isinstance(single, TurnBatchingRedis)
    assert single.connection_pool.connection_class is QuickConnection
    assert not issubclass(_client("unix:///tmp/x.sock").connection_pool.connection_class, QuickConnection)
    assert isinstance(_client("redis+cluster://127.0.0.1:1"), TurnBatchingCluster)


def test_batch_turns_is_a_setting() -> None:
    from shenava.config import Config, ConfigError, parse_toml

    base = '[ami]\nsecret = "x"\n[redis]\nurl = "redis://127.0.0.1:1/0"\n'
    assert Config.from_mapping(parse_toml(base)).redis.batch_turns is True
    assert Config.from_mapping(parse_toml(base + "batch_turns = false\n")).redis.batch_turns is False
    with pytest.raises(ConfigError, match="redis.batch_turns"):
        Config.from_mapping(parse_toml(base + 'batch_turns = "yes"\n'))

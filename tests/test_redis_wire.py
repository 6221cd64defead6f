"""The daemon's RESP parser and packer (``shenava.redis_wire``) and the connections that use them.

The parser must answer what redis-py's own RESP3 parser answers, reply for
reply (checked on generated replies and every prefix of them); the packer
must write what redis-py's packer writes. Against a real redis-server (one
server, a unix socket, the cluster): the replies of a turn's batch, errors
per caller, big replies, pub/sub's pushes and a connection left with unread
bytes behave as with redis-py's parser.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from redis._parsers.encoders import Encoder
from redis._parsers.resp3 import _AsyncRESP3Parser
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import BusyLoadingError, InvalidResponse, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from shenava.config import RedisConfig
from shenava.redis_client import (
    _MISSING,
    QuickConnection,
    QuickSSLConnection,
    QuickUnixConnection,
    WireParser,
    make_redis_client,
)
from shenava.redis_server import free_port
from shenava.redis_wire import Incomplete, pack_command, read_reply
from shenava_base.aio import as_deferred

# -- the parser, sans I/O, against redis-py's ---------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_line = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=12)


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


_scalars = st.one_of(
    _text.map(lambda t: _bulk(t.encode())),
    st.binary(max_size=12).filter(lambda b: b.decode("utf-8", "ignore").encode() == b).map(_bulk),
    _line.map(lambda t: b"+%s\r\n" % t.encode()),
    st.integers(-(2**70), 2**70).map(lambda n: b":%d\r\n" % n),
    st.integers(-(2**70), 2**70).map(lambda n: b"(%d\r\n" % n),
    st.floats(allow_nan=False).map(lambda f: b",%s\r\n" % repr(f).encode()),
    st.booleans().map(lambda b: b"#t\r\n" if b else b"#f\r\n"),
    st.just(b"_\r\n"),
    st.sampled_from(["ERR unknown", "WRONGTYPE Operation against a key", "NOSCRIPT No matching script"]).map(
        lambda t: b"-%s\r\n" % t.encode()
    ),
    _line.map(lambda t: b"!%d\r\nERR %s\r\n" % (len(("ERR " + t).encode()), t.encode())),
    _text.map(lambda t: b"=%d\r\ntxt:%s\r\n" % (len(t.encode()) + 4, t.encode())),
)


def _aggregate(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    items = st.lists(children, max_size=5)
    return st.one_of(
        items.map(lambda xs: b"*%d\r\n" % len(xs) + b"".join(xs)),
        items.map(lambda xs: b"~%d\r\n" % len(xs) + b"".join(xs)),
        st.dictionaries(_line, children, max_size=4).map(
            lambda m: b"%%%d\r\n" % len(m) + b"".join(b"+%s\r\n%s" % (k.encode(), v) for k, v in m.items())
        ),
    )


_replies = st.recursive(_scalars, _aggregate, max_leaves=12)


def _redis_py(data: bytes, count: int, decode: bool) -> list[Any]:
    """redis-py's RESP3 parser's answers for ``count`` replies in ``data`` (read whole, so it never waits)."""
    loop = asyncio.new_event_loop()
    try:
        reader = asyncio.StreamReader(loop=loop)
        reader.feed_data(data)
        reader.feed_eof()
        parser = _AsyncRESP3Parser(65536)
        parser.on_connect(SimpleNamespace(_reader=reader, encoder=Encoder("utf-8", "strict", decode)))
        answers = []
        for _ in range(count):
            step = parser.read_response()
            try:
                step.send(None)
            except StopIteration as done:
                answers.append(done.value)
            else:
                raise AssertionError("redis-py's parser waited for more")
        return answers
    finally:
        loop.close()


def _ours(data: bytes, decode: bool) -> list[Any]:
    answers, pos = [], 0
    while pos < len(data):
        answer, pos = read_reply(data, pos, "utf-8" if decode else None, "strict", _AsyncRESP3Parser.parse_error)
        answers.append(answer)
    return answers


def _comparable(value: Any) -> Any:
    if isinstance(value, ResponseError):
        return (type(value), str(value))
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    return value


@given(st.lists(_replies, min_size=1, max_size=4), st.booleans())
def test_replies_parse_as_redis_pys_parser_parses_them(replies: list[bytes], decode: bool) -> None:
    data = b"".join(replies)
    assert _comparable(_ours(data, decode)) == _comparable(_redis_py(data, len(replies), decode))


@given(_replies)
def test_a_reply_cut_anywhere_is_incomplete_and_says_how_much_it_needs_at_least(reply: bytes) -> None:
    for cut in range(len(reply)):
        with pytest.raises(Incomplete) as missing:
            read_reply(reply[:cut], 0, None, "strict", _AsyncRESP3Parser.parse_error)
        assert cut < missing.value.need <= len(reply)


def test_an_error_reply_that_means_the_connection_is_raised_and_bad_bytes_are_a_protocol_error() -> None:
    with pytest.raises(BusyLoadingError):
        read_reply(b"*2\r\n:1\r\n-LOADING Redis is loading the dataset in memory\r\n", 0, None, "strict",
                   _AsyncRESP3Parser.parse_error)
    for resp2_null in (b"$-1\r\n", b"*-1\r\n"):  # a protocol=2 URL's nulls
        assert read_reply(resp2_null, 0, None, "strict", _AsyncRESP3Parser.parse_error) == (None, 5)
    error, end = read_reply(b"-NOSCRIPT No matching script\r\n", 0, None, "strict", _AsyncRESP3Parser.parse_error)
    assert isinstance(error, NoScriptError) and end == 30
    for bad in (b"?what\r\n", b":12x\r\n", b"*x\r\n"):
        with pytest.raises(InvalidResponse):
            read_reply(bad, 0, None, "strict", _AsyncRESP3Parser.parse_error)


# -- the packer ------------------------------------------------------------------

_args = st.lists(
    st.one_of(_text, st.binary(max_size=12), st.integers(-(2**70), 2**70), st.floats(allow_nan=False)), max_size=6
)


@given(st.sampled_from(["GET", "HSET", "CONFIG GET", "CONFIG\tGET", b"EVALSHA", b"SCRIPT LOAD", b"X\tY"]), _args)
def test_a_command_packs_as_redis_py_packs_it(name: Any, args: list[Any]) -> None:
    connection = Connection()
    assert pack_command((name, *args), "utf-8", "strict") == b"".join(connection._pack_command_python(name, *args))


def test_what_the_packer_leaves_to_redis_py() -> None:
    for odd in (True, memoryview(b"x"), bytearray(b"x"), "x" * 6001, None):
        assert pack_command(("SET", "k", odd), "utf-8", "strict") is None
    quick = QuickConnection()
    assert quick.pack_command("SET", "k", memoryview(b"v")) == Connection().pack_command("SET", "k", memoryview(b"v"))
    with pytest.raises(Exception, match="bool"):
        quick.pack_command("SET", "k", True)


# -- the connections, against a real redis-server -----------------------------------


def _commands(client: Any) -> list[Any]:
    """Replies of every shape the daemon gets, and two per-caller errors, as coroutines."""
    return [
        client.set("s", "v"), client.get("s"), client.incr("s"), client.hset("h", mapping={"a": "1", "b": "ب"}),
        client.hgetall("h"), client.zadd("z", {"x": 2.5, "y": 1.0}), client.zrange("z", 0, -1, withscores=True),
        client.zscore("z", "x"), client.rpush("l", "a", "b"), client.lrange("l", 0, -1), client.get("none"),
        client.hget("h", "none"), client.evalsha("0" * 40, 0), client.smembers("none"), client.exists("s", "h"),
        client.config_get("maxmemory-policy"), client.set("big", "x" * 300_000), client.get("big"),
    ]


async def _outcomes(client: Any, together: bool = True) -> list[Any]:
    """Issued in one turn (one batch on the daemon's client), or one after another."""
    if together:
        outcomes = await asyncio.gather(*_commands(client), return_exceptions=True)
    else:
        outcomes = []
        for command in _commands(client):
            try:
                outcomes.append(await command)
            except Exception as error:
                outcomes.append(error)
    return [(type(o), str(o)) if isinstance(o, Exception) else o for o in outcomes]


@pytest.mark.parametrize(("decode", "protocol"), [(True, 3), (False, 3), (True, 2)])
@pytest_twisted.ensureDeferred
async def test_a_turns_replies_are_what_redis_pys_parser_makes_of_them(
    redis_url: str, decode: bool, protocol: int
) -> None:
    url = redis_url if protocol == 3 else f"{redis_url}?protocol=2"
    ours = make_redis_client(RedisConfig(url=url), decode_responses=decode)
    theirs = Redis.from_url(url, decode_responses=decode)
    taken = []
    original = WireParser.read_buffered

    def counted(self: WireParser, disable_decoding: bool = False) -> Any:
        reply = original(self, disable_decoding)
        taken.append(reply is not _MISSING)
        return reply

    try:
        WireParser.read_buffered = counted  # type: ignore[method-assign]
        await as_deferred(ours.flushdb())
        mine = await as_deferred(_outcomes(ours))
        await as_deferred(theirs.flushdb())
        expected = await as_deferred(_outcomes(theirs, together=False))
        assert mine == expected
        assert mine[12][0] is NoScriptError and mine[2][0] is ResponseError  # each caller its own error
        connection = next(iter(ours.connection_pool._available_connections))
        assert type(connection) is QuickConnection and type(connection._parser) is WireParser
        assert any(taken), "no reply of the batch was taken from the bytes in hand"
    finally:
        WireParser.read_buffered = original  # type: ignore[method-assign]
        await as_deferred(ours.aclose())
        await as_deferred(theirs.aclose())


@pytest_twisted.ensureDeferred
async def test_a_reply_bigger_than_a_chunk_read_and_a_long_array(redis_url: str) -> None:
    client = make_redis_client(RedisConfig(url=redis_url), decode_responses=True)
    try:
        value = "ش" * 400_000  # 800 kB: more than WireParser.CHUNKED_FROM
        members = [f"m{i}" for i in range(30_000)]
        await as_deferred(client.set("big", value))
        await as_deferred(client.rpush("many", *members))
        got = await as_deferred(asyncio.gather(client.get("big"), client.lrange("many", 0, -1), client.get("big")))
        assert got == [value, members, value]
        assert await as_deferred(client.ping())
    finally:
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_a_connection_left_with_a_reply_unread_is_not_used_as_it_is(redis_url: str) -> None:
    client = make_redis_client(RedisConfig(url=redis_url), decode_responses=True)
    try:
        await as_deferred(client.set("x", "stale"))
        pool = client.connection_pool

        async def leave_a_reply() -> None:
            connection = await pool.get_connection()
            await connection.send_packed_command(connection.pack_commands([("PING",), ("GET", "x")]))
            assert await connection.read_response() == "PONG"
            for _ in range(500):  # until the GET's reply is in (in the parser's bytes or the stream's)
                if await connection.can_read():
                    break
                await asyncio.sleep(0.01)
            await pool.release(connection)

        await as_deferred(leave_a_reply())
        assert len(pool._available_connections) == 1
        assert await as_deferred(client.get("y")) is None  # not "stale", the GET x's reply
    finally:
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_a_disconnected_connection_gives_no_reply_left_in_its_parser(redis_url: str) -> None:
    client = make_redis_client(RedisConfig(url=redis_url), decode_responses=True)
    try:
        async def disconnect_with_a_reply_in_hand() -> None:
            connection = await client.connection_pool.get_connection()
            await connection.send_packed_command(connection.pack_commands([("PING",), ("ECHO", "stale")]))
            assert await connection.read_response() == "PONG"
            for _ in range(500):
                if connection._parser._buffer:
                    break
                await asyncio.sleep(0.01)
            assert connection._parser._buffer  # the ECHO's reply came with the PING's
            await connection.disconnect()
            with pytest.raises(RedisConnectionError):
                await connection.read_response()
            await client.connection_pool.release(connection)

        await as_deferred(disconnect_with_a_reply_in_hand())
        assert await as_deferred(client.echo("fresh")) == "fresh"
    finally:
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_a_tls_client_reads_with_the_parser(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
         "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
        client = make_redis_client(RedisConfig(url=url), decode_responses=True)
        try:
            assert client.connection_pool.connection_class is QuickSSLConnection
            for _ in range(500):
                try:
                    await as_deferred(client.ping())
                    break
                except RedisConnectionError:
                    await as_deferred(asyncio.sleep(0.02))
            got = await as_deferred(asyncio.gather(client.set("k", "v" * 70_000), client.get("k"), client.get("none")))
            assert got == [True, "v" * 70_000, None]
            connection = next(iter(client.connection_pool._available_connections))
            assert type(connection._parser) is WireParser
        finally:
            await as_deferred(client.aclose())
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest_twisted.ensureDeferred
async def test_pub_sub_pushes_go_through_the_parser(redis_url: str) -> None:
    client = make_redis_client(RedisConfig(url=redis_url), decode_responses=True)
    pubsub = client.pubsub()
    try:
        await as_deferred(pubsub.subscribe("news"))
        assert type(pubsub.connection._parser) is WireParser

        async def next_message() -> Any:
            for _ in range(500):
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.01)
                if message is not None:
                    return message
            return None

        await as_deferred(client.publish("news", "one"))
        await as_deferred(client.publish("news", "two"))
        first = await as_deferred(next_message())
        second = await as_deferred(next_message())
        assert (first["data"], second["data"]) == ("one", "two")
    finally:
        await as_deferred(pubsub.aclose())
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_a_unix_socket_client_reads_with_the_parser(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if sock.exists():
                break
            await as_deferred(asyncio.sleep(0.02))
        client = make_redis_client(RedisConfig(url=f"unix://{sock}"), decode_responses=True)
        try:
            assert client.connection_pool.connection_class is QuickUnixConnection
            assert await as_deferred(asyncio.gather(client.set("k", "v"), client.get("k"))) == [True, "v"]
            connection = next(iter(client.connection_pool._available_connections))
            assert type(connection._parser) is WireParser
        finally:
            await as_deferred(client.aclose())
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest_twisted.ensureDeferred
async def test_the_cluster_connects_its_nodes_with_the_quick_connection(cluster_url: str) -> None:
    ours = make_redis_client(RedisConfig(url=cluster_url), decode_responses=True)
    nodes_of = [(n.host, n.port) for n in ours.startup_nodes]  # type: ignore[attr-defined]
    from redis.asyncio.cluster import ClusterNode

    plain = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes_of], decode_responses=True)
    assert isinstance(ours, RedisCluster)
    try:
        async def run(client: Any, tag: str) -> list[Any]:
            keys = [f"{{{tag}{i}}}:k" for i in range(12)]
            await asyncio.gather(*(client.set(k, i) for i, k in enumerate(keys)))
            got = await asyncio.gather(*(client.get(k) for k in keys), client.hgetall(f"{{{tag}}}:none"),
                                       client.incr(keys[0]), client.lpush(keys[1], "x"), return_exceptions=True)
            return [(type(g), str(g)) if isinstance(g, Exception) else g for g in got]

        mine = await as_deferred(run(ours, "a"))
        expected = await as_deferred(run(plain, "b"))
        assert mine == expected and mine[-1][0].__name__ == "ResponseError"
        nodes = ours.get_nodes()  # type: ignore[attr-defined]
        assert nodes and all(node.connection_class is QuickConnection for node in nodes)
        used = [c for node in nodes for c in node._connections]
        assert used and all(type(c._parser) is WireParser for c in used)
    finally:
        await as_deferred(ours.aclose())
        await as_deferred(plain.aclose())


@pytest_twisted.ensureDeferred
async def test_a_long_reply_read_in_small_chunks_is_finished_by_redis_pys_reader_at_any_cut() -> None:
    """Past ``CHUNKED_FROM`` unparsed bytes, redis-py's reader finishes the reply (no reparse per chunk),
    whichever byte the last chunk ended on (a line's CR without its LF included)."""
    for pad in range(12):
        members = [b"m" * (pad + 1)] + [b"%d" % i for i in range(3000)]
        data = b"*%d\r\n" % len(members) + b"".join(_bulk(m) for m in members) + b"+OK\r\n"
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        parser = WireParser(socket_read_size=1000)
        parser.CHUNKED_FROM = 4000
        parser.on_connect(SimpleNamespace(_reader=reader, encoder=Encoder("utf-8", "strict", False)))
        assert await as_deferred(parser.read_response()) == members
        assert await as_deferred(parser.read_response()) == b"OK"


@pytest_twisted.ensureDeferred
async def test_a_cluster_transaction_queues_its_commands_without_a_thread(
    cluster_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.asyncio.cluster as redis_cluster
    from redis.asyncio.cluster import ClusterNode

    threads = [0]
    original = redis_cluster._run_coroutine_in_thread

    def counted(coro: Any) -> Any:
        threads[0] += 1
        return original(coro)

    monkeypatch.setattr(redis_cluster, "_run_coroutine_in_thread", counted)
    ours = make_redis_client(RedisConfig(url=cluster_url), decode_responses=True)
    theirs = RedisCluster(
        startup_nodes=[ClusterNode(n.host, n.port) for n in ours.startup_nodes],  # type: ignore[attr-defined]
        decode_responses=True,
    )
    script = "redis.call('HINCRBY', KEYS[1], 'n', 1) return redis.call('HGET', KEYS[2], 'n')"
    try:
        async def transaction(client: Any, tag: str) -> list[Any]:
            sha = await client.script_load(script) if client is ours else None
            pipe = client.pipeline(transaction=True)
            pipe.hset(f"{{{tag}}}:h", mapping={"a": "1"}).hincrby(f"{{{tag}}}:h", "n", 2)
            pipe.zadd(f"{{{tag}}}:z", {"m": 1.5}).lpush(f"{{{tag}}}:h", "x")  # WRONGTYPE inside the MULTI
            pipe.eval(script, 2, f"{{{tag}}}:h", f"{{{tag}}}:h")
            if sha is not None:
                pipe.evalsha(sha, 2, f"{{{tag}}}:h", f"{{{tag}}}:h")
            replies = await pipe.execute(raise_on_error=False)
            return [(type(r), str(r)) if isinstance(r, Exception) else r for r in replies]

        await as_deferred(ours.initialize())  # type: ignore[attr-defined]
        await as_deferred(theirs.initialize())
        threads[0] = 0
        mine = await as_deferred(transaction(ours, "ta"))
        assert threads[0] == 0
        expected = await as_deferred(transaction(theirs, "tb"))
        assert threads[0] >= 5  # redis-py's own way: a thread per command queued
        assert mine[:5] == expected and mine[5] == "4" and mine[3][0].__name__ == "ResponseError"

        async def cross_slot(client: Any) -> type:
            pipe = client.pipeline(transaction=True)
            pipe.set("{ta}:x", 1).set("{tb}:x", 2)
            try:
                await pipe.execute()
            except Exception as error:
                return type(error)
            return type(None)

        assert await as_deferred(cross_slot(ours)) is await as_deferred(cross_slot(theirs)) is not type(None)
    finally:
        await as_deferred(ours.aclose())
        await as_deferred(theirs.aclose())


@pytest_twisted.ensureDeferred
async def test_a_one_key_commands_slot_on_the_cluster_is_its_keys_without_asking_the_parser(cluster_url: str) -> None:
    from shenava.redis_client import QuickCluster

    client = make_redis_client(RedisConfig(url=cluster_url, batch_turns=False), decode_responses=True)
    assert isinstance(client, QuickCluster)
    asked: list[tuple[Any, ...]] = []
    try:
        await as_deferred(client.initialize())  # type: ignore[attr-defined]
        parser = client.commands_parser  # type: ignore[attr-defined]
        original = parser.get_keys

        async def counted(*args: Any) -> Any:
            asked.append(args)
            return await original(*args)

        parser.get_keys = counted
        keys = [f"{{s{i}}}:k" for i in range(20)]  # over all three masters
        for i, key in enumerate(keys):
            await as_deferred(client.set(key, i))
        assert await as_deferred(asyncio.gather(*(client.get(k) for k in keys))) == [str(i) for i in range(20)]
        assert await as_deferred(client.hset("{s1}:h", "a", "1")) == 1
        assert asked == []
        assert await as_deferred(client.mget("{s1}:k", "{s1}:h2")) == ["1", None]  # not one key: the parser's way
        assert asked
    finally:
        await as_deferred(client.aclose())

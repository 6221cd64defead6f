"""The one place a ``redis.asyncio`` client for the daemon is built.

Every client has a bounded *blocking* pool (``BlockingConnectionPool``): when
all ``redis.max_connections`` are busy, a caller waits up to
``redis.pool_timeout_s`` for one to come back instead of failing at once (a
burst of hang-ups queues for a moment, it does not lose records). Sockets have
a connect and a read timeout and idle connections are checked
(``health_check_interval``) before use, so a Redis that went away is noticed
on the next command instead of after a long TCP timeout. Whatever still
fails is a ``RedisError`` that :mod:`shenava.journal` catches.

With Redis Sentinel (``redis+sentinel://`` URLs or ``redis.sentinels``) the
pool asks the sentinels for the current master before each new connection
(redis-py's ``SentinelConnectionPool``, made blocking the same way), so a
failover costs the commands in flight, which the journal keeps, and nothing
else.

With Redis Cluster (``redis+cluster://`` URLs or ``redis.cluster_nodes``) the
client is redis-py's ``redis.asyncio.RedisCluster``: it learns the slot map
from the seed nodes and sends each command to the master of its key's slot.
Every key family's hash tag (:mod:`shenava_base.sites`) keeps each transaction and
script inside one slot. Its pools are per node and not blocking: a node whose
``max_connections`` are all busy fails the command, which the journal keeps.

Every connection, the cluster's included, parses replies with
:class:`WireParser` and packs commands with :mod:`shenava.redis_wire`
(docs/scaling.md, "Replies and commands on the wire").
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from redis._parsers.resp3 import _AsyncRESP3Parser
from redis._parsers.socket import SERVER_CLOSED_CONNECTION_ERROR
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from shenava.config import (
    CLUSTER_SCHEME,
    SENTINEL_SCHEME,
    RedisConfig,
    parse_cluster_url,
    parse_sentinel_url,
)
from shenava.redis_wire import Incomplete, pack_command, read_reply
from shenava_base.outage import OutageNote

try:  # redis-py 8: what its reader drops a connection for, whatever disconnect_on_error says
    from redis._parsers.base import UNRECOVERABLE_PARSE_ERRORS
except ImportError:  # older redis-py: the same errors
    UNRECOVERABLE_PARSE_ERRORS = (InvalidResponse, UnicodeDecodeError, RecursionError)
try:  # redis-py 6 and later: cluster transactions
    from redis.asyncio.cluster import AbstractStrategy, TransactionStrategy
except ImportError:
    AbstractStrategy = TransactionStrategy = object  # type: ignore[assignment,misc]

__all__ = [
    "BlockingSentinelPool",
    "PoolExhaustedError",
    "QuickCluster",
    "SayingBlockingPool",
    "TurnBatchingCluster",
    "TurnBatchingRedis",
    "WireParser",
    "client_options",
    "describe",
    "make_redis_client",
    "wait_for_redis",
]

log = Logger()


_POOL_TIMED_OUT = "No connection available."
"""redis-py's message when no connection came free within the pool's timeout."""


class PoolExhaustedError(RedisConnectionError):
    """Every connection of the pool stayed busy for ``redis.pool_timeout_s``.

    Redis is slow or away (each command holds its connection through its
    retries), or a burst outgrew ``redis.max_connections``. A
    ``ConnectionError``, so the journal keeps the write and retries it."""

    code = "redis.pool_exhausted"


class _SaysPoolOutages:
    """A blocking pool that says "no free connection" once per outage, and is cheap when idle.

    redis-py raises ``ConnectionError("No connection available.")`` for every
    command that waited ``pool_timeout_s`` in vain; while Redis is away that is
    every command. Here the first of an outage is a warning (with what it
    means), the rest are counted, and the first connection handed out again
    says how many failed and for how long (:class:`OutageNote`). The error
    itself is :class:`PoolExhaustedError`, still a ``ConnectionError``, with a
    message that says why; each caller handles it as before.

    While nobody waits for a connection, a checkout takes an idle one and a
    release puts it back directly: redis-py's way (a condition, a lock, a
    timeout's timer, its OpenTelemetry counters, which Shenava does not
    export) runs only when the pool is contended, empty, or in maintenance.
    """

    timeout: float | None
    max_connections: int
    _available_connections: list[Any]
    _in_use_connections: set[Any]
    _condition: asyncio.Condition
    _lock: asyncio.Lock

    def __init__(self, *args: Any, now: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outage = OutageNote(
            "Redis connections", "commands wait for one up to the pool's timeout, then fail "
            "(records are kept in the journal)", log, now,
        )

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._uncontended() and self._available_connections and not getattr(self, "_in_maintenance", True):
            # An idle connection and nobody else in the pool: take it without
            # the condition, the timeout (a timer per checkout) and the lock.
            connection = self._available_connections.pop()
            self._in_use_connections.add(connection)
            try:
                await self.ensure_connection(connection)
            except BaseException:
                await self.release(connection)
                raise
            self.outage.ok()
            return connection
        try:
            connection = await super().get_connection()  # type: ignore[misc]
        except PoolExhaustedError:
            raise
        except RedisConnectionError as exc:
            if not (isinstance(exc.__cause__, TimeoutError) and str(exc) == _POOL_TIMED_OUT):
                raise  # connecting failed: Redis's own error, said by whoever called
            error = PoolExhaustedError(
                f"no free Redis connection within {self.timeout:g} s "
                f"(all {self.max_connections} in use: Redis slow or away, or a burst)"
            )
            self.outage.failed(error)
            raise error from exc.__cause__
        self.outage.ok()
        return connection

    async def release(self, connection: Any) -> None:
        if (
            self._uncontended()
            and connection in self._in_use_connections
            and not connection.should_reconnect()
        ):
            self._in_use_connections.remove(connection)
            self._available_connections.append(connection)
            await connection.re_auth()  # what redis-py's release event does (a no-op without a token)
            return
        await super().release(connection)  # type: ignore[misc]

    def _uncontended(self) -> bool:
        """Nobody waits for or holds the pool: its state may change without its locks
        (nothing awaits in between, and the loop runs one task at a time)."""
        condition, lock = self._condition, self._lock
        return not (condition.locked() or lock.locked() or getattr(condition, "_waiters", True))

    async def ensure_connection(self, connection: Any) -> None:
        """A connected connection with nothing unread is ready: no ``connect()`` (a retry
        wrapper around a no-op) on every checkout; anything else is redis-py's check."""
        if connection.is_connected:
            try:
                if not await connection.can_read():
                    return
            except (RedisConnectionError, RedisTimeoutError, OSError):
                pass  # redis-py's check below reconnects
        await super().ensure_connection(connection)  # type: ignore[misc]


class _QuickSend:
    """A command written at once when nothing can make it wait.

    redis-py's ``send_packed_command`` runs every write under
    ``asyncio.wait_for``: a task, a timer and a future per command, for a
    ``drain()`` that returns at once unless the socket's buffer is full.
    Here, when the connection is up, no health check is due and the stream
    is not paused for writing, the command goes straight to the transport;
    otherwise (and for every error) redis-py's own path runs, timeout and all.
    A connection lost meanwhile is found by the read that follows, as a
    ``ConnectionError`` like a failed write.
    """

    _writer: Any
    health_check_interval: float
    next_health_check: float

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        writer = self._writer
        if (
            writer is None
            or isinstance(command, str | bytes)
            or (
                check_health and self.health_check_interval
                and asyncio.get_running_loop().time() > self.next_health_check
            )
        ):
            return await super().send_packed_command(command, check_health)  # type: ignore[misc]
        transport = writer.transport
        protocol = transport.get_protocol()
        if (
            transport.is_closing()
            or getattr(protocol, "_paused", True)
            or getattr(protocol, "_connection_lost", True)
        ):
            return await super().send_packed_command(command, check_health)  # type: ignore[misc]
        try:
            writer.writelines(command)
        except BaseException:
            await self.disconnect(nowait=True)  # type: ignore[attr-defined]
            raise
        return None


_MISSING: Any = object()


class WireParser(_AsyncRESP3Parser):
    """Replies parsed from whole chunks read off the socket (:func:`shenava.redis_wire.read_reply`).

    redis-py's Python parser reads a line at a time through the
    ``StreamReader`` and runs a coroutine per element. Here one ``read`` takes
    what the socket has (a turn's batch of replies usually comes in one
    chunk) and each reply is parsed from those bytes by offset; what is left
    stays in ``_buffer`` for the next reply, so ``can_read`` still sees a
    connection with something unread as dirty. A reply that outgrows
    :attr:`CHUNKED_FROM` bytes unparsed is finished by redis-py's own parser
    instead, which reads exactly what it needs (no reparse per chunk). Push
    messages go to redis-py's push handlers as before. It speaks RESP2 too
    (a ``protocol=2`` URL), and it is the parser whatever hiredis says.
    """

    CHUNKED_FROM = 1 << 17

    def _clear(self) -> None:
        self._buffer = b""
        self._pos = 0
        self._chunks.clear()

    def on_disconnect(self) -> None:
        """Bytes read from a socket now closed are nobody's reply."""
        super().on_disconnect()
        self._clear()

    def _decoding(self, disable_decoding: bool) -> str | None:
        encoder = self.encoder
        if disable_decoding or encoder is None or not encoder.decode_responses:
            return None
        return str(encoder.encoding)

    def _take(self, disable_decoding: bool) -> tuple[Any, bool]:
        """The next whole reply already read, and whether it is a push; raises :class:`Incomplete`."""
        buf, pos = self._buffer, self._pos
        encoder = self.encoder
        try:
            value, end = read_reply(
                buf, pos, self._decoding(disable_decoding),
                encoder.encoding_errors if encoder is not None else "strict", self.parse_error,
            )
        except RedisConnectionError:
            self._clear()  # the connection is dropped by whoever reads: nothing here is of use
            raise
        if end >= len(buf):
            self._buffer, self._pos = b"", 0
        else:
            self._pos = end
        return value, buf[pos] == 62

    def read_buffered(self, disable_decoding: bool = False) -> Any:
        """The next reply if it was read whole already and is no push; else ``_MISSING``."""
        if not self._buffer or self._buffer[self._pos] == 62:
            return _MISSING
        try:
            return self._take(disable_decoding)[0]
        except Incomplete:
            return _MISSING

    async def read_response(self, disable_decoding: bool = False, push_request: bool = False) -> Any:
        if not self._connected:
            raise RedisConnectionError(SERVER_CLOSED_CONNECTION_ERROR)
        while True:
            if not self._buffer:  # nothing in hand (a reply's first read): no parse to fail first
                await self._read_more(1)
            try:
                value, push = self._take(disable_decoding)
            except Incomplete as missing:
                await self._read_more(missing.need)
                if len(self._buffer) - self._pos >= self.CHUNKED_FROM:
                    self._buffer, self._pos = self._buffer[self._pos:], 0
                    if self._buffer.endswith(b"\r"):  # redis-py's reader needs a line's CR and LF together
                        await self._read_more(len(self._buffer) + 1, exactly=True)
                    value = await self._read_response(disable_decoding=disable_decoding, push_request=push_request)
                    self._clear()  # the partial reply was all there was, and it is read now
                    return value
                continue
            if not push:
                return value
            value = await self.handle_push_response(value)
            if push_request:
                return value
            if not self._connected:  # a push handler may have disconnected
                raise RedisConnectionError(SERVER_CLOSED_CONNECTION_ERROR)

    async def _read_more(self, need: int, *, exactly: bool = False) -> None:
        stream = self._stream
        if stream is None or not self._connected:
            raise RedisConnectionError(SERVER_CLOSED_CONNECTION_ERROR)
        pending = self._buffer[self._pos:]
        missing = need - self._pos - len(pending)
        if exactly or missing > self._read_size:
            try:
                data = await stream.readexactly(missing)
            except asyncio.IncompleteReadError as error:
                raise RedisConnectionError(SERVER_CLOSED_CONNECTION_ERROR) from error
        else:
            data = await stream.read(self._read_size)
            if not data:
                raise RedisConnectionError(SERVER_CLOSED_CONNECTION_ERROR)
        self._buffer, self._pos = pending + data, 0


class _QuickRead:
    """Replies already read are taken without a read timeout; commands packed by :mod:`shenava.redis_wire`.

    redis-py's ``read_response`` arms a timeout (a timer) for every reply,
    and the Python parser's ``readline`` goes through the stream per line.
    With :class:`WireParser`, the replies of a batch usually arrive in the
    chunk read for its first: that one is read as redis-py reads, under the
    socket timeout; the others are parsed from the bytes in hand, with no
    timer and no await. Errors keep redis-py's handling: a reply error is
    raised to its caller (or placed in its pipeline), a ``ConnectionError``
    reply or bytes that are not RESP drop the connection.
    """

    _parser: Any
    encoder: Any
    health_check_interval: float
    next_health_check: float

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parser_class", WireParser)
        super().__init__(*args, **kwargs)

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,
        *,
        disconnect_on_error: bool = True,
        push_request: bool | None = False,
    ) -> Any:
        parser = self._parser
        if timeout is None and parser._buffer and type(parser) is WireParser and parser._connected:
            try:
                response = parser.read_buffered(disable_decoding)
            except UNRECOVERABLE_PARSE_ERRORS:
                await self.disconnect(nowait=True)  # type: ignore[attr-defined]
                raise
            except BaseException:
                if disconnect_on_error:
                    await self.disconnect(nowait=True)  # type: ignore[attr-defined]
                raise
            if response is not _MISSING:
                if self.health_check_interval:
                    self.next_health_check = asyncio.get_running_loop().time() + self.health_check_interval
                if isinstance(response, ResponseError):
                    raise response from None
                return response
        return await super().read_response(  # type: ignore[misc]
            disable_decoding, timeout, disconnect_on_error=disconnect_on_error, push_request=push_request
        )

    def pack_command(self, *args: Any) -> list[Any]:
        encoder = self.encoder
        packed = pack_command(args, encoder.encoding, encoder.encoding_errors)
        if packed is None:
            return self._pack_command_python(*args)  # type: ignore[attr-defined]
        return [packed]


class QuickConnection(_QuickRead, _QuickSend, Connection):
    """redis-py's TCP connection with :class:`_QuickRead` and :class:`_QuickSend`."""


class _QuickReadConnection(_QuickRead, Connection):
    """:class:`_QuickRead` under a subclass of ``Connection`` that must wrap it (Sentinel's)."""


class QuickSentinelConnection(_QuickSend, SentinelManagedConnection, _QuickReadConnection):
    """Sentinel's master connection with :class:`_QuickSend` and :class:`_QuickRead`.

    Sentinel's ``read_response`` comes first: a reply that says the master
    was demoted (``READONLY``...) drops the connection, so the next asks the
    sentinels again, whether that reply was parsed from bytes in hand or read."""


class QuickSSLConnection(_QuickRead, SSLConnection):
    """redis-py's TLS connection with :class:`_QuickRead` (writes go redis-py's way)."""


class QuickUnixConnection(_QuickRead, UnixDomainSocketConnection):
    """redis-py's unix-socket connection with :class:`_QuickRead` (writes go redis-py's way)."""


class SayingBlockingPool(_SaysPoolOutages, BlockingConnectionPool):
    """``BlockingConnectionPool`` saying a pool outage once (:class:`_SaysPoolOutages`)."""


class BlockingSentinelPool(_SaysPoolOutages, SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel-managed pool that waits for a free connection like ``BlockingConnectionPool``."""


# Commands that never share a turn's pipeline: their reply comes only later
# (blocking reads, WAIT), they change the connection's state, or they belong
# to a transaction (those go through ``client.pipeline()`` on their own
# connection anyway).
_OWN_CONNECTION = frozenset({
    "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
    "XREAD", "XREADGROUP", "WAIT", "WAITAOF",
    "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH",
    "SELECT", "AUTH", "HELLO", "RESET", "QUIT", "CLIENT", "MONITOR", "READONLY", "READWRITE",
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
    "SHUTDOWN", "DEBUG", "SYNC", "PSYNC", "REPLICAOF", "SLAVEOF", "FAILOVER",
})

# On a cluster only commands on one key (so one slot, one node) are batched:
# its pipeline splits a command over several keys (DEL, MGET) per node and
# answers it as several replies, and sends a keyless one (SCRIPT LOAD, INFO)
# to nodes of its own choosing.
_CLUSTER_BATCHED = frozenset({
    "GET", "SET", "SETNX", "SETEX", "PSETEX", "GETDEL", "GETEX", "GETSET", "STRLEN", "APPEND",
    "INCR", "INCRBY", "INCRBYFLOAT", "DECR", "DECRBY",
    "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "TTL", "PTTL", "PERSIST", "TYPE",
    "HSET", "HSETNX", "HMSET", "HGET", "HMGET", "HGETALL", "HDEL", "HEXISTS", "HINCRBY",
    "HINCRBYFLOAT", "HLEN", "HKEYS", "HVALS",
    "LPUSH", "RPUSH", "LPOP", "RPOP", "LRANGE", "LLEN", "LTRIM", "LINDEX", "LREM", "LSET",
    "SADD", "SREM", "SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD",
    "ZADD", "ZREM", "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZSCORE",
    "ZMSCORE", "ZCARD", "ZCOUNT", "ZINCRBY", "ZRANK", "ZREVRANK", "ZREMRANGEBYSCORE",
    "ZREMRANGEBYRANK", "ZPOPMIN", "ZPOPMAX",
    "XADD", "XLEN", "XRANGE", "XREVRANGE", "XTRIM", "XACK", "XDEL",
})


class _TurnBatching:
    """Commands issued in one turn of the event loop go to Redis as one pipeline.

    The first command of a turn waits one bare yield (``asyncio.sleep(0)``);
    every batchable command issued before that yield returns joins it, and
    the lot is sent on one connection as a plain (non-transactional)
    pipeline: one ``get_connection``, one retry wrapper, one write and one
    read loop instead of one each. A command alone in its turn is sent as
    before. Each caller gets its own reply, or its own error: a command's
    ``ResponseError`` (``NOSCRIPT``, ``WRONGTYPE``...) fails that caller only,
    as sent alone; an error of the whole round trip (Redis away, a timeout)
    fails every command of the batch, as it would have failed each sent alone.
    Commands go in the order issued, on one connection; a caller cancelling
    its wait does not cancel the others (the batch runs in a task of its own).
    """

    _turn: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any] | None]] | None = None
    _batch_names: dict[Any, bool]
    _batches: set[asyncio.Task[None]]
    turns_batched = 0
    """Batches of two or more commands sent so far (for the benchmarks)."""
    commands_batched = 0
    """Commands sent in such batches so far."""

    def _init_turns(self) -> None:
        self._batch_names = {}
        self._batches = set()

    def _name_batchable(self, name: str) -> bool:
        raise NotImplementedError

    def _may_batch(self, options: dict[str, Any]) -> bool:
        return True

    async def _execute_alone(self, *args: Any, **options: Any) -> Any:
        raise NotImplementedError

    def _pipeline_of(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> Any:
        raise NotImplementedError

    def _batchable(self, args: tuple[Any, ...], options: dict[str, Any]) -> bool:
        name = args[0]
        known = self._batch_names.get(name)
        if known is None:
            text = name.decode() if isinstance(name, bytes) else str(name)
            known = self._batch_names[name] = self._name_batchable(text.split(" ", 1)[0].upper())
        return known and self._may_batch(options)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if not self._batchable(args, options):
            return await self._execute_alone(*args, **options)
        turn = self._turn
        if turn is not None:
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            turn.append((args, options, waiter))
            return await waiter
        turn = self._turn = [(args, options, None)]
        try:
            await asyncio.sleep(0)
        except BaseException:
            self._turn = None
            if len(turn) > 1:
                self._send_batch(turn[1:])
            raise
        self._turn = None
        if len(turn) == 1:
            return await self._execute_alone(*args, **options)
        own: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        turn[0] = (args, options, own)
        self._send_batch(turn)
        return await own

    def _send_batch(
        self, turn: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any] | None]]
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._run_batch(turn))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _run_batch(
        self, turn: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any] | None]]
    ) -> None:
        waiters = [waiter for _, _, waiter in turn]
        type(self).turns_batched += 1
        type(self).commands_batched += len(turn)
        try:
            replies = await self._pipeline_of([(args, options) for args, options, _ in turn]).execute(
                raise_on_error=False
            )
            if len(replies) != len(turn):
                raise RedisError(f"a batch of {len(turn)} commands had {len(replies)} replies")
        except Exception as exc:  # the round trip failed: every command of it did
            for index, waiter in enumerate(waiters):
                if waiter is not None and not waiter.done():
                    waiter.set_exception(exc if index == 0 else _copy_error(exc))
            return
        except BaseException:
            for waiter in waiters:
                if waiter is not None:
                    waiter.cancel()
            raise
        for waiter, reply in zip(waiters, replies, strict=True):
            if waiter is None or waiter.done():
                continue
            if isinstance(reply, BaseException):
                waiter.set_exception(reply)
            else:
                waiter.set_result(reply)


def _copy_error(error: Exception) -> Exception:
    """One exception object per caller: raising one object in several tasks chains their tracebacks."""
    try:
        twin = copy.copy(error)
    except Exception:
        return error
    twin.__cause__ = error.__cause__
    return twin


class TurnBatchingRedis(_TurnBatching, Redis):  # type: ignore[misc]  # redis-py's own bases disagree on command_info
    """``redis.asyncio.Redis`` (one server, or Sentinel's master) batching each turn's commands."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_turns()

    def _name_batchable(self, name: str) -> bool:
        return name not in _OWN_CONNECTION

    def _may_batch(self, options: dict[str, Any]) -> bool:
        return self.connection is None  # a single-connection client keeps its own order

    async def _execute_alone(self, *args: Any, **options: Any) -> Any:
        return await Redis.execute_command(self, *args, **options)

    def _pipeline_of(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> Any:
        pipe = self.pipeline(transaction=False)
        for args, options in commands:
            pipe.pipeline_execute_command(*args, **options)
        return pipe


_EVAL_COMMANDS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO"})


class _QuickTransactionStrategy(TransactionStrategy):
    """A cluster transaction's command queued without a thread when its slot is known in hand.

    redis-py 8.2 queues each command of a cluster ``MULTI`` through
    ``_run_coroutine_in_thread``: a thread, an event loop and a node of its
    own, with the reactor's thread blocked on ``join()``, to find the
    command's slot (an ``async`` look-up that may ask a node for the
    command's keys). For a command on one key (:data:`_CLUSTER_BATCHED`) or a
    script naming its keys, the slot is the key's hash slot, computed here;
    the slot bookkeeping is redis-py's. Anything else (a script with no
    keys, a client not yet initialised, a ``WATCH`` in force, other
    commands) goes redis-py's way.
    """

    _pipe: Any
    _pipeline_slots: set[int]
    _transaction_has_keyed_slot: bool
    _watching: bool
    _explicit_transaction: bool

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        slot = self._slot_in_hand(args)
        if slot is None:
            return super().execute_command(*args, **kwargs)
        slots = self._pipeline_slots
        if slots and slot not in slots and not self._transaction_has_keyed_slot:
            slots.clear()
        self._transaction_has_keyed_slot = True
        slots.add(slot)
        return AbstractStrategy.execute_command(self, *args, **kwargs)

    def _slot_in_hand(self, args: tuple[Any, ...]) -> int | None:
        client = self._pipe.cluster_client
        name = args[0]
        if (
            not isinstance(name, str)
            or (self._watching and not self._explicit_transaction)
            or (client._initialize and client.nodes_manager.default_node is None)
        ):
            return None
        if name in _CLUSTER_BATCHED and len(args) >= 2:
            return int(client.keyslot(args[1]))
        if name in _EVAL_COMMANDS and len(args) >= 3:
            try:
                keys = args[3:3 + int(args[2])]
            except (TypeError, ValueError):
                return None
            found = {client.keyslot(key) for key in keys}
            if len(found) == 1:
                return int(found.pop())
        return None


class QuickCluster(RedisCluster):
    """``redis.asyncio.RedisCluster`` that finds a one-key command's slot from its key.

    redis-py asks its command parser for every command's keys (command
    metadata learnt from a node) before hashing them; a command of
    :data:`_CLUSTER_BATCHED` has its one key first, so its slot is that key's.
    Its transactions queue their commands with :class:`_QuickTransactionStrategy`.
    """

    async def _determine_slot(self, command: Any, *args: Any) -> int:
        if command in _CLUSTER_BATCHED and args:
            return int(self.keyslot(args[0]))
        return int(await super()._determine_slot(command, *args))

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        if type(pipe._execution_strategy) is TransactionStrategy:
            pipe._execution_strategy = _QuickTransactionStrategy(pipe)
        return pipe


class TurnBatchingCluster(_TurnBatching, QuickCluster):  # type: ignore[misc]  # as above
    """``redis.asyncio.RedisCluster`` batching each turn's one-key commands (its pipeline splits them per node)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_turns()

    def _name_batchable(self, name: str) -> bool:
        return name in _CLUSTER_BATCHED

    def _may_batch(self, options: dict[str, Any]) -> bool:
        return "target_nodes" not in options

    async def _execute_alone(self, *args: Any, **options: Any) -> Any:
        return await RedisCluster.execute_command(self, *args, **options)

    def _pipeline_of(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> Any:
        pipe = self.pipeline()
        for args, options in commands:
            pipe.execute_command(*args, **options)
        return pipe


def client_options(config: RedisConfig, *, tcp: bool = True) -> dict[str, Any]:
    """The socket and pool settings every connection gets (keepalive only over TCP)."""
    options: dict[str, Any] = {
        "socket_connect_timeout": config.connect_timeout_s,
        "socket_timeout": config.socket_timeout_s,
        "health_check_interval": config.health_check_interval_s,
        "retry_on_timeout": False,
    }
    if tcp:
        options["socket_keepalive"] = True
    return options


def make_redis_client(config: RedisConfig, *, decode_responses: bool = False, url: str | None = None) -> Redis:
    """A client for ``config`` (``url`` overrides ``config.url``: the demo's embedded server)."""
    target = config.url if url is None else url
    options = client_options(config, tcp=not target.startswith("unix://"))
    if target.startswith(SENTINEL_SCHEME) or config.sentinels:
        return _sentinel_client(config, target, options, decode_responses)
    if target.startswith(CLUSTER_SCHEME) or config.cluster_nodes:
        return _cluster_client(config, target, options, decode_responses)
    if target.startswith("redis://"):
        options["connection_class"] = QuickConnection
    elif target.startswith("rediss://"):  # TLS and unix sockets: writes go redis-py's way
        options["connection_class"] = QuickSSLConnection
    elif target.startswith("unix://"):
        options["connection_class"] = QuickUnixConnection
    pool = SayingBlockingPool.from_url(
        target,
        max_connections=config.max_connections,
        timeout=config.pool_timeout_s,
        decode_responses=decode_responses,
        **options,
    )
    return (TurnBatchingRedis if config.batch_turns else Redis).from_pool(pool)


def _sentinel_client(config: RedisConfig, url: str, options: dict[str, Any], decode: bool) -> Redis:
    if url.startswith(SENTINEL_SCHEME):
        sentinels, service, db, password = parse_sentinel_url(url)
    else:
        sentinels, service = config.sentinels, config.sentinel_service
        parsed = urlparse(url) if url else None
        password = parsed.password if parsed is not None else None
        path = (parsed.path if parsed is not None else "").strip("/")
        db = int(path) if path.isdigit() else 0
    sentinel_options: dict[str, Any] = {
        "socket_connect_timeout": config.connect_timeout_s,
        "socket_timeout": config.socket_timeout_s,
    }
    sentinel = Sentinel(list(sentinels), sentinel_kwargs=sentinel_options, **sentinel_options)
    client: Redis = sentinel.master_for(
        service,
        redis_class=TurnBatchingRedis if config.batch_turns else Redis,
        connection_pool_class=BlockingSentinelPool,
        connection_class=QuickSentinelConnection,
        max_connections=config.max_connections,
        timeout=config.pool_timeout_s,
        db=db,
        password=password,
        decode_responses=decode,
        **options,
    )
    return client


def _cluster_client(config: RedisConfig, url: str, options: dict[str, Any], decode: bool) -> Redis:
    from redis.asyncio.cluster import ClusterNode

    if url.startswith(CLUSTER_SCHEME):
        nodes, password = parse_cluster_url(url)
    else:
        nodes = config.cluster_nodes
        parsed = urlparse(url) if url else None
        password = parsed.password if parsed is not None else None
    options = {k: v for k, v in options.items() if k != "retry_on_timeout"}
    client = (TurnBatchingCluster if config.batch_turns else QuickCluster)(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        password=password,
        max_connections=config.max_connections,
        decode_responses=decode,
        **options,
    )
    _quick_cluster_connections(client)
    # The daemon types its client as ``Redis``: the commands it uses are the same.
    return client  # type: ignore[return-value]


_QUICK_FOR = {Connection: QuickConnection, SSLConnection: QuickSSLConnection}


def _quick_cluster_connections(client: RedisCluster) -> None:
    """The cluster's nodes connect with what one Redis has: :class:`_QuickRead`, and :class:`_QuickSend` over TCP.

    redis-py's ``RedisCluster`` names its connection class itself
    (``Connection``, or ``SSLConnection`` with ``ssl``) in the keyword
    arguments every node it learns of is made with; the seed nodes are
    already made. Both are pointed at the quick classes here. (Its per-node
    pools are a plain list of free connections already: no locks to skip.)"""
    kwargs = client.connection_kwargs
    quick = _QUICK_FOR.get(kwargs.get("connection_class"))  # type: ignore[arg-type]
    if quick is None:
        return
    kwargs["connection_class"] = quick
    for node in [*client.startup_nodes, *client.nodes_manager.startup_nodes.values()]:
        if _QUICK_FOR.get(node.connection_class) is quick:
            node.connection_class = quick


def describe(config: RedisConfig) -> str:
    """Where Redis is, for logs (never the password)."""
    if config.url.startswith(SENTINEL_SCHEME):
        sentinels, service, _db, _pw = parse_sentinel_url(config.url)
    elif config.sentinels:
        sentinels, service = config.sentinels, config.sentinel_service
    elif config.cluster:
        nodes = parse_cluster_url(config.url)[0] if config.url.startswith(CLUSTER_SCHEME) else config.cluster_nodes
        return "cluster via " + ",".join(f"{h}:{p}" for h, p in nodes)
    else:
        parsed = urlparse(config.url)
        if parsed.scheme == "unix":
            return f"unix:{parsed.path}"
        return f"{parsed.hostname or '?'}:{parsed.port or 6379}"
    return f"sentinel service {service} via " + ",".join(f"{h}:{p}" for h, p in sentinels)


def wait_for_redis(
    client: Redis, clock: Any, *, where: str, max_delay_s: float = 30.0, initial_delay_s: float = 0.5
) -> Deferred[None]:
    """PING until Redis answers, saying in the log that the daemon waits (and why it is safe).

    Fires once Redis answered; meanwhile every package retries on its own and
    records go to the journal, so nothing stored is discarded.
    """
    from shenava_base.aio import as_deferred

    done: Deferred[None] = Deferred()

    def attempt(delay: float, tries: int) -> None:
        d = as_deferred(client.ping())

        def ok(_: object) -> None:
            if tries:
                log.info("Redis at {where} answers after {tries} tries", where=where, tries=tries + 1)
            as_deferred(_log_durability(client, where)).addErrback(lambda f: None)
            done.callback(None)

        def failed(failure: Any) -> None:
            log.warn(
                "Redis at {where} is not reachable ({error}); waiting for it, next try in "
                "{delay:.1f} s. Stored state is kept; records are kept in the journal meanwhile",
                where=where, error=failure.getErrorMessage(), delay=delay,
            )
            clock.callLater(delay, attempt, min(max_delay_s, delay * 2), tries + 1)

        d.addCallbacks(ok, failed)

    attempt(initial_delay_s, 0)
    return done


async def _log_durability(client: Redis, where: str) -> None:
    """Say plainly, once at start, if the server's settings can lose what Shenava stores."""
    from shenava.redis_durability import SETTINGS, durability_notes

    settings: dict[str, str] = {}
    for name in SETTINGS:
        reply = await client.config_get(name)
        settings.update({_s(k): _s(v) for k, v in reply.items()})
    for note in durability_notes(settings):
        if not note.ok:
            log.warn("Redis at {where}: {message}", where=where, message=note.message)


def _s(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")

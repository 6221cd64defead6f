"""The Redis protocol (RESP2 and RESP3) for the daemon's client, sans I/O.

redis-py's pure-Python parser reads a reply a line at a time through
``asyncio.StreamReader`` (a coroutine per element, a ``readline`` per line,
the whole buffer sliced per line) and its packer formats every argument
through ``Encoder.encode``'s chain of ``isinstance`` checks. Here a reply is
parsed from bytes already read, by offset, in one call (:func:`read_reply`),
and a command is packed with its name's header cached (:func:`pack_command`).
:mod:`shenava.redis_client` reads the socket and hands the bytes in.

What a reply becomes is redis-py's RESP3 parser's answer, value for value:
strings decoded when asked, integers, doubles, booleans, ``None`` (RESP3's
null, and RESP2's null bulk string and array), lists for arrays, sets and
pushes, dicts for maps, verbatim strings without their format, and an error
reply as the exception object ``error_of`` makes of its text (returned, not
raised, as redis-py returns it so a pipeline can place it; a
``ConnectionError`` such as ``LOADING`` is raised at once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse

__all__ = ["Incomplete", "pack_command", "read_reply"]

_PUSH = 62  # ">"


class Incomplete(Exception):
    """The bytes end inside the reply; ``need`` is the buffer length it needs at least."""

    def __init__(self, need: int) -> None:
        super().__init__(need)
        self.need = need


def _number(buf: bytes, start: int, end: int) -> int:
    try:
        return int(buf[start:end])
    except ValueError:
        raise InvalidResponse(f"Protocol Error: {buf[start - 1:end]!r}") from None


def read_reply(
    buf: bytes, pos: int, encoding: str | None, errors: str, error_of: Callable[[str], Exception]
) -> tuple[Any, int]:
    """The reply starting at ``buf[pos]`` and the offset just after it.

    ``encoding`` decodes strings (``None``: keep bytes). Raises
    :class:`Incomplete` when ``buf`` ends inside the reply, ``InvalidResponse``
    for bytes that are no RESP, and the ``ConnectionError`` an error reply
    stands for (``LOADING``...)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete(len(buf) + 1)
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        length = _number(buf, pos + 1, end)
        if length < 0:
            return None, end + 2
        start = end + 2
        stop = start + length
        if len(buf) < stop + 2:
            raise Incomplete(stop + 2)
        value = buf[start:stop]
        return (value.decode(encoding, errors) if encoding else value), stop + 2
    if kind == 42 or kind == 126 or kind == _PUSH:  # * array, ~ set, > push: lists
        count = _number(buf, pos + 1, end)
        if count < 0:
            return None, end + 2
        pos = end + 2
        items: list[Any] = []
        append = items.append
        for _ in range(count):
            item, pos = read_reply(buf, pos, encoding, errors, error_of)
            append(item)
        return items, pos
    if kind == 58 or kind == 40:  # : integer, ( big number
        return _number(buf, pos + 1, end), end + 2
    if kind == 43:  # + simple string
        value = buf[pos + 1:end]
        return (value.decode(encoding, errors) if encoding else value), end + 2
    if kind == 37:  # % map
        count = _number(buf, pos + 1, end)
        pos = end + 2
        mapping: dict[Any, Any] = {}
        for _ in range(count):
            key, pos = read_reply(buf, pos, encoding, errors, error_of)
            mapping[key], pos = read_reply(buf, pos, encoding, errors, error_of)
        return mapping, pos
    if kind == 45 or kind == 33:  # - error, ! blob error
        if kind == 33:
            length = _number(buf, pos + 1, end)
            start = end + 2
            end = start + length
            if len(buf) < end + 2:
                raise Incomplete(end + 2)
            text = buf[start:end]
        else:
            text = buf[pos + 1:end]
        error = error_of(text.decode("utf-8", errors="replace"))
        if isinstance(error, RedisConnectionError):
            raise error
        return error, end + 2
    if kind == 95:  # _ null
        return None, end + 2
    if kind == 44:  # , double
        try:
            return float(buf[pos + 1:end]), end + 2
        except ValueError:
            raise InvalidResponse(f"Protocol Error: {buf[pos:end]!r}") from None
    if kind == 35:  # # boolean
        return buf[pos + 1:end] == b"t", end + 2
    if kind == 61:  # = verbatim string: "txt:" then the text
        length = _number(buf, pos + 1, end)
        start = end + 2
        stop = start + length
        if len(buf) < stop + 2:
            raise Incomplete(stop + 2)
        value = buf[start + 4:stop]
        return (value.decode(encoding, errors) if encoding else value), stop + 2
    raise InvalidResponse(f"Protocol Error: {buf[pos:end]!r}")


_HEADS: dict[tuple[Any, int], bytes] = {}
_HEADS_MAX = 1024
LARGEST_INLINE = 6000
"""redis-py's ``_buffer_cutoff``: a longer argument (or a memoryview) goes by its packer, in pieces."""


def _head(name: Any, count: int) -> bytes:
    """``*N`` and the command's name (``CONFIG GET`` is two words) for ``count`` arguments."""
    if isinstance(name, str):
        words = name.encode().split()
    else:  # redis-py splits a bytes name only at spaces
        words = name.split() if b" " in name else [name]
    head = b"*%d\r\n" % (len(words) + count - 1) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
    if len(_HEADS) < _HEADS_MAX:
        _HEADS[name, count] = head
    return head


def pack_command(args: tuple[Any, ...], encoding: str, errors: str) -> bytes | None:
    """The command ``args`` as RESP, in one piece; ``None`` for what redis-py's packer must do
    (an argument that is neither ``str``, ``bytes``, ``int`` nor ``float``, such as a
    ``bool`` it refuses or a memoryview, or one longer than :data:`LARGEST_INLINE`)."""
    name = args[0]
    try:
        head = _HEADS[name, len(args)]
    except KeyError:
        if isinstance(name, float) or not isinstance(name, str | bytes):
            return None
        head = _head(name, len(args))
    except TypeError:  # an unhashable name: redis-py's packer says what is wrong
        return None
    parts = [head]
    append = parts.append
    for arg in args[1:]:
        kind = type(arg)
        if kind is str:
            data = arg.encode(encoding, errors)
        elif kind is bytes:
            data = arg
        elif kind is int or kind is float:
            data = repr(arg).encode()
        else:
            return None
        if len(data) > LARGEST_INLINE:
            return None
        append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


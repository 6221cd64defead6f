"""The AMI wire codec, sans-I/O: bytes in, messages out; headers in, bytes out.

Nothing here knows about sockets, reactors or Redis, so the same codec serves
the daemon's client protocol, the test PBX's server side and the benchmarks.

Framing facts from the captures in ``shared/ami-transcripts``: the server first
sends one banner line (``Asterisk Call Manager/11.0.0``) ended by CRLF alone;
every message after it is ``Name: value`` lines ended by CRLF and closed by an
empty line. Header names repeat (``Variable:``), values may be empty
(``AccountCode: ``) and may hold ``:``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from ami_bridge.errors import HeaderInjectionError, MessageTooLargeError

CRLF = b"\r\n"
END_OF_MESSAGE = b"\r\n\r\n"
BANNER_PREFIX = "Asterisk Call Manager/"

# A real Asterisk message is a few KiB at most (a long Command output can be
# larger); anything past this is a broken or hostile peer.
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

_FORBIDDEN = re.compile(r"[\r\n\x00]")

Header = tuple[str, str]


class Message:
    """One AMI message: its headers in order, repeats kept.

    Look-ups by name ignore case (Asterisk sends ``CommandId`` in
    ``AsyncAGIExec`` for the ``CommandID`` it was given) and return the first
    value; ``get_all`` returns every value of a repeated header.
    """

    __slots__ = ("headers", "_index")

    def __init__(self, headers: Sequence[Header]) -> None:
        self.headers: tuple[Header, ...] = tuple(headers)
        self._index: dict[str, str] | None = None

    @classmethod
    def of(cls, *headers: Header) -> Message:
        return cls(headers)

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self.headers:
                index.setdefault(name.lower(), value)
            self._index = index
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._lookup().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        try:
            return self._lookup()[name.lower()]
        except KeyError:
            raise KeyError(name) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def get_all(self, name: str) -> list[str]:
        lowered = name.lower()
        return [v for k, v in self.headers if k.lower() == lowered]

    @property
    def event(self) -> str | None:
        """The event name, or None when this is not an event."""
        first = self.headers[0] if self.headers else ("", "")
        if first[0] == "Event":
            return first[1]
        return self.get("Event")

    @property
    def response(self) -> str | None:
        """``Success``, ``Error``, ``Goodbye``..., or None for an event."""
        first = self.headers[0] if self.headers else ("", "")
        if first[0] == "Response":
            return first[1]
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def as_dict(self) -> dict[str, str]:
        """First value of each header, names as sent."""
        out: dict[str, str] = {}
        for name, value in self.headers:
            out.setdefault(name, value)
        return out

    def __iter__(self) -> Iterator[Header]:
        return iter(self.headers)

    def __len__(self) -> int:
        return len(self.headers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and other.headers == self.headers

    def __hash__(self) -> int:
        return hash(self.headers)

    def __repr__(self) -> str:
        kind = self.headers[0] if self.headers else ("?", "?")
        return f"<Message {kind[0]}={kind[1]!r} headers={len(self.headers)}>"


def parse_message(text: str) -> Message:
    """Parse the text of one message (no trailing blank line) into headers."""
    headers: list[Header] = []
    append = headers.append
    for line in text.split("\r\n"):
        name, sep, value = line.partition(": ")
        if not sep:
            if not line:
                continue
            # ``Name:`` with nothing after it, or a bare line of command output.
            name, sep, value = line.partition(":")
            if not sep:
                name, value = "", line
        append((name, value))
    return Message(headers)


class AMIDecoder:
    """Turns a byte stream into :class:`Message` objects.

    Bytes are kept until a whole message has arrived and only then decoded,
    once, as UTF-8, so a Persian caller name split across two TCP reads comes
    out whole. Undecodable bytes become U+FFFD: visible, never dropped.
    """

    def __init__(
        self,
        *,
        expect_banner: bool = True,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._buffer = bytearray()
        self._expect_banner = expect_banner
        self._scan_from = 0
        self.max_message_bytes = max_message_bytes
        self.banner: str | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """Add bytes; return every message now complete, in order.

        Raises :class:`MessageTooLargeError` when a message grows past the
        limit; messages completed before it are on the error's ``messages``.
        """
        buffer = self._buffer
        buffer += data
        if self._expect_banner:
            end = buffer.find(CRLF)
            if end < 0:
                if len(buffer) > self.max_message_bytes:
                    raise MessageTooLargeError(len(buffer), self.max_message_bytes, [])
                return []
            self.banner = buffer[:end].decode("utf-8", "replace")
            del buffer[: end + 2]
            self._expect_banner = False
            self._scan_from = 0
        last = buffer.rfind(END_OF_MESSAGE, self._scan_from)
        if last < 0:
            self._scan_from = max(0, len(buffer) - 3)
            if len(buffer) > self.max_message_bytes:
                raise MessageTooLargeError(len(buffer), self.max_message_bytes, [])
            return []
        # One decode for every complete message in this read; END_OF_MESSAGE
        # is ASCII, so no UTF-8 sequence can straddle a message boundary.
        text = buffer[:last].decode("utf-8", "replace")
        del buffer[: last + 4]
        self._scan_from = max(0, len(buffer) - 3)
        messages = [parse_message(block) for block in text.split("\r\n\r\n")]
        limit = self.max_message_bytes
        if len(text) > limit or len(buffer) > limit:
            self._check_sizes(text, messages)
        return messages

    def _check_sizes(self, text: str, messages: list[Message]) -> None:
        blocks = text.split("\r\n\r\n")
        for i, block in enumerate(blocks):
            size = len(block.encode("utf-8", "replace"))
            if size > self.max_message_bytes:
                raise MessageTooLargeError(size, self.max_message_bytes, messages[:i])
        if len(self._buffer) > self.max_message_bytes:
            raise MessageTooLargeError(len(self._buffer), self.max_message_bytes, messages)


def check_header(name: str, value: str) -> None:
    """Refuse a header that would break the framing (CR, LF or NUL anywhere)."""
    if _FORBIDDEN.search(name) or ":" in name or not name:
        raise HeaderInjectionError(name, "name")
    if _FORBIDDEN.search(value):
        raise HeaderInjectionError(name, "value")


def encode_message(headers: Iterable[Header]) -> bytes:
    """Encode headers as one AMI message, refusing header injection."""
    parts: list[str] = []
    for name, value in headers:
        value = str(value)
        check_header(name, value)
        parts.append(f"{name}: {value}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def encode_action(action: str, headers: Iterable[Header] = ()) -> bytes:
    return encode_message([("Action", action), *headers])

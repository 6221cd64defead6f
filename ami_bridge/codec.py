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
from itertools import repeat

from ami_bridge.errors import HeaderInjectionError, MessageTooLargeError

CRLF = b"\r\n"
END_OF_MESSAGE = b"\r\n\r\n"
BANNER_PREFIX = "Asterisk Call Manager/"

# A real Asterisk message is a few KiB at most (a long Command output can be
# larger); anything past this is a broken or hostile peer.
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

_FORBIDDEN = re.compile(r"[\r\n\x00]")

_partition = str.partition
_SEPS = repeat(": ")
_new_message = object.__new__

Header = tuple[str, str]


class Message:
    """One AMI message: its headers in order, repeats kept.

    Look-ups by name ignore case (Asterisk sends ``CommandId`` in
    ``AsyncAGIExec`` for the ``CommandID`` it was given) and return the first
    value; ``get_all`` returns every value of a repeated header.

    A message made by the decoder keeps its decoded text and splits it into
    headers on first use. The kind of a message (``event``/``response``) comes
    from its first line alone, so an event nobody handles costs its framing
    and decoding, not a header-by-header parse.
    """

    __slots__ = ("_text", "_headers", "_index", "event")

    _text: str
    _headers: tuple[Header, ...] | None
    _index: dict[str, str]
    event: str | None
    """The event name, or None when this is not an event (set when made: the
    hot path of dispatch reads it for every message)."""

    def __init__(self, headers: Sequence[Header]) -> None:
        self._headers = tuple(headers)
        self._text = ""
        self.event = _event_of(self)
        # ``_index`` is left unset until the first look-up (see ``_lookup``).

    @classmethod
    def of(cls, *headers: Header) -> Message:
        return cls(headers)

    @classmethod
    def from_text(cls, text: str) -> Message:
        """A message from the text of one block (no blank line in it)."""
        message = _new_message(cls)
        message._text = text
        message._headers = None
        message.event = _event_of(message)
        return message

    @property
    def headers(self) -> tuple[Header, ...]:
        headers = self._headers
        if headers is None:
            headers = self._headers = _parse_headers(self._text)
        return headers

    @property
    def size(self) -> int:
        """About its size on the wire: characters of its text (caps on lists use it)."""
        if self._text:
            return len(self._text) + 4
        return sum(len(name) + len(value) + 4 for name, value in self.headers) + 2

    def _first(self) -> Header:
        headers = self._headers
        if headers is None:
            text = self._text
            end = text.find("\r\n")
            name, _, value = (text if end < 0 else text[:end]).partition(": ")
            return name, value
        return headers[0] if headers else ("", "")

    def _fast(self, name: str) -> str | None:
        """The value of ``name`` spelt exactly so, found in the unsplit text."""
        text = self._text
        if text.startswith(name + ": "):
            start = len(name) + 2
        else:
            at = text.find("\r\n" + name + ": ")
            if at < 0:
                return None
            start = at + len(name) + 4
        end = text.find("\r\n", start)
        return text[start:] if end < 0 else text[start:end]

    def _lookup(self) -> dict[str, str]:
        try:
            return self._index
        except AttributeError:
            index: dict[str, str] = {}
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
    def response(self) -> str | None:
        """``Success``, ``Error``, ``Goodbye``..., or None for an event.

        ``OriginateResponse`` is an event with a ``Response:`` header (and the
        Originate's ActionID): it is not a response to an action.
        """
        first = self._first()
        if first[0] == "Response":
            return first[1]
        if self.event is not None:
            return None
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        if self._headers is None:
            value = self._fast("ActionID")
            if value is not None:
                return value
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
        kind = self._first() or ("?", "?")
        return f"<Message {kind[0]}={kind[1]!r}>"


def _event_of(message: Message) -> str | None:
    """The event name of a message, from its first line when it has text."""
    text = message._text
    if text.startswith("Event: "):
        end = text.find("\r\n", 7)
        return text[7:] if end < 0 else text[7:end]
    if text.startswith("Response: "):
        return None
    first = message._first()
    if first[0] == "Event":
        return first[1]
    if first[0] == "Response":
        return None
    return message.get("Event")


def _parse_headers(text: str) -> tuple[Header, ...]:
    """Split one message's text into (name, value) pairs, in order."""
    lines = text.split("\r\n")
    pairs = [(name, value) for name, sep, value in map(_partition, lines, _SEPS) if sep]
    if len(pairs) == len(lines):
        return tuple(pairs)
    return parse_message(text).headers


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


def parse_messages(text: str) -> list[Message]:
    """Cut complete messages joined by blank lines (no trailing blank line).

    Each block becomes a :class:`Message` that splits itself into headers on
    first use. Stray blank lines between messages are not messages.
    """
    new = _new_message
    messages: list[Message] = []
    append = messages.append
    for block in text.split("\r\n\r\n"):
        message = new(Message)
        # The event name, inline (this loop runs for every message of a busy
        # Asterisk): the first line, split nothing.
        if block.startswith("Event: "):
            end = block.find("\r\n", 7)
            message.event = block[7:] if end < 0 else block[7:end]
        else:
            # Stray blank lines (or a stray CR or LF) between messages leave
            # an empty block or one that starts with CR or LF. Checked here,
            # per block, rather than by searching the whole text for them:
            # that search cost a quarter of the decoder's time on a busy
            # stream.
            if not block or block[0] in "\r\n":
                block = block.lstrip("\r\n")
                if not block:
                    continue
            message._text = block
            message._headers = None
            message.event = _event_of(message)
            append(message)
            continue
        message._text = block
        message._headers = None
        append(message)
    return messages


def _leftmost_end(buffer: bytearray, last: int) -> int:
    """Where the last blank line starts when the buffer is cut from the left.

    ``rfind`` finds the last CRLF CRLF, but in a run of CRLF pairs the blank
    lines overlap: an odd run (``A\r\n\r\n\r\n``) cut from the left leaves
    one CRLF that starts the next block. Cutting the buffer where a cut of the
    whole stream would cut it makes the messages the same whatever the read
    boundaries. ``last`` is preceded by CRLF (the caller checked).
    """
    start = last - 2
    while start >= 2 and buffer[start - 1] == 10 and buffer[start - 2] == 13:
        start -= 2
    # Pairs from ``start`` to the end of the blank line at ``last``.
    pairs = (last + 4 - start) // 2
    return last if pairs % 2 == 0 else last - 2


class AMIDecoder:
    """Turns a byte stream into :class:`Message` objects.

    Bytes are kept until a whole message has arrived and only then decoded,
    once, as UTF-8, so a Persian caller name split across two TCP reads comes
    out whole. Undecodable bytes become U+FFFD: visible, never dropped.
    Stray blank lines between messages are skipped, so every way of cutting
    the same bytes into reads gives the same messages.
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
        limit = self.max_message_bytes
        if self._expect_banner:
            end = buffer.find(CRLF)
            if end < 0:
                if len(buffer) > limit:
                    raise MessageTooLargeError(len(buffer), limit, [])
                return []
            self.banner = buffer[:end].decode("utf-8", "replace")
            del buffer[: end + 2]
            self._expect_banner = False
            self._scan_from = 0
        last = buffer.rfind(END_OF_MESSAGE, self._scan_from)
        if last < 0:
            self._scan_from = max(0, len(buffer) - 3)
            if len(buffer) > limit:
                raise MessageTooLargeError(len(buffer), limit, [])
            return []
        if last >= 2 and buffer[last - 1] == 10 and buffer[last - 2] == 13:
            last = _leftmost_end(buffer, last)
        if last > limit:
            # Some complete message in this read may be too large: cut and
            # measure message by message, in bytes.
            return self._feed_checked(last)
        # One decode for every complete message in this read; END_OF_MESSAGE
        # is ASCII, so no UTF-8 sequence can straddle a message boundary.
        text = buffer[:last].decode("utf-8", "replace")
        del buffer[: last + 4]
        self._scan_from = max(0, len(buffer) - 3)
        messages = parse_messages(text)
        if len(buffer) > limit:
            raise MessageTooLargeError(len(buffer), limit, messages)
        return messages

    def _feed_checked(self, last: int) -> list[Message]:
        buffer = self._buffer
        limit = self.max_message_bytes
        complete = bytes(buffer[:last])
        del buffer[: last + 4]
        self._scan_from = max(0, len(buffer) - 3)
        messages: list[Message] = []
        for block in complete.split(END_OF_MESSAGE):
            if len(block) > limit:
                raise MessageTooLargeError(len(block), limit, messages)
            messages.extend(parse_messages(block.decode("utf-8", "replace")))
        if len(buffer) > limit:
            raise MessageTooLargeError(len(buffer), limit, messages)
        return messages


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

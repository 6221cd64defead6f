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
from collections.abc import Iterable

from ami_bridge.errors import HeaderInjectionError, MessageTooLargeError
from ami_bridge.message import Header, Message, parse_message, parse_messages

CRLF = b"\r\n"
END_OF_MESSAGE = b"\r\n\r\n"
BANNER_PREFIX = "Asterisk Call Manager/"

# A real Asterisk message is a few KiB at most (a long Command output can be
# larger); anything past this is a broken or hostile peer.
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

_FORBIDDEN = re.compile(r"[\r\n\x00]")

__all__ = [
    "AMIDecoder",
    "Header",
    "Message",
    "check_header",
    "encode_action",
    "encode_message",
    "parse_message",
    "parse_messages",
]


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
        limit = self.max_message_bytes
        if (
            not buffer
            and data[-4:] == END_OF_MESSAGE
            and data[-6:-4] != CRLF
            and len(data) <= limit
            and not self._expect_banner
        ):
            # The common read: whole messages and nothing kept (Asterisk,
            # which sets TCP_NODELAY, writes each message at once). Decoded
            # as it came, not copied through the buffer; the one blank line
            # at its end leaves an empty block that is not a message. (A run
            # of CRLF pairs at the end goes the long way: see _leftmost_end.)
            return parse_messages(data.decode("utf-8", "replace"))
        buffer += data
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


_CHECKED_NAMES: set[str] = set()
"""Header names already found safe: the daemon sends a few dozen, all constants."""
_MAX_CHECKED_NAMES = 1024


def encode_message(headers: Iterable[Header]) -> bytes:
    """Encode headers as one AMI message, refusing header injection.

    The whole text is checked at once: each line has exactly one CR and one
    LF (its end) and no NUL unless some name or value holds one, and then
    every header is checked in order, so the error names the first bad one.
    """
    pairs = headers if isinstance(headers, (list, tuple)) else list(headers)
    text = "".join([f"{name}: {value}\r\n" for name, value in pairs])
    count = len(pairs)
    if text.count("\n") != count or text.count("\r") != count or "\x00" in text:
        for name, value in pairs:
            check_header(name, str(value))
    checked = _CHECKED_NAMES
    for name, _ in pairs:
        if name not in checked:
            check_header(name, "")
            if len(checked) >= _MAX_CHECKED_NAMES:
                checked.clear()
            checked.add(name)
    return (text + "\r\n").encode("utf-8")


def encode_action(action: str, headers: Iterable[Header] = ()) -> bytes:
    return encode_message([("Action", action), *headers])

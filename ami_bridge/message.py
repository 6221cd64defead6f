"""One AMI message, parsed: its headers in order, repeats kept, looked up by name.

The decoder (:mod:`ami_bridge.codec`) cuts the byte stream into the text of
whole messages; this module turns that text into :class:`Message` objects that
split themselves into headers on first use. The errors that carry messages
(:mod:`ami_bridge.errors`) name this module, not the codec, so the two never
import each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import repeat

__all__ = ["Header", "Message", "parse_message", "parse_messages"]

_partition = str.partition
_SEPS = repeat(": ")
_new_message = object.__new__
_KEYS: dict[str, tuple[str, str, int]] = {}
"""Per name asked: lowered, the lowered line start searched for, and where
the value starts from the line's start (0: not searched, the index answers)."""
_MAX_KEYS = 4096


def _keys_of(name: str) -> tuple[str, str, int]:
    lowered = name.lower()
    # A plain name: ASCII, no colon, no CR or LF (the search relies on it).
    plain = bool(lowered) and lowered.isascii() and not any(c in lowered for c in ":\r\n")
    keys = (lowered, "\r\n" + lowered + ":", len(lowered) + 1 if plain else 0)
    if len(_KEYS) >= _MAX_KEYS:
        _KEYS.clear()
    _KEYS[name] = keys
    return keys


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

    __slots__ = ("_text", "_headers", "_index", "_low", "event")

    _text: str
    _headers: tuple[Header, ...] | None
    _index: dict[str, str]
    _low: str | None
    """CRLF and the text lowered, for look-ups by name; None until the first
    look-up, "" when there is no text or lowering changed its length (then the
    index)."""
    event: str | None
    """The event name, or None when this is not an event (set when made: the
    hot path of dispatch reads it for every message)."""

    def __init__(self, headers: Sequence[Header]) -> None:
        self._headers = tuple(headers)
        self._text = ""
        self._low = ""
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
        message._low = None
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

    def _lookup(self) -> dict[str, str]:
        try:
            return self._index
        except AttributeError:
            # reversed: the first of repeated names is the one kept
            index = {name.lower(): value for name, value in reversed(self.headers)}
            self._index = index
            return index

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of the header ``name`` (any case), or ``default``.

        A message with text answers from it: a search of the lowered text for
        a line starting with the name and a colon, and only that line cut,
        as :func:`parse_message` splits it. The daemon asks a few headers of
        each message; splitting all of them (and indexing them) cost several
        times that. A message made from headers, or whose text changes length
        when lowered (so offsets in the lowered text are not offsets in the
        text), or a name that is not plain ASCII, answers from an index.
        """
        try:
            lowered, key, skip = _KEYS[name]
        except KeyError:
            lowered, key, skip = _keys_of(name)
        low = self._low
        if low is None:
            low = self._lowered()
        if not low or not skip:
            return self._lookup().get(lowered, default)
        # ``low`` is CRLF and the lowered text: a match at ``at`` is a line
        # that starts at ``at`` in the text, its colon at ``at + skip - 1``.
        at = low.find(key)
        if at < 0:
            return default
        text = self._text
        while True:
            start = at + skip
            end = text.find("\r\n", start)
            if end < 0:
                end = len(text)
            if text.startswith(" ", start):
                return text[start + 1 : end]
            rest = text[start:end]
            if ": " not in rest:
                return rest  # ``Name:value``: split at its first colon
            # ``Name:: x`` is a header named ``Name:``: look further on.
            at = low.find(key, end)
            if at < 0:
                return default

    def _lowered(self) -> str:
        text = self._text
        low = text.lower()
        # Lowering never shortens; only a few characters lengthen (U+0130):
        # when none is there every offset is the same.
        low = "\r\n" + low if text and len(low) == len(text) else ""
        self._low = low
        return low

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

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
        # Every response is matched by it: found spelt as Asterisk spells it,
        # without lowering the whole text (a Command's output can be long),
        # when no line before it could be an ``actionid`` in another case.
        text = self._text
        if text:
            if text.startswith("ActionID: "):
                at = 10
            else:
                at = text.find("\r\nActionID: ")
                if at < 0 or "actionid" in text[:at].lower():
                    at = -1
                else:
                    at += 12
            if at >= 0:
                end = text.find("\r\n", at)
                return text[at:] if end < 0 else text[at:end]
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
            message._low = None
            message.event = _event_of(message)
            append(message)
            continue
        message._text = block
        message._headers = None
        message._low = None
        append(message)
    return messages

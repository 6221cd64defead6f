"""What the AMI benchmarks share: the stream they parse and the contenders.

The stream is made only of real messages captured from Asterisk 22
(``tests/data/ami-transcripts/*.ami``), cycled in capture order so events and
responses keep their real proportions, after the real banner. ``Response:
Goodbye`` is left out: it ends a session, and asterisk-ami's client stops
reading when it sees one.

Every contender gets the same bytes in the same reads and returns how many
messages it parsed, so one timing harness serves them all. Each runs the
library's own code for splitting and parsing; only the socket is faked (in
``ami_codec``) or real (in ``ami_loopback``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ami_bridge.codec import AMIDecoder

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
END_OF_MESSAGE = b"\r\n\r\n"
READ_BYTES = 64 * 1024
DEFAULT_MESSAGES = 50_000
DEFAULT_REPEAT = 5

CONTENDERS = ("shenava", "shenava_full_parse", "asterisk_ami", "panoramisk", "split_floor")


def transcripts_dir() -> Path:
    """The repository's copy of the captures (``tests/data/ami-transcripts``), or ``$SHENAVA_AMI_TRANSCRIPTS``."""
    override = os.environ.get("SHENAVA_AMI_TRANSCRIPTS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "tests" / "data" / "ami-transcripts"


def captured_messages(directory: Path | None = None) -> list[bytes]:
    """Every message Asterisk sent in the captures, CRLF CRLF included, in order."""
    messages: list[bytes] = []
    for path in sorted((directory or transcripts_dir()).glob("*.ami")):
        data = path.read_bytes()
        body = data[data.index(b"\r\n") + 2 :]
        for block in body.split(END_OF_MESSAGE):
            if block and not block.startswith(b"Response: Goodbye"):
                messages.append(block + END_OF_MESSAGE)
    if not messages:
        raise SystemExit(f"no .ami transcripts found in {directory or transcripts_dir()}")
    return messages


def build_stream(count: int, directory: Path | None = None) -> bytes:
    """The banner, then ``count`` captured messages cycled in capture order."""
    messages = captured_messages(directory)
    parts = [BANNER]
    parts.extend(messages[i % len(messages)] for i in range(count))
    return b"".join(parts)


def stream_mix(count: int, directory: Path | None = None) -> dict[str, int]:
    """How many events and responses the stream holds (for the report)."""
    messages = captured_messages(directory)
    events = sum(
        1 for i in range(count) if messages[i % len(messages)].startswith(b"Event:")
    )
    return {"events": events, "responses": count - events}


def cut(stream: bytes, size: int = READ_BYTES) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


# --- the contenders, each given an iterable of reads -------------------------


def parse_shenava(reads: Iterable[bytes]) -> int:
    """Lazy framing: what the daemon's protocol does with each message before dispatch.

    Every message is framed and decoded; its kind comes from its first line
    (``event``), and a response is looked up by ``ActionID``, which parses its
    headers. An event's headers are NOT split (whoever handles an event splits
    them on first use), so this is less work than the other libraries do and
    no like-for-like figure: ``shenava_full_parse`` splits every header, and
    :func:`parse_shenava_daemon` does what the daemon does per message.
    """
    decoder = AMIDecoder()
    count = 0
    for data in reads:
        for message in decoder.feed(data):
            if message.event is None:
                message.action_id  # noqa: B018 - the look-up is the work measured
            count += 1
    return count


def parse_shenava_daemon(reads: Iterable[bytes]) -> int:
    """The daemon's path: ``AMIProtocol.dataReceived`` (framing, dispatch by kind,
    responses matched by ActionID), every event to a ``CallTracker.handle`` as
    ``attach_tracker`` wires it (the tracker splits the headers it reads)."""
    from twisted.internet.task import Clock

    from ami_bridge.protocol import AMIProtocol
    from ami_bridge.tracker import CallTracker

    counted = [0]

    class Counting(AMIProtocol):
        def _dispatch_all(self, messages: list[Any]) -> None:
            counted[0] += len(messages)
            super()._dispatch_all(messages)

    clock = Clock()
    protocol = Counting(clock)
    tracker = CallTracker()
    protocol.add_event_observer(
        lambda message: tracker.handle(message, clock.seconds()), names=tracker.event_names
    )
    received = protocol.dataReceived
    for data in reads:
        received(data)
    return counted[0]


def parse_shenava_full(reads: Iterable[bytes]) -> int:
    """As :func:`parse_shenava`, and every message split into all its headers."""
    decoder = AMIDecoder()
    count = 0
    for data in reads:
        for message in decoder.feed(data):
            message.headers  # noqa: B018 - the parse is the work measured
            count += 1
    return count


class _ReadsSocket:
    """Stands in for the socket asterisk-ami's client reads: hands out the reads."""

    def __init__(self, reads: Iterable[bytes]) -> None:
        self._reads = iter(reads)

    def recv(self, size: int) -> bytes:
        return next(self._reads, b"")

    def close(self) -> None:
        pass


def asterisk_ami_packs(client: object) -> Iterator[str]:
    """asterisk-ami's own reader: ``AMIClient._next_pack`` (banner first)."""
    return client._next_pack()  # type: ignore[attr-defined,no-any-return]


def parse_asterisk_ami_packs(packs: Iterator[str]) -> int:
    """What ``AMIClient.fire_recv_pack`` does per pack, minus listener dispatch."""
    from asterisk.ami.event import Event
    from asterisk.ami.response import Response

    next(packs)  # the banner line
    count = 0
    response_match, event_match = Response.match, Event.match
    response_read, event_read = Response.read, Event.read
    for pack in packs:
        if response_match(pack):
            response_read(pack)
        elif event_match(pack):
            event_read(pack)
        else:
            raise AssertionError(f"asterisk-ami saw neither event nor response: {pack[:60]!r}")
        count += 1
    return count


def parse_asterisk_ami(reads: Iterable[bytes]) -> int:
    from asterisk.ami.client import AMIClient

    client = AMIClient()
    client._socket = _ReadsSocket(reads)
    client.finished = threading.Event()
    return parse_asterisk_ami_packs(asterisk_ami_packs(client))


def panoramisk_protocol(on_message: Callable[[object], None]) -> object:
    """panoramisk's ``AMIProtocol`` as its ``Manager`` sets it up (UTF-8), counting.

    ``data_received`` (its splitting and ``Message.from_line``) is untouched;
    only ``handle_message``, which would match responses to actions and
    dispatch events to handlers, is replaced by a counter.
    """
    from panoramisk.ami_protocol import AMIProtocol

    class CountingProtocol(AMIProtocol):  # type: ignore[misc]
        encoding = "utf8"

        def handle_message(self, message: object) -> None:
            on_message(message)

    return CountingProtocol()


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def parse_panoramisk(reads: Iterable[bytes]) -> int:
    counter = [0]

    def count(message: object) -> None:
        counter[0] += 1

    protocol = panoramisk_protocol(count)
    protocol.connection_made(_NullTransport())  # type: ignore[attr-defined]
    protocol.encoding = "utf8"  # type: ignore[attr-defined]
    received = protocol.data_received  # type: ignore[attr-defined]
    for data in reads:
        received(data)
    return counter[0]


class SplitFloor:
    """The least any AMI reader must do: frame and decode, no header parsing.

    Per read: append to the carried-over bytes, find the last blank line,
    decode the complete part once as UTF-8 and ``str.split`` it into message
    texts; keep the rest for the next read. Every contender does at least
    this much, so it bounds them all from above.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._banner = True
        self.count = 0

    def feed(self, data: bytes) -> None:
        buffer = self._buffer + data
        if self._banner:
            end = buffer.find(b"\r\n")
            if end < 0:
                self._buffer = buffer
                return
            buffer = buffer[end + 2 :]
            self._banner = False
        last = buffer.rfind(END_OF_MESSAGE)
        if last < 0:
            self._buffer = buffer
            return
        self.count += len(buffer[:last].decode("utf-8", "replace").split("\r\n\r\n"))
        self._buffer = buffer[last + 4 :]


def parse_split_floor(reads: Iterable[bytes]) -> int:
    floor = SplitFloor()
    feed = floor.feed
    for data in reads:
        feed(data)
    return floor.count


IN_MEMORY: dict[str, Callable[[Iterable[bytes]], int]] = {
    "shenava": parse_shenava,
    "shenava_full_parse": parse_shenava_full,
    "asterisk_ami": parse_asterisk_ami,
    "panoramisk": parse_panoramisk,
    "split_floor": parse_split_floor,
}


def best_of(
    runs: dict[str, Callable[[], int]], repeat: int, expected: int
) -> dict[str, float]:
    """Best wall time of each run over ``repeat`` rounds, contenders interleaved."""
    best = {name: float("inf") for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            started = time.perf_counter()
            count = run()
            elapsed = time.perf_counter() - started
            if count != expected:
                raise SystemExit(f"{name} parsed {count} messages, expected {expected}")
            best[name] = min(best[name], elapsed)
    return best


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def summary(bench: str, messages: int, seconds: dict[str, float], extra: Sequence[tuple[str, object]] = ()) -> dict[str, object]:
    rates = {name: messages / seconds[name] for name in seconds}
    out: dict[str, object] = {"bench": bench, "messages": messages}
    for name in CONTENDERS:
        out[f"{name}_msgs_per_s"] = round(rates[name])
    # like for like first (every header split, as the libraries do); ``shenava`` is lazy
    # framing (event headers not split), named so
    out["like_for_like_full_parse_vs_asterisk_ami"] = ratio(
        rates["shenava_full_parse"], rates["asterisk_ami"])
    out["like_for_like_full_parse_vs_panoramisk"] = ratio(
        rates["shenava_full_parse"], rates["panoramisk"])
    out["lazy_framing_vs_asterisk_ami"] = ratio(rates["shenava"], rates["asterisk_ami"])
    out["lazy_framing_vs_panoramisk"] = ratio(rates["shenava"], rates["panoramisk"])
    out["lazy_framing_vs_floor"] = ratio(rates["shenava"], rates["split_floor"])
    out.update(extra)
    return out

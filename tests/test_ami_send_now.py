"""SendNow: the AMI protocol's writes sent at once (or at the end of a read), on real TCP sockets.

A real loopback TCP pair with small socket buffers, so sends are partial and
the socket refuses bytes; Twisted's ``tcp.Connection`` over it with a reactor
that only records ``addWriter``/``removeWriter``, and the test playing the
loop's part (a "turn" is ``doWrite`` while a writer is registered). Whatever
the order of writes, reads, turns and drains, the peer must receive exactly the
bytes written, in order.
"""

from __future__ import annotations

import select
import socket
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor

from ami_bridge.codec import AMIDecoder, encode_message
from ami_bridge.connection import SendNow, _Guard
from ami_bridge.protocol import AMIProtocol

SMALL_BUFFER = 4096


class CountingReactor(MemoryReactor):
    """Records which descriptors want writing, and how often one was added."""

    def __init__(self) -> None:
        super().__init__()
        self.writers_added = 0

    def addWriter(self, writer: Any) -> None:
        if writer not in self.writers:
            self.writers_added += 1
        super().addWriter(writer)


class Pair:
    """``conn`` (Twisted's TCP connection, non-blocking, small send buffer) and its peer ``peer``."""

    def __init__(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        client.connect(listener.getsockname())
        self.peer, _ = listener.accept()
        listener.close()
        self.peer.setblocking(False)
        self.reactor = CountingReactor()
        self.conn = tcp.Connection(client, Protocol(), self.reactor)
        self.conn.connected = True
        self.received = bytearray()

    def close(self) -> None:
        self.conn.socket.close()
        self.peer.close()

    def drain(self, limit: int = 1 << 30) -> int:
        """Read what has arrived, up to ``limit`` bytes; how many were read."""
        got = 0
        while got < limit:
            try:
                chunk = self.peer.recv(min(65536, limit - got))
            except BlockingIOError:
                break
            if not chunk:
                break
            self.received += chunk
            got += len(chunk)
        return got

    def turn(self) -> None:
        """One loop turn: ``doWrite`` if the connection waits to write."""
        if self.conn in self.reactor.writers:
            assert not self.conn.doWrite()

    def finish(self, expected: int) -> None:
        """Turn and drain until ``expected`` bytes in all have arrived.

        Loopback delivery can lag a ``send`` when the machine is busy (the
        kernel may finish it in a deferred softirq), so nothing readable yet
        does not mean nothing more is coming: wait for the peer to be readable.
        """
        for _ in range(100_000):
            read = self.drain()
            if len(self.received) >= expected and self.conn not in self.reactor.writers:
                return
            if not read and self.conn not in self.reactor.writers:
                readable, _, _ = select.select([self.peer], [], [], 10.0)
                if not readable:
                    raise AssertionError(
                        f"{expected - len(self.received)} bytes never arrived")
            self.turn()
        raise AssertionError("never drained")


class Stream:
    """Chunks of one byte stream (position modulo 251), so a lost or moved byte shows."""

    def __init__(self) -> None:
        self.position = 0
        self.written = bytearray()

    def take(self, size: int) -> bytes:
        data = bytes((self.position + i) % 251 for i in range(size))
        self.position += size
        self.written += data
        return data


sizes = st.integers(min_value=0, max_value=12_000)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), sizes),
        st.tuples(st.just("read"), st.lists(sizes, max_size=4)),
        st.tuples(st.just("drain"), st.integers(min_value=0, max_value=40_000)),
        st.tuples(st.just("turn"), st.just(0)),
        st.tuples(st.just("tick"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(operations, st.booleans())
def test_the_peer_receives_every_byte_in_order(ops: list[tuple[str, Any]], soon: bool) -> None:
    """``soon``: writes outside a read wait for a flush queued on the loop (a "tick"
    runs what was queued); otherwise they are sent at once."""
    pair = Pair()
    queued: list[Any] = []
    out = SendNow(pair.conn, queued.append if soon else None)
    stream = Stream()

    def tick() -> None:
        due, queued[:] = list(queued), []
        for callback in due:
            callback()

    try:
        for op, arg in ops:
            if op == "write":
                out.write(stream.take(arg))
            elif op == "read":
                out.hold()
                for size in arg:
                    out.write(stream.take(size))
                out.release()
            elif op == "drain":
                pair.drain(arg)
            elif op == "tick":
                tick()
            else:
                pair.turn()
        tick()
        pair.finish(len(stream.written))
        assert pair.received == stream.written
        assert not pair.conn._tempDataBuffer and pair.conn.offset == len(pair.conn.dataBuffer)
    finally:
        pair.close()


def test_a_write_the_socket_takes_whole_costs_one_send_and_no_writer() -> None:
    pair = Pair()
    out = SendNow(pair.conn)
    try:
        out.write(b"Action: Ping\r\n\r\n")
        assert out.sends == 1 and pair.reactor.writers_added == 0
        assert pair.drain() == 16
    finally:
        pair.close()


def test_writes_outside_a_read_wait_for_one_flush_on_the_loop() -> None:
    pair = Pair()
    queued: list[Any] = []
    out = SendNow(pair.conn, queued.append)
    try:
        out.write(b"Action: Ping\r\n\r\n")
        out.write(b"Action: Ping\r\n\r\n")
        assert out.sends == 0 and len(queued) == 1  # one flush queued for both
        queued.pop()()
        assert out.sends == 1 and pair.reactor.writers_added == 0
        assert pair.drain() == 32
    finally:
        pair.close()


def test_a_partial_send_leaves_the_rest_to_twisted_and_later_writes_queue_behind_it() -> None:
    pair = Pair()
    out = SendNow(pair.conn)
    stream = Stream()
    try:
        out.write(stream.take(1 << 20))  # far more than both socket buffers
        assert out.sends == 1
        assert pair.conn in pair.reactor.writers  # the rest waits in Twisted's buffer
        out.write(stream.take(100))  # behind it, not sent ahead of it
        assert out.sends == 1
        pair.finish(len(stream.written))
        assert pair.received == stream.written
        assert pair.conn not in pair.reactor.writers
    finally:
        pair.close()


def test_a_write_while_closing_goes_through_twisted() -> None:
    pair = Pair()
    out = SendNow(pair.conn)
    try:
        out.hold()
        out.write(b"first\r\n")
        out.loseConnection()  # what was held goes to Twisted's buffer, ahead of the close
        out.write(b"second\r\n")
        out.release()
        assert out.sends == 0
        assert pair.conn.disconnecting
        pair.conn.doWrite()  # sends both, then closes as Twisted does
        assert pair.drain() == 15
        assert bytes(pair.received) == b"first\r\nsecond\r\n"
    finally:
        pair.peer.close()


def test_actions_written_while_a_read_is_handled_leave_in_one_send_at_its_end() -> None:
    """The guard holds the protocol's writes over one read: one send, no writer, no turn."""
    pair = Pair()
    ami = AMIProtocol(Clock())
    guard = _Guard(ami, ami)  # the AMI protocol as its own "proxy"
    guard.makeConnection(pair.conn)
    ami.add_event_observer(lambda message: ami.send_action("Ping"))
    try:
        events = b"".join(
            encode_message([("Event", "FullyBooted"), ("Uptime", str(n))]) for n in range(3)
        )
        guard.dataReceived(b"Asterisk Call Manager/11.0.0\r\n" + events)
        assert pair.reactor.writers_added == 0  # sent without waiting for a loop turn
        assert guard.out is not None and guard.out.sends == 1 and guard.out.writes == 3
        pair.drain()
        actions = AMIDecoder(expect_banner=False).feed(bytes(pair.received))
        assert [a["Action"] for a in actions] == ["Ping"] * 3
        assert len({a["ActionID"] for a in actions}) == 3
    finally:
        pair.close()

"""Paced AMI reads (``[ami] read_pace_ms``): after a read, reading pauses for the
pace, and what arrived meanwhile is read in one go when it ends; nothing is lost
or reordered, a closed connection leaves no timer behind.

The socket tests use real loopback TCP under the test reactor, with a
``task.Clock`` as the guard's clock so the pace ends when the test says.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
from typing import Any

import pytest_twisted
from twisted.internet import reactor as default_reactor
from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactor, StringTransport

from ami_bridge.connection import _Guard

reactor: Any = default_reactor


class Reads(Protocol):
    """The AMI protocol's place: records each ``dataReceived``."""

    def __init__(self) -> None:
        self.reads: list[bytes] = []
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.reads.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True


def guard_on(transport: Any, pace_s: float, clock: Clock) -> tuple[_Guard, Reads]:
    ami = Reads()
    guard = _Guard(Protocol(), ami, no_delay=False, read_pace_s=pace_s, clock=clock)  # type: ignore[arg-type]
    guard.makeConnection(transport)
    return guard, ami


class TcpPair:
    """Twisted's TCP connection over a real loopback socket, on a reactor that only
    records which descriptors it reads."""

    def __init__(self) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.socket()
        client.connect(listener.getsockname())
        self.peer, _ = listener.accept()
        listener.close()
        client.setblocking(False)
        self.reactor = MemoryReactor()
        self.conn = tcp.Connection(client, Protocol(), self.reactor)
        self.conn.connected = True
        self.conn.startReading()

    def reading(self) -> bool:
        return self.conn in self.reactor.readers

    def close(self) -> None:
        self.conn.socket.close()
        self.peer.close()


def test_a_read_pauses_reading_until_the_pace_ends() -> None:
    clock, pair = Clock(), TcpPair()
    try:
        guard, ami = guard_on(pair.conn, 0.003, clock)
        guard.dataReceived(b"Event: A\r\n\r\n")
        assert ami.reads == [b"Event: A\r\n\r\n"]
        assert not pair.reading()
        clock.advance(0.002)
        assert not pair.reading()
        clock.advance(0.001)  # nothing gathered (EAGAIN): the reactor reads again
        assert pair.reading()
        assert not clock.getDelayedCalls()
    finally:
        pair.close()


def test_no_pace_never_pauses() -> None:
    clock, pair = Clock(), TcpPair()
    try:
        guard, ami = guard_on(pair.conn, 0.0, clock)
        guard.dataReceived(b"Event: A\r\n\r\n")
        assert pair.reading() and not clock.getDelayedCalls()
        assert guard.paced == 0
    finally:
        pair.close()


def test_only_a_plain_tcp_connection_is_paced() -> None:
    clock, transport = Clock(), StringTransport()  # TLS, test transports: read as they come
    guard, ami = guard_on(transport, 0.003, clock)
    guard.dataReceived(b"Event: A\r\n\r\n")
    assert transport.producerState == "producing" and not clock.getDelayedCalls()
    assert guard.paced == 0


def test_a_lost_connection_cancels_the_pace() -> None:
    clock, pair = Clock(), TcpPair()
    try:
        guard, ami = guard_on(pair.conn, 0.003, clock)
        guard.dataReceived(b"Event: A\r\n\r\n")
        assert clock.getDelayedCalls()
        guard.connectionLost()
        assert ami.lost and not clock.getDelayedCalls()
    finally:
        pair.close()


def unread_bytes(sock: socket.socket) -> int:
    return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0])


async def until(predicate: Any, what: str) -> None:
    for _ in range(2000):
        if predicate():
            return
        await deferLater(reactor, 0.005, lambda: None)
    raise AssertionError(f"never: {what}")


@pytest_twisted.ensureDeferred
async def test_what_arrives_during_the_pace_is_read_at_once_in_order() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    clock = Clock()
    made: Deferred[Any] = Deferred()
    guard_box: list[_Guard] = []
    ami = Reads()

    class Factory(ClientFactory):
        def buildProtocol(self, addr: Any) -> Protocol:
            guard = _Guard(Protocol(), ami, no_delay=False, read_pace_s=0.05, clock=clock)  # type: ignore[arg-type]
            guard_box.append(guard)
            reactor.callLater(0, made.callback, guard)
            return guard

    connector = reactor.connectTCP("127.0.0.1", listener.getsockname()[1], Factory())
    guard = await made  # the kernel has completed the handshake: accept does not block
    peer, _ = listener.accept()
    listener.close()
    try:
        peer.sendall(b"Event: One\r\n\r\n")
        await until(lambda: ami.reads, "the first read")
        assert guard.paced == 1 and guard._resume is not None  # paused now
        peer.sendall(b"Event: Two\r\n\r\n")
        peer.sendall(b"Event: Three\r\n\r\n")
        client_socket = guard.transport.getHandle()
        await until(lambda: unread_bytes(client_socket) == len(b"Event: Two\r\n\r\nEvent: Three\r\n\r\n"), "both messages waiting in the socket")
        await deferLater(reactor, 0.05, lambda: None)  # the real reactor reads nothing while paused
        assert ami.reads == [b"Event: One\r\n\r\n"]
        clock.advance(0.05)  # the pace ends: both are read in this same call
        assert ami.reads == [b"Event: One\r\n\r\n", b"Event: Two\r\n\r\nEvent: Three\r\n\r\n"]
        assert guard.paced == 2 and guard._resume is not None  # and it paces again
        clock.advance(0.05)  # nothing there: back to the reactor, reading as usual
        assert guard._resume is None
        peer.sendall(b"Event: Four\r\n\r\n")
        await until(lambda: len(ami.reads) == 3, "a read through the reactor again")
        assert ami.reads[2] == b"Event: Four\r\n\r\n"
        peer.close()
        await until(lambda: unread_bytes(client_socket) == 0 and ami.reads, "the close sent")
        clock.advance(0.05)  # the pace ends on the end of the stream: the reactor sees it
        await until(lambda: ami.lost, "the end of the stream seen")
        assert not clock.getDelayedCalls()
    finally:
        peer.close()
        connector.disconnect()

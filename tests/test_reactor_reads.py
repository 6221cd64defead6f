"""The installed reactor reads without ``callWithLogger``, and Twisted's transport semantics stay.

Run in a fresh process, as ``shenava run`` installs its reactor (pytest-twisted's
reactor is Twisted's own ``AsyncioSelectorReactor``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

_SCRIPT = r'''
import json, sys
from twisted.logger import globalLogBeginner, textFileLogObserver
globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
from zope.interface import implementer
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.python.log import callWithLogger
from shenava_base.aio import install_asyncio_reactor

reactor = install_asyncio_reactor()
loop = reactor._asyncioEventloop
out = {"reactor": type(reactor).__name__}

@implementer(IHalfCloseableProtocol)
class Server(Protocol):
    def dataReceived(self, data):
        if data == b"boom":
            raise ValueError("boom")
        self.transport.write(data.upper())
        self.transport.loseWriteConnection()  # half-close: the client may still write
    def readConnectionLost(self):
        out["server_read_lost"] = True
        self.transport.loseConnection()
    def writeConnectionLost(self):
        pass
    def connectionLost(self, reason):
        out.setdefault("server_lost", []).append(type(reason.value).__name__)

@implementer(IHalfCloseableProtocol)
class Client(Protocol):
    got = b""
    def connectionMade(self):
        if hasattr(loop, "_selector"):  # asyncio's own loop (uvloop's handles are C)
            handle = loop._selector.get_key(self.transport.fileno()).data[0]
            out["read_callback"] = getattr(handle._callback, "__name__", repr(handle._callback))
            out["read_callback_is_callWithLogger"] = handle._callback is callWithLogger
        self.transport.write(self.factory.payload)
    def dataReceived(self, data):
        self.got += data
    def readConnectionLost(self):
        out.setdefault("client_read_lost", []).append(self.got.decode())
        self.transport.loseConnection()
    def writeConnectionLost(self):
        pass
    def connectionLost(self, reason):
        out.setdefault("client_lost", []).append(type(reason.value).__name__)
        if len(out["client_lost"]) == 2:
            reactor.callLater(0.05, reactor.stop)

port = reactor.listenTCP(0, Factory.forProtocol(Server), interface="127.0.0.1")
for payload in (b"hello", b"boom"):
    factory = ClientFactory.forProtocol(Client)
    factory.payload = payload
    reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
reactor.callLater(20, reactor.stop)
reactor.run(installSignalHandlers=False)
print(json.dumps(out, sort_keys=True))
'''


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
def test_reads_skip_call_with_logger_and_keep_half_close_errors_and_loss(kind: str) -> None:
    if kind == "uvloop":
        pytest.importorskip("uvloop")
    environ = {**os.environ, "SHENAVA_EVENT_LOOP": kind}
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                          env=environ, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["reactor"] == "AsyncioReactor"
    if kind == "asyncio":
        assert out["read_callback"] == "_readOrWrite" and not out["read_callback_is_callWithLogger"]
    # the echo, then the server's half-close seen by the client, which closes in turn; the
    # connection whose read raised is closed too (its client sees the end of the stream)
    assert sorted(out["client_read_lost"]) == ["", "HELLO"]
    assert out["server_read_lost"] is True
    # the read that raised: logged by Twisted's _readOrWrite, its connection dropped with it
    assert "builtins.ValueError: boom" in done.stderr
    assert sorted(out["server_lost"]) == ["ConnectionDone", "ValueError"]
    assert sorted(out["client_lost"]) == ["ConnectionDone", "ConnectionDone"]


def test_a_call_due_after_the_timer_does_not_move_it_whatever_the_two_clocks_read() -> None:
    """Twisted's own ``callLater`` compares loop time plus a wall-clock delay with the
    timer's loop time: when the clocks drift apart between reads, a call due later
    than the timer moved it (a cancel and a new asyncio handle each)."""
    from shenava_base.reactor import AsyncioReactor

    loop = asyncio.new_event_loop()
    try:
        reactor = AsyncioReactor(loop)  # not installed, not run: its timers only
        wall = [1_000.0]
        reactor.seconds = lambda: wall[0]
        loop.time = lambda: 50.0  # type: ignore[method-assign]  # stands while the wall clock moves
        fired: list[int] = []
        reactor.callLater(10.0, fired.append, 0)
        timer = reactor._timerHandle
        assert timer is not None and timer.when() == 60.0
        for n in range(1, 300):
            wall[0] += 0.001
            reactor.callLater(10.0, fired.append, n)
        assert reactor._timerHandle is timer and not timer.cancelled()
        sooner = reactor.callLater(1.0, fired.append, -1)  # due before the timer: moves it
        assert reactor._timerHandle is not timer and timer.cancelled()
        assert reactor._timerHandle.when() == 50.0 + 1.0
        sooner.cancel()
        assert len(reactor.getDelayedCalls()) == 300  # every call kept, none lost
        wall[0] += 20.0
        reactor.runUntilCurrent()
        assert sorted(fired) == list(range(300))
    finally:
        loop.close()

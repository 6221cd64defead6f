"""The test PBX on a real loopback socket, on the test run's reactor."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from ami_bridge.codec import AMIDecoder, Message, encode_action
from testpbx import CallerScript, start_testpbx

WAIT_S = 10.0


class WaitingClient(Protocol):
    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.decoder = AMIDecoder()
        self.messages: list[Message] = []
        self.waiters: list[tuple[Any, Deferred[Message]]] = []

    def dataReceived(self, data: bytes) -> None:
        for msg in self.decoder.feed(data):
            self.messages.append(msg)
            for entry in list(self.waiters):
                if entry[0](msg):
                    self.waiters.remove(entry)
                    entry[1].callback(msg)

    def wait_for(self, test: Any) -> Deferred[Message]:
        d: Deferred[Message] = Deferred()
        self.waiters.append((test, d))
        return d.addTimeout(WAIT_S, self.reactor)

    def send(self, action: str, **headers: str) -> Deferred[Message]:
        action_id = headers.setdefault("ActionID", f"x{len(self.messages)}-{action}")
        d = self.wait_for(lambda m: m.response is not None and m.action_id == action_id)
        assert self.transport is not None
        self.transport.write(encode_action(action, list(headers.items())))
        return d


@pytest_twisted.inlineCallbacks
def test_loopback_login_call_and_get_data(tmp_path: Path) -> Any:
    from twisted.internet import reactor  # pytest-twisted's running reactor

    world, port = start_testpbx(reactor, "127.0.0.1", 0, "shenava", "s3cret", tmp_path)
    client = WaitingClient(reactor)
    try:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        yield connectProtocol(endpoint, client)
        login = yield client.send("Login", Username="shenava", Secret="s3cret")
        assert login["Message"] == "Authentication accepted"
        pong = yield client.send("Ping")
        assert pong["Ping"] == "Pong"
        started = client.wait_for(lambda m: m.event == "AsyncAGIStart")
        call = world.place_call(CallerScript(answers=("2",), answer_delay_s=0.1, digit_gap_s=0.1))
        yield started
        result = client.wait_for(lambda m: m.event == "AsyncAGIExec")
        yield client.send("AGI", Channel=call.agi_channel.name, Command="GET DATA beep 3000 1",
                          CommandID="lb-1")
        exec_event = yield result
        assert (unquote(exec_event["Result"]), exec_event["CommandId"]) == ("200 result=2\n", "lb-1")
        call.hang_up()
        yield client.send("Logoff")
    finally:
        if client.transport is not None:
            client.transport.loseConnection()
        yield port.stopListening()

"""TCP_NODELAY on both ends of a real AMI connection (Asterisk's manager sets it; so do we)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint

from ami_bridge.connection import AMIConnection, AMICredentials, ConnectionState
from testpbx.options import PbxOptions
from testpbx.server import AmiServerFactory, AmiServerProtocol
from testpbx.world import PbxWorld


def no_delay(transport: Any) -> bool:
    return transport.getHandle().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


class _Recording(AmiServerFactory):
    """The test PBX's own factory, remembering the protocols it builds."""

    built: list[AmiServerProtocol]

    def buildProtocol(self, addr: object) -> AmiServerProtocol:
        protocol = super().buildProtocol(addr)
        self.built.append(protocol)
        return protocol


@pytest.mark.parametrize("enabled", [True, False])
@pytest_twisted.inlineCallbacks
def test_both_ends_of_a_loopback_ami_connection_set_tcp_nodelay(
    tmp_path: Path, enabled: bool
) -> Any:
    from twisted.internet import reactor

    world = PbxWorld(reactor, PbxOptions(users={"shenava": "s3cret"}, recordings_root=tmp_path))
    factory = _Recording(world, no_delay=enabled)
    factory.built = []
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    connection = AMIConnection(
        TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), reactor,
        AMICredentials("shenava", "s3cret"), tcp_no_delay=enabled,
    )
    dropped: Deferred[None] = Deferred()
    connection.add_state_observer(
        lambda state: dropped.callback(None)
        if state is ConnectionState.DISCONNECTED and not dropped.called else None
    )
    connection.startService()
    try:
        ami = yield connection.when_connected()
        [server] = factory.built
        assert no_delay(ami.transport) is enabled
        assert no_delay(server.transport) is enabled
        # the PBX hangs up first (a stop with the link up is another test's subject)
        yield port.stopListening()
        server.transport.loseConnection()
        yield dropped
    finally:
        yield connection.stopService()

"""An unreachable AMI is named by its address, and a clean stop is not a lost link."""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent

from ami_bridge.connection import ConnectionState, _GuardedEndpoint, describe_endpoint
from tests.test_connection import make


def test_the_endpoint_says_where_it_connects() -> None:
    endpoint = TCP4ClientEndpoint(cast(Any, Clock()), "10.1.2.3", 5038)
    connection, *_ = make()
    assert describe_endpoint(endpoint) == "10.1.2.3:5038"
    # ClientService logs "Scheduling retry N to connect {endpoint}"
    assert repr(_GuardedEndpoint(endpoint, connection)) == "AMI at 10.1.2.3:5038"
    assert describe_endpoint(object()) == "object"


def test_a_refused_connection_is_a_warning_naming_the_address() -> None:
    connection, endpoint, clock, logged, _ = make()
    endpoint._host, endpoint._port = "192.0.2.7", 5038  # type: ignore[attr-defined]
    endpoint.refuse = 1
    connection.startService()
    warnings = [formatEvent(e) for e in logged if e["log_level"] is LogLevel.warn]
    assert len(warnings) == 1 and warnings[0].startswith("AMI at 192.0.2.7:5038 unreachable (")
    clock.advance(2.0)
    connection.stopService()


def test_stopping_closes_the_link_without_a_warning() -> None:
    connection, endpoint, clock, logged, states = make()
    connection.startService()
    [server] = endpoint.servers
    server.banner()
    for _ in range(3):  # Challenge, Login, CoreShowChannels
        server.answer()
    assert states == [ConnectionState.CONNECTED]
    logged.clear()
    connection.stopService()
    assert states[-1] is ConnectionState.DISCONNECTED
    assert not [e for e in logged if e["log_level"] is LogLevel.warn], [formatEvent(e) for e in logged]
    assert any("closed (stopping)" in formatEvent(e) for e in logged)

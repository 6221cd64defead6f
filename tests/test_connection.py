"""AMIConnection: login, resync, keepalive and reconnect with backoff, on a Clock."""

from __future__ import annotations

from typing import Any, cast

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from ami_bridge.codec import AMIDecoder, Message, encode_message
from ami_bridge.connection import AMIConnection, AMICredentials, ConnectionState
from ami_bridge.errors import ConnectionLostError
from ami_bridge.events import CallAdopted, CallArrived, CallEnded, TrackerEvent
from ami_bridge.protocol import AMIProtocol, md5_key
from ami_bridge.tracker import CallTracker, attach_tracker
from tests.paths import TRANSCRIPTS

SECRET = "s3cret-do-not-log"
KEEPALIVE_S = 20.0
KEEPALIVE_TIMEOUT_S = 5.0


class FakeAsterisk:
    """One accepted connection: reads the client's actions, answers like Asterisk."""

    def __init__(self, transport: StringTransportWithDisconnection, proto: Any) -> None:
        self.transport = transport
        self.proto = proto
        self.decoder = AMIDecoder(expect_banner=False)
        self.actions: list[Message] = []

    def take(self) -> list[Message]:
        new = self.decoder.feed(self.transport.value())
        self.transport.clear()
        self.actions += new
        return new

    def send(self, *headers: tuple[str, str]) -> None:
        self.proto.dataReceived(encode_message(headers))

    def banner(self) -> None:
        self.proto.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")

    def answer(
        self,
        *,
        login_ok: bool = True,
        channels: list[Message] = (),  # type: ignore[assignment]
        pong: bool = True,
    ) -> None:
        for action in self.take():
            aid = action["ActionID"]
            name = action["Action"]
            if name == "Challenge":
                self.send(("Response", "Success"), ("ActionID", aid), ("Challenge", "42"))
            elif name == "Login":
                ok = login_ok and action.get("Key") == md5_key("42", SECRET)
                if ok:
                    self.send(
                        ("Response", "Success"),
                        ("ActionID", aid),
                        ("Message", "Authentication accepted"),
                    )
                else:
                    self.send(
                        ("Response", "Error"),
                        ("ActionID", aid),
                        ("Message", "Authentication failed"),
                    )
                    self.transport.loseConnection()
                    return
            elif name == "CoreShowChannels":
                self.send(
                    ("Response", "Success"),
                    ("ActionID", aid),
                    ("EventList", "start"),
                    ("Message", "Channels will follow"),
                )
                for item in channels:
                    self.send(*[(k, aid if k == "ActionID" else v) for k, v in item.headers])
                self.send(
                    ("Event", "CoreShowChannelsComplete"),
                    ("ActionID", aid),
                    ("EventList", "Complete"),
                    ("ListItems", str(len(channels))),
                )
            elif name == "Ping" and pong:
                self.send(("Response", "Success"), ("ActionID", aid), ("Ping", "Pong"))


class FakeEndpoint:
    def __init__(self) -> None:
        self.servers: list[FakeAsterisk] = []
        self.refuse = 0

    def connect(self, factory: Any) -> Deferred[Any]:
        if self.refuse:
            self.refuse -= 1
            return fail(ConnectionRefusedError())
        proto = factory.buildProtocol(None)
        transport = StringTransportWithDisconnection()
        transport.protocol = proto
        proto.makeConnection(transport)
        self.servers.append(FakeAsterisk(transport, proto))
        return succeed(proto)


def make(
    **kwargs: Any,
) -> tuple[AMIConnection, FakeEndpoint, Clock, list[dict[str, Any]], list[ConnectionState]]:
    clock = Clock()
    endpoint = FakeEndpoint()
    logged: list[dict[str, Any]] = []
    log = Logger(namespace="test", observer=cast(Any, logged.append))

    def protocol() -> AMIProtocol:
        proto = AMIProtocol(clock, action_id_prefix="t")
        proto.log = log
        return proto

    connection = AMIConnection(
        endpoint,
        clock,
        AMICredentials("shenava", SECRET),
        keepalive_interval=KEEPALIVE_S,
        keepalive_timeout=KEEPALIVE_TIMEOUT_S,
        # Attempt n waits 0.5 * 2**n s: 1 s, 2 s, 4 s...
        retry_policy=backoffPolicy(initialDelay=0.5, factor=2.0, maxDelay=30.0, jitter=lambda: 0.0),
        protocol_factory=protocol,
        **kwargs,
    )
    connection.log = log
    states: list[ConnectionState] = []
    connection.add_state_observer(states.append)
    return connection, endpoint, clock, logged, states


def channels_of_transcript_30() -> list[Message]:
    data = next(TRANSCRIPTS.glob("30-*.ami")).read_bytes()
    return [m for m in AMIDecoder().feed(data) if m.event == "CoreShowChannel"]


def fired(d: Deferred[Any]) -> list[Any]:
    results: list[Any] = []
    d.addBoth(results.append)
    return results


def test_connect_login_resync_and_convenience_methods() -> None:
    connection, endpoint, _, logged, states = make()
    resyncs: list[list[Message]] = []
    connection.add_resync_observer(resyncs.append)
    ready = fired(connection.when_connected())
    assert isinstance(fired(connection.send_action("Ping"))[0].value, ConnectionLostError)
    connection.startService()
    [server] = endpoint.servers
    server.banner()
    server.answer(channels=channels_of_transcript_30())  # Challenge
    server.answer(channels=channels_of_transcript_30())  # Login
    server.answer(channels=channels_of_transcript_30())  # CoreShowChannels
    assert [a["Action"] for a in server.actions] == ["Challenge", "Login", "CoreShowChannels"]
    assert ready and ready[0] is connection.protocol
    assert states == [ConnectionState.CONNECTED]
    assert [len(r) for r in resyncs] == [2]
    ping = fired(connection.send_action("Ping"))
    server.answer()
    assert ping[0]["Ping"] == "Pong"
    assert SECRET not in repr(logged)


def test_failed_login_retries_with_backoff_and_never_logs_the_secret() -> None:
    connection, endpoint, clock, logged, states = make()
    connection.startService()

    def attempt(login_ok: bool) -> FakeAsterisk:
        server = endpoint.servers[-1]
        server.banner()
        server.answer(login_ok=login_ok)
        server.answer(login_ok=login_ok)
        return server

    first = attempt(login_ok=False)
    assert not first.transport.connected
    assert connection.protocol is None
    errors = [e for e in logged if e["log_level"] == LogLevel.error]
    assert errors and "refused" in errors[0]["log_format"] and errors[0]["username"] == "shenava"
    # Backoff: 1 s, then 2 s, then 4 s.
    clock.advance(0.9)
    assert len(endpoint.servers) == 1
    clock.advance(0.1)
    assert len(endpoint.servers) == 2
    attempt(login_ok=False)
    clock.advance(1.9)
    assert len(endpoint.servers) == 2
    clock.advance(0.1)
    assert len(endpoint.servers) == 3
    server = attempt(login_ok=True)
    server.answer()  # CoreShowChannels
    assert connection.protocol is not None
    assert states == [ConnectionState.CONNECTED]
    assert SECRET not in repr(logged)


def test_refused_tcp_connections_back_off_too() -> None:
    connection, endpoint, clock, _, _ = make()
    endpoint.refuse = 2
    connection.startService()
    assert endpoint.servers == []
    clock.advance(1.0)
    assert endpoint.servers == []
    clock.advance(2.0)
    assert len(endpoint.servers) == 1


def test_connection_lost_during_login_is_a_failed_attempt() -> None:
    connection, endpoint, clock, _, states = make()
    connection.startService()
    server = endpoint.servers[0]
    server.banner()
    server.transport.loseConnection()  # before the Challenge is answered
    assert states == []
    clock.advance(1.0)
    assert len(endpoint.servers) == 2


def test_no_banner_times_out_and_retries() -> None:
    connection, endpoint, clock, _, _ = make(banner_timeout=3.0)
    connection.startService()
    clock.advance(3.0)
    assert not endpoint.servers[0].transport.connected
    clock.advance(1.0)
    assert len(endpoint.servers) == 2


def connect_fully(endpoint: FakeEndpoint, channels: list[Message] = ()) -> FakeAsterisk:  # type: ignore[assignment]
    server = endpoint.servers[-1]
    server.banner()
    for _ in range(3):
        server.answer(channels=channels)
    return server


def test_keepalive_ping_and_drop_on_ping_timeout() -> None:
    connection, endpoint, clock, logged, states = make()
    connection.startService()
    server = connect_fully(endpoint)
    clock.advance(KEEPALIVE_S)
    [ping] = server.take()
    assert ping["Action"] == "Ping"
    server.send(("Response", "Success"), ("ActionID", ping["ActionID"]), ("Ping", "Pong"))
    clock.advance(KEEPALIVE_TIMEOUT_S)
    assert server.transport.connected
    clock.advance(KEEPALIVE_S - KEEPALIVE_TIMEOUT_S)
    [unanswered] = server.take()
    assert unanswered["Action"] == "Ping"
    clock.advance(KEEPALIVE_TIMEOUT_S)
    assert not server.transport.connected
    assert states == [ConnectionState.CONNECTED, ConnectionState.DISCONNECTED]
    assert any("keepalive" in e["log_format"] for e in logged)
    assert connection.protocol is None
    clock.advance(1.0)  # reconnect after the first backoff delay
    connect_fully(endpoint)
    assert states[-1] is ConnectionState.CONNECTED
    assert connection.connections_made == 2


def test_event_observers_survive_reconnects_and_errors_are_contained() -> None:
    connection, endpoint, clock, logged, _ = make()
    seen: list[str | None] = []

    def broken(message: Message) -> None:
        raise RuntimeError("observer bug")

    connection.add_event_observer(broken)
    connection.add_event_observer(lambda m: seen.append(m.event))
    connection.startService()
    server = connect_fully(endpoint)
    server.send(("Event", "FullyBooted"))
    server.transport.loseConnection()
    clock.advance(1.0)
    server = connect_fully(endpoint)
    server.send(("Event", "Newchannel"), ("Uniqueid", "1.1"))
    assert seen == ["FullyBooted", "Newchannel"]
    assert len([e for e in logged if "log_failure" in e]) == 2


def test_events_no_observer_wants_stop_at_the_protocol() -> None:
    # An event no observer names (a call's AsyncAGIExec, a third of its events)
    # is not handed to the connection at all: the leader gate is not even asked.
    connection, endpoint, _, _, _ = make()
    asked: list[int] = []

    def may_act() -> bool:
        asked.append(1)
        return True

    connection.may_act = may_act
    hung: list[str | None] = []
    connection.add_event_observer(lambda m: hung.append(m.get("Uniqueid")), names=["Hangup"])
    connection.startService()
    server = connect_fully(endpoint)
    server.send(("Event", "AsyncAGIExec"), ("Uniqueid", "1.1"))
    server.send(("Event", "Hangup"), ("Uniqueid", "1.1"))
    assert hung == ["1.1"] and len(asked) == 1
    # An observer added while connected (or one of every event) is told at once.
    later: list[str | None] = []
    connection.add_event_observer(lambda m: later.append(m.event), names=["Newstate"])
    server.send(("Event", "Newstate"), ("Uniqueid", "1.2"))
    server.send(("Event", "AsyncAGIExec"), ("Uniqueid", "1.2"))
    assert later == ["Newstate"] and len(asked) == 2
    every: list[str | None] = []
    connection.add_event_observer(lambda m: every.append(m.event))
    server.send(("Event", "AsyncAGIExec"), ("Uniqueid", "1.3"))
    assert every == ["AsyncAGIExec"] and hung == ["1.1"]


def test_pending_requests_fail_when_the_connection_drops() -> None:
    connection, endpoint, _, _, _ = make()
    connection.startService()
    server = connect_fully(endpoint)
    action = fired(connection.send_action("Status"))
    agi = fired(connection.agi("SIP/a-1", "GET DATA beep"))
    listing = fired(connection.send_list_action("QueueStatus"))
    server.proto.connectionLost(Failure(ConnectionDone()))
    for result in (action, agi, listing):
        assert isinstance(result[0].value, ConnectionLostError)
    assert isinstance(fired(connection.agi("SIP/a-1", "HANGUP"))[0].value, ConnectionLostError)


def test_resync_after_reconnect_adopts_without_double_counting() -> None:
    connection, endpoint, clock, _, _ = make()
    tracker = CallTracker()
    events: list[TrackerEvent] = []
    tracker.subscribe(events.append)
    attach_tracker(tracker, connection, clock)
    connection.startService()
    channels = channels_of_transcript_30()
    stream = AMIDecoder().feed(next(TRANSCRIPTS.glob("30-*.ami")).read_bytes())
    newchannels = [m for m in stream if m.event == "Newchannel"][:2]
    # First connection: no channels; then the call arrives live.
    server = connect_fully(endpoint)
    for message in newchannels:
        server.proto.dataReceived(encode_message(message.headers))
    assert len([e for e in events if isinstance(e, CallArrived)]) == 1
    # Disconnected, the call goes on; a second, unknown call started meanwhile.
    server.transport.loseConnection()
    other = [
        Message(
            [
                (k, {"Uniqueid": "9.1", "Linkedid": "9.1", "Channel": "SIP/x-1"}.get(k, v))
                for k, v in channels[0].headers
            ]
        )
    ]
    clock.advance(1.0)
    connect_fully(endpoint, channels=channels + other)
    assert len([e for e in events if isinstance(e, CallArrived)]) == 1
    adopted = [e for e in events if isinstance(e, CallAdopted)]
    assert [a.linkedid for a in adopted] == ["9.1"]
    assert set(tracker.calls) == {"1795339020.16", "9.1"}
    # Third connection: the first call ended while we were away.
    endpoint.servers[-1].transport.loseConnection()
    clock.advance(1.0)
    connect_fully(endpoint, channels=other)
    [ended] = [e for e in events if isinstance(e, CallEnded)]
    assert ended.linkedid == "1795339020.16" and ended.missed
    assert set(tracker.calls) == {"9.1"}


def test_stop_service_closes_and_fails_waiters() -> None:
    connection, endpoint, _, _, states = make()
    connection.startService()
    server = connect_fully(endpoint)
    stopped = fired(connection.stopService())
    assert not server.transport.connected
    assert stopped == [None]
    assert states == [ConnectionState.CONNECTED, ConnectionState.DISCONNECTED]
    # After a stop nobody reconnects: waiting would hang whoever waits (an IVR
    # session waiting for the link to come back), so it fails at once.
    [failure] = fired(connection.when_connected())
    assert isinstance(failure.value, ConnectionLostError)


def test_the_configured_message_size_limit_reaches_each_connection() -> None:
    """``ami.max_message_bytes``: a peer sending more is cut off, on every connection made."""
    endpoint = FakeEndpoint()
    connection = AMIConnection(
        endpoint, Clock(), AMICredentials("shenava", SECRET), max_message_bytes=256
    )
    connection.startService()
    server = connect_fully(endpoint)
    assert connection.protocol is not None
    server.send(("Event", "UserEvent"), ("Data", "x" * 100))
    assert server.transport.connected
    server.send(("Event", "UserEvent"), ("Data", "x" * 400))
    assert not server.transport.connected

"""The AMI connection service: connect, log in, resync, keep alive, reconnect.

``ClientService`` reconnects with backoff; ``prepareConnection`` is where the
banner is awaited, the login done and the channels resynchronised, so a
connection only counts as made once it is usable. A refused login fails the
attempt and ClientService retries after the next backoff delay.

One Twisted wrinkle is handled here: ``ClientService`` has no transition for a
connection that is lost while ``prepareConnection`` runs or after it failed
(automat raises ``NoTransition`` inside ``connectionLost``). So each connection
sits behind a small guard protocol that tells ClientService about the loss only
once the preparation succeeded; before that, the loss fails the preparation
itself, which ClientService already counts as a failed attempt.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet import tcp
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ami_bridge.agi import AGIResult
from ami_bridge.codec import DEFAULT_MAX_MESSAGE_BYTES, Message
from ami_bridge.errors import AMIError, AuthenticationError, ConnectionLostError
from ami_bridge.observers import EventObservers
from ami_bridge.protocol import (
    DEFAULT_ACTION_ID_PREFIX,
    DEFAULT_ACTION_TIMEOUT_S,
    DEFAULT_MAX_LIST_BYTES,
    DEFAULT_MAX_LIST_ITEMS,
    AGIReply,
    AMIProtocol,
    EventList,
    Scheduler,
)

DEFAULT_KEEPALIVE_INTERVAL_S = 20.0
DEFAULT_KEEPALIVE_TIMEOUT_S = 10.0
DEFAULT_BANNER_TIMEOUT_S = 10.0
DEFAULT_RETRY_INITIAL_S = 1.0
DEFAULT_RETRY_MAX_S = 60.0
DEFAULT_RETRY_FACTOR = 1.5

ResyncObserver = Callable[[list[Message]], object]
EventObserver = Callable[[Message], object]


class ConnectionState(enum.Enum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


StateObserver = Callable[[ConnectionState], object]


@dataclass(frozen=True, slots=True)
class AMICredentials:
    """Who to log in as. The secret never shows in a repr or a log."""

    username: str
    secret: str = field(repr=False)
    md5: bool = True
    events: bool = True


class BannerTimeoutError(AMIError):
    """The peer accepted the TCP connection but sent no AMI banner in time."""

    code = "ami.banner_timeout"


def set_no_delay(transport: Any, enabled: bool = True) -> bool:
    """``TCP_NODELAY`` on a TCP transport (or the TCP under a TLS one); False if none.

    AMI is small writes answered by small writes (an action, its response; an
    AGI command, its result): with Nagle's algorithm on, a write waits for the
    ACK of the last one, which the peer delays (about 40 ms on Linux); with the
    option on neither side an AGI step took 20 ms more. Asterisk sets it on its
    side of every manager connection (``session_do`` in ``main/manager.c``);
    this side sets it too, for back-to-back writes and peers that do not. See
    docs/ami.md."""
    for candidate in (transport, getattr(transport, "transport", None)):
        setter = getattr(candidate, "setTcpNoDelay", None)
        if setter is not None:
            setter(enabled)
            return True
    return False


class SendNow:
    """The AMI protocol's transport: its writes sent at once, not a loop turn later.

    Twisted's ``FileDescriptor.write`` only buffers: ``doWrite`` sends once the
    loop next finds the socket writable, so each action written cost an
    ``addWriter`` (an epoll change), one more loop turn, the send and a
    ``removeWriter`` (another epoll change). Here what the protocol writes while
    one read is handled (:meth:`hold` ... :meth:`release`) goes out in one
    ``send`` at the end of that read, and a write at any other moment at once.

    A send of its own happens only on a plain TCP connection whose Twisted
    buffer is empty, with no producer registered, not closing and not TLS;
    otherwise, and for whatever the socket does not take (a partial send,
    ``EAGAIN``, an error), the bytes go to Twisted's ``write``, whose buffer then
    takes every later write too until it drains. So the bytes keep their order,
    a producer's back-pressure and a lost connection stay Twisted's to handle,
    and the peer sees the same byte stream. Everything else is the transport's.
    """

    def __init__(self, transport: Any, call_soon: Callable[[Callable[[], None]], object] | None = None) -> None:
        self.transport = transport
        self._call_soon = call_soon
        self._flush_due = False
        self.writes = 0
        """Writes by the protocol (benchmarks/system.py counts them per call)."""
        self.sends = 0
        """``send`` calls made here; Twisted's own ``doWrite`` sends are not counted."""
        self._held: list[bytes] = []
        self._holding = False
        self._tcp = isinstance(transport, tcp.Connection)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)

    def hold(self) -> None:
        """From now until :meth:`release`, writes are kept to be sent together."""
        self._holding = True

    def release(self) -> None:
        """Send what was written since :meth:`hold`, in one ``send``."""
        self._holding = False
        if self._held:
            held, self._held = self._held, []
            self._send(held[0] if len(held) == 1 else b"".join(held))

    def write(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        self.writes += 1
        if self._holding:
            if data:
                self._held.append(data)
        elif self._call_soon is None:
            self._send(data)
        elif data:
            self._held.append(data)
            if not self._flush_due:
                self._flush_due = True
                self._call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        if not self._holding:
            self.release()

    def writeSequence(self, data: Sequence[bytes]) -> None:
        for chunk in data:
            self.write(chunk)

    def loseConnection(self) -> None:
        self._spill()
        self.transport.loseConnection()

    def abortConnection(self) -> None:
        self._spill()
        self.transport.abortConnection()

    def _spill(self) -> None:
        """What is held goes to Twisted's buffer: closing then treats it as Twisted would."""
        held, self._held = self._held, []
        for chunk in held:
            self.transport.write(chunk)

    def _send(self, data: bytes) -> None:
        t = self.transport
        if not (
            self._tcp and data and t.connected and not t.disconnecting
            and not t._writeDisconnected and not t.TLS and t.producer is None
            and not t._tempDataBuffer and t.offset == len(t.dataBuffer)
        ):
            t.write(data)
            return
        try:
            sent = t.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # Lost: Twisted's next doWrite meets the error and closes as it would.
            t.write(data)
            return
        self.sends += 1
        if sent < len(data):
            t.write(data[sent:])


class _Guard(Protocol):
    """Sits between the transport and ClientService's proxy (see the module doc).

    The AMI protocol writes to a :class:`SendNow` around the transport; what it
    writes while handling one read goes out in one send at the end of that read.
    """

    def __init__(
        self, proxy: Any, ami: AMIProtocol, no_delay: bool = True,
        read_pace_s: float = 0.0, clock: Scheduler | None = None,
    ) -> None:
        self.proxy = proxy
        self.ami = ami
        self.prepared = False
        self.no_delay = no_delay
        self.out: SendNow | None = None
        self.read_pace_s = read_pace_s if clock is not None else 0.0
        self.clock = clock
        self._resume: Any = None
        self.paced = 0
        """Reads after which reading paused for ``read_pace_s`` (benchmarks count them)."""

    flush_soon = True

    def makeConnection(self, transport: Any) -> None:
        set_no_delay(transport, self.no_delay)
        Protocol.makeConnection(self, transport)
        loop = getattr(getattr(transport, "reactor", None), "_asyncioEventloop", None)
        soon = loop.call_soon if self.flush_soon and loop is not None else None
        self.out = SendNow(transport, soon)
        self.proxy.makeConnection(self.out)

    def dataReceived(self, data: bytes) -> None:
        out = self.out
        if out is None:
            self.ami.dataReceived(data)
            return
        out.hold()
        try:
            self.ami.dataReceived(data)
        finally:
            out.release()
        if (self.read_pace_s > 0.0 and self._resume is None and self.clock is not None
                and isinstance(self.transport, tcp.Connection)):
            # Let what arrives next gather in the socket for a moment: one read
            # then carries several messages, and the loop wakes once for them.
            transport: Any = self.transport
            transport.pauseProducing()
            self.paced += 1
            self._resume = self.clock.callLater(self.read_pace_s, self._read_again)

    def _read_again(self) -> None:
        self._resume = None
        transport: Any = self.transport
        if transport is None or not transport.connected or transport.disconnecting:
            return
        # Read now, in this wake-up, what gathered: not one loop turn later
        # through the selector. Data read paces again (reading stays paused);
        # nothing there (EAGAIN), or the end of the stream, goes back to the
        # reactor, which then sees the socket readable as usual.
        before = self.paced
        if transport.doRead() is None and self.paced != before:
            return
        transport.resumeProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._resume is not None:
            if self._resume.active():
                self._resume.cancel()
            self._resume = None
        if self.prepared:
            self.proxy.connectionLost(reason)
        else:
            self.ami.connectionLost(reason)


class _GuardFactory(Factory):
    def __init__(self, wrapped: Any, connection: AMIConnection) -> None:
        self.wrapped = wrapped
        self.connection = connection

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        proxy = self.wrapped.buildProtocol(addr)
        ami = self.connection._last_built
        if proxy is None or ami is None:
            return None
        self.connection._last_built = None
        guard = _Guard(proxy, ami, self.connection.tcp_no_delay,
                       self.connection.read_pace_s, self.connection.clock)
        self.connection._guards[proxy] = guard
        return guard


def describe_endpoint(endpoint: Any) -> str:
    """``host:port`` of a TCP client endpoint (its private fields), else its class name."""
    host = getattr(endpoint, "_host", None)
    port = getattr(endpoint, "_port", None)
    if host is not None and port is not None:
        return f"{host}:{port}"
    return type(endpoint).__name__


class _GuardedEndpoint:
    def __init__(self, endpoint: Any, connection: AMIConnection) -> None:
        self.endpoint = endpoint
        self.connection = connection

    def __repr__(self) -> str:
        # ClientService logs "Scheduling retry N to connect {endpoint}": say where.
        return f"AMI at {describe_endpoint(self.endpoint)}"

    def connect(self, factory: Any) -> Deferred[Any]:
        connecting: Deferred[Any] = self.endpoint.connect(_GuardFactory(factory, self.connection))
        connecting.addErrback(self._unreachable)
        return connecting.addCallback(lambda guard: guard.proxy)

    def _unreachable(self, failure: Any) -> Any:
        self.connection.log.warn(
            "AMI at {address} unreachable ({error}); retrying with backoff",
            address=describe_endpoint(self.endpoint), error=failure.getErrorMessage(),
        )
        return failure


class _AMIFactory(Factory):
    def __init__(self, connection: AMIConnection) -> None:
        self.connection = connection

    def buildProtocol(self, addr: IAddress | None) -> AMIProtocol:
        ami = self.connection._make_protocol()
        self.connection._last_built = ami
        return ami


class AMIConnection(Service):
    """A logged-in, resynchronised, kept-alive AMI connection that comes back.

    ``endpoint`` is any ``IStreamClientEndpoint`` (``TCP4ClientEndpoint`` in
    production, a fake in tests); ``clock`` the reactor or a ``task.Clock``.
    ``tcp_no_delay`` (on by default) sets ``TCP_NODELAY`` on the connection;
    off is for measuring what it saves. ``read_pace_s`` (``[ami] read_pace_ms``,
    0 by default: off) pauses reading a plain
    TCP connection after each read for that long, then reads what gathered in one go (docs/scaling.md,
    "Paced reads").
    """

    log = Logger()

    def __init__(
        self,
        endpoint: Any,
        clock: Scheduler,
        credentials: AMICredentials,
        *,
        keepalive_interval: float = DEFAULT_KEEPALIVE_INTERVAL_S,
        keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT_S,
        banner_timeout: float = DEFAULT_BANNER_TIMEOUT_S,
        action_timeout: float = DEFAULT_ACTION_TIMEOUT_S,
        action_id_prefix: str = DEFAULT_ACTION_ID_PREFIX,
        retry_policy: Callable[[int], float] | None = None,
        protocol_factory: Callable[[], AMIProtocol] | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_list_items: int = DEFAULT_MAX_LIST_ITEMS,
        max_list_bytes: int = DEFAULT_MAX_LIST_BYTES,
        tcp_no_delay: bool = True,
        read_pace_s: float = 0.0,
    ) -> None:
        self.clock = clock
        self.tcp_no_delay = tcp_no_delay
        self.read_pace_s = read_pace_s
        self.max_message_bytes = max_message_bytes
        self.max_list_items = max_list_items
        self.max_list_bytes = max_list_bytes
        self.credentials = credentials
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
        self.banner_timeout = banner_timeout
        self.action_timeout = action_timeout
        self.action_id_prefix = action_id_prefix
        self._protocol_factory = protocol_factory
        self._last_built: AMIProtocol | None = None
        self._connections = 0
        self._guards: dict[object, _Guard] = {}
        self._current: AMIProtocol | None = None
        self._keepalive: LoopingCall | None = None
        self._keepalive_ping: Deferred[Message] | None = None
        self._event_observers = EventObservers()
        self._fanned: AMIProtocol | None = None
        """The protocol ``_fan_out`` is told by, of the names observed here only
        (a call's ``AsyncAGIExec`` events, a third, are observed by none)."""
        self._resync_observers: tuple[ResyncObserver, ...] = ()
        # Asked before every action and AGI command (None: always yes): the
        # leader lease's gate, so a deposed leader sends Asterisk nothing.
        self.may_act: Callable[[], bool] | None = None
        self._state_observers: tuple[StateObserver, ...] = ()
        self._agi_observers: tuple[Callable[[str, float], object], ...] = ()
        self._waiters: list[Deferred[AMIProtocol]] = []
        self._stopped = False
        self.connections_made = 0
        policy = retry_policy or backoffPolicy(
            initialDelay=DEFAULT_RETRY_INITIAL_S,
            maxDelay=DEFAULT_RETRY_MAX_S,
            factor=DEFAULT_RETRY_FACTOR,
        )
        self._client = ClientService(
            cast(Any, _GuardedEndpoint(endpoint, self)),
            cast(Any, _AMIFactory(self)),
            retryPolicy=policy,
            clock=cast(Any, clock),
            prepareConnection=self._prepare,
        )

    # -- service ---------------------------------------------------------------

    def startService(self) -> None:
        self._stopped = False
        super().startService()
        self._client.startService()

    def stopService(self) -> Deferred[None]:
        self._stopped = True
        super().stopService()
        self._stop_keepalive()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(ConnectionLostError("the AMI connection service stopped"))
        return cast(Deferred[None], self._client.stopService())

    # -- observers ---------------------------------------------------------------

    def add_event_observer(
        self, observer: EventObserver, names: Iterable[str] | None = None
    ) -> None:
        """Every AMI event (or only those named in ``names``), on every connection
        to come (it survives reconnects)."""
        self._event_observers.add(observer, names)
        self._fan_out_from(self._fanned)

    def remove_event_observer(self, observer: EventObserver) -> None:
        self._event_observers.remove_every(observer)
        self._fan_out_from(self._fanned)

    def _fan_out_from(self, ami: AMIProtocol | None) -> None:
        """Be told by ``ami`` of the events some observer here wants (again, when
        the observers changed)."""
        if ami is None:
            return
        if self._fanned is ami:
            ami.remove_event_observer(self._fan_out)
        self._fanned = ami
        ami.add_event_observer(self._fan_out, self._event_observers.names)

    def add_resync_observer(self, observer: ResyncObserver) -> None:
        """Called with the ``CoreShowChannel`` events after each (re)connection."""
        self._resync_observers = (*self._resync_observers, observer)

    def remove_resync_observer(self, observer: ResyncObserver) -> None:
        self._resync_observers = tuple(o for o in self._resync_observers if o is not observer)

    def add_state_observer(self, observer: StateObserver) -> None:
        """Called with CONNECTED (logged in and resynced) and DISCONNECTED."""
        self._state_observers = (*self._state_observers, observer)

    def remove_state_observer(self, observer: StateObserver) -> None:
        self._state_observers = tuple(o for o in self._state_observers if o is not observer)

    # -- using the connection ------------------------------------------------------

    @property
    def protocol(self) -> AMIProtocol | None:
        """The current logged-in protocol, or None between connections."""
        return self._current

    def when_connected(self) -> Deferred[AMIProtocol]:
        """Fires with the protocol once logged in and resynchronised.

        Fails at once once the service has been stopped: nobody reconnects."""
        if self._stopped:
            return fail(ConnectionLostError("the AMI connection service is stopped"))
        if self._current is not None and self._current.can_send:
            return succeed(self._current)
        waiter: Deferred[AMIProtocol] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def send_action(
        self,
        action: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        timeout: float | None = None,
    ) -> Deferred[Message]:
        if self._current is None:
            return fail(ConnectionLostError(f"{action}: not connected to Asterisk"))
        if self.may_act is not None and not self.may_act():
            return fail(ConnectionLostError(f"{action}: this daemon may not act (not the leader)"))
        return self._current.send_action(action, headers, timeout=timeout)

    def send_list_action(
        self,
        action: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        timeout: float | None = None,
    ) -> Deferred[EventList]:
        if self._current is None:
            return fail(ConnectionLostError(f"{action}: not connected to Asterisk"))
        return self._current.send_list_action(action, headers, timeout=timeout)

    def agi(
        self,
        channel: str,
        command: str,
        *,
        command_id: str | None = None,
        timeout: float | None = None,
    ) -> Deferred[AGIResult]:
        if self._current is None:
            return fail(ConnectionLostError("AGI: not connected to Asterisk"))
        if self.may_act is not None and not self.may_act():
            return fail(ConnectionLostError("AGI: this daemon may not act (not the leader)"))
        return self._current.agi(channel, command, command_id=command_id, timeout=timeout)

    def agi_reply(
        self,
        channel: str,
        command: str,
        reply: AGIReply,
        *,
        command_id: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """:meth:`agi` without a Deferred (``AMIProtocol.agi_reply``): ``reply`` is
        told the result or the error, at once when there is no link; returns the
        CommandID ("" when nothing was sent), for :meth:`forget_agi`."""
        current = self._current
        if current is None:
            reply(ConnectionLostError("AGI: not connected to Asterisk"))
            return ""
        if self.may_act is not None and not self.may_act():
            reply(ConnectionLostError("AGI: this daemon may not act (not the leader)"))
            return ""
        return current.agi_reply(channel, command, reply, command_id=command_id, timeout=timeout)

    def forget_agi(self, command_id: str) -> None:
        """Drop a command started with :meth:`agi_reply`: its reply is never told.

        A command of a connection since lost was failed with the loss already."""
        current = self._current
        if current is not None and command_id:
            current.forget_agi(command_id)

    def add_agi_observer(self, observer: Callable[[str, float], object]) -> None:
        """``observer(command, seconds)`` after each AGI command's result (``/metrics``),
        told by the protocol as the result comes (``AMIProtocol.agi_answered``)."""
        self._agi_observers = (*self._agi_observers, observer)
        if self._current is not None:
            self._current.agi_answered = self._agi_timing()

    def _agi_timing(self) -> Callable[[str, float], object] | None:
        """What the protocol tells of each result: the one observer itself (the
        protocol logs its failure), or all of them in turn."""
        if not self._agi_observers:
            return None
        if len(self._agi_observers) == 1:
            return self._agi_observers[0]
        return self._agi_answered

    def _agi_answered(self, command: str, took: float) -> None:
        for observer in self._agi_observers:
            try:
                observer(command, took)
            except Exception:
                self.log.failure("AGI timing observer {observer!r} failed", observer=observer)

    def resync_now(self) -> Deferred[None]:
        """List the channels again and tell the resync observers, as after a
        reconnection (a standby that becomes the leader on a warm link)."""
        current = self._current
        if current is None:
            return fail(ConnectionLostError("CoreShowChannels: not connected to Asterisk"))
        d = current.send_list_action("CoreShowChannels")

        def tell(result: Any) -> None:
            for observer in self._resync_observers:
                self._call(observer, result.events, "resync")

        return d.addCallback(tell)

    # -- connecting ----------------------------------------------------------------

    def _make_protocol(self) -> AMIProtocol:
        if self._protocol_factory is not None:
            return self._protocol_factory()
        # Each connection numbers its ActionIDs and CommandIDs under its own
        # prefix: Asterisk sends every session the AsyncAGIExec of commands
        # that another (or an earlier) session queued, with that session's
        # CommandID (transcript 45); a new connection counting from 1 under
        # the same prefix would take them for its own.
        self._connections += 1
        return AMIProtocol(
            self.clock,
            action_timeout=self.action_timeout,
            action_id_prefix=f"{self.action_id_prefix}-c{self._connections}",
            max_message_bytes=self.max_message_bytes,
            max_list_items=self.max_list_items,
            max_list_bytes=self.max_list_bytes,
        )

    def _prepare(self, proxy: object) -> Deferred[None]:
        guard = self._guards.pop(proxy, None)
        if guard is None:
            return fail(ConnectionLostError("AMI connection without its guard"))
        return Deferred.fromCoroutine(self._login_and_resync(guard))

    async def _login_and_resync(self, guard: _Guard) -> None:
        ami = guard.ami
        username = self.credentials.username
        try:
            await ami.when_ready().addTimeout(
                self.banner_timeout, cast(Any, self.clock), onTimeoutCancel=self._no_banner
            )
            await ami.login(
                username,
                self.credentials.secret,
                md5=self.credentials.md5,
                events=self.credentials.events,
            )
            self._fan_out_from(ami)
            channels = await ami.send_list_action("CoreShowChannels")
        except AuthenticationError as error:
            self.log.error(
                "AMI login as {username} refused: {reason}; retrying with backoff",
                username=username,
                reason=str(error),
            )
            ami.drop_connection()
            raise
        except Exception as error:
            self.log.warn(
                "AMI connection not ready ({reason}); retrying with backoff",
                reason=str(error) or type(error).__name__,
            )
            ami.drop_connection()
            raise
        guard.prepared = True
        self._connected(ami, channels.events)

    def _no_banner(self, result: object, timeout: float) -> object:
        raise BannerTimeoutError(f"no AMI banner within {timeout:g} s")

    def _connected(self, ami: AMIProtocol, channels: list[Message]) -> None:
        self._current = ami
        if self._agi_observers:
            ami.agi_answered = self._agi_timing()
        self.connections_made += 1
        ami.when_lost().addCallback(lambda _: self._disconnected(ami))
        self.log.info(
            "AMI connected ({banner}); {count} channels to resync",
            banner=ami.banner,
            count=len(channels),
        )
        for observer in self._resync_observers:
            self._call(observer, channels, "resync")
        self._notify_state(ConnectionState.CONNECTED)
        self._start_keepalive(ami)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(ami)

    def _disconnected(self, ami: AMIProtocol) -> None:
        if self._fanned is ami:
            self._fanned = None
        if self._current is not ami:
            return
        self._current = None
        self._stop_keepalive()
        reason = ami.lost_reason.getErrorMessage() if ami.lost_reason is not None else "?"
        if self.running:
            self.log.warn("AMI connection lost ({reason}); reconnecting", reason=reason)
        else:
            self.log.info("AMI connection closed (stopping)")
        self._notify_state(ConnectionState.DISCONNECTED)

    # -- keepalive -----------------------------------------------------------------

    def _start_keepalive(self, ami: AMIProtocol) -> None:
        if self.keepalive_interval <= 0:
            return
        loop = LoopingCall(self._send_keepalive, ami)
        loop.clock = cast(Any, self.clock)
        self._keepalive = loop
        loop.start(self.keepalive_interval, now=False).addErrback(
            lambda f: self.log.failure("AMI keepalive loop failed", failure=f)
        )

    def _stop_keepalive(self) -> None:
        loop, self._keepalive = self._keepalive, None
        if loop is not None and loop.running:
            loop.stop()
        ping, self._keepalive_ping = self._keepalive_ping, None
        if ping is not None:
            ping.cancel()

    def _send_keepalive(self, ami: AMIProtocol) -> None:
        if self._keepalive_ping is not None or ami is not self._current:
            return  # the previous ping is still out; its own timeout decides
        ping = ami.ping(timeout=self.keepalive_timeout)
        self._keepalive_ping = ping

        def answered(_: Message) -> None:
            self._keepalive_ping = None

        def unanswered(failure: Failure) -> None:
            self._keepalive_ping = None
            if ami is self._current and not ami.lost:
                self.log.warn(
                    "AMI keepalive Ping unanswered ({reason}); dropping the connection",
                    reason=failure.getErrorMessage(),
                )
                ami.drop_connection()

        ping.addCallbacks(answered, unanswered)

    # -- helpers -----------------------------------------------------------------

    def _fan_out(self, message: Message) -> None:
        if self.may_act is not None and not self.may_act():
            return  # a deposed leader reacts to nothing (it is about to exit)
        for observer in self._event_observers[message.event]:
            try:
                observer(message)
            except Exception:
                self.log.failure(
                    "AMI observer {observer!r} failed on {event}",
                    observer=observer,
                    event=message.event or "?",
                )

    def _notify_state(self, state: ConnectionState) -> None:
        for observer in self._state_observers:
            self._call(observer, state, state.value)

    def _call(self, observer: Callable[[Any], object], value: object, what: str) -> None:
        try:
            observer(value)
        except Exception:
            self.log.failure(
                "AMI observer {observer!r} failed on {event}", observer=observer, event=what
            )

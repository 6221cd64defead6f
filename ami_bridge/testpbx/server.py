"""The AMI server side: banner, login (plain and MD5), event fan-out, listening.

Each connection is an :class:`AmiServerProtocol` on one shared
:class:`~ami_bridge.testpbx.world.PbxWorld`; every logged-in session with
events on gets every event, as Asterisk does.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTCP
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from ami_bridge.codec import AMIDecoder, Header, Message, encode_message
from ami_bridge.errors import MessageTooLargeError
from ami_bridge.testpbx.actions import ACTIONS, AUTHORITY, error, response, success
from ami_bridge.testpbx.options import AmiRights
from ami_bridge.testpbx.world import PbxWorld

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
_OPEN_ACTIONS = ("login", "challenge", "logoff")

log = Logger()


def md5_key(challenge: str, secret: str) -> str:
    return hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()


def parse_event_mask(value: str | None) -> frozenset[str] | None:
    """``on`` (or absent): every event (None); ``off``: none; else the named classes."""
    text = (value or "on").strip().lower()
    if text in ("on", "yes", "true", "1", "all"):
        return None
    if text in ("off", "no", "false", "0", ""):
        return frozenset()
    return frozenset(part.strip() for part in text.split(",") if part.strip())


class AmiServerProtocol(Protocol):
    def __init__(self, world: PbxWorld) -> None:
        self.world = world
        self._decoder = AMIDecoder(expect_banner=False)
        self.username: str | None = None
        self._challenge: str | None = None
        self._mask: frozenset[str] | None = None
        self._rights = AmiRights()
        self._unsubscribe: object = None
        self._closing = False
        self._pending: IDelayedCall | None = None

    # -- plumbing -------------------------------------------------------------

    no_delay = True
    """``TCP_NODELAY`` on the accepted socket, as Asterisk's manager does (docs/ami.md)."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        setter = getattr(self.transport, "setTcpNoDelay", None)
        if setter is not None:
            setter(self.no_delay)
        self.transport.write(BANNER)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self.connected = False
        self._stop_events()
        if self._pending is not None and self._pending.active():
            self._pending.cancel()

    def dataReceived(self, data: bytes) -> None:
        try:
            messages = self._decoder.feed(data)
        except MessageTooLargeError as exc:
            log.warn("testpbx: client sent a message of {size} bytes; dropping it", size=exc.size)
            self._close()
            return
        for msg in messages:
            if self._closing:
                return
            try:
                self._handle(msg)
            except Exception:
                log.failure("testpbx: action {action} failed", action=msg.get("Action"))
                self.send(error(msg, "Internal error"))

    def send(self, headers: list[Header]) -> None:
        self._write(encode_message(headers))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self._closing:
            self.transport.write(data)

    def _on_event(self, headers: list[Header]) -> None:
        # manager.c process_events(): the session's read classes and its
        # Events mask must each hold every class of the event, then the
        # user's event filters look at the event's text.
        mask, rights = self._mask, self._rights
        privilege = dict(headers).get("Privilege", "")
        classes = frozenset(c for c in privilege.lower().split(",") if c and c != "all")
        if mask is not None and not classes <= mask:
            return
        if not rights.may_read(classes):
            return
        data = encode_message(headers)
        if (rights.include or rights.exclude) and not rights.passes_filters(
            data.decode("utf-8", "replace")
        ):
            return
        self._write(data)

    def _start_events(self) -> None:
        self._stop_events()
        if self._mask is None or self._mask:
            self._unsubscribe = self.world.subscribe(self._on_event)

    def _stop_events(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if callable(unsubscribe):
            unsubscribe()

    def _close(self) -> None:
        self._stop_events()
        self._closing = True
        if self.transport is not None:
            self.transport.loseConnection()

    # -- actions --------------------------------------------------------------

    def _handle(self, msg: Message) -> None:
        action = (msg.get("Action") or "").strip()
        if not action:
            self.send(error(msg, "Missing action in request"))
            return
        lowered = action.lower()
        if lowered == "login":
            self._login(msg)
        elif lowered == "challenge":
            self._challenge_action(msg)
        elif lowered == "logoff":
            self.send(response(msg, "Goodbye", ("Message", "Thanks for all the fish.")))
            self._close()
        elif self.username is None:
            self.send(error(msg, "Permission denied"))
        elif lowered == "events":
            self._mask = parse_event_mask(msg.get("EventMask"))
            self._start_events()
            self.send(response(msg, "Success", ("Events", "Off" if self._mask == frozenset() else "On")))
        elif lowered in ACTIONS:
            if not self._rights.may_run(AUTHORITY[lowered]):
                self.send(error(msg, "Permission denied"))
                return
            ACTIONS[lowered](self, msg)
        else:
            self.send(error(msg, f"Invalid/unknown command: {action}. "
                                 "Use Action: ListCommands to show available commands."))

    def _challenge_action(self, msg: Message) -> None:
        if (msg.get("AuthType") or "").lower() != "md5":
            self.send(error(msg, "Must specify AuthType"))
            return
        if self._challenge is None:
            fixed = self.world.options.fixed_challenge
            self._challenge = fixed or str(self.world.rng.randrange(100_000_000, 999_999_999))
        self.send(response(msg, "Success", ("Challenge", self._challenge)))

    def _login(self, msg: Message) -> None:
        if self.username is not None:
            self.send(success(msg, "Already authenticated"))
            return
        username = msg.get("Username") or ""
        secret = self.world.options.users.get(username)
        if secret is not None and self._authentic(msg, secret):
            self.username = username
            self._rights = self.world.options.rights.get(username, AmiRights())
            self._mask = parse_event_mask(msg.get("Events"))
            self.send(success(msg, "Authentication accepted"))
            uptime = str(int(self.world.now() - self.world.started_at))
            self._on_event([("Event", "FullyBooted"), ("Privilege", "system,all"),
                            ("Uptime", uptime), ("LastReload", uptime), ("Status", "Fully Booted")])
            self._start_events()
            return
        # Asterisk answers a bad login after a pause, then hangs up on the client.
        self._closing = True
        reply = encode_message(error(msg, "Authentication failed"))
        self._pending = self.world.later(
            None, self.world.options.auth_fail_delay_s, self._refuse, reply
        )

    def _authentic(self, msg: Message, secret: str) -> bool:
        if (msg.get("AuthType") or "").lower() == "md5":
            if self._challenge is None:
                return False
            expected = md5_key(self._challenge, secret)
            return hmac.compare_digest(expected, (msg.get("Key") or "").lower())
        return hmac.compare_digest(secret.encode(), (msg.get("Secret") or "").encode())

    def _refuse(self, reply: bytes) -> None:
        self._pending = None
        if self.transport is not None:
            self.transport.write(reply)
            self.transport.loseConnection()


class AmiServerFactory(ServerFactory):
    def __init__(self, world: PbxWorld, no_delay: bool = True) -> None:
        self.world = world
        self.no_delay = no_delay
        self.sessions: list[AmiServerProtocol] = []

    def buildProtocol(self, addr: object) -> AmiServerProtocol:
        protocol = AmiServerProtocol(self.world)
        protocol.no_delay = self.no_delay
        self.sessions = [p for p in self.sessions if p.transport is None or p.connected]
        self.sessions.append(protocol)
        return protocol

    def cut(self) -> int:
        """Drop every AMI connection at once (a network cut as the client sees it:
        no goodbye); the calls go on. Returns how many were cut."""
        live = [p for p in self.sessions if p.transport is not None and p.connected]
        for protocol in live:
            transport: Any = protocol.transport
            transport.abortConnection()
        self.sessions = []
        return len(live)


def port_number(listening: IListeningPort) -> int:
    """The TCP port a listening port is bound to (port 0 picks one)."""
    address = listening.getHost()
    assert isinstance(address, IPv4Address)
    return address.port


def listen_testpbx(
    reactor: IReactorTCP, port: int, world: PbxWorld, interface: str = "127.0.0.1",
    no_delay: bool = True,
) -> IListeningPort:
    """Serve AMI for ``world`` on ``interface:port`` (0 picks a free port).

    Each accepted connection gets ``TCP_NODELAY`` like Asterisk's manager
    (``no_delay=False`` only to measure the difference)."""
    return reactor.listenTCP(port, AmiServerFactory(world, no_delay), interface=interface)

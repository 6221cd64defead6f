"""The AMI client protocol: frames with the codec, correlates, dispatches.

It assigns ActionIDs and turns each response into a Deferred (with a timeout
from the injected clock), collects event lists, matches AsyncAGI results to
their CommandID, and hands every event to observers. It makes no domain
decisions: what a call is, or what to do when a caller hangs up, lives above.

Why the dispatch looks the way it does: a busy Asterisk sends thousands of
events a second, so the decoder splits a whole read at once and the protocol
does dictionary look-ups per message, touching header indexes only when some
request could be waiting for that message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol
from typing import TypeVar, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from ami_bridge.agi import AGIResult, decode_result
from ami_bridge.codec import DEFAULT_MAX_MESSAGE_BYTES, AMIDecoder, Message, encode_message
from ami_bridge.deadlines import Deadline, Deadlines
from ami_bridge.errors import (
    ActionFailedError,
    ActionTimeoutError,
    AGICommandError,
    AGIResultError,
    AuthenticationError,
    ChannelGoneError,
    ConnectionLostError,
    EventListTooLargeError,
    HeaderInjectionError,
    MessageTooLargeError,
)
from ami_bridge.observers import EventObserver, EventObservers
from shenava_base.clock import Clock

T = TypeVar("T")

DEFAULT_ACTION_TIMEOUT_S = 10.0
DEFAULT_ACTION_ID_PREFIX = "shenava"

# Responses that mean "this action did not happen".
_FAILED_RESPONSES = frozenset({"error", "failure"})
# Asterisk's words for an AGI (or any) action on a channel that is gone:
# "Channel Local/s@caller-queue-00000023;1 does not exist." (transcript 43).
_GONE_MARKERS = ("does not exist", "no such channel")
# Time-outs whose answer may still come: remembered so that the late answer
# (or a late list) is dropped quietly instead of reaching event observers.
_MAX_ABANDONED_IDS = 1024
# An event list that never completes must not grow the daemon without bound
# (an endless list once took it from 52 MB to 1.95 GB in 10 s). A busy
# Asterisk lists a few thousand channels; these are far past that.
DEFAULT_MAX_LIST_ITEMS = 100_000
DEFAULT_MAX_LIST_BYTES = 128 * 1024 * 1024


class DelayedCall(TypingProtocol):
    """What this package uses of ``DelayedCall``."""

    def active(self) -> bool: ...

    def cancel(self) -> None: ...


Scheduler = Clock
"""What this package uses of ``IReactorTime`` (the one ``shenava_base.clock.Clock``)."""


class _Transport(TypingProtocol):
    def write(self, data: bytes) -> None: ...

    def loseConnection(self) -> None: ...


@dataclass(frozen=True, slots=True)
class EventList:
    """A completed AMI event list: the response, its items, and the ``...Complete`` event."""

    response: Message
    events: list[Message]
    complete: Message


class ListResponse(Message):
    """The response to an action sent with ``send_action`` that turned out to be a list.

    It is the ``Response: Success`` message, fired only once the list is
    complete, with the whole list on ``event_list`` so that no item is lost.
    """

    __slots__ = ("event_list",)

    def __init__(self, event_list: EventList) -> None:
        super().__init__(event_list.response.headers)
        self.event_list = event_list


AGIReply = Callable[[AGIResult | BaseException], object]
"""Told an AGI command's end, once: its decoded result, or the error it failed
with (:meth:`AMIProtocol.agi_reply`)."""


@dataclass(slots=True, eq=False)
class _PendingAGI:
    command_id: str
    channel: str
    verb: str
    reply: AGIReply
    timer: Deadline | None = None
    command: str = ""
    sent: float = 0.0
    """When it was sent, if ``AMIProtocol.agi_answered`` is to be told."""


@dataclass(slots=True, eq=False)
class _PendingAction:
    action: str
    action_id: str
    deferred: Deferred[Message] | None = None
    list_deferred: Deferred[EventList] | None = None
    is_list: bool = False
    response: Message | None = None
    events: list[Message] = field(default_factory=list)
    size: int = 0
    timer: Deadline | None = None
    agi: _PendingAGI | None = None
    """The AGI command this ``Action: AGI`` carries: no Deferred of its own,
    its refusal or time-out fails the command (``_agi_action_failed``)."""


_VERBS: dict[str, str] = {}
"""``agi_verb`` by command: a call's commands repeat (the same prompts, the
same GET DATA); bounded by starting afresh."""
_MAX_VERBS = 4096


def agi_verb(command: str) -> str:
    """The command's name without its arguments (which may hold a caller's digits)."""
    verb = _VERBS.get(command)
    if verb is None:
        verb = _agi_verb(command)
        if len(_VERBS) >= _MAX_VERBS:
            _VERBS.clear()
        _VERBS[command] = verb
    return verb


def _agi_verb(command: str) -> str:
    words: list[str] = []
    for word in command.split(None, 2)[:2]:
        if not word.isalpha():
            break
        words.append(word)
    return " ".join(words) or "AGI"


def md5_key(challenge: str, secret: str) -> str:
    """The ``Key`` of an MD5 login: hex MD5 of challenge followed by secret."""
    return hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()


def _cancel_timer(timer: Deadline | None) -> None:
    if timer is not None and timer.active():
        timer.cancel()


class AMIProtocol(Protocol):
    """One AMI client connection."""

    log = Logger()

    def __init__(
        self,
        clock: Scheduler,
        *,
        action_timeout: float = DEFAULT_ACTION_TIMEOUT_S,
        action_id_prefix: str = DEFAULT_ACTION_ID_PREFIX,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_list_items: int = DEFAULT_MAX_LIST_ITEMS,
        max_list_bytes: int = DEFAULT_MAX_LIST_BYTES,
    ) -> None:
        self.clock = clock
        self._deadlines = Deadlines(clock)
        """Every action's and AGI command's timeout, behind one timer."""
        self.log_actions = False
        """Log each action sent (debug); off by default: an event per action costs."""
        self.action_timeout = action_timeout
        self.max_list_items = max_list_items
        self.max_list_bytes = max_list_bytes
        self.action_id_prefix = action_id_prefix
        self._decoder = AMIDecoder(max_message_bytes=max_message_bytes)
        self._next_id = 0
        self._pending: dict[str, _PendingAction] = {}
        self._lists: dict[str, _PendingAction] = {}
        self._abandoned: set[str] = set()
        self._abandoned_lists: set[str] = set()
        self._agi: dict[str, _PendingAGI] = {}
        self._agi_by_channel: dict[str, dict[str, _PendingAGI]] = {}
        self._observers = EventObservers()
        self._ready_waiters: list[Deferred[str]] = []
        self._lost_waiters: list[Deferred[None]] = []
        self._closing = False
        self.banner: str | None = None
        self.lost = False
        self.lost_reason: Failure | None = None
        self.agi_answered: Callable[[str, float], object] | None = None
        """Told ``(command, seconds)`` of each AGI command answered with a result,
        just before its Deferred fires: the timing ``/metrics`` shows, without a
        callback and a closure on every command's Deferred."""
        self._event_handlers: dict[str, Callable[[Message], None]] = {
            "AsyncAGIExec": self._on_agi_exec,
            "AsyncAGIEnd": self._on_channel_gone,
            "Hangup": self._on_channel_gone,
            "Rename": self._on_rename,
        }

    # -- Twisted protocol ------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            messages = self._decoder.feed(data)
        except MessageTooLargeError as error:
            self._closing = True
            if self.banner is None and self._decoder.banner is not None:
                self._on_banner(self._decoder.banner)
            self._dispatch_all(error.messages)
            self.log.error(
                "AMI peer sent a message of {size} bytes (limit {limit}); closing the connection",
                size=error.size,
                limit=error.limit,
            )
            self.drop_connection()
            return
        if self.banner is None and self._decoder.banner is not None:
            self._on_banner(self._decoder.banner)
        self._dispatch_all(messages)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True
        self.lost_reason = reason
        why = reason.getErrorMessage()
        pending = list(self._pending.values())
        agis = list(self._agi.values())
        ready, self._ready_waiters = self._ready_waiters, []
        lost, self._lost_waiters = self._lost_waiters, []
        self._pending.clear()
        self._lists.clear()
        self._agi.clear()
        self._agi_by_channel.clear()
        self._abandoned.clear()
        self._abandoned_lists.clear()
        for action in pending:
            _cancel_timer(action.timer)
            error = ConnectionLostError(
                f"{action.action} ({action.action_id}): connection lost: {why}"
            )
            if action.deferred is not None:
                action.deferred.errback(error)
            elif action.list_deferred is not None:
                action.list_deferred.errback(error)
        for agi in agis:
            _cancel_timer(agi.timer)
            self._answer_agi(
                agi, ConnectionLostError(f"AGI {agi.verb} ({agi.command_id}): connection lost: {why}")
            )
        for ready_waiter in ready:
            ready_waiter.errback(ConnectionLostError(f"connection lost before the banner: {why}"))
        for lost_waiter in lost:
            lost_waiter.callback(None)

    # -- public API ------------------------------------------------------------

    def when_ready(self) -> Deferred[str]:
        """Fires with the banner (``Asterisk Call Manager/11.0.0``)."""
        if self.banner is not None:
            return succeed(self.banner)
        if self.lost:
            return fail(ConnectionLostError("connection lost before the banner"))
        waiter: Deferred[str] = Deferred()
        self._ready_waiters.append(waiter)
        return waiter

    def when_lost(self) -> Deferred[None]:
        """Fires (with None) once the connection is gone; the reason is ``lost_reason``."""
        if self.lost:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._lost_waiters.append(waiter)
        return waiter

    @property
    def can_send(self) -> bool:
        return self.transport is not None and not self.lost and not self._closing

    def add_event_observer(
        self, observer: EventObserver, names: Iterable[str] | None = None
    ) -> None:
        """Tell ``observer`` of every event, or only of those named in ``names``."""
        self._observers.add(observer, names)

    def remove_event_observer(self, observer: EventObserver) -> None:
        self._observers.remove_first(observer)

    def send_action(
        self,
        action: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        timeout: float | None = None,
    ) -> Deferred[Message]:
        """Send one action; fires with its response Message.

        ``Response: Error`` fails with :class:`ActionFailedError` (Asterisk's
        ``Message`` text on it); no response within ``timeout`` (default: the
        protocol's) fails with :class:`ActionTimeoutError`.
        """
        pending = _PendingAction(action=action, action_id="")
        deferred: Deferred[Message] = Deferred(lambda _: self._cancel(pending))
        pending.deferred = deferred
        return self._start(pending, headers, timeout, deferred)

    def send_list_action(
        self,
        action: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        timeout: float | None = None,
    ) -> Deferred[EventList]:
        """Send an action answered by an event list; fires once the list is complete."""
        pending = _PendingAction(action=action, action_id="", is_list=True)
        deferred: Deferred[EventList] = Deferred(lambda _: self._cancel(pending))
        pending.list_deferred = deferred
        return self._start(pending, headers, timeout, deferred)

    def login(
        self, username: str, secret: str, *, md5: bool = True, events: bool = True
    ) -> Deferred[None]:
        """Log in (MD5 challenge by default); fails with :class:`AuthenticationError`.

        The secret is only ever written to the transport: never logged, never
        put in an error.
        """
        return Deferred.fromCoroutine(self._login(username, secret, md5=md5, events=events))

    async def _login(self, username: str, secret: str, *, md5: bool, events: bool) -> None:
        events_value = "on" if events else "off"
        try:
            if md5:
                challenge = await self.send_action("Challenge", [("AuthType", "MD5")])
                key = md5_key(challenge.get("Challenge", "") or "", secret)
                headers = [
                    ("AuthType", "MD5"),
                    ("Username", username),
                    ("Key", key),
                    ("Events", events_value),
                ]
            else:
                headers = [("Username", username), ("Secret", secret), ("Events", events_value)]
            await self.send_action("Login", headers)
        except ActionFailedError as error:
            raise AuthenticationError(
                f"Asterisk refused the login of {username!r}: {error.message}"
            ) from None
        self.log.info("logged in to AMI as {username}", username=username)

    def agi(
        self,
        channel: str,
        command: str,
        *,
        command_id: str | None = None,
        timeout: float | None = None,
    ) -> Deferred[AGIResult]:
        """Run one AsyncAGI command; fires with its decoded result.

        Fails with :class:`ChannelGoneError` when the channel does not exist or
        its AGI session ends (``AsyncAGIEnd``) or it hangs up before the
        result comes; with :class:`AGICommandError` when Asterisk refuses the
        action for another reason. ``timeout`` None waits as long as the
        command runs (``GET DATA``, ``EXEC MusicOnHold``). Cancelling the
        Deferred forgets the command (a late result is dropped).

        :meth:`agi_reply` is the same without a Deferred (the IVR's path).
        """
        if command_id is None:
            command_id = self._new_id("agi")
        deferred: Deferred[AGIResult] = Deferred(lambda _: self.forget_agi(command_id))
        self.agi_reply(
            channel, command, _deferred_reply(deferred), command_id=command_id, timeout=timeout
        )
        return deferred

    def agi_reply(
        self,
        channel: str,
        command: str,
        reply: AGIReply,
        *,
        command_id: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """Run one AsyncAGI command and tell ``reply`` its end; returns its CommandID.

        ``reply`` is called once, with the decoded :class:`AGIResult` or with
        the error :meth:`agi` fails with; at once (before this returns) when
        the command cannot be sent. :meth:`forget_agi` with the CommandID
        drops the command: ``reply`` is then never called. One callable per
        command and no Deferred: two dozen commands a call take this path.
        """
        if command_id is None:
            command_id = self._new_id("agi")
        verb = agi_verb(command)
        if command_id in self._agi:
            reply(AGICommandError(f"AGI {verb}: CommandID {command_id!r} is already running"))
            return command_id
        if not self.can_send:
            reply(ConnectionLostError(f"AGI {verb} ({command_id}): not connected"))
            return command_id
        pending = _PendingAGI(command_id=command_id, channel=channel, verb=verb, reply=reply)
        if self.agi_answered is not None:
            pending.command = command
            pending.sent = self.clock.seconds()
        self._agi[command_id] = pending
        by_channel = self._agi_by_channel.get(channel)
        if by_channel is None:
            self._agi_by_channel[channel] = {command_id: pending}
        else:
            by_channel[command_id] = pending
        # The action's answer only matters when it refuses the command: no
        # Deferred for it, its failure goes straight to the command's reply.
        failed = self._send_agi(
            _PendingAction(action="AGI", action_id="", agi=pending), channel, command, command_id
        )
        if failed is not None:
            self._agi_action_failed(failed, pending)
        if timeout is not None and command_id in self._agi:
            pending.timer = self._deadlines.call_later(timeout, self._agi_timed_out, pending, timeout)
        return command_id

    def forget_agi(self, command_id: str) -> None:
        """Drop a running AGI command: its reply is never told, a late result is ignored."""
        self._forget_agi(command_id)

    def ping(self, *, timeout: float | None = None) -> Deferred[Message]:
        return self.send_action("Ping", timeout=timeout)

    def logoff(self, *, timeout: float | None = None) -> Deferred[Message]:
        """Say goodbye; Asterisk answers ``Response: Goodbye`` and closes the socket."""
        return self.send_action("Logoff", timeout=timeout)

    @property
    def pending_count(self) -> int:
        """Actions and AGI commands still waiting (for metrics and tests)."""
        return len(self._pending) + len(self._agi)

    # -- sending ---------------------------------------------------------------

    def _new_id(self, kind: str = "") -> str:
        self._next_id += 1
        if kind:
            return f"{self.action_id_prefix}-{kind}-{self._next_id}"
        return f"{self.action_id_prefix}-{self._next_id}"

    def _start(
        self,
        pending: _PendingAction,
        headers: Sequence[tuple[str, str]],
        timeout: float | None,
        deferred: Deferred[T],
    ) -> Deferred[T]:
        action = pending.action
        if any(name.lower() == "actionid" for name, _ in headers):
            return fail(ValueError(f"{action}: the protocol assigns the ActionID"))
        failed = self._send(pending, headers, timeout)
        return deferred if failed is None else fail(failed)

    def _send(
        self, pending: _PendingAction, headers: Sequence[tuple[str, str]], timeout: float | None
    ) -> Failure | None:
        """Write the action and wait for its answer; a Failure when not sent."""
        action = pending.action
        if not self.can_send:
            return Failure(ConnectionLostError(f"{action}: not connected"))
        action_id = self._new_id()
        try:
            data = encode_message([("Action", action), *headers, ("ActionID", action_id)])
        except HeaderInjectionError:
            # CR/LF/NUL in a header: refused before a byte is written.
            return Failure()
        self._write_action(pending, action_id, data, timeout)
        return None

    def _send_agi(
        self, pending: _PendingAction, channel: str, command: str, command_id: str
    ) -> Failure | None:
        """``_send`` of an ``Action: AGI``, two dozen a call: its text made at once.

        The same bytes as ``encode_message`` makes; a value with CR, LF or NUL
        goes the general way (refused there, the error naming the header): the
        text then has more than its six line ends, or a NUL."""
        # ``agi_reply`` has checked ``can_send``
        self._next_id += 1
        action_id = f"{self.action_id_prefix}-{self._next_id}"
        text = (
            f"Action: AGI\r\nChannel: {channel}\r\nCommand: {command}\r\n"
            f"CommandID: {command_id}\r\nActionID: {action_id}\r\n\r\n"
        )
        if text.count("\n") != 6 or text.count("\r") != 6 or "\x00" in text:
            return self._send(
                pending,
                [("Channel", channel), ("Command", command), ("CommandID", command_id)],
                None,
            )
        self._write_action(pending, action_id, text.encode(), None)
        return None

    def _write_action(
        self, pending: _PendingAction, action_id: str, data: bytes, timeout: float | None
    ) -> None:
        """Wait for the answer to ``pending`` (with its deadline) and write it."""
        action = pending.action
        pending.action_id = action_id
        self._pending[action_id] = pending
        if pending.is_list:
            self._lists[action_id] = pending
        delay = self.action_timeout if timeout is None else timeout
        pending.timer = self._deadlines.call_later(delay, self._action_timed_out, pending, delay)
        transport: _Transport = self.transport  # type: ignore[assignment]  # set once connected
        transport.write(data)
        if self.log_actions:
            self.log.debug("sent {action} {action_id}", action=action, action_id=action_id)

    def _cancel(self, pending: _PendingAction) -> None:
        if self._pending.get(pending.action_id) is pending:
            self._finish(pending)
            self._remember_abandoned(pending)

    def _finish(self, pending: _PendingAction) -> None:
        self._pending.pop(pending.action_id, None)
        self._lists.pop(pending.action_id, None)
        _cancel_timer(pending.timer)
        pending.timer = None

    def _remember_abandoned(self, pending: _PendingAction) -> None:
        """Remember a given-up action so its late answer is dropped quietly."""
        ids = self._abandoned_lists if pending.is_list else self._abandoned
        if len(ids) >= _MAX_ABANDONED_IDS:
            ids.clear()
        ids.add(pending.action_id)

    def _action_timed_out(self, pending: _PendingAction, delay: float) -> None:
        pending.timer = None
        if self._pending.get(pending.action_id) is not pending:
            return
        self._finish(pending)
        self._remember_abandoned(pending)
        self.log.warn(
            "{action} ({action_id}) got no answer within {timeout} s",
            action=pending.action,
            action_id=pending.action_id,
            timeout=delay,
        )
        error = ActionTimeoutError(pending.action, pending.action_id, delay)
        if pending.agi is not None:
            self._agi_action_failed(Failure(error), pending.agi)
        elif pending.deferred is not None:
            pending.deferred.errback(error)
        elif pending.list_deferred is not None:
            pending.list_deferred.errback(error)

    def drop_connection(self) -> None:
        """Abort the connection (a flooding peer, a keepalive that got no answer)."""
        if self.transport is None:
            return
        transport = cast(_Transport, self.transport)
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            transport.loseConnection()

    # -- receiving -------------------------------------------------------------

    def _on_banner(self, banner: str) -> None:
        self.banner = banner
        waiters, self._ready_waiters = self._ready_waiters, []
        for waiter in waiters:
            waiter.callback(banner)

    def _dispatch_all(self, messages: list[Message]) -> None:
        # The kind of a message comes from its first line: an event that no
        # handler, list or observer looks into is never split into headers.
        for message in messages:
            if self.lost:
                return
            name = message.event
            if name is not None:
                self._on_event(message, name)
                continue
            response = message.response  # its first line: read once, used below
            if response is not None:
                self._on_response(message, response)
            else:
                self.log.warn("AMI message neither response nor event ignored")

    def _on_response(self, message: Message, response: str) -> None:
        action_id = message.action_id
        pending = self._pending.get(action_id) if action_id is not None else None
        if pending is None:
            if action_id is not None and (
                action_id in self._abandoned or action_id in self._abandoned_lists
            ):
                self._abandoned.discard(action_id)
                if (message.get("EventList") or "").lower() == "start":
                    self._abandoned_lists.add(action_id)
                self.log.debug("late response to {action_id} ignored", action_id=action_id)
            else:
                self.log.debug("response to unknown ActionID {action_id}", action_id=action_id)
            return
        failed = response.lower() in _FAILED_RESPONSES
        if not failed and pending.agi is not None:
            # An AGI command queued: its result comes as AsyncAGIExec.
            self._finish(pending)
            return
        if not failed and (pending.is_list or (message.get("EventList") or "").lower() == "start"):
            # The list's answer comes with its ...Complete event.
            pending.is_list = True
            pending.response = message
            self._lists[pending.action_id] = pending
            return
        self._finish(pending)
        if failed:
            error = ActionFailedError(pending.action, message.get("Message") or "", message)
            if pending.agi is not None:
                self._agi_action_failed(Failure(error), pending.agi)
            elif pending.deferred is not None:
                pending.deferred.errback(error)
            elif pending.list_deferred is not None:
                pending.list_deferred.errback(error)
        elif pending.deferred is not None:
            pending.deferred.callback(message)
        elif pending.list_deferred is not None:
            # A list action answered without a list: an empty one.
            pending.list_deferred.callback(EventList(message, [], message))

    def _on_event(self, message: Message, name: str) -> None:
        if self._lists or self._abandoned_lists:
            action_id = message.action_id
            if action_id is not None and self._take_list_event(message, action_id):
                return
        handler = self._event_handlers.get(name)
        if handler is not None:
            handler(message)
        for observer in self._observers[name]:
            try:
                observer(message)
            except Exception:
                self.log.failure(
                    "event observer {observer!r} failed on {event}", observer=observer, event=name
                )

    def _take_list_event(self, message: Message, action_id: str) -> bool:
        """Keep an event that belongs to a pending (or abandoned) list; True if taken."""
        pending = self._lists.get(action_id)
        marker = message.get("EventList")
        if pending is None:
            if action_id in self._abandoned_lists:
                if marker is not None and marker.lower() != "start":
                    self._abandoned_lists.discard(action_id)
                return True
            return False
        if marker is None or marker.lower() == "start":
            pending.events.append(message)
            pending.size += message.size
            if len(pending.events) > self.max_list_items or pending.size > self.max_list_bytes:
                self._list_too_large(pending)
            return True
        self._finish(pending)
        response = pending.response if pending.response is not None else message
        result = EventList(response, pending.events, message)
        if pending.list_deferred is not None:
            pending.list_deferred.callback(result)
        elif pending.deferred is not None:
            # An action sent with send_action that turned out to be a list.
            pending.deferred.callback(ListResponse(result))
        return True

    def _list_too_large(self, pending: _PendingAction) -> None:
        """Give up a list past its cap; its later events are dropped quietly."""
        self._finish(pending)
        self._remember_abandoned(pending)
        items, size = len(pending.events), pending.size
        pending.events = []
        if items > self.max_list_items:
            limit = f"more than {self.max_list_items} events (ami.max_list_items)"
        else:
            limit = f"more than {self.max_list_bytes} bytes (ami.max_list_bytes)"
        self.log.warn(
            "{action} ({action_id}): event list given up after {items} events "
            "({size} bytes): {limit}",
            action=pending.action,
            action_id=pending.action_id,
            items=items,
            size=size,
            limit=limit,
            code=EventListTooLargeError.code,
        )
        error = EventListTooLargeError(pending.action, pending.action_id, items, size, limit)
        if pending.list_deferred is not None:
            pending.list_deferred.errback(error)
        elif pending.deferred is not None:
            pending.deferred.errback(error)

    # -- AsyncAGI --------------------------------------------------------------

    def _on_agi_exec(self, message: Message) -> None:
        command_id = message.get("CommandID")
        if command_id is None:
            return
        pending = self._forget_agi(command_id)
        if pending is None:
            return
        try:
            result = decode_result(message.get("Result"), verb=pending.verb)
        except AGIResultError as error:
            # The command ran, but what it did is unknown: the waiter treats
            # it as a failed command (the IVR replays or moves on).
            self.log.warn(
                "AGI {verb} ({command_id}) on {channel}: {code}: {reason}",
                verb=pending.verb,
                command_id=command_id,
                channel=pending.channel,
                code=error.code,
                reason=error.reason,
            )
            self._answer_agi(pending, error)
            return
        answered = self.agi_answered
        if answered is not None and pending.command:
            try:
                answered(pending.command, self.clock.seconds() - pending.sent)
            except Exception:
                self.log.failure("AGI timing observer {observer!r} failed", observer=answered)
        self._answer_agi(pending, result)

    def _answer_agi(self, pending: _PendingAGI, outcome: AGIResult | BaseException) -> None:
        """Tell the command's reply its end; what the reply raises is logged, not
        let into the read that carried the result (other messages follow it)."""
        try:
            pending.reply(outcome)
        except Exception:
            self.log.failure(
                "AGI {verb} ({command_id}): its reply failed", verb=pending.verb,
                command_id=pending.command_id,
            )

    def _on_channel_gone(self, message: Message) -> None:
        if not self._agi_by_channel:
            return
        channel = message.get("Channel")
        if channel is None:
            return
        waiting = self._agi_by_channel.get(channel)
        if not waiting:
            return
        event = message.event
        for pending in list(waiting.values()):
            self._forget_agi(pending.command_id)
            self._answer_agi(
                pending,
                ChannelGoneError(
                    f"AGI {pending.verb} ({pending.command_id}) on {channel}: "
                    f"the channel's AGI session ended ({event})"
                ),
            )

    def _on_rename(self, message: Message) -> None:
        old, new = message.get("Channel"), message.get("Newname")
        if old is None or new is None:
            return
        waiting = self._agi_by_channel.pop(old, None)
        if waiting:
            for pending in waiting.values():
                pending.channel = new
            self._agi_by_channel.setdefault(new, {}).update(waiting)

    def _forget_agi(self, command_id: str) -> _PendingAGI | None:
        pending = self._agi.pop(command_id, None)
        if pending is None:
            return None
        _cancel_timer(pending.timer)
        pending.timer = None
        by_channel = self._agi_by_channel.get(pending.channel)
        if by_channel is not None:
            by_channel.pop(command_id, None)
            if not by_channel:
                del self._agi_by_channel[pending.channel]
        return pending

    def _agi_action_failed(self, failure: Failure, pending: _PendingAGI) -> None:
        if self._agi.get(pending.command_id) is not pending:
            return None  # already answered, gone or cancelled
        self._forget_agi(pending.command_id)
        error = failure.value
        if isinstance(error, ActionFailedError):
            text = error.message
            where = f"AGI {pending.verb} ({pending.command_id}) on {pending.channel}: {text}"
            if any(marker in text.lower() for marker in _GONE_MARKERS):
                self._answer_agi(pending, ChannelGoneError(where))
            else:
                self._answer_agi(pending, AGICommandError(where))
            return None
        self._answer_agi(pending, error)
        return None

    def _agi_timed_out(self, pending: _PendingAGI, timeout: float) -> None:
        pending.timer = None
        if self._forget_agi(pending.command_id) is None:
            return
        self._answer_agi(pending, ActionTimeoutError(f"AGI {pending.verb}", pending.command_id, timeout))


def _deferred_reply(deferred: Deferred[AGIResult]) -> AGIReply:
    """An :data:`AGIReply` that fires ``deferred`` (:meth:`AMIProtocol.agi`)."""

    def reply(outcome: AGIResult | BaseException) -> None:
        if isinstance(outcome, BaseException):
            deferred.errback(Failure(outcome))
        else:
            deferred.callback(outcome)

    return reply

"""Errors of the AMI bridge, one class each, with a stable code for logs and APIs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ami_bridge.message import Message


class AMIError(Exception):
    """Base of every AMI bridge error."""

    code = "ami.error"


class HeaderInjectionError(AMIError, ValueError):
    """A header name or value held CR, LF or NUL and would forge AMI framing."""

    code = "ami.header_injection"

    def __init__(self, header: str, part: str) -> None:
        self.header = header
        self.part = part
        super().__init__(
            f"refused AMI header {header!r}: its {part} contains CR, LF or NUL "
            "(or is otherwise not a valid header name)"
        )


class InvalidVariableError(AMIError, ValueError):
    """A channel variable for ``Originate`` that Asterisk would not keep whole.

    Asterisk splits every ``Variable:`` header at commas, drops quotes and
    backslashes (``manager.c`` ``man_do_variable_value``, with
    ``AST_STANDARD_APP_ARGS``) and cuts each item at its first ``=``.
    """

    code = "ami.invalid_variable"

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"refused channel variable {name!r}: {reason}")


class MessageTooLargeError(AMIError):
    """The peer sent a message past the size limit; the connection must close."""

    code = "ami.message_too_large"

    def __init__(self, size: int, limit: int, messages: list[Message]) -> None:
        self.size = size
        self.limit = limit
        self.messages = messages
        super().__init__(f"AMI message of {size} bytes exceeds the limit of {limit} bytes")


class ActionFailedError(AMIError):
    """Asterisk answered ``Response: Error``; ``message`` is Asterisk's own text."""

    code = "ami.action_failed"

    def __init__(self, action: str, message: str, response: Message | None = None) -> None:
        self.action = action
        self.message = message
        self.response = response
        super().__init__(f"{action} failed: {message}")


class ActionTimeoutError(AMIError):
    """No response (or no end of an event list) arrived in time."""

    code = "ami.action_timeout"

    def __init__(self, action: str, action_id: str, timeout: float) -> None:
        self.action = action
        self.action_id = action_id
        self.timeout = timeout
        super().__init__(f"{action} ({action_id}) got no answer within {timeout:g} s")


class ConnectionLostError(AMIError):
    """The AMI connection went away while this request was pending."""

    code = "ami.connection_lost"


class AuthenticationError(AMIError):
    """Asterisk refused the login (wrong user or secret, or no permission)."""

    code = "ami.authentication_failed"


class AGICommandError(AMIError):
    """An AsyncAGI command could not run: the channel is gone or the reply was not 200."""

    code = "ami.agi_failed"


class ChannelGoneError(AGICommandError):
    """The caller hung up: the channel no longer exists or its AGI session ended."""

    code = "ami.channel_gone"


class AGIResultError(AGICommandError):
    """An ``AsyncAGIExec`` ``Result`` that cannot be read: missing, garbage, or a
    value the command cannot give (``result=²``, a key code past any key).

    The command ran on Asterisk but what it did is unknown, so callers treat
    it as a failed command. ``reason`` never holds the result's text (it may
    be a caller's digits).
    """

    code = "ami.agi_bad_result"

    def __init__(self, reason: str, *, verb: str | None = None) -> None:
        self.reason = reason
        self.verb = verb
        where = f"AGI {verb}" if verb else "AGI result"
        super().__init__(f"{where}: unreadable result: {reason}")


class EventListTooLargeError(AMIError):
    """An event list passed its cap (items or bytes) before its ``...Complete``.

    The list is given up (its later events are dropped quietly) so that a
    list that never ends cannot grow the daemon without bound.
    """

    code = "ami.event_list_too_large"

    def __init__(self, action: str, action_id: str, items: int, size: int, limit: str) -> None:
        self.action = action
        self.action_id = action_id
        self.items = items
        self.size = size
        self.limit = limit
        super().__init__(
            f"{action} ({action_id}): event list given up after {items} events "
            f"({size} bytes): {limit}"
        )

"""Typed builders for the AMI actions Shenava sends: (action name, headers).

Each returns an :class:`Action` for ``AMIProtocol.send_action``/``AMIConnection``;
the codec refuses CR/LF/NUL in any value when it is encoded, so caller-supplied
text cannot forge headers. Header names are the ones Asterisk 22 accepts, as
seen in ``shared/ami-transcripts`` (40 Originate/Bridge, 42 Variable, 44 Redirect).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ami_bridge.errors import InvalidVariableError

Header = tuple[str, str]

# A dialplan variable name (leading underscores make it inherited).
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What Asterisk's argument splitting changes inside a ``Variable:`` value.
_VARIABLE_VALUE_FORBIDDEN = re.compile(r'[,"\\]')


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    headers: tuple[Header, ...]


def originate_application(
    channel: str,
    application: str,
    data: str = "",
    *,
    channel_id: str | None = None,
    other_channel_id: str | None = None,
    timeout_s: float = 20.0,
    caller_id: str | None = None,
    variables: Mapping[str, str] | None = None,
) -> Action:
    """Originate ``channel`` and run one application on it once answered.

    ``channel_id`` chooses the new channel's Uniqueid (and ``other_channel_id``
    that of a Local channel's second half), so the daemon knows the agent leg
    before Asterisk reports it.
    """
    headers: list[Header] = [("Channel", channel), ("Application", application)]
    if data:
        headers.append(("Data", data))
    return Action("Originate", tuple(headers + _originate_common(
        channel_id, other_channel_id, timeout_s, caller_id, variables)))


def originate_context(
    channel: str,
    context: str,
    exten: str,
    priority: int = 1,
    *,
    channel_id: str | None = None,
    other_channel_id: str | None = None,
    timeout_s: float = 20.0,
    caller_id: str | None = None,
    variables: Mapping[str, str] | None = None,
) -> Action:
    """Originate ``channel`` and send it into the dialplan once answered (transcript 42)."""
    headers: list[Header] = [
        ("Channel", channel),
        ("Context", context),
        ("Exten", exten),
        ("Priority", str(priority)),
    ]
    return Action("Originate", tuple(headers + _originate_common(
        channel_id, other_channel_id, timeout_s, caller_id, variables)))


def _originate_common(
    channel_id: str | None,
    other_channel_id: str | None,
    timeout_s: float,
    caller_id: str | None,
    variables: Mapping[str, str] | None,
) -> list[Header]:
    headers: list[Header] = [("Timeout", str(int(timeout_s * 1000)))]
    if caller_id:
        headers.append(("CallerID", caller_id))
    headers.append(("Async", "true"))
    if channel_id:
        headers.append(("ChannelId", channel_id))
    if other_channel_id:
        headers.append(("OtherChannelId", other_channel_id))
    for name, value in (variables or {}).items():
        headers.append(("Variable", variable_item(name, value)))
    return headers


def variable_item(name: str, value: str) -> str:
    """``name=value`` for one ``Variable:`` header, or :class:`InvalidVariableError`.

    Refused rather than sent: a value Asterisk would cut at a comma (or strip
    of quotes and backslashes) would reach the dialplan as something else.
    """
    if not _VARIABLE_NAME.fullmatch(name):
        raise InvalidVariableError(name, "a name is letters, digits and underscores")
    if _VARIABLE_VALUE_FORBIDDEN.search(value):
        raise InvalidVariableError(
            name, "Asterisk splits a Variable value at commas and drops quotes and backslashes"
        )
    return f"{name}={value}"


def bridge(channel1: str, channel2: str, *, tone: bool = False) -> Action:
    return Action(
        "Bridge",
        (("Channel1", channel1), ("Channel2", channel2), ("Tone", "yes" if tone else "no")),
    )


def hangup(channel: str, cause: int | None = None) -> Action:
    headers: list[Header] = [("Channel", channel)]
    if cause is not None:
        headers.append(("Cause", str(cause)))
    return Action("Hangup", tuple(headers))


def redirect(channel: str, context: str, exten: str, priority: int = 1) -> Action:
    return Action(
        "Redirect",
        (("Channel", channel), ("Context", context), ("Exten", exten), ("Priority", str(priority))),
    )


def setvar(channel: str, variable: str, value: str) -> Action:
    return Action("Setvar", (("Channel", channel), ("Variable", variable), ("Value", value)))


def getvar(channel: str, variable: str) -> Action:
    return Action("Getvar", (("Channel", channel), ("Variable", variable)))

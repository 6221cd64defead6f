"""Field layouts of the events the test PBX sends, copied from the captures."""

from __future__ import annotations

from urllib.parse import quote

from ami_bridge.codec import Header
from testpbx.channel import CAUSE_TEXT, Bridge, Channel

# Asterisk's URI encoding leaves RFC 2396 "mark" characters alone:
# ``200%20result%3D0%20(timeout)%20endpos%3D54173%0A``.
_URI_SAFE = "-_.!~*'()"


def uri_encode(text: str) -> str:
    return quote(text, safe=_URI_SAFE)


def channel_fields(ch: Channel, prefix: str = "") -> list[Header]:
    p = prefix
    fields: list[Header] = [
        (f"{p}Channel", ch.name),
        (f"{p}ChannelState", str(ch.state)),
        (f"{p}ChannelStateDesc", ch.state_desc),
        (f"{p}CallerIDNum", ch.caller_num),
        (f"{p}CallerIDName", ch.caller_name),
        (f"{p}ConnectedLineNum", ch.connected_num),
        (f"{p}ConnectedLineName", ch.connected_name),
        (f"{p}Language", ch.language),
        (f"{p}AccountCode", ch.accountcode),
        (f"{p}Context", ch.context),
        (f"{p}Exten", ch.exten),
        (f"{p}Priority", str(ch.priority)),
        (f"{p}Uniqueid", ch.uniqueid),
        (f"{p}Linkedid", ch.linkedid),
    ]
    # manager.conf's channelvars, after the snapshot's own fields; a variable
    # the channel lacks is sent empty (ast_channel_get_manager_vars assigns "")
    for name in ch.manager_vars:
        fields.append((f"{p}ChanVariable", f"{name}={ch.variables.get(name, '')}"))
    return fields


def channel_event(name: str, ch: Channel, *extra: Header, privilege: str = "call,all") -> list[Header]:
    return [("Event", name), ("Privilege", privilege), *channel_fields(ch), *extra]


def hangup_event(ch: Channel) -> list[Header]:
    cause = ch.hangupcause
    return channel_event(
        "Hangup", ch, ("Cause", str(cause)), ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown"))
    )


def bridge_fields(bridge: Bridge, count: int) -> list[Header]:
    return [
        ("BridgeUniqueid", bridge.uniqueid),
        ("BridgeType", "basic"),
        ("BridgeTechnology", "simple_bridge"),
        ("BridgeCreator", "<unknown>"),
        ("BridgeName", "<unknown>"),
        ("BridgeNumChannels", str(count)),
        ("BridgeVideoSourceMode", "none"),
    ]


def bridge_event(name: str, bridge: Bridge, count: int, ch: Channel | None = None) -> list[Header]:
    headers: list[Header] = [("Event", name), ("Privilege", "call,all"), *bridge_fields(bridge, count)]
    if ch is not None:
        headers += channel_fields(ch)
    return headers


def dial_event(
    name: str, dest: Channel, caller: Channel | None, *extra: Header
) -> list[Header]:
    headers: list[Header] = [("Event", name), ("Privilege", "call,all")]
    if caller is not None:
        headers += channel_fields(caller)
    headers += channel_fields(dest, "Dest")
    return headers + list(extra)


def agi_env(ch: Channel, version: str) -> str:
    tech = ch.tech
    lines = [
        ("agi_request", "async"),
        ("agi_channel", ch.name),
        ("agi_language", ch.language),
        ("agi_type", tech),
        ("agi_uniqueid", ch.uniqueid),
        ("agi_version", version),
        ("agi_callerid", ch.caller_num if ch.caller_num != "<unknown>" else "unknown"),
        ("agi_calleridname", ch.caller_name if ch.caller_name != "<unknown>" else "unknown"),
        ("agi_callingpres", "0"),
        ("agi_callingani2", "0"),
        ("agi_callington", "0"),
        ("agi_callingtns", "0"),
        ("agi_dnid", "unknown"),
        ("agi_rdnis", "unknown"),
        ("agi_context", ch.context),
        ("agi_extension", ch.exten),
        ("agi_priority", str(ch.priority)),
        ("agi_enhanced", "0.0"),
        ("agi_accountcode", ch.accountcode),
        ("agi_threadid", str(140010636261056 + len(ch.uniqueid))),
    ]
    return uri_encode("".join(f"{k}: {v}\n" for k, v in lines) + "\n")

"""AMI actions the test PBX answers, with Asterisk 22's words (transcripts 01-44)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ami_bridge.codec import Header, Message
from testpbx import agi_engine, bridges, dialplan, moh, teardown
from testpbx.channel import Channel
from testpbx.formatting import channel_fields
from testpbx.originate import (
    OriginateRequest,
    Target,
    originate,
    parse_callerid,
)

if TYPE_CHECKING:
    from testpbx.world import PbxWorld

DEFAULT_ORIGINATE_TIMEOUT_MS = 30000


class Session(Protocol):
    world: PbxWorld

    def send(self, headers: list[Header]) -> None: ...


def response(msg: Message, status: str, *headers: Header) -> list[Header]:
    out: list[Header] = [("Response", status)]
    action_id = msg.get("ActionID")
    if action_id is not None:
        out.append(("ActionID", action_id))
    return out + list(headers)


def success(msg: Message, message: str) -> list[Header]:
    return response(msg, "Success", ("Message", message))


def error(msg: Message, message: str) -> list[Header]:
    return response(msg, "Error", ("Message", message))


def _list_start(msg: Message, message: str) -> list[Header]:
    return response(msg, "Success", ("EventList", "start"), ("Message", message))


def _with_id(msg: Message, headers: list[Header]) -> list[Header]:
    action_id = msg.get("ActionID")
    return headers if action_id is None else [headers[0], ("ActionID", action_id), *headers[1:]]


def ping(session: Session, msg: Message) -> None:
    now = session.world.now()
    session.send(response(msg, "Success", ("Ping", "Pong"), ("Timestamp", f"{now:.6f}")))


def originate_action(session: Session, msg: Message) -> None:
    dial = msg.get("Channel") or ""
    if not dial:
        session.send(error(msg, "Channel not specified"))
        return
    priority_text = msg.get("Priority") or "1"
    if not priority_text.isdigit():
        session.send(error(msg, "Invalid priority"))
        return
    application = msg.get("Application")
    if application:
        target = Target(application=application, data=msg.get("Data") or "")
    else:
        target = Target(context=msg.get("Context") or "default", exten=msg.get("Exten") or "s",
                        priority=int(priority_text))
    variables: dict[str, str] = {}
    # As manager.c's man_do_variable_value: each header holds comma-separated
    # name=value items (quotes and nesting not imitated); an item without "="
    # or with an empty name is skipped.
    for header in msg.get_all("Variable"):
        for item in header.lstrip(" \t").split(","):
            name, sep, value = item.partition("=")
            if name and sep:
                variables[name] = value
    timeout_ms = msg.get("Timeout") or str(DEFAULT_ORIGINATE_TIMEOUT_MS)
    request = OriginateRequest(
        dial=dial, target=target, callerid=parse_callerid(msg.get("CallerID")),
        variables=variables, timeout_s=int(timeout_ms) / 1000 if timeout_ms.isdigit() else 30.0,
        channel_id=msg.get("ChannelId") or None, other_channel_id=msg.get("OtherChannelId") or None,
        action_id=msg.get("ActionID"),
    )
    if (msg.get("Async") or "").lower() in ("true", "yes", "1", "on"):
        session.send(success(msg, "Originate successfully queued"))
        originate(session.world, request)
        return

    def done(ok: bool) -> None:
        if ok:
            session.send(success(msg, "Originate successfully queued"))
        else:
            session.send(error(msg, "Originate failed"))

    originate(session.world, request, done)


def redirect(session: Session, msg: Message) -> None:
    world = session.world
    name = msg.get("Channel") or ""
    if not name:
        session.send(error(msg, "Channel not specified"))
        return
    ch = world.find(name)
    if ch is None:
        session.send(error(msg, f"Channel does not exist: {name}"))
        return
    priority_text = msg.get("Priority") or "1"
    if not priority_text.isdigit():
        session.send(error(msg, "Invalid priority"))
        return
    session.send(success(msg, "Redirect successful"))
    context = msg.get("Context") or ch.context
    exten = msg.get("Exten") or ch.exten
    for target in (ch, world.find(msg.get("ExtraChannel") or "")):
        if target is not None:
            move_channel(world, target, context, exten, int(priority_text))


def move_channel(world: PbxWorld, ch: Channel, context: str, exten: str, priority: int) -> None:
    """Pull ``ch`` out of what it does and send it to a dialplan location."""
    if ch.program is not None:
        ch.program.stop()
        ch.program = None
    if ch.agi is not None:
        agi_engine.abort(world, ch, hung_up=False)
    else:
        moh.stop_moh(world, ch)
    if ch.bridge is not None:
        ch.after_bridge = None
        bridges.leave(world, ch)
    dialplan.goto(world, ch, context, exten, priority)


def hangup(session: Session, msg: Message) -> None:
    world = session.world
    name = msg.get("Channel") or ""
    if not name:
        session.send(error(msg, "No channel specified"))
        return
    if len(name) > 2 and name.startswith("/") and name.endswith("/"):
        pattern = re.compile(name[1:-1].replace("\\\\", "\\"))
        targets = [c for c in world.channels() if pattern.search(c.name)]
        session.send(_list_start(msg, "Channels hung up will follow"))
        for hung in targets:
            session.send(_with_id(msg, [("Event", "ChannelHungup"), ("Channel", hung.name)]))
        session.send(_with_id(msg, [("Event", "ChannelsHungupListComplete"),
                                    ("EventList", "Complete"), ("ListItems", str(len(targets)))]))
        _hang_up_all(world, targets)
        return
    found = world.find(name)
    if found is None:
        session.send(error(msg, "No such channel"))
        return
    session.send(success(msg, "Channel Hungup"))
    _hang_up_all(world, [found])


def _hang_up_all(world: PbxWorld, targets: list[Channel]) -> None:
    for ch in targets:
        if ch.bridge is None:
            teardown.soft_hangup(world, ch)
    # when both halves of a Local pair are hit, the ;1 goes first (transcript 42)
    for ch in sorted(targets, key=lambda c: 0 if c.half == 1 else 1):
        if ch.findable:
            teardown.end(world, ch)


def setvar(session: Session, msg: Message) -> None:
    world = session.world
    variable = msg.get("Variable") or ""
    if not variable:
        session.send(error(msg, "No variable specified"))
        return
    name = msg.get("Channel")
    value = msg.get("Value") or ""
    if name:
        ch = world.find(name)
        if ch is None:
            session.send(error(msg, "No such channel"))
            return
        ch.variables[variable] = value
    else:
        world.global_vars[variable] = value
    session.send(success(msg, "Variable Set"))


def getvar(session: Session, msg: Message) -> None:
    world = session.world
    variable = msg.get("Variable") or ""
    if not variable:
        session.send(error(msg, "No variable specified"))
        return
    name = msg.get("Channel")
    if name:
        ch = world.find(name)
        if ch is None:
            session.send(error(msg, "No such channel"))
            return
        value = ch.variables.get(variable, "")
    else:
        value = world.global_vars.get(variable, "")
    session.send(response(msg, "Success", ("Variable", variable), ("Value", value)))


def _duration(world: PbxWorld, ch: Channel) -> int:
    return int(world.now() - ch.created_at)


def status(session: Session, msg: Message) -> None:
    world = session.world
    name = msg.get("Channel")
    if name:
        ch = world.find(name)
        if ch is None:
            session.send(error(msg, "No such channel"))
            return
        chosen = [ch]
    else:
        chosen = world.channels()
    session.send(_list_start(msg, "Channel status will follow"))
    for ch in chosen:
        headers: list[Header] = [("Event", "Status"), ("Privilege", "Call"), *channel_fields(ch)]
        headers += [
            ("Type", ch.tech), ("DNID", ""), ("EffectiveConnectedLineNum", ch.connected_num),
            ("EffectiveConnectedLineName", ch.connected_name), ("TimeToHangup", "0"),
            ("BridgeID", ch.bridge.uniqueid if ch.bridge else ""),
            ("Application", ch.application), ("Data", ch.appdata),
            ("Nativeformats", "(slin)"), ("Readformat", "slin"), ("Readtrans", ""),
            ("Writeformat", "slin"), ("Writetrans", ""), ("Callgroup", "0"), ("Pickupgroup", "0"),
            ("Seconds", str(_duration(world, ch))),
        ]
        action_id = msg.get("ActionID")
        if action_id is not None:
            headers.append(("ActionID", action_id))
        session.send(headers)
    count = str(len(chosen))
    session.send(_with_id(msg, [("Event", "StatusComplete"), ("EventList", "Complete"),
                                ("ListItems", count), ("Items", count)]))


def core_show_channels(session: Session, msg: Message) -> None:
    world = session.world
    chosen = world.channels()
    session.send(_list_start(msg, "Channels will follow"))
    for ch in chosen:
        seconds = _duration(world, ch)
        clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        session.send(_with_id(msg, [
            ("Event", "CoreShowChannel"), *channel_fields(ch), ("Application", ch.application),
            ("ApplicationData", ch.appdata), ("Duration", clock),
            ("BridgeId", ch.bridge.uniqueid if ch.bridge else ""),
        ]))
    session.send(_with_id(msg, [("Event", "CoreShowChannelsComplete"), ("EventList", "Complete"),
                                ("ListItems", str(len(chosen)))]))


def bridge(session: Session, msg: Message) -> None:
    world = session.world
    name1, name2 = msg.get("Channel1") or "", msg.get("Channel2") or ""
    if not name1 or not name2:
        session.send(error(msg, "Missing channel parameter in request"))
        return
    ch1 = world.find(name1)
    if ch1 is None:
        session.send(error(msg, f"Channel1 does not exist: {name1}"))
        return
    ch2 = world.find(name2)
    if ch2 is None:
        session.send(error(msg, f"Channel2 does not exist: {name2}"))
        return
    session.send(success(msg, "Channels have been bridged"))
    join(world, ch1, ch2)


def join(world: PbxWorld, ch1: Channel, ch2: Channel) -> None:
    """The AMI ``Bridge``: both leave what they run and meet; afterwards each
    goes on in the dialplan where it was (the next priority if it ran one)."""
    for ch in (ch1, ch2):
        if ch.bridge is not None:
            ch.after_bridge = None
            bridges.leave(world, ch)
        if ch.program is not None:
            ch.program.stop()
            ch.program = None
        agi_engine.drop(world, ch)
        ch.cancel_timers()
        if ch.in_autoloop:
            ch.priority += 1
    ch2.linkedid = ch1.linkedid
    new = bridges.create(world)
    for ch in (ch1, ch2):
        moh.stop_moh(world, ch)
        bridges.enter(world, new, ch, _after_goto(world, ch))
    ch1.connected_num, ch1.connected_name = ch2.caller_num, ch2.caller_name
    ch2.connected_num, ch2.connected_name = ch1.caller_num, ch1.caller_name


def _after_goto(world: PbxWorld, ch: Channel) -> Callable[[], None]:
    context, exten, priority = ch.context, ch.exten, ch.priority

    def resume() -> None:
        dialplan.goto(world, ch, context, exten, priority)

    return resume


def agi(session: Session, msg: Message) -> None:
    world = session.world
    name = msg.get("Channel") or ""
    command = msg.get("Command") or ""
    if not name or not command:
        session.send(error(msg, "Both, Channel and Command are *required*"))
        return
    ch = world.find(name)
    if ch is None:
        session.send(error(msg, f"Channel {name} does not exist."))
        return
    if ch.agi is None:
        session.send(error(msg, f"Failed to add AGI command to channel {ch.name} queue"))
        return
    session.send(success(msg, "Added AGI command to queue"))
    ch.agi.add(command, msg.get("CommandID") or None)


# The classes that grant each action (its ast_manager_register_xml*() call in
# Asterisk 22: main/manager.c, main/features.c for Bridge, res/res_agi.c for
# AGI); a user's write classes need one of them. Ping needs none.
AUTHORITY: dict[str, frozenset[str]] = {
    "ping": frozenset(),
    "originate": frozenset({"originate"}),
    "redirect": frozenset({"call"}),
    "hangup": frozenset({"system", "call"}),
    "setvar": frozenset({"call"}),
    "getvar": frozenset({"call", "reporting"}),
    "status": frozenset({"system", "call", "reporting"}),
    "coreshowchannels": frozenset({"system", "reporting"}),
    "bridge": frozenset({"call"}),
    "agi": frozenset({"agi"}),
}

ACTIONS: dict[str, Callable[[Session, Message], None]] = {
    "ping": ping,
    "originate": originate_action,
    "redirect": redirect,
    "hangup": hangup,
    "setvar": setvar,
    "getvar": getvar,
    "status": status,
    "coreshowchannels": core_show_channels,
    "bridge": bridge,
    "agi": agi,
}

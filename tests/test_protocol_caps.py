"""Event lists have caps: a list that never completes ends with a typed error.

An endless ``CoreShowChannels`` list once grew the daemon from 52 MB to
1.95 GB in 10 s; now past ``max_list_items`` events or ``max_list_bytes``
the waiter gets ``EventListTooLargeError`` and the rest of the list is
dropped quietly, and nothing of it is kept.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import Logger
from twisted.python.failure import Failure

from ami_bridge.codec import Message
from ami_bridge.errors import EventListTooLargeError
from ami_bridge.protocol import AMIProtocol, EventList

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def connect(**limits: int) -> tuple[AMIProtocol, list[dict[str, Any]], list[Message]]:
    proto = AMIProtocol(Clock(), action_id_prefix="t", **limits)
    logged: list[dict[str, Any]] = []
    proto.log = Logger(namespace="test", observer=cast(Any, logged.append))
    transport = StringTransportWithDisconnection()
    transport.protocol = cast(Any, proto)
    proto.makeConnection(transport)
    proto.dataReceived(BANNER)
    seen: list[Message] = []
    proto.add_event_observer(seen.append)
    return proto, logged, seen


def item(n: int, action_id: str = "t-1", pad: str = "") -> bytes:
    return (
        f"Event: CoreShowChannel\r\nActionID: {action_id}\r\nChannel: PJSIP/{n}\r\n"
        f"Uniqueid: 1.{n}\r\nAccountCode: {pad}\r\n\r\n"
    ).encode()


START = b"Response: Success\r\nActionID: t-1\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"


def watch(d: Any) -> list[object]:
    """What ``d`` fired with, once it has (a Failure is then handled)."""
    box: list[object] = []
    d.addBoth(box.append)
    return box


@pytest.mark.parametrize("send_list", [True, False])
def test_an_endless_list_ends_at_its_item_cap(send_list: bool) -> None:
    proto, logged, seen = connect(max_list_items=50)
    fired = watch(proto.send_list_action("CoreShowChannels") if send_list else proto.send_action("Status"))
    proto.dataReceived(START + b"".join(item(n) for n in range(50)))
    assert not fired  # 50 is allowed
    proto.dataReceived(b"".join(item(n) for n in range(50, 5000)))
    [failure] = fired
    assert isinstance(failure, Failure) and isinstance(failure.value, EventListTooLargeError)
    assert failure.value.code == "ami.event_list_too_large" and failure.value.items == 51
    assert proto.pending_count == 0 and not proto._lists
    warnings = [e for e in logged if e.get("code") == "ami.event_list_too_large"]
    assert len(warnings) == 1 and "ami.max_list_items" in warnings[0]["limit"]
    # The rest of the list (and its end) is dropped, not handed to observers.
    proto.dataReceived(b"".join(item(n) for n in range(5000, 5100)))
    proto.dataReceived(b"Event: CoreShowChannelsComplete\r\nActionID: t-1\r\nEventList: Complete\r\n\r\n")
    assert not seen
    # Other events still flow.
    proto.dataReceived(b"Event: Newchannel\r\nUniqueid: 9.9\r\n\r\n")
    assert [m.event for m in seen] == ["Newchannel"]


def test_an_endless_list_ends_at_its_byte_cap() -> None:
    proto, logged, _ = connect(max_list_bytes=10_000)
    fired = watch(proto.send_list_action("CoreShowChannels"))
    proto.dataReceived(START + b"".join(item(n, pad="x" * 500) for n in range(100)))
    [failure] = fired
    assert isinstance(failure, Failure) and isinstance(failure.value, EventListTooLargeError)
    assert failure.value.size > 10_000 and failure.value.items < 25
    assert "ami.max_list_bytes" in failure.value.limit


def test_a_list_under_its_caps_completes() -> None:
    proto, _, _ = connect(max_list_items=10, max_list_bytes=10_000)
    fired = watch(proto.send_list_action("CoreShowChannels"))
    proto.dataReceived(
        START + b"".join(item(n) for n in range(10))
        + b"Event: CoreShowChannelsComplete\r\nActionID: t-1\r\nEventList: Complete\r\nListItems: 10\r\n\r\n"
    )
    [result] = fired
    assert isinstance(result, EventList) and len(result.events) == 10

"""The AMI codec against the real captures, every read size, and an independent parser.

Ground truth is ``tests/data/ami-transcripts/*.ami`` (bytes from Asterisk 22.10.1).
Facts a capture does not show (a repeated header from Asterisk, a Persian
name, broken UTF-8, an oversized message) use small hand-made messages, each
saying why.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ami_bridge.codec import (
    AMIDecoder,
    Message,
    check_header,
    encode_action,
    encode_message,
    parse_message,
)
from ami_bridge.errors import HeaderInjectionError, MessageTooLargeError
from tests.paths import TRANSCRIPTS

CAPTURES = sorted(TRANSCRIPTS.glob("*.ami"))
# Asterisk 22.10.1 (captures 01-44) says 11.0.0; the upstream master of 45 and 46 says 13.0.0.
BANNERS = {"Asterisk Call Manager/11.0.0", "Asterisk Call Manager/13.0.0"}
READ_SIZES = [*range(1, 65), 4096, 65536]

assert CAPTURES, f"no AMI captures in {TRANSCRIPTS}: they are part of the repository"


def decode_whole(data: bytes, *, expect_banner: bool = True) -> tuple[AMIDecoder, list[Message]]:
    decoder = AMIDecoder(expect_banner=expect_banner)
    return decoder, decoder.feed(data)


def decode_in_reads(data: bytes, size: int, *, expect_banner: bool = True) -> list[Message]:
    decoder = AMIDecoder(expect_banner=expect_banner)
    feed = decoder.feed
    messages: list[Message] = []
    for start in range(0, len(data), size):
        messages += feed(data[start : start + size])
    assert decoder.buffered == 0
    assert (decoder.banner in BANNERS) if expect_banner else decoder.banner is None
    return messages


def capture_blocks(path: Path) -> list[str]:
    """The message texts of a capture, cut without the codec (the test's own view)."""
    data = path.read_bytes()
    body = data[data.index(b"\r\n") + 2 :].decode("utf-8")
    assert body.endswith("\r\n\r\n")
    return body[:-4].split("\r\n\r\n")


def all_messages() -> list[tuple[str, Message]]:
    out: list[tuple[str, Message]] = []
    for path in CAPTURES:
        out += [(path.name, message) for message in decode_whole(path.read_bytes())[1]]
    return out


# --- framing: every capture, every read size ---------------------------------


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_every_read_size_gives_the_messages_of_one_whole_read(path: Path) -> None:
    data = path.read_bytes()
    decoder, whole = decode_whole(data)
    assert decoder.banner in BANNERS
    assert decoder.buffered == 0
    assert len(whole) == len(capture_blocks(path))
    for size in READ_SIZES:
        assert decode_in_reads(data, size) == whole, f"read size {size}"


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_each_message_holds_exactly_the_lines_asterisk_sent(path: Path) -> None:
    """Independent of the decoder's framing: block by block, line by line."""
    _, messages = decode_whole(path.read_bytes())
    for block, message in zip(capture_blocks(path), messages, strict=True):
        assert message.headers == tuple(
            tuple(line.split(": ", 1)) for line in block.split("\r\n")
        )


def test_the_banner_is_taken_apart_from_the_messages() -> None:
    data = (TRANSCRIPTS / "01-login-md5-ping.ami").read_bytes()
    decoder = AMIDecoder()
    assert decoder.feed(b"Asterisk Call Man") == []
    assert decoder.banner is None
    messages = decoder.feed(data[len(b"Asterisk Call Man") :])
    assert decoder.banner in BANNERS
    assert messages[0].headers[0] == ("Response", "Success")
    assert messages[0].action_id is not None


def test_the_banner_ends_with_one_crlf_not_a_blank_line() -> None:
    decoder = AMIDecoder()
    assert decoder.feed(b"Asterisk Call Manager/11.0.0\r\n") == []
    assert decoder.banner in BANNERS
    assert decoder.feed(b"Event: FullyBooted\r\n\r\n") == [Message.of(("Event", "FullyBooted"))]


def test_without_a_banner_the_first_line_is_a_header() -> None:
    """The test PBX decodes what clients send: no banner comes first."""
    action = encode_action("Ping", [("ActionID", "p1")])
    decoder, messages = decode_whole(action, expect_banner=False)
    assert decoder.banner is None
    assert messages == [Message.of(("Action", "Ping"), ("ActionID", "p1"))]


def test_stray_blank_lines_do_not_depend_on_where_reads_end() -> None:
    data = b"Asterisk Call Manager/11.0.0\r\n\r\nEvent: A\r\n\r\n\r\n\r\n\r\nEvent: B\r\nX: 1\r\n\r\n"
    expected = [Message.of(("Event", "A")), Message.of(("Event", "B"), ("X", "1"))]
    for size in range(1, len(data) + 1):
        assert decode_in_reads(data, size) == expected, f"read size {size}"


def test_stray_blank_lines_before_events_and_responses_keep_their_kind() -> None:
    """One, two or three stray CRLFs between messages: kind and headers intact."""
    for stray in (b"\r\n", b"\r\n\r\n", b"\r\n\r\n\r\n"):
        data = (
            b"Asterisk Call Manager/11.0.0\r\n"
            + stray
            + b"Event: A\r\nX: 1\r\n\r\n"
            + stray
            + b"Response: Success\r\nActionID: a1\r\n\r\n"
            + stray
            + b"Event: B\r\n\r\n"
        )
        for size in (1, 2, 3, 5, 7, len(data)):
            messages = decode_in_reads(data, size)
            assert [(m.event, m.response, m.action_id) for m in messages] == [
                ("A", None, None),
                (None, "Success", "a1"),
                ("B", None, None),
            ], f"stray {stray!r}, read size {size}"
            assert messages[0].headers == (("Event", "A"), ("X", "1"))


# --- header shapes -----------------------------------------------------------


def test_empty_values_are_kept() -> None:
    newchannels = [m for _, m in all_messages() if m.event == "Newchannel"]
    assert newchannels
    for message in newchannels:
        assert ("AccountCode", "") in message.headers
        assert message.get("AccountCode") == ""


def test_values_with_colons_are_kept_whole() -> None:
    messages = [m for _, m in all_messages()]
    bad_format = next(m for m in messages if m.event == "RequestBadFormat")
    assert bad_format["RequestType"] == "Action: NoSuchAction"
    unknown = next(m for m in messages if (m.get("Message") or "").startswith("Invalid/unknown"))
    assert unknown["Message"] == (
        "Invalid/unknown command: NoSuchAction. Use Action: ListCommands to show available commands."
    )
    assert bad_format["EventTV"].count(":") == 2  # 2026-11-22T09:16:02.510+0000


def test_a_name_with_no_space_after_the_colon_and_a_bare_line() -> None:
    """Not seen from Asterisk 22, but an older ``Command`` reply has bare lines."""
    data = b"Response: Follows\r\nPrivilege: Command\r\nEmpty:\r\nuptime 3 days\r\n\r\n"
    expected = Message.of(
        ("Response", "Follows"), ("Privilege", "Command"), ("Empty", ""), ("", "uptime 3 days")
    )
    for size in (1, 2, 7, len(data)):
        assert decode_in_reads(data, size, expect_banner=False) == [expected]


def test_repeated_headers_are_all_kept_in_order() -> None:
    """The captures repeat no header from Asterisk; a client's ``Originate``
    repeats ``Variable:`` (the test PBX decodes it), and Asterisk repeats
    ``ChanVariable:`` when ``channelvars`` is set in manager.conf."""
    action = encode_action(
        "Originate",
        [("Channel", "Local/agent@agents"), ("Variable", "PRIO=5"), ("Variable", "REF=c-7")],
    )
    event = (
        b"Event: Newexten\r\nChannel: Local/s@ivr-1;1\r\nChanVariable: PRIO=5\r\n"
        b"ChanVariable: LANG=fa\r\nUniqueid: 1795339506.82\r\n\r\n"
    )
    for size in (1, 3, 64):
        action_message, event_message = decode_in_reads(action + event, size, expect_banner=False)
        assert action_message.get_all("Variable") == ["PRIO=5", "REF=c-7"]
        assert action_message.get("variable") == "PRIO=5"
        assert event_message.get_all("chanvariable") == ["PRIO=5", "LANG=fa"]
        assert [name for name, _ in event_message] == [
            "Event", "Channel", "ChanVariable", "ChanVariable", "Uniqueid",
        ]


def test_lookups_ignore_case_and_return_the_first_value() -> None:
    """Asterisk sends ``CommandId`` in AsyncAGIExec for the ``CommandID`` it was given."""
    exec_event = next(m for _, m in all_messages() if m.event == "AsyncAGIExec")
    assert "CommandId" in dict(exec_event.headers)
    assert exec_event.get("CommandID") == exec_event["commandid"]
    assert "commandID" in exec_event
    assert exec_event.get("NoSuchHeader") is None
    with pytest.raises(KeyError):
        exec_event["NoSuchHeader"]


# --- text encoding -------------------------------------------------------------

PERSIAN_NAME = "زهرا محمدی"


def test_a_persian_name_cut_between_reads_comes_out_whole() -> None:
    data = (
        "Event: Newchannel\r\nCallerIDNum: 09121234567\r\n"
        f"CallerIDName: {PERSIAN_NAME}\r\nAccountCode: \r\n\r\n"
    ).encode()
    name_at = data.index(PERSIAN_NAME.encode())
    for cut in range(name_at, name_at + len(PERSIAN_NAME.encode()) + 1):
        decoder = AMIDecoder(expect_banner=False)
        messages = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert [m["CallerIDName"] for m in messages] == [PERSIAN_NAME], f"cut at {cut}"
    for size in range(1, 8):
        [message] = decode_in_reads(data, size, expect_banner=False)
        assert message["CallerIDName"] == PERSIAN_NAME


def test_undecodable_bytes_become_replacement_characters_never_dropped() -> None:
    data = (
        b"Event: Newchannel\r\nCallerIDName: ab\xff\xfecd\r\n"
        b"ConnectedLineName: \xd8\xb2\xd9\r\n"  # a Persian letter, then half of one
        b"Exten: s\r\n\r\n"
    )
    for size in (1, 2, 3, len(data)):
        [message] = decode_in_reads(data, size, expect_banner=False)
        assert message["CallerIDName"] == "ab\ufffd\ufffdcd"
        assert message["ConnectedLineName"] == "ز\ufffd"
        assert message["Exten"] == "s"


# --- size limit ----------------------------------------------------------------


def test_a_message_past_the_limit_raises_with_the_messages_before_it() -> None:
    small = b"Event: Ping\r\nX: 1\r\n\r\n"
    large = b"Event: Flood\r\nData: " + b"x" * 500 + b"\r\n\r\n"
    decoder = AMIDecoder(expect_banner=False, max_message_bytes=200)
    with pytest.raises(MessageTooLargeError) as raised:
        decoder.feed(small + small + large + small)
    assert raised.value.messages == [Message.of(("Event", "Ping"), ("X", "1"))] * 2
    assert raised.value.limit == 200
    assert raised.value.size > 200
    assert raised.value.code == "ami.message_too_large"


def test_a_message_that_never_ends_raises_once_it_passes_the_limit() -> None:
    decoder = AMIDecoder(expect_banner=False, max_message_bytes=200)
    assert decoder.feed(b"Event: Ping\r\n\r\nEvent: Flood\r\nData: ") == [
        Message.of(("Event", "Ping"))
    ]
    with pytest.raises(MessageTooLargeError) as raised:
        for _ in range(100):
            decoder.feed(b"y" * 10)
    assert raised.value.messages == []


def test_the_limit_counts_bytes_not_characters() -> None:
    """120 Persian letters are 240 bytes: over a 200-byte limit."""
    large = f"Event: Newchannel\r\nCallerIDName: {'ز' * 120}\r\n\r\n".encode()
    decoder = AMIDecoder(expect_banner=False, max_message_bytes=200)
    with pytest.raises(MessageTooLargeError):
        decoder.feed(large)


def test_a_banner_that_never_ends_raises() -> None:
    decoder = AMIDecoder(max_message_bytes=100)
    with pytest.raises(MessageTooLargeError):
        decoder.feed(b"A" * 101)


def test_every_capture_fits_the_default_limit() -> None:
    for path in CAPTURES:
        decode_whole(path.read_bytes())


# --- encoding and header injection ----------------------------------------------


def test_encode_action_writes_crlf_lines_and_a_blank_line() -> None:
    assert encode_action("QueuePause", [("Interface", "Local/a1@agents"), ("Paused", "true")]) == (
        b"Action: QueuePause\r\nInterface: Local/a1@agents\r\nPaused: true\r\n\r\n"
    )
    assert encode_message([("CallerIDName", PERSIAN_NAME)]) == (
        f"CallerIDName: {PERSIAN_NAME}\r\n\r\n".encode()
    )


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "\r\n"])
def test_encode_refuses_cr_lf_nul_in_values(bad: str) -> None:
    forged = f"x{bad}Action: Hangup"
    with pytest.raises(HeaderInjectionError) as raised:
        encode_action("Setvar", [("Value", forged)])
    assert raised.value.part == "value"
    assert raised.value.code == "ami.header_injection"
    with pytest.raises(HeaderInjectionError):
        encode_action(forged)


@pytest.mark.parametrize("name", ["Bad\rName", "Bad\nName", "Bad\x00Name", "Bad:Name", "Bad: Name", ""])
def test_encode_refuses_bad_names(name: str) -> None:
    with pytest.raises(HeaderInjectionError) as raised:
        encode_message([(name, "v")])
    assert raised.value.part == "name"
    with pytest.raises(HeaderInjectionError):
        check_header(name, "v")


def test_check_header_accepts_what_asterisk_sends() -> None:
    for _, message in all_messages():
        for name, value in message:
            check_header(name, value)


ANY_PART = st.text(st.sampled_from(["a", "B", ":", " ", "\r", "\n", "\x00", "\u0632"]), max_size=4)


def refusal_header_by_header(headers: list[tuple[str, str]]) -> tuple[str, str] | None:
    """What checking each header in order refuses first: (name, part), or None."""
    for name, value in headers:
        try:
            check_header(name, value)
        except HeaderInjectionError as error:
            return name, error.part
    return None


@settings(max_examples=400, deadline=None)
@given(headers=st.lists(st.tuples(ANY_PART, ANY_PART), max_size=5))
def test_encode_refuses_exactly_what_a_check_of_each_header_refuses(
    headers: list[tuple[str, str]],
) -> None:
    expected = refusal_header_by_header(headers)
    try:
        data = encode_message(headers)
    except HeaderInjectionError as error:
        assert (error.header, error.part) == expected
    else:
        assert expected is None
        assert data == "".join(f"{n}: {v}\r\n" for n, v in headers).encode() + b"\r\n"


NAME_CHARS = st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\r\n\x00:"
)
VALUE_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00")
HEADERS = st.lists(
    st.tuples(st.text(NAME_CHARS, min_size=1, max_size=12), st.text(VALUE_CHARS, max_size=30)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(messages=st.lists(HEADERS, min_size=1, max_size=4), size=st.integers(1, 40))
def test_encode_then_decode_gives_the_same_headers(
    messages: list[list[tuple[str, str]]], size: int
) -> None:
    data = b"".join(encode_message(headers) for headers in messages)
    expected = [Message(headers) for headers in messages]
    assert decode_whole(data, expect_banner=False)[1] == expected
    assert decode_in_reads(data, size, expect_banner=False) == expected


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(st.sampled_from(["Event: A", "X: y: z", "Empty: ", "bare", "K:v", ""]), max_size=12),
    cuts=st.lists(st.integers(0, 200), max_size=6),
)
def test_any_way_of_cutting_a_stream_gives_the_same_messages(
    lines: list[str], cuts: list[int]
) -> None:
    """Blank lines, bare lines and odd headers included: reads never matter."""
    data = ("\r\n".join(lines) + "\r\n\r\n").encode()
    _, whole = decode_whole(data, expect_banner=False)
    decoder = AMIDecoder(expect_banner=False)
    pieces: list[Message] = []
    start = 0
    for cut in sorted({min(c, len(data)) for c in cuts}):
        pieces += decoder.feed(data[start:cut])
        start = cut
    pieces += decoder.feed(data[start:])
    assert pieces == whole
    assert whole == [
        message
        for message in (parse_message(block) for block in data.decode()[:-4].split("\r\n\r\n"))
        if message.headers
    ]


# --- an independent oracle: asterisk-ami's own parser ------------------------------


def test_asterisk_ami_agrees_on_every_event() -> None:
    """asterisk-ami 0.1.7's ``Event.read`` on each event's text agrees with ours.

    Its quirks decide what is compared: it splits lines with ``splitlines`` (so
    only texts free of other line breaks are comparable: all captures are), it
    drops a line with no ``": "`` (none in the captures), keeps the last value
    of a repeated name (none repeat in the captures; we compare with our last
    value anyway) and turns ``*ChanVariable`` headers into dicts (skipped).
    It never sees ``Event`` as a key: that is its ``name``.
    """
    from asterisk.ami.event import Event

    compared = 0
    for path in CAPTURES:
        _, messages = decode_whole(path.read_bytes())
        for block, message in zip(capture_blocks(path), messages, strict=True):
            if message.event is None:
                continue
            assert block.splitlines() == block.split("\r\n")
            theirs = Event.read(block)
            assert theirs.name == message.event
            ours = {name for name, _ in message.headers[1:]}
            assert set(theirs.keys) == ours
            for name, value in theirs.keys.items():
                if name in Event.parsers:
                    continue
                assert value == message.get_all(name)[-1], (path.name, name)
                compared += 1
    assert compared > 5000


def test_asterisk_ami_agrees_on_every_response() -> None:
    """Its ``Response.read`` strips names and values and stops at the first line
    that is not ``Name: value``; responses in the captures have none, and none
    of their values has spaces at either end, so every header compares."""
    from asterisk.ami.response import Response

    compared = 0
    for path in CAPTURES:
        _, messages = decode_whole(path.read_bytes())
        for block, message in zip(capture_blocks(path), messages, strict=True):
            if message.response is None:
                continue
            theirs = Response.read(block)
            assert theirs.status == message.response
            assert theirs.follows == []
            assert theirs.keys == {name: value for name, value in message.headers[1:]}
            compared += 1
    assert compared >= 90


def test_originate_response_is_an_event_not_a_response() -> None:
    """It carries ``Response: Success`` and the Originate's ActionID, so taking
    it for the action's response would resolve the wrong request."""
    originate = [m for _, m in all_messages() if m.event == "OriginateResponse"]
    assert {m.get("Response") for m in originate} == {"Success", "Failure"}
    for message in originate:
        assert message.response is None
        assert message.action_id is not None

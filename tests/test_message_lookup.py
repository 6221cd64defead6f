"""Look-ups by name in a message's unsplit text agree with its split headers.

``Message.get`` answers from the text (a search of the lowered text, one line
split) without splitting every header; whatever the text, it must give what
the split headers give: the first value of a header whose name, lowered, is
the name asked for, as ``parse_message`` splits lines (``Name: value``, else
``Name:value``, else a bare line with no name).
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ami_bridge.message import Message, parse_messages

NAMES = [
    "CommandID", "commandid", "Result", "Uniqueid", "EventList", "Event", "K", "\u212a",
    "Cause-txt", "", "Na:me", "\u0130x", "Name",
]

LINES = st.sampled_from([
    "Event: AsyncAGIExec",
    "CommandId: cmd-1",
    "COMMANDID: second",
    "CommandID:nospace",
    "CommandID:: colon",
    "CommandID :spaced",
    "Result: 200%20result%3D0%0A",
    "Result:",
    "Result: ",
    "xCommandID: not at a line start",
    "Uniqueid: 1795339506.82",
    "uniqueid: 2",
    "Output: CommandID: inside a value",
    "bare line",
    "",
    "\r",
    "\n",
    "\u0130Uniqueid: dotted capital I lowers longer",
    "\u212a: Kelvin sign lowers to k",
    "Name: \u0627\u0644\u0641",  # Persian text
    "EventList: start",
    "Cause-txt: Normal Clearing",
    "Na:me: colon in the name",
    "\u0130x: asked by a name that lowers longer",
    ":starts with a colon",
    "Name:",
    "ActionID: shenava-7",
    "actionID: other case",
    "ActionID:x",
])

TEXTS = st.lists(LINES, min_size=1, max_size=10).map("\r\n".join).filter(
    lambda text: "\r\n\r\n" not in text
)


def by_split_headers(message: Message, name: str) -> str | None:
    for header, value in message.headers:
        if header.lower() == name.lower():
            return value
    return None


@settings(max_examples=600, deadline=None)
@given(text=TEXTS, name=st.sampled_from(NAMES))
@example(text="Result: a\r\nCommandID:: x\r\nCommandID: y", name="CommandID")
@example(text="\u0130x: 1\r\nResult: r", name="Result")
@example(text="COMMANDID: a\r\nCommandID: b", name="CommandID")
@example(text="\r\nResult: first line empty", name="Result")
@example(text="bare\r\nResult:x: y", name="Result")
@example(text="Response: Success\r\nactionID: a\r\nActionID: b", name="Result")
@example(text="ActionID: a\r\nActionID: b", name="Result")
def test_a_lookup_in_the_text_gives_what_the_split_headers_give(text: str, name: str) -> None:
    unsplit = Message.from_text(text)
    expected = by_split_headers(Message.from_text(text), name)
    assert unsplit.get(name) == expected
    assert (name in unsplit) == (expected is not None)
    assert Message.from_text(text).action_id == by_split_headers(unsplit, "ActionID")
    # and after the headers were split, the same
    assert unsplit.headers is not None
    assert unsplit.get(name) == expected


@given(text=TEXTS, name=st.sampled_from(NAMES))
@settings(max_examples=200, deadline=None)
def test_a_message_made_from_headers_answers_the_same(text: str, name: str) -> None:
    split = Message.from_text(text)
    made = Message(split.headers)
    assert made.get(name) == by_split_headers(split, name)


def test_a_lookup_after_parse_messages_ignores_case() -> None:
    [message] = parse_messages("Event: AsyncAGIExec\r\nCommandId: cmd-7\r\nResult: 200")
    assert message.get("CommandID") == "cmd-7"
    assert message["commandid"] == "cmd-7"
    assert message.get("Missing", "x") == "x"

"""AsyncAGI ``Result`` and ``Env`` payloads, from the captures and from Asterisk's replies.

Every ``AsyncAGIExec`` result in ``tests/data/ami-transcripts`` must be listed
here with its meaning, so a new capture with a new kind of result fails until
someone says what it means. Replies the captures do not hold (``GET DATA``
with nothing pressed, the 510 and 520 errors) are written as res_agi sends them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ami_bridge.agi import AGIResult, decode_env, decode_result, parse_result
from ami_bridge.codec import AMIDecoder, Message
from tests.paths import TRANSCRIPTS

CAPTURES = sorted(TRANSCRIPTS.glob("*.ami"))

assert CAPTURES, f"no AMI captures in {TRANSCRIPTS}: they are part of the repository"

# encoded Result -> (result, data, endpos, what happened)
CAPTURED_RESULTS = {
    "200%20result%3D2%0A": ("2", None, None, "GET DATA: the caller pressed 2"),
    "200%20result%3D1%0A": ("1", None, None, "GET DATA 1 / SET VARIABLE / STREAM FILE done"),
    "200%20result%3D0%20(timeout)%20endpos%3D54173%0A": (
        "0", "timeout", 54173, "RECORD FILE ended by its silence timeout",
    ),
    "200%20result%3D0%20endpos%3D6920%0A": ("0", None, 6920, "STREAM FILE played to the end"),
    "200%20result%3D-1%0A": ("-1", None, None, "the caller hung up (Redirect took the channel)"),
    "200%20result%3D-1%20endpos%3D7360%0A": ("-1", None, 7360, "hung up mid-prompt"),
    # 45: a new session's commands on a caller adopted from an earlier session.
    "200%20result%3D0%0A": ("0", None, None, "EXEC MusicOnHold ended (queued by the first session)"),
    "200%20result%3D0%20endpos%3D57490%0A": ("0", None, 57490, "STREAM FILE played to the end"),
    "200%20result%3D%20(timeout)%0A": ("", "timeout", None, "GET DATA: nothing pressed"),
}


def messages_of(path: Path) -> list[Message]:
    return AMIDecoder().feed(path.read_bytes())


def captured(event: str) -> list[tuple[str, Message]]:
    return [(p.name, m) for p in CAPTURES for m in messages_of(p) if m.event == event]


def test_every_captured_result_is_known_and_decodes() -> None:
    execs = captured("AsyncAGIExec")
    assert len(execs) == 14
    for name, message in execs:
        encoded = message["Result"]
        assert encoded in CAPTURED_RESULTS, f"{name}: unknown result {encoded!r}"
        result, data, endpos, _ = CAPTURED_RESULTS[encoded]
        decoded = decode_result(encoded)
        assert decoded.code == 200 and decoded.ok
        assert (decoded.result, decoded.data, decoded.endpos) == (result, data, endpos)
        assert decoded.raw.endswith("\n")


def test_every_captured_exec_matches_a_command_id() -> None:
    """The result comes back under ``CommandId`` (that spelling) for the ``CommandID`` sent."""
    for _, message in captured("AsyncAGIExec"):
        assert message.get("CommandID")
        assert message["Channel"].startswith("Local/")


def test_pressed_digit() -> None:
    decoded = decode_result("200%20result%3D2%0A")
    assert decoded.digits == "2"
    assert not decoded.hung_up and not decoded.timed_out
    assert decoded.extras == {}


def test_record_file_timeout_with_endpos() -> None:
    decoded = decode_result("200%20result%3D0%20(timeout)%20endpos%3D54173%0A")
    assert decoded.timed_out
    assert decoded.endpos == 54173
    assert decoded.extras == {"endpos": "54173"}
    assert decoded.digits == "0"


def test_hang_up_mid_command() -> None:
    bare = decode_result("200%20result%3D-1%0A")
    assert bare.hung_up and bare.digits == "" and bare.endpos is None
    with_endpos = decode_result("200%20result%3D-1%20endpos%3D7360%0A")
    assert with_endpos.hung_up and with_endpos.endpos == 7360
    assert with_endpos.dtmf == ""


def test_get_data_with_nothing_pressed() -> None:
    """res_agi sends ``200 result= (timeout)`` when GET DATA times out empty."""
    decoded = decode_result("200%20result%3D%20(timeout)%0A")
    assert decoded.ok
    assert decoded.result == ""
    assert decoded.timed_out
    assert decoded.digits == ""
    assert not decoded.hung_up


def test_stream_file_key_is_an_ascii_code() -> None:
    assert parse_result("200 result=50 endpos=1234").dtmf == "2"
    assert parse_result("200 result=0 endpos=6920").dtmf == ""


@pytest.mark.parametrize(
    ("reply", "code", "data"),
    [
        ("510 Invalid or unknown command\n", 510, "Invalid or unknown command"),
        ("511 Command Not Permitted on a dead channel or intercept routine\n", 511,
         "Command Not Permitted on a dead channel or intercept routine"),
        ("520 Invalid command syntax.  Proper usage not available.\n", 520,
         "Invalid command syntax.  Proper usage not available."),
    ],
)
def test_error_replies(reply: str, code: int, data: str) -> None:
    decoded = parse_result(reply)
    assert decoded == AGIResult(code=code, result="", data=data, raw=reply)
    assert not decoded.ok and not decoded.hung_up


def test_520_with_usage_keeps_the_code() -> None:
    """With usage text the reply spans lines: ``520-...``, the usage, ``520 End of proper usage.``"""
    reply = "520-Invalid command syntax.  Proper usage follows:\n Usage: GET DATA <file>\n520 End of proper usage.\n"
    decoded = decode_result(reply.replace(" ", "%20").replace("\n", "%0A"))
    assert decoded.code == 520 and not decoded.ok
    assert decoded.data is not None and decoded.data.startswith("Invalid command syntax.")


def test_decode_env_on_a_real_async_agi_start() -> None:
    starts = captured("AsyncAGIStart")
    assert len(starts) == 7
    name, start = next((n, m) for n, m in starts if n.startswith("10-"))
    env = decode_env(start["Env"])
    assert env["agi_request"] == "async"
    assert env["agi_channel"] == start["Channel"] == "Local/s@caller-sim-00000027;1"
    assert env["agi_uniqueid"] == start["Uniqueid"]
    assert env["agi_callerid"] == "09121234567"
    assert env["agi_calleridname"] == "Test Caller"
    assert env["agi_context"] == "complaints-ivr"
    assert env["agi_version"] == "22.10.1"
    assert env["agi_accountcode"] == ""
    assert env["agi_enhanced"] == "0.0"


def test_every_captured_env_names_its_channel() -> None:
    for name, start in captured("AsyncAGIStart"):
        env = decode_env(start["Env"])
        assert env["agi_channel"] == start["Channel"], name
        assert env["agi_uniqueid"] == start["Uniqueid"], name
        assert all(key.startswith("agi_") for key in env), name


def test_a_reply_decoded_again_is_the_same_and_the_memo_stays_bounded() -> None:
    from ami_bridge import agi
    from ami_bridge.errors import AGIResultError

    first = decode_result("200%20result%3D0%20endpos%3D8000%0A", verb="STREAM FILE")
    assert decode_result("200%20result%3D0%20endpos%3D8000%0A", verb="STREAM FILE") is first
    assert first.endpos == 8000
    # the same text for another verb is checked for that verb
    with pytest.raises(AGIResultError):
        decode_result("200%20result%3D5%0A", verb="STREAM FILE")  # 5 is no key's code
    assert decode_result("200%20result%3D5%0A", verb="GET DATA").digits == "5"
    for n in range(agi.DECODED_MAX + 10):
        decode_result(f"200%20result%3D{n}%0A", verb="GET DATA")
    assert len(agi._DECODED) <= agi.DECODED_MAX


_ENV_PIECES = ["%3A%20", "%3A", "%20", "%0A", "%0a", "%2F", "%40", "%3B", "%25", "%", "%%3A",
               "%D8%A7", "%E2%80", "%2", "%zz", "agi_x", ": ", "\u0627", "A", "3A", "20"]


def test_an_env_decodes_as_unquote_decodes_it() -> None:
    """``decode_env`` replaces an environment's common escapes in C and hands
    anything else to ``unquote``: the text is always what ``unquote`` makes
    (captured environments, a Persian caller name, broken and lower-case
    escapes, a ``%`` made by ``%25``)."""
    from urllib.parse import quote, unquote

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from ami_bridge.agi import _unquote_env

    for _name, start in captured("AsyncAGIStart"):
        assert _unquote_env(start["Env"]) == unquote(start["Env"])
    persian = quote("agi_calleridname: \u0639\u0644\u06cc %41\nagi_context: x\n\n", safe="")
    assert _unquote_env(persian) == unquote(persian) and "\u0639" in decode_env(persian)[
        "agi_calleridname"]

    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.sampled_from(_ENV_PIECES) | st.text(max_size=3), max_size=30))
    def same(pieces: list[str]) -> None:
        text = "".join(pieces)
        assert _unquote_env(text) == unquote(text)
        assert _unquote_env(quote(text, safe="/@;")) == text

    same()

"""The codec gives the same messages whatever the read boundaries (property tests).

The stream is built from AMI-like pieces (headers, CR, LF, CRLF, blank lines,
stray CRs, Persian text whose UTF-8 bytes a read may cut) and cut at arbitrary
points; feeding the pieces must equal feeding the whole. A run of CRLF pairs
used to be cut where ``rfind`` found the last blank line rather than where a
cut from the left finds it, so a stray CR after a blank line came out
differently with different reads.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ami_bridge.codec import AMIDecoder

PIECES = [
    b"Event: Newchannel",
    b"Response: Success",
    b"ActionID: shenava-1",
    b"CallerIDName: \xd8\xb2\xd9\x87\xd8\xb1\xd8\xa7",  # Persian, two bytes a letter
    b"AccountCode: ",
    b"Output: a: b",
    b"bare",
    b"\xff",  # not UTF-8
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\r\n\r\n\r",
]

STREAMS = st.lists(st.sampled_from(PIECES), max_size=24).map(b"".join)


def feed_in_pieces(data: bytes, cuts: list[int], *, banner: bool) -> tuple[list[object], str | None]:
    decoder = AMIDecoder(expect_banner=banner)
    out: list[object] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        out.extend(m.headers for m in decoder.feed(data[start:cut]))
        start = cut
    # Whatever is left is finished by one more blank line, so its last
    # message (or its absence) is compared too.
    out.extend(m.headers for m in decoder.feed(b"\r\n\r\n"))
    return out, decoder.banner


@settings(max_examples=400, deadline=None)
@given(data=STREAMS, cuts=st.lists(st.integers(0, 10_000), max_size=8))
@example(data=b"A: 1\r\n\r\n\r\n\rB: 2\r\n\r\n", cuts=[10])
@example(data=b"\r\n\r\n\n\r\n\r\n\r\n\rEvent: X\r\n\r\n", cuts=[7, 8, 20])
def test_pieces_give_the_same_messages_as_the_whole(data: bytes, cuts: list[int]) -> None:
    assert feed_in_pieces(data, cuts, banner=False) == feed_in_pieces(data, [], banner=False)


@settings(max_examples=200, deadline=None)
@given(data=STREAMS, cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_pieces_after_a_banner_give_the_same_messages(data: bytes, cuts: list[int]) -> None:
    data = b"Asterisk Call Manager/11.0.0\r\n" + data
    assert feed_in_pieces(data, cuts, banner=True) == feed_in_pieces(data, [], banner=True)


@settings(max_examples=200, deadline=None)
@given(data=STREAMS)
def test_every_single_cut_gives_the_same_messages(data: bytes) -> None:
    whole = feed_in_pieces(data, [], banner=False)
    for cut in range(len(data) + 1):
        assert feed_in_pieces(data, [cut], banner=False) == whole


def test_a_stray_cr_after_an_odd_run_of_blank_lines_is_not_a_message() -> None:
    """``\\r\\n\\r\\n\\r\\n\\r`` then a header: one message, whatever the reads."""
    data = b"A: 1\r\n\r\n\r\n\rB: 2\r\n\r\n"
    assert feed_in_pieces(data, [], banner=False)[0] == [(("A", "1"),), (("B", "2"),)]
    assert feed_in_pieces(data, [10], banner=False)[0] == [(("A", "1"),), (("B", "2"),)]

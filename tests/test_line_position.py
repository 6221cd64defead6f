"""A waiting call's place (read by every hold announcement) equals a count over the whole line."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from routing.calls import Urgency, WaitingCall
from routing.scoring import ScoringConfig
from routing.waiting_line import Position, WaitingLine

T0 = 1_700_000_000.0

operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("join"),
            st.integers(0, 600),  # joined seconds after T0 (ties too)
            st.sampled_from(["fa", "en"]),
            st.sampled_from(["general", "billing"]),
            st.sampled_from(list(Urgency)),
            st.booleans(),
        ),
        st.tuples(st.just("leave"), st.integers(0, 10_000)),
        st.tuples(st.just("pop"), st.sampled_from(["fa", "en"]), st.sampled_from(["general", "billing"])),
    ),
    max_size=120,
)


def counted(line: WaitingLine, call_id: str) -> Position:
    """The definition: every live call with a smaller sort key is ahead."""
    me = line.get(call_id)
    assert me is not None
    mine = line.rank(call_id)
    bucket = [c for c in line if (c.language, c.skill) == (me.language, me.skill)]
    return Position(
        1 + sum(1 for c in bucket if line.rank(c.call_id) < mine),
        len(bucket),
        1 + sum(1 for c in line if line.rank(c.call_id) < mine),
        len(line),
    )


@settings(max_examples=150, deadline=None)
@given(operations)
def test_position_and_calls_ahead_equal_the_count_over_the_line(ops: list[tuple]) -> None:
    line = WaitingLine(ScoringConfig())
    made = 0
    for op in ops:
        if op[0] == "join":
            _, offset, language, skill, urgency, vulnerable = op
            line.join(WaitingCall(f"c{made}", T0 + offset, language, skill, skill,
                                  urgency=urgency, vulnerable=vulnerable))
            made += 1
        elif op[0] == "leave" and len(line):
            ids = sorted(c.call_id for c in line)
            line.leave(ids[op[1] % len(ids)])
        elif op[0] == "pop":
            line.pop_best({op[1]}, {op[2]})
        for call in line:
            assert line.position(call.call_id) == counted(line, call.call_id)
    for call in line:
        mine = line.rank(call.call_id)
        ahead = sorted(
            (line.rank(c.call_id), c.call_id) for c in line
            if (c.language, c.skill) == (call.language, call.skill) and line.rank(c.call_id) < mine
        )
        assert [c.call_id for c in line.ahead_of(call.call_id, 3)] == [i for _, i in ahead[:3]]

"""The waiting line: order, matching, leaving, explanations, and a brute-force oracle."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.calls import Urgency, WaitingCall
from routing.errors import CallAlreadyWaitingError, UnknownCallError
from routing.scoring import ScoringConfig, score
from routing.waiting_line import WaitingLine

CONFIG = ScoringConfig()
T0 = 1_700_000_000.0
FA = {"fa"}
BILLING = {"billing"}


def make_call(call_id: str, joined_at: float = T0, **facts: object) -> WaitingCall:
    base = WaitingCall(call_id, joined_at, language="fa", skill="billing", category="general")
    return replace(base, **facts)  # type: ignore[arg-type]


def line_of(*calls: WaitingCall) -> WaitingLine:
    line = WaitingLine(CONFIG)
    for call in calls:
        line.join(call)
    return line


def drain(line: WaitingLine, languages: set[str], skills: set[str]) -> list[str]:
    order = []
    while (call := line.pop_best(languages, skills)) is not None:
        order.append(call.call_id)
    return order


def test_higher_score_first_then_the_longer_wait() -> None:
    line = line_of(
        make_call("new-plain", T0 + 10),
        make_call("old-plain", T0),
        make_call("vulnerable", T0 + 20, vulnerable=True),
    )
    assert drain(line, FA, BILLING) == ["vulnerable", "old-plain", "new-plain"]


def test_equal_scores_go_to_the_longer_wait() -> None:
    # Joined 60 s apart, the later one with exactly 60 points more: equal scores.
    line = line_of(
        make_call("later", T0 + 60, open_complaint=True),
        make_call("earlier", T0),
    )
    now = T0 + 100
    later, earlier = make_call("later", T0 + 60, open_complaint=True), make_call("earlier", T0)
    assert score(later, now, CONFIG).total == score(earlier, now, CONFIG).total
    assert drain(line, FA, BILLING) == ["earlier", "later"]


def test_same_score_and_same_moment_keep_join_order() -> None:
    line = line_of(make_call("first"), make_call("second"))
    assert drain(line, FA, BILLING) == ["first", "second"]


def test_an_agent_gets_only_calls_in_its_languages_and_skills() -> None:
    line = line_of(
        make_call("en-billing", language="en", urgency=Urgency.CRITICAL),
        make_call("fa-tech", skill="technical", vulnerable=True),
        make_call("fa-billing", T0 + 5),
    )
    assert line.peek_best(FA, BILLING).call_id == "fa-billing"  # type: ignore[union-attr]
    assert line.peek_best({"fa", "en"}, BILLING).call_id == "en-billing"  # type: ignore[union-attr]
    assert line.peek_best(FA, {"billing", "technical"}).call_id == "fa-tech"  # type: ignore[union-attr]
    assert line.peek_best({"de"}, BILLING) is None
    assert line.count_for({"fa", "en"}, {"billing", "technical"}) == 3
    assert line.count_for(FA, BILLING) == 1


def test_leaving_removes_the_call_and_it_may_join_again_keeping_its_place() -> None:
    line = line_of(make_call("a", T0), make_call("b", T0 + 1))
    left = line.leave("a")
    assert "a" not in line and len(line) == 1
    assert line.peek_best(FA, BILLING).call_id == "b"  # type: ignore[union-attr]
    line.join(left)  # e.g. the agent did not answer: same joined_at, same place
    assert drain(line, FA, BILLING) == ["a", "b"]


def test_joining_twice_or_leaving_a_stranger_is_an_error() -> None:
    line = line_of(make_call("a"))
    with pytest.raises(CallAlreadyWaitingError):
        line.join(make_call("a"))
    with pytest.raises(UnknownCallError) as raised:
        line.leave("zz")
    assert raised.value.code == "routing.unknown_call"


def test_many_leaves_are_compacted_without_changing_the_order() -> None:
    plain = [make_call(f"c{i}", T0 + i) for i in range(500)]
    vulnerable = [make_call(f"x{i}", T0 + i, vulnerable=True) for i in range(0, 500, 5)]
    line = line_of(*plain, *vulnerable)
    for call in plain:
        if int(call.call_id[1:]) % 3:
            line.leave(call.call_id)
    kept = [c for c in plain if int(c.call_id[1:]) % 3 == 0] + vulnerable
    now = T0 + 600
    expected = sorted(kept, key=lambda c: (-score(c, now, CONFIG).total, c.joined_at))

    assert drain(line, FA, BILLING) == [c.call_id for c in expected]
    assert len(line) == 0


def test_position_and_calls_ahead() -> None:
    line = line_of(
        make_call("me", T0),
        make_call("vip", T0 + 10, vulnerable=True),
        make_call("cb", T0 + 20, callback_flag=True),
        make_call("later", T0 + 30),
        make_call("en", T0 + 40, language="en", urgency=Urgency.CRITICAL),
    )
    pos = line.position("me")
    assert (pos.in_bucket, pos.bucket_size, pos.overall, pos.total) == (3, 4, 4, 5)
    assert [c.call_id for c in line.ahead_of("me", 5)] == ["vip", "cb"]
    assert [c.call_id for c in line.ahead_of("me", 1)] == ["vip"]


def test_explanation_names_score_parts_place_and_who_is_ahead_and_why() -> None:
    line = line_of(
        make_call("me", T0, recent_call=True),
        make_call("vip", T0 + 10, vulnerable=True, urgent_words=("fire",)),
    )
    explanation = line.explain("me", T0 + 50)

    assert explanation.position.in_bucket == 2
    assert [a.call_id for a in explanation.ahead] == ["vip"]
    text = explanation.render()
    assert (
        "score 140 = +60 category 'general', +30 recent call from the same number, +50 waited 50 s"
        in text
    )
    assert "position 2 of 2" in text
    assert "behind vip (score 370)" in text
    assert "+150 vulnerable caller" in text
    assert "+120 urgent words in transcript: fire" in text
    assert "-10 waited less" in text
    assert "-30 recent call from the same number (the other call's)" in text

    first = line.explain("vip", T0 + 50).render()
    assert "position 1 of 2" in first and "first in line" in first


def test_explaining_an_unknown_call_is_an_error() -> None:
    with pytest.raises(UnknownCallError):
        line_of().explain("nobody", T0)


# -- property: the line always returns the best eligible call -------------------

LANGUAGES = ("fa", "en")
SKILLS = ("billing", "technical", "sales")
CATEGORIES = ("general", "billing", "safety", "unknown")

calls = st.builds(
    WaitingCall,
    call_id=st.just(""),
    # Halves and small weights are exact in binary floating point, so the
    # brute force and the line compute identical scores and ties are real ties.
    joined_at=st.integers(0, 2000).map(lambda n: T0 + n / 2),
    language=st.sampled_from(LANGUAGES),
    skill=st.sampled_from(SKILLS),
    category=st.sampled_from(CATEGORIES),
    urgency=st.sampled_from(list(Urgency)),
    vulnerable=st.booleans(),
    open_complaint=st.booleans(),
    recent_call=st.booleans(),
    callback_flag=st.booleans(),
    urgent_words=st.sampled_from([(), ("fire",)]),
)
agents = st.tuples(
    st.sets(st.sampled_from(LANGUAGES), min_size=1),
    st.sets(st.sampled_from(SKILLS), min_size=1),
)
rates = st.sampled_from([0.5, 1.0, 2.0, 4.0])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(calls, max_size=40),
    st.lists(st.integers(0, 39), max_size=15),
    st.lists(agents, min_size=1, max_size=8),
    rates,
)
def test_the_line_returns_the_best_eligible_call_like_a_full_scan(
    joined: list[WaitingCall],
    leavers: list[int],
    servers: list[tuple[set[str], set[str]]],
    rate: float,
) -> None:
    config = ScoringConfig(ageing_points_per_s=rate)
    line = WaitingLine(config)
    waiting: dict[str, tuple[int, WaitingCall]] = {}
    for order, call in enumerate(joined):
        call = replace(call, call_id=f"c{order}")
        line.join(call)
        waiting[call.call_id] = (order, call)
    for index in leavers:
        if f"c{index}" in waiting:
            line.leave(f"c{index}")
            del waiting[f"c{index}"]
    now = T0 + 1000.0

    for languages, skills in servers * 6:
        eligible = [
            (order, call)
            for order, call in waiting.values()
            if call.language in languages and call.skill in skills
        ]
        popped = line.pop_best(languages, skills)
        if not eligible:
            assert popped is None
            continue
        # Highest score now; ties to the longer wait, then to the earlier join.
        expected = max(
            eligible, key=lambda oc: (score(oc[1], now, config).total, -oc[1].joined_at, -oc[0])
        )[1]
        assert popped == expected
        del waiting[expected.call_id]
    assert len(line) == len(waiting)

"""Priority scoring: parts, order, ageing and the no-starvation bound."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from routing.agents import AgentView
from routing.calls import Urgency, WaitingCall
from routing.errors import InvalidScoringConfigError
from routing.router import Router
from routing.scoring import (
    Factor,
    ScoringConfig,
    max_head_start_s,
    ranking_key,
    score,
    static_parts,
    static_points,
)
from routing.waiting_line import WaitingLine

CONFIG = ScoringConfig()
T0 = 1_700_000_000.0


def make_call(call_id: str = "c1", joined_at: float = T0, **facts: object) -> WaitingCall:
    base = WaitingCall(call_id, joined_at, language="fa", skill="billing", category="general")
    return replace(base, **facts)  # type: ignore[arg-type]


def test_a_plain_call_scores_its_category_and_its_wait() -> None:
    result = score(make_call(), T0 + 30.0, CONFIG)

    assert [p.factor for p in result.parts] == [Factor.CATEGORY, Factor.AGEING]
    assert result.parts[0] == ("category 'general'", 60.0, Factor.CATEGORY)
    assert result.parts[1].reason == "waited 30 s"
    assert result.total == pytest.approx(60.0 + 30.0)


@pytest.mark.parametrize(
    ("facts", "factor", "points", "words"),
    [
        ({"category": "safety"}, Factor.CATEGORY, 240.0, "category 'safety'"),
        ({"urgency": Urgency.HIGH}, Factor.URGENCY, 90.0, "declared urgency high"),
        ({"urgency": Urgency.CRITICAL}, Factor.URGENCY, 180.0, "declared urgency critical"),
        ({"vulnerable": True}, Factor.VULNERABLE, 150.0, "vulnerable caller"),
        ({"open_complaint": True}, Factor.OPEN_COMPLAINT, 60.0, "open complaint"),
        ({"recent_call": True}, Factor.RECENT_CALL, 30.0, "recent call from the same number"),
        ({"callback_flag": True}, Factor.CALLBACK_FLAG, 90.0, "pending callback flag"),
        (
            {"urgent_words": ("fire", "ambulance")},
            Factor.TRANSCRIPT_URGENCY,
            120.0,
            "urgent words in transcript: fire, ambulance",
        ),
    ],
)
def test_each_fact_adds_its_points_with_a_reason(
    facts: dict[str, object], factor: Factor, points: float, words: str
) -> None:
    plain = score(make_call(), T0, CONFIG)
    marked = score(make_call("c1", T0, **facts), T0, CONFIG)

    assert marked.points_for(factor) == points
    assert words in [p.reason for p in marked.parts]
    expected_gain = points - (60.0 if factor is Factor.CATEGORY else 0.0)
    assert marked.total - plain.total == pytest.approx(expected_gain)


def test_facts_add_up_and_order_calls() -> None:
    everything = make_call(
        "all",
        category="safety",
        urgency=Urgency.CRITICAL,
        vulnerable=True,
        open_complaint=True,
        recent_call=True,
        callback_flag=True,
        urgent_words=("fire",),
    )
    assert static_points(everything, CONFIG) == 240 + 180 + 150 + 60 + 30 + 90 + 120
    ranked = sorted(
        [make_call("plain"), make_call("vulnerable", vulnerable=True), everything],
        key=lambda c: -score(c, T0, CONFIG).total,
    )
    assert [c.call_id for c in ranked] == ["all", "vulnerable", "plain"]


def test_unknown_category_gets_the_configured_default() -> None:
    config = ScoringConfig(unknown_category_points=5.0)
    assert score(make_call(category="weird"), T0, config).points_for(Factor.CATEGORY) == 5.0


def test_ageing_is_linear_so_the_order_never_changes_with_time() -> None:
    early_low = make_call("low", T0)
    late_high = make_call("high", T0 + 40.0, vulnerable=True)
    gaps = {
        round(score(late_high, now, CONFIG).total - score(early_low, now, CONFIG).total, 9)
        for now in (T0 + 40.0, T0 + 100.0, T0 + 10_000.0)
    }
    assert gaps == {150.0 - 40.0}
    assert ranking_key(late_high, CONFIG) - ranking_key(early_low, CONFIG) == pytest.approx(110.0)


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan, math.inf])
def test_ageing_must_be_positive_or_calls_could_wait_forever(rate: float) -> None:
    with pytest.raises(InvalidScoringConfigError) as raised:
        ScoringConfig(ageing_points_per_s=rate)
    assert raised.value.code == "routing.invalid_scoring_config"
    assert "ageing_points_per_s" in str(raised.value)


def test_a_non_finite_weight_is_refused_naming_its_key() -> None:
    with pytest.raises(InvalidScoringConfigError, match=r"category_points\.billing"):
        ScoringConfig(category_points={"billing": math.nan})


def test_the_default_head_start_bound() -> None:
    # Widest gap: every factor at its highest, against a plain lowest category.
    assert max_head_start_s(CONFIG) == (240 + 180 + 150 + 60 + 30 + 90 + 120) - 60
    assert max_head_start_s(ScoringConfig(ageing_points_per_s=2.0)) == 405.0


@pytest.mark.parametrize(("delay_s", "low_first"), [(809.0, False), (810.0, True), (811.0, True)])
def test_a_low_call_goes_before_any_call_that_joins_the_bound_later(
    delay_s: float, low_first: bool
) -> None:
    # The low call L ranks ahead of a newer call H exactly when
    # rate * (H.joined_at - L.joined_at) >= static(H) - static(L); at equality the
    # tie goes to L, the longer wait. With the defaults that gap is 810 s.
    low = make_call("low", T0)
    high = make_call(
        "high",
        T0 + delay_s,
        category="safety",
        urgency=Urgency.CRITICAL,
        vulnerable=True,
        open_complaint=True,
        recent_call=True,
        callback_flag=True,
        urgent_words=("fire",),
    )
    line = WaitingLine(CONFIG)
    line.join(high)
    line.join(low)

    best = line.peek_best({"fa"}, {"billing"})
    assert best is not None
    assert (best.call_id == "low") is low_first


def test_ageing_serves_a_low_call_despite_a_steady_stream_of_urgent_calls() -> None:
    # One agent takes one call a second; two top-priority calls arrive each
    # second. The line grows without end, yet the low call joined at 0 ranks
    # ahead of every urgent call that joins at or after the bound B (here 100 s),
    # so it waits only for the urgent calls that joined in (0, B): 2B - 1 of them.
    config = ScoringConfig(
        category_points={"low": 0.0, "urgent": 100.0},
        unknown_category_points=0.0,
        urgency_points={},
        vulnerable_points=0.0,
        open_complaint_points=0.0,
        recent_call_points=0.0,
        callback_flag_points=0.0,
        transcript_urgency_points=0.0,
    )
    bound = max_head_start_s(config)
    assert bound == 100.0
    router = Router(config)
    agent = AgentView("a1", frozenset({"fa"}), frozenset({"billing"}), idle_since=0.0)
    served: list[str] = []
    router.on_call_joined(make_call("low", 0.0, category="low"), 0.0)
    for second in range(1, 1000):
        for half in (0.5, 1.0):
            joined = second - 1 + half
            router.on_call_joined(make_call(f"u{joined}", joined, category="urgent"), joined)
        served.extend(
            a.call_id for a in router.on_agent_ready(replace(agent, idle_since=second), second)
        )
        if "low" in served:
            break
        router.on_call_answered(served[-1])

    urgent_ahead = int(2 * bound) - 1
    assert served.index("low") == urgent_ahead
    assert all(float(c[1:]) < bound for c in served[:-1])
    assert len(router.line) > 0  # the urgent calls kept coming: the low one still got through


_points = st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0.0, -0.0, 0.1, 0.2, 0.3, 1e-17])


@given(
    st.builds(
        ScoringConfig,
        category_points=st.dictionaries(st.sampled_from(["general", "billing"]), _points),
        unknown_category_points=_points,
        urgency_points=st.fixed_dictionaries({u: _points for u in Urgency}),
        vulnerable_points=_points,
        open_complaint_points=_points,
        recent_call_points=_points,
        callback_flag_points=_points,
        transcript_urgency_points=_points,
    ),
    st.sampled_from(["general", "billing", "other"]),
    st.sampled_from(list(Urgency)),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.lists(st.sampled_from(["fire", "gas"]), max_size=2),
)
@example(  # (0.1 + 0.2) + 3.0 != (0.1 + 3.0) + 0.2: the order of the sum counts
    ScoringConfig(category_points={"general": 0.1}, urgency_points={},
                  open_complaint_points=0.2, recent_call_points=3.0),
    "general", Urgency.NORMAL, False, True, True, False, [],
)
def test_static_points_are_the_sum_of_the_static_parts_to_the_bit(
    config: ScoringConfig, category: str, urgency: Urgency, vulnerable: bool, open_complaint: bool,
    recent_call: bool, callback_flag: bool, words: list[str],
) -> None:
    """``static_points`` adds without making the parts: the same float, so the
    waiting line's order (its ranking keys) is what it was."""
    call = make_call(
        category=category, urgency=urgency, vulnerable=vulnerable, open_complaint=open_complaint,
        recent_call=recent_call, callback_flag=callback_flag, urgent_words=tuple(words),
    )
    expected = sum(part.points for part in static_parts(call, config))
    assert math.copysign(1.0, static_points(call, config)) == math.copysign(1.0, expected)
    assert static_points(call, config) == expected

"""The O(N) headroom gives the answer of its definition (one Erlang C per size), and the
service levels kept between asks are the floats of ``predicted_service_level``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_stats.erlang import (
    PredictedLevels,
    Traffic,
    erlang_b,
    predicted_service_level,
    spare_agents,
    spare_agents_by_size,
)

targets = st.one_of(
    st.sampled_from([0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0, 1.5, -0.1]),
    st.floats(min_value=-0.5, max_value=1.5, allow_nan=False),
)


@settings(max_examples=400, deadline=None)
@given(
    staffed=st.integers(min_value=-3, max_value=300),
    rate=st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=2.0, allow_nan=False)),
    aht=st.floats(min_value=1.0, max_value=900.0, allow_nan=False),
    threshold=st.floats(min_value=0.0, max_value=120.0, allow_nan=False),
    target=targets,
    min_staffed=st.integers(min_value=-2, max_value=20),
)
def test_spare_agents_equals_the_definition(
    staffed: int, rate: float, aht: float, threshold: float, target: float, min_staffed: int
) -> None:
    traffic = Traffic(rate, aht)
    assert spare_agents(staffed, traffic, threshold, target, min_staffed) == spare_agents_by_size(
        staffed, traffic, threshold, target, min_staffed
    )


@settings(max_examples=60, deadline=None)
@given(
    staffed=st.integers(min_value=500, max_value=1500),
    load=st.floats(min_value=0.5, max_value=1.05, allow_nan=False),
    target=st.floats(min_value=0.5, max_value=0.99, allow_nan=False),
)
def test_spare_agents_equals_the_definition_in_a_large_centre(
    staffed: int, load: float, target: float
) -> None:
    traffic = Traffic(staffed * load / 300.0, 300.0)
    assert spare_agents(staffed, traffic, 20.0, target) == spare_agents_by_size(
        staffed, traffic, 20.0, target
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=-2, max_value=400),
                          st.sampled_from([0.0, 0.5, 0.83, 1.0]),
                          st.sampled_from([120.0, 300.0]),
                          st.sampled_from([0.0, 20.0])), max_size=40))
def test_kept_levels_are_the_floats_of_the_definition(
    asks: list[tuple[int, float, float, float]]
) -> None:
    levels = PredictedLevels()
    for servers, rate, aht, threshold in asks:
        traffic = Traffic(rate, aht)
        assert levels.service_level(servers, traffic, threshold) == predicted_service_level(
            servers, traffic, threshold)
        if servers >= 0:
            assert levels.blocking(servers, traffic.erlangs) == erlang_b(servers, traffic.erlangs)

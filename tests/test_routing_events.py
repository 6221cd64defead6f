"""Routing's events reach the statistics by type, so a renamed or new event cannot go unseen."""

from __future__ import annotations

from agent_stats.service import StatsService
from routing import dispatch, events
from routing.events import CallOffered, RoutingEvent


def _event_types() -> set[type[RoutingEvent]]:
    """Every event type routing declares (``__subclasses__`` also holds the classes
    ``dataclass(slots=True)`` replaced, so the module's names are the list)."""
    declared = (getattr(events, name) for name in events.__all__)
    return {t for t in declared if issubclass(t, RoutingEvent) and t is not RoutingEvent}


def test_the_statistics_handle_every_routing_event_but_the_offer() -> None:
    assert set(StatsService.ROUTING_HANDLERS) == _event_types() - {CallOffered}


def test_the_dispatcher_publishes_the_event_types_the_listeners_import() -> None:
    for name in events.__all__:
        assert getattr(dispatch, name) is getattr(events, name)

"""The statistics inside the daemon's object graph: install, routing events, demo figures."""

from __future__ import annotations

import random
from typing import Any

import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.task import Clock

from agent_stats.demo_figures import simulate_breaks, summary
from agent_stats.service import StatsService
from agent_stats.states import AgentState
from agent_stats.store import StatsStore
from ami_bridge.connection import ConnectionState
from shenava.app import Shenava
from shenava.config import default_config
from shenava_base.aio import as_deferred
from tests.stats_helpers import T0, step_to


class _NoEndpoint:
    def connect(self, factory: Any) -> Any:
        raise AssertionError("not started in this test")


@pytest_twisted.ensureDeferred
async def test_install_wires_the_service_into_the_app(redis_client: Redis) -> None:
    clock = Clock()
    clock.advance(T0)
    app = Shenava(default_config(), reactor=clock, redis=redis_client, endpoint=_NoEndpoint())
    service = app.agent_stats
    assert isinstance(service, StatsService)
    await service.started
    for status in app.roster:
        app.roster.log_in(status.profile.agent_id, clock.seconds())
    emit = app.dispatcher._emit  # routing's own fan-out, as a connected call would drive it
    from routing.events import CallAbandoned, CallAnswered, CallQueued

    emit(CallQueued("c1", T0 + 1, T0, "fa", "billing", "09120000000"))
    step_to(clock, T0 + 9)
    emit(CallAnswered("c1", T0 + 9, "a1", T0 + 1, False))
    emit(CallQueued("c2", T0 + 9, T0 + 5, "fa", "billing", "09120000001"))
    step_to(clock, T0 + 40)
    emit(CallAbandoned("c2", T0 + 40, T0 + 9, "09120000001", None))
    app.connection._notify_state(ConnectionState.DISCONNECTED)  # the link's observers
    app.connection._notify_state(ConnectionState.CONNECTED)

    simulate_breaks(clock, app, random.Random(3))
    step_to(clock, T0 + 600)
    figures = summary(app)
    sl, breaks = figures["service_level"], figures["breaks"]
    assert sl["counted"] == 2 and sl["sl"] == 0.5
    assert sl["app_queue_servicelevel_perf"] == 1.0 and sl["app_queue_servicelevel_perf2"] == 0.5
    assert (sl["abandoned_counted"], sl["abandoned_short_not_counted"]) == (1, 0)
    assert breaks["granted"] >= 1 and 0 < breaks["fairness_index"] <= 1
    assert {"wait_max_s", "waited_for_headroom"} <= set(breaks) and "wellbeing_alerts" in figures
    assert any(s.state is AgentState.NOT_READY for s in app.roster) or breaks["granted"]
    await service.stop()
    store = StatsStore(redis_client, service.sla)
    assert await as_deferred(store.agents()) == ["a1", "a2", "a3", "a4"]

"""The service levels the callback gate asks agent_stats for, with very few agents."""

from __future__ import annotations

from redis.asyncio import Redis

from tests.stats_helpers import T0, clock_at, make_service


def test_staffed_service_level_with_one_agent_and_no_traffic(redis_client: Redis) -> None:
    # Headroom (one agent fewer) is 0 with one agent staffed; the one agent
    # staffed answers every call of a quiet spell.
    clock = clock_at(T0)
    roster, service = make_service(redis_client, clock)
    roster.log_in("a1", clock.seconds())
    assert service.headroom_service_level(clock.seconds()) == 0.0
    assert service.staffed_service_level(clock.seconds()) == 1.0

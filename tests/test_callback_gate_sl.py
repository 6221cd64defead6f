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


def test_a_break_that_waits_says_which_gate_holds_it(redis_client: Redis) -> None:
    from twisted.logger import globalLogPublisher

    from agent_stats.states import NotReadyReason

    clock = clock_at(T0)
    roster, service = make_service(redis_client, clock)
    roster.log_in("a1", clock.seconds())
    seen: list[dict[str, object]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        answer = service.request_break("a1", NotReadyReason.BREAK)
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert answer.status == "waiting"
    held = [e for e in seen if e.get("gate") == "headroom"]
    assert len(held) == 1
    assert "1 agents staffed" in str(held[0]["why"])

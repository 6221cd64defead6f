"""What benchmarks/chaos.py found, each as a bounded test with real processes.

``shenava testpbx`` plays callers, ``shenava run`` (with a durable state
folder: the journal) serves them against a private redis-server (AOF), and the
faults are real: Redis killed with SIGKILL and started again on its data, the
daemon killed with SIGKILL and started again. No agent is logged in, so every
caller who reaches the waiting line waits, gives up, and must be counted once
(an SL outcome) and flagged once (a callback flag).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks._takeover_rig import Rig, run_async
from shenava.redis_server import RedisServer, start_redis_server

AGENT_CALLER = {"menu_answers": {"choose-language": "1", "main-menu": "3"}, "answer_delay_s": 0.5}


def _rig(tmp_path: Path, redis: RedisServer, scenario: dict[str, Any]) -> Rig:
    state = tmp_path / "state"
    return Rig(tmp_path, redis.url, scenario, extra_config=(
        f'[state]\nfolder = "{state}"\n\n[daemon]\nleader_lease = false\nstop_timeout_s = 3\n'
    ))


def _restart(redis: RedisServer) -> RedisServer:
    return start_redis_server(redis.data_dir, port=redis.port)


async def _outcomes(rig: Rig) -> tuple[dict[str, int], dict[str, list[str]], dict[str, Any]]:
    """SL outcomes counted per call id, flag reasons per number, the call state left."""
    from redis.asyncio import Redis

    client = Redis.from_url(rig.redis_url, decode_responses=True)
    try:
        seen: dict[str, int] = {}
        async for key in client.scan_iter(f"{rig.prefix}:{{stats}}:slseen:*"):
            for member in await client.smembers(key):
                call_id = member.split("|")[1]
                seen[call_id] = seen.get(call_id, 0) + 1
        reasons: dict[str, list[str]] = {}
        for number, flag_id in (await client.hgetall(f"{rig.prefix}:{{callbacks}}:open")).items():
            flag = json.loads(await client.get(f"{rig.prefix}:{{callbacks}}:flag:{flag_id}"))
            reasons[number] = [r["kind"] for r in flag["reasons"]]
        calls = await client.hgetall(f"{rig.prefix}:{{calls}}:live")
        return seen, reasons, calls
    finally:
        await client.aclose()


def _wait_ended(rig: Rig, count: int, limit_s: float = 90.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and len(rig.callers()) < count:
        time.sleep(0.2)
    callers = rig.callers()
    assert len(callers) == count
    return callers


@pytest.mark.slow
def test_a_caller_queued_while_redis_was_away_is_still_waiting_after_a_kill_minus_9(
    tmp_path: Path,
) -> None:
    """Callers join the waiting line while Redis is down (their new place cannot be
    written), the daemon is killed -9, Redis comes back, a new daemon starts: it
    finds them waiting (the place kept on the host), not in the menu Redis last
    held; when they give up each is counted once and flagged once."""
    redis = start_redis_server(tmp_path / "redis", extra_args=("--appendfsync", "always"))
    scenario = {"callers": [
        dict(AGENT_CALLER, at=1.0, number="09130000001", patience_s=40),
        dict(AGENT_CALLER, at=1.5, number="09130000002", patience_s=40),
    ]}
    rig = _rig(tmp_path, redis, scenario)
    try:
        rig.start_pbx()
        first = rig.start_daemon("first")
        rig.wait_for(first, "IVR started", count=2)
        time.sleep(1.0)  # their IVR places are in Redis
        redis.process.kill()
        redis.process.wait()
        rig.wait_for(first, "joined the waiting line", count=2)
        time.sleep(1.0)  # the failed write retried at least once
        rig.kill(first)
        redis = _restart(redis)
        second = rig.start_daemon("second")
        rig.wait_for(second, "take-over round 1")
        log = second.log_text()
        assert log.count("(waiting)") == 2, log[-3000:]
        callers = _wait_ended(rig, 2)
        time.sleep(2.0)  # the outcomes and flags are written
        seen, reasons, calls = run_async(lambda: _outcomes(rig))
        assert sorted(seen.get(c["uniqueid"], 0) for c in callers) == [1, 1]
        assert sorted(reasons.get(c["number"], []) for c in callers) == [["abandoned"], ["abandoned"]]
        assert calls == {}
        assert not (tmp_path / "state" / "call-state.json").exists()
    finally:
        rig.close()
        redis.stop()

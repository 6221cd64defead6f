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

from benchmarks import _takeover_rig
from benchmarks._takeover_rig import Rig, run_async
from shenava.redis_server import RedisServer, start_redis_server
from tests import daemon_plugins

AGENT_CALLER = {"menu_answers": {"choose-language": "1", "main-menu": "3"}, "answer_delay_s": 0.5}


def _rig(tmp_path: Path, redis: RedisServer, scenario: dict[str, Any]) -> Rig:
    state = tmp_path / "state"
    voicemail = tmp_path / "recordings" / "voicemail"  # under the test PBX's --recordings
    voicemail.mkdir(parents=True)
    return Rig(tmp_path, redis.url, scenario, extra_config=(
        f'[state]\nfolder = "{state}"\n\n[daemon]\nleader_lease = false\nstop_timeout_s = 3\n\n'
        f'[recordings]\ndir = "{voicemail}"\n'
    ))


def _restart(redis: RedisServer) -> RedisServer:
    return start_redis_server(redis.data_dir, port=redis.port)


async def _outcomes(rig: Rig) -> tuple[dict[str, int], dict[str, list[str]], dict[str, Any]]:
    """SL outcomes counted per call id, flag reasons per number, the call state left."""
    from redis.asyncio import Redis

    client: Any = Redis.from_url(rig.redis_url, decode_responses=True)
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


def _poll(probe: Any, done: Any, limit_s: float = 60.0) -> Any:
    """``probe()`` again until ``done(result)`` or ``limit_s`` passed (a bound, not a
    pace: under load a write takes longer); the last result, for the caller to assert."""
    deadline = time.monotonic() + limit_s
    while True:
        result = probe()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


async def _ivr_places(rig: Rig) -> int:
    from redis.asyncio import Redis

    client: Any = Redis.from_url(rig.redis_url, decode_responses=True)
    try:
        return sum(1 for r in await client.hvals(f"{rig.prefix}:{{calls}}:live") if json.loads(r).get("ivr"))
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
        places = _poll(lambda: run_async(lambda: _ivr_places(rig)), lambda n: n >= 2)
        assert places == 2  # their IVR places are in Redis
        redis.process.kill()
        redis.process.wait()
        rig.wait_for(first, "joined the waiting line", count=2)
        failed = first.log_text().count("calls not written")
        rig.wait_for(first, "calls not written", count=failed + 2, limit_s=60)  # retried at least once
        rig.kill(first)
        redis = _restart(redis)
        second = rig.start_daemon("second")
        rig.wait_for(second, "take-over round 1")
        log = second.log_text()
        assert log.count("(waiting)") == 2, log[-3000:]
        callers = _wait_ended(rig, 2)
        seen, reasons, calls = _poll(  # the outcomes and flags are written
            lambda: run_async(lambda: _outcomes(rig)),
            lambda r: len(r[0]) >= 2 and len(r[1]) >= 2 and r[2] == {})
        assert sorted(seen.get(c["uniqueid"], 0) for c in callers) == [1, 1]
        assert sorted(reasons.get(c["number"], []) for c in callers) == [["abandoned"], ["abandoned"]]
        assert calls == {}
        assert not (tmp_path / "state" / "call-state.json").exists()
    finally:
        rig.close()
        redis.stop()


async def _recording_in_call_state(rig: Rig) -> bool:
    from redis.asyncio import Redis

    client: Any = Redis.from_url(rig.redis_url, decode_responses=True)
    try:
        records = [json.loads(r) for r in await client.hvals(f"{rig.prefix}:{{calls}}:live")]
        return any(r.get("recording") and r["ivr"]["phase"] == "record" for r in records)
    finally:
        await client.aclose()


async def _voicemails(rig: Rig) -> list[dict[str, str]]:
    from redis.asyncio import Redis

    client: Any = Redis.from_url(rig.redis_url, decode_responses=True)
    try:
        ids = await client.zrange(f"{rig.prefix}:{{vm}}:index", 0, -1)
        return [await client.hgetall(f"{rig.prefix}:{{vm}}:vm:{i}") for i in ids]
    finally:
        await client.aclose()


@pytest.mark.slow
def test_a_caller_who_hangs_up_while_recording_after_a_kill_minus_9_leaves_a_voicemail(
    tmp_path: Path,
) -> None:
    """The daemon is killed -9 while a caller records a voicemail; they finish speaking
    and hang up before any daemon runs. The next daemon finds their record (in the
    record step, with the recording's name) and the channel gone: the voicemail is
    kept, with its flag, as the killed daemon would have kept it."""
    redis = start_redis_server(tmp_path / "redis", extra_args=("--appendfsync", "always"))
    caller = {"at": 5.0, "number": "09130000003", "audio": "sample", "after_speaking": "hangup",
              "menu_answers": {"choose-language": "1", "main-menu": "4"}, "answer_delay_s": 0.5,
              "patience_s": 120}
    rig = _rig(tmp_path, redis, {"callers": [caller]})
    try:
        rig.start_pbx()
        first = rig.start_daemon("first")
        rig.wait_for(first, "IVR started")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not run_async(lambda: _recording_in_call_state(rig)):
            time.sleep(0.1)
        time.sleep(1.0)  # RECORD FILE has reached the PBX
        rig.kill(first)  # the caller is speaking (6.8 s of audio), then hangs up
        [ended] = _wait_ended(rig, 1)
        second = rig.start_daemon("second")
        rig.wait_for(second, "take-over round 1")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not run_async(lambda: _voicemails(rig)):
            time.sleep(0.2)
        vms = run_async(lambda: _voicemails(rig))
        assert [v["call_id"] for v in vms] == [ended["uniqueid"]], second.log_text()[-3000:]
        _seen, reasons, calls = _poll(  # the flag follows the record
            lambda: run_async(lambda: _outcomes(rig)), lambda r: bool(r[1]) and r[2] == {})
        assert reasons == {caller["number"]: ["voicemail"]}
        assert calls == {}
    finally:
        rig.close()
        redis.stop()


async def _ivr_done_in_call_state(rig: Rig) -> int:
    """How many stored records say: IVR done, an agent asked for, no place in line."""
    from redis.asyncio import Redis

    client: Any = Redis.from_url(rig.redis_url, decode_responses=True)
    try:
        records = [json.loads(r) for r in await client.hvals(f"{rig.prefix}:{{calls}}:live")]
        return sum(1 for r in records if "phase" not in r and (r.get("ivr") or {}).get("phase") == "done")
    finally:
        await client.aclose()


@pytest.mark.slow
def test_callers_whose_join_was_not_written_before_a_kill_minus_9_count_as_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two callers join the waiting line, but the call state's write of their new
    place never lands (``tests/daemon_plugins.py`` holds every "waiting" record
    back from the daemon's Redis writes, as an overloaded daemon's write still in
    flight, without the write itself being slow): Redis says their IVR was done
    (agent). The daemon is killed -9. One caller gives up before the next daemon
    runs, the other after it has taken over. Each is counted once as an abandon
    (one SL outcome) and flagged once. Before, the first was not counted at all
    and the second was resumed in the IVR's last step (benchmarks/chaos.py:
    lost SL outcomes and flags)."""
    redis = start_redis_server(tmp_path / "redis", extra_args=("--appendfsync", "always"))
    gone_early = dict(AGENT_CALLER, at=1.0, number="09130000004", patience_s=15)
    stays = dict(AGENT_CALLER, at=1.5, number="09130000005", patience_s=30)
    rig = _rig(tmp_path, redis, {"callers": [gone_early, stays]})
    try:
        rig.start_pbx()
        with monkeypatch.context() as patch:  # the daemon's writes of "waiting" never land
            patch.setattr(_takeover_rig, "shenava_command",
                          lambda: daemon_plugins.command(["hold-phases=waiting"]))
            first = rig.start_daemon("first")
        rig.wait_for(first, "joined the waiting line", count=2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and run_async(lambda: _ivr_done_in_call_state(rig)) < 2:
            time.sleep(0.1)
        assert run_async(lambda: _ivr_done_in_call_state(rig)) == 2
        rig.kill(first)
        [ended] = _wait_ended(rig, 1)
        assert ended["number"] == gone_early["number"]
        second = rig.start_daemon("second")
        rig.wait_for(second, "take-over round 1")
        log = second.log_text()
        assert log.count("(waiting)") == 1 and "(ivr)" not in log, log[-3000:]
        callers = _wait_ended(rig, 2)
        time.sleep(2.0)  # the outcomes and flags are written
        seen, reasons, calls = run_async(lambda: _outcomes(rig))
        assert {c["number"]: seen.get(c["uniqueid"], 0) for c in callers} == {
            gone_early["number"]: 1, stays["number"]: 1,
        }, second.log_text()[-3000:]
        assert reasons == {gone_early["number"]: ["abandoned"], stays["number"]: ["abandoned"]}
        assert calls == {}
    finally:
        rig.close()
        redis.stop()

"""The journal and the call state against real faults: a real ``shenava run``
killed with SIGKILL, the test PBX's callers, a private redis-server (AOF).

The faults a process cannot be made to hit on its own (a slow disk, Redis
pausing writes) are driven from the test side: ``tests/daemon_plugins.py``
wraps the daemon's classes in the test's process only, and Redis's own
``CLIENT PAUSE ... WRITE`` stalls every write the daemon sends.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _takeover_rig
from benchmarks._takeover_rig import Rig, run_async
from shenava.redis_server import start_redis_server
from tests import daemon_plugins

VOICEMAIL_CALLER = {
    "at": 1.0, "number": "09130000021", "audio": "sample", "answer_delay_s": 0.5, "patience_s": 120,
    "menu_answers": {"choose-language": "1", "main-menu": "4"},
}


def _rig(tmp_path: Path, redis_url: str, scenario: dict[str, Any]) -> Rig:
    state = tmp_path / "state"
    voicemail = tmp_path / "recordings" / "voicemail"  # under the test PBX's --recordings
    voicemail.mkdir(parents=True)
    return Rig(tmp_path, redis_url, scenario, extra_config=(
        f'[state]\nfolder = "{state}"\n\n[daemon]\nleader_lease = false\nstop_timeout_s = 3\n\n'
        f'[recordings]\ndir = "{voicemail}"\n'
    ))


def _start_with(rig: Rig, name: str, plugins: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr(_takeover_rig, "shenava_command", lambda: daemon_plugins.command(plugins))
        return rig.start_daemon(name)


def _journal_entries(path: Path) -> list[dict[str, Any]]:
    """Every entry in the journal file (a batch's line holds several)."""
    entries: list[dict[str, Any]] = []
    for line in path.read_bytes().splitlines() if path.exists() else []:
        record = json.loads(line)
        entries += record["batch"] if "batch" in record else [record]
    return entries


def _voicemail_reasons(entries: list[dict[str, Any]]) -> list[str]:
    return [e["p"]["reason"]["source"] for e in entries
            if e["kind"] == "callback.reason" and e["p"]["reason"]["kind"] == "voicemail"]


async def _stored(rig: Rig) -> tuple[list[dict[str, str]], dict[str, list[str]], dict[str, Any]]:
    """Voicemail records, open flags' reason kinds per number, the call state left."""
    from redis.asyncio import Redis

    client: Any = Redis.from_url(rig.redis_url, decode_responses=True)
    try:
        ids = await client.zrange(f"{rig.prefix}:{{vm}}:index", 0, -1)
        vms = [await client.hgetall(f"{rig.prefix}:{{vm}}:vm:{i}") for i in ids]
        reasons: dict[str, list[str]] = {}
        for number, flag_id in (await client.hgetall(f"{rig.prefix}:{{callbacks}}:open")).items():
            flag = json.loads(await client.get(f"{rig.prefix}:{{callbacks}}:flag:{flag_id}"))
            reasons[number] = [r["kind"] for r in flag["reasons"]]
        return vms, reasons, await client.hgetall(f"{rig.prefix}:{{calls}}:live")
    finally:
        await client.aclose()


def _poll(probe: Any, done: Any, limit_s: float = 60.0) -> Any:
    """``probe()`` until ``done(result)`` or ``limit_s`` (a bound, not a pace)."""
    deadline = time.monotonic() + limit_s
    while True:
        result = probe()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


@pytest.mark.slow
def test_a_kill_minus_9_keeps_a_voicemails_flag_reason_and_intake_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller leaves a voicemail; the journal's disk is slow (each append holding a
    voicemail's flag reason takes 8 s more). The daemon is killed -9 the moment
    the flag reason is on disk. Before, the flag reason and the intake were two
    appends a loop turn apart: the file held the reason and no intake (a
    half-kept record; the take-over had to guess from the flag). Now they are
    one line: the intake is on disk with its reason. The next daemon keeps one
    voicemail, one reason; the caller records once and hears "message saved"."""
    redis = start_redis_server(tmp_path / "redis", extra_args=("--appendfsync", "always"))
    rig = _rig(tmp_path, redis.url, {"callers": [VOICEMAIL_CALLER]})
    journal = tmp_path / "state" / "journal.jsonl"
    try:
        rig.start_pbx()
        first = _start_with(rig, "first", ["slow-journal=8"], monkeypatch)
        rig.wait_for(first, "IVR started")
        _poll(lambda: _voicemail_reasons(_journal_entries(journal)), bool, limit_s=90)
        rig.kill(first)
        entries = _journal_entries(journal)
        [reason] = _voicemail_reasons(entries)
        intakes = [e["p"]["record_name"] for e in entries if e["kind"] == "voicemail.intake"]
        assert intakes == [reason], "the flag reason was kept without its voicemail's intake"

        second = rig.start_daemon("second")
        rig.wait_for(second, "take-over round 1")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not rig.callers():
            time.sleep(0.2)
        [caller] = rig.callers()
        assert caller["recorded"] == 1 and caller["saved"], caller
        vms, reasons, calls = _poll(
            lambda: run_async(lambda: _stored(rig)),
            lambda r: bool(r[0]) and bool(r[1]) and r[2] == {})
        assert [v["call_id"] for v in vms] == [caller["uniqueid"]]
        assert reasons == {VOICEMAIL_CALLER["number"]: ["voicemail"]}
        assert calls == {}
    finally:
        rig.close()
        redis.stop()




AGENT_CALLER = {"menu_answers": {"choose-language": "1", "main-menu": "3"}, "answer_delay_s": 0.5}


@pytest.mark.slow
def test_a_redis_restart_says_caller_facts_are_unavailable_once_not_per_caller(tmp_path: Path) -> None:
    """Redis is stopped while callers join the waiting line: each join's look-up of
    the caller's facts fails. Before, each failure was logged as a critical
    failure with its traceback (about 87 per Redis restart at 10 calls/s). Now the
    daemon says it once, as a warning, and when Redis answers again how many
    look-ups failed."""
    redis = start_redis_server(tmp_path / "redis", extra_args=("--appendfsync", "always"))
    during = [dict(AGENT_CALLER, at=8.0 + i * 0.5, number=f"0913000003{i}", patience_s=60) for i in range(4)]
    after = dict(AGENT_CALLER, at=30.0, number="09130000039", patience_s=20)
    rig = _rig(tmp_path, redis.url, {"callers": [*during, after]})
    try:
        rig.start_pbx()
        daemon = rig.start_daemon("daemon")
        rig.wait_for(daemon, "take-over round 1")
        redis.stop()
        rig.wait_for(daemon, "joined the waiting line", count=4, limit_s=60)
        redis = start_redis_server(redis.data_dir, port=redis.port)
        rig.wait_for(daemon, "joined the waiting line", count=5, limit_s=60)
        rig.wait_for(daemon, "caller facts available again", limit_s=30)
        log = daemon.log_text()
        assert log.count("caller facts unavailable") == 1, log[-5000:]
        [line] = [x for x in log.splitlines() if "caller facts unavailable" in x]
        assert "ConnectionError" in line and "once per outage" in line
        [back] = [x for x in log.splitlines() if "caller facts available again" in x]
        assert "4 look-ups failed" in back, back
    finally:
        rig.close()
        redis.stop()


async def _ivr_places(rig: Rig) -> int:
    from redis.asyncio import Redis

    client: Any = Redis.from_url(rig.redis_url, decode_responses=True)
    try:
        return sum(1 for r in await client.hvals(f"{rig.prefix}:{{calls}}:live") if json.loads(r).get("ivr"))
    finally:
        await client.aclose()


async def _redis_command(url: str, *args: str) -> Any:
    from redis.asyncio import Redis

    client: Any = Redis.from_url(url)
    try:
        return await client.execute_command(*args)
    finally:
        await client.aclose()


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
        _vms, reasons, calls = await _stored(rig)
        return seen, reasons, calls
    finally:
        await client.aclose()


@pytest.mark.slow
def test_callers_who_joined_while_the_call_state_write_lagged_are_waiting_after_a_kill_minus_9(
    tmp_path: Path,
) -> None:
    """Redis stalls every write (``CLIENT PAUSE ... WRITE``; the daemon's read timeout
    is longer than the stall, so its writes lag rather than fail, as an overloaded
    daemon's do) while two callers go through the IVR and join the waiting line.
    The daemon is killed -9 two seconds after they joined: Redis still holds their
    IVR places from before. Before, the next daemon resumed them in that menu (the
    join was lost: no wait, no SL outcome, no abandon flag). Now the lagging write
    kept their places on the host (``call-state.json``): the next daemon finds them
    waiting, and when they give up each is counted once and flagged once."""
    redis = start_redis_server(tmp_path / "redis", extra_args=("--appendfsync", "always"))
    callers = [dict(AGENT_CALLER, at=1.0, number="09130000041", patience_s=40),
               dict(AGENT_CALLER, at=1.5, number="09130000042", patience_s=40)]
    rig = _rig(tmp_path, redis.url + "?socket_timeout=60", {"callers": callers})
    try:
        rig.start_pbx()
        first = rig.start_daemon("first")
        rig.wait_for(first, "IVR started", count=2)
        places = _poll(lambda: run_async(lambda: _ivr_places(rig)), lambda n: n >= 2)
        assert places == 2  # their IVR places are in Redis
        run_async(lambda: _redis_command(redis.url, "CLIENT", "PAUSE", "120000", "WRITE"))
        rig.wait_for(first, "joined the waiting line", count=2, limit_s=60)
        time.sleep(2.0)  # the write of their joins is still stuck
        rig.kill(first)
        run_async(lambda: _redis_command(redis.url, "CLIENT", "UNPAUSE"))
        assert run_async(lambda: _ivr_places(rig)) == 2  # Redis never got the joins
        second = rig.start_daemon("second")
        rig.wait_for(second, "take-over round 1")
        log = second.log_text()
        assert log.count("(waiting)") == 2 and "(ivr)" not in log, log[-3000:]
        ended = _wait_ended(rig, 2)
        seen, reasons, calls = _poll(
            lambda: run_async(lambda: _outcomes(rig)),
            lambda r: len(r[0]) >= 2 and len(r[1]) >= 2 and r[2] == {})
        assert sorted(seen.get(c["uniqueid"], 0) for c in ended) == [1, 1]
        assert sorted(reasons.get(c["number"], []) for c in ended) == [["abandoned"], ["abandoned"]]
        assert calls == {}
    finally:
        rig.close()
        redis.stop()


def _wait_ended(rig: Rig, count: int, limit_s: float = 90.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and len(rig.callers()) < count:
        time.sleep(0.2)
    callers = rig.callers()
    assert len(callers) == count
    return callers

"""No record is lost when Redis goes away under traffic: stopped and restarted, or kill -9.

The daemon runs in virtual time on the test PBX (``tests.e2e_harness``) against
a real redis-server of its own (AOF on, ``appendfsync always``), with its
journal in a state folder. Callers open complaints, leave voicemails and give
up waiting (callback flags, SL outcomes); midway Redis is stopped (or killed
with SIGKILL) and started again on the same data. Afterwards every record is
reconciled against what the callers did: nothing missing, nothing twice.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest_twisted

from agent_stats.metrics import ShenavaMetrics
from agent_stats.sla import BucketKey, BucketKind, day_start
from complaints.reference import is_valid_reference
from routing.callbacks import ReasonKind, abandon_reason
from routing.events import CallAbandoned, CallQueued
from shenava.config import RedisConfig, StateConfig
from shenava.demo import luhn_complete
from shenava.http.health import HealthApi
from shenava.redis_client import make_redis_client
from shenava.redis_server import RedisServer, start_redis_server
from shenava_base.aio import as_deferred
from testpbx.scripts import CallerScript
from testpbx.world import CallHandle
from tests.e2e_harness import E2E, e2e_config
from tests.paths import SAMPLE_RECORDING

ACCOUNT = luhn_complete("123456789")
COMPLAINT = ("1", "1", "3", "2", "3", ACCOUNT + "#", "1")  # a billing complaint, then the line
VOICEMAIL = ("1", "4")
AGENT = ("1", "3")  # straight to the line
PER_WAVE = 6
NUMBERS: dict[str, str] = {}
"""Caller number of each call (by its uniqueid)."""


def start(folder: Path, port: int | None = None) -> RedisServer:
    return start_redis_server(folder, port=port, extra_args=("--appendfsync", "always"))


def build(tmp_path: Path, server: RedisServer) -> tuple[E2E, Any]:
    base = e2e_config()
    config = replace(
        base,
        state=StateConfig(folder=str(tmp_path / "state"), reference_block=10),
        recordings=replace(base.recordings, dir=tmp_path / "recordings" / "voicemail"),
    )
    client = make_redis_client(RedisConfig(
        url=server.url, max_connections=8, pool_timeout_s=2.0, connect_timeout_s=0.5,
        socket_timeout_s=2.0, health_check_interval_s=1.0,
    ), decode_responses=True)
    h = E2E.build(tmp_path, config=config, redis=client)
    h.app.callflow.recording_name = h.app.recordings.service.recording_name
    return h, client


async def advance(h: E2E, seconds: float) -> None:
    """Virtual time passes, the real reactor turning (Redis replies) at every step."""
    until = h.now + seconds
    await h.run_until_async(lambda: h.now >= until, limit_s=seconds + 1.0)


async def wave(h: E2E, first: int) -> dict[str, list[CallHandle]]:
    calls: dict[str, list[CallHandle]] = {"complaint": [], "voicemail": [], "agent": []}
    for i in range(first, first + PER_WAVE):
        number = f"0912{i:07d}"
        kind = ("complaint", "voicemail", "agent")[i % 3]
        if kind == "complaint":
            script = CallerScript(number=number, answers=COMPLAINT, patience_s=40.0)
        elif kind == "voicemail":
            script = CallerScript(number=number, answers=VOICEMAIL, audio=SAMPLE_RECORDING)
        else:
            script = CallerScript(number=number, answers=AGENT, patience_s=40.0)
        handle = h.call(script)
        NUMBERS[handle.uniqueid] = number
        calls[kind].append(handle)
        await advance(h, 2.0)
    return calls


def said_reference(h: E2E, call: CallHandle) -> str | None:
    commands = h.agi_commands(call)
    for i, command in enumerate(commands):
        played = re.match(r"EXEC Playback \S*/your-reference((?:&digits/\d)+)$", command)
        if played:  # the prompt and the digits in one Playback
            return played.group(1).replace("&digits/", "")
        if command.startswith("STREAM FILE") and "/your-reference" in command:
            for later in commands[i + 1:]:
                match = re.match(r"SAY DIGITS (\d+) ", later)
                if match:
                    return match.group(1)
    return None


async def run_traffic_with_outage(h: E2E, outage: Any) -> dict[str, list[CallHandle]]:
    refs = h.app.complaints.references
    await h.run_until_async(lambda: refs.ready, limit_s=30.0)
    calls = await wave(h, 0)
    await h.run_until_async(lambda: h.app.journal.depth == 0, limit_s=60.0)
    await outage()
    more = await wave(h, PER_WAVE)  # while Redis is away
    for kind, handles in more.items():
        calls[kind] += handles
    everyone = [c for handles in calls.values() for c in handles]
    await h.run_until_async(lambda: not any(h.alive(c) for c in everyone), limit_s=300.0)
    return calls


async def reconcile(
    h: E2E, client: Any, calls: dict[str, list[CallHandle]], *, replayed_by: E2E | None = None
) -> None:
    """Every record of ``calls`` (placed on ``h``) is in Redis once; ``replayed_by``: the
    daemon that took over ``h``'s journal (``h`` itself by default)."""
    live = replayed_by or h
    journal = live.app.journal
    await live.run_until_async(lambda: journal.depth == 0 and journal.redis_away_since is None, limit_s=600.0)
    assert journal.rejected_count == 0
    prefix = "shenava"
    # complaints: every reference a caller heard is in the register, one complaint per call
    heard = [said_reference(h, c) for c in calls["complaint"]]
    assert all(r is not None and is_valid_reference(r) for r in heard), heard
    refs = await as_deferred(client.zrange(f"{prefix}:{{complaints}}:all", 0, -1))
    stored = [await as_deferred(client.get(f"{prefix}:{{complaints}}:c:{r}")) for r in refs]


    by_call: dict[str, list[str]] = {}
    for r, raw in zip(refs, stored, strict=True):
        by_call.setdefault(json.loads(raw)["call_id"], []).append(r)
    assert set(heard) <= set(refs)
    expected_calls = {c.uniqueid for c in calls["complaint"] + calls["voicemail"]}
    assert set(by_call) == expected_calls
    assert all(len(v) == 1 for v in by_call.values()), "a complaint was opened twice"
    # voicemails: each stored once, each with its complaint
    vm_ids = await as_deferred(client.zrange(f"{prefix}:{{vm}}:index", 0, -1))
    jobs = await as_deferred(client.xlen(f"{prefix}:{{vm}}:jobs"))
    assert jobs == len(calls["voicemail"]), "a transcription job missing or queued twice"
    assert len(vm_ids) == len(calls["voicemail"])
    # callback flags: one per caller number, each reason once
    flags = await as_deferred(client.hgetall(f"{prefix}:{{callbacks}}:open"))
    abandoned = {e.call_id for e in h.routing if isinstance(e, CallAbandoned)}
    policy = h.app.complaints.callbacks.policy
    flagged = {  # a short abandon (a caller who hung up at once) raises no flag
        e.call_id for e in h.routing if isinstance(e, CallAbandoned)
        and abandon_reason(e.call_id, e.at, e.at - e.joined_at, policy) is not None
    }
    expected_numbers = {NUMBERS[c.uniqueid] for c in calls["voicemail"]} | {
        NUMBERS[c.uniqueid] for c in calls["complaint"] + calls["agent"] if c.uniqueid in flagged
    }
    assert set(flags) == expected_numbers
    for flag_id in flags.values():
        flag = json.loads(await as_deferred(client.get(f"{prefix}:{{callbacks}}:flag:{flag_id}")))
        keys = [(r["kind"], r["source"]) for r in flag["reasons"]]
        assert len(keys) == len(set(keys)) == 1, keys
        kinds = {r["kind"] for r in flag["reasons"]}
        assert kinds <= {str(ReasonKind.ABANDONED), str(ReasonKind.VOICEMAIL)}
    # SL outcomes: every abandon counted once in the day's bucket
    stats = h.app.agent_stats
    day = BucketKey("complaints", BucketKind.DAY, day_start(h.now, stats.sla))
    [counts] = await as_deferred(stats.store.buckets([day]))
    assert counts.abandoned + counts.abandoned_short == len(abandoned) > 0
    assert counts.offered == len(abandoned) - counts.abandoned_short  # short abandons are not offered


async def abuse_reports(client: Any) -> list[str]:
    return list(await as_deferred(client.zrange("shenava:{complaints}:abuse:all", 0, -1)))


@pytest_twisted.ensureDeferred
async def test_redis_stopped_and_restarted_mid_traffic_loses_nothing(tmp_path: Path) -> None:
    server = start(tmp_path / "redis")
    h, client = build(tmp_path, server)
    try:
        async def outage() -> None:
            server.stop()
            await advance(h, 20.0)  # traffic meets a Redis that is not there
            assert h.app.journal.redis_away_since is not None
            # an agent reports an abusive caller meanwhile: kept, and the agent gets recovery
            register = h.app.complaints.register
            reported = as_deferred(register.report_abuse(
                h.now, agent_id="a1", number="09129999999", category="verbal_abuse", note="shouting",
            ))
            await h.run_until_async(lambda: reported.called, limit_s=10.0)

        calls = await run_traffic_with_outage(h, outage)
        assert h.app.journal.kept_count > 0  # callers were answered from the journal
        # the health answer, /metrics and the wallboard's notice say so
        health = HealthApi(h.app).figures()
        assert health["status"] == "degraded" and health["redis"] == "away"
        assert health["journal"]["depth"] > 0 and health["journal"]["oldest_age_s"] > 0
        metrics = ShenavaMetrics(h.app.agent_stats).render_text().decode()
        assert "shenava_redis_away 1.0" in metrics
        assert f"shenava_journal_depth {float(health['journal']['depth'])}" in metrics
        restarted = start(tmp_path / "redis", port=server.port)
        try:
            await reconcile(h, client, calls)
            assert len(await abuse_reports(client)) == 1
            assert HealthApi(h.app).figures()["status"] == "ok"
        finally:
            h.stop()
            restarted.stop()
    finally:
        await as_deferred(client.aclose())
        server.stop()


@pytest_twisted.ensureDeferred
async def test_redis_killed_with_sigkill_loses_nothing(tmp_path: Path) -> None:
    server = start(tmp_path / "redis")
    h, client = build(tmp_path, server)
    try:
        async def outage() -> None:
            server.process.kill()  # kill -9: only what the AOF holds survives
            server.process.wait()
            await advance(h, 4.0)

        calls = await run_traffic_with_outage(h, outage)
        restarted = start(tmp_path / "redis", port=server.port)
        try:
            await reconcile(h, client, calls)
        finally:
            h.stop()
            restarted.stop()
    finally:
        await as_deferred(client.aclose())
        server.stop()


@pytest_twisted.ensureDeferred
async def test_starting_with_redis_down_waits_and_keeps_what_was_stored(tmp_path: Path) -> None:
    server = start(tmp_path / "redis")
    first, client = build(tmp_path, server)
    try:
        first.log_in("a1")
        await advance(first, 60.0)
        stats = first.app.agent_stats
        await first.run_until_async(lambda: stats.started.called, limit_s=30.0)
        await as_deferred(client.ping())
        await stats.stop()  # the first run ends cleanly: a1's ledger is in Redis
        first.stop()
        ledger_before = await as_deferred(client.hget("shenava:{stats}:heads", "a1"))
        assert ledger_before
    finally:
        await as_deferred(client.aclose())
    server.stop()
    # the daemon starts while Redis is away: it waits (and says so), it does not start afresh
    h, client = build(tmp_path / "second", server)
    try:
        stats = h.app.agent_stats
        await advance(h, 30.0)
        assert not stats.started.called and stats.restored_agents == []
        restarted = start(tmp_path / "redis", port=server.port)
        try:
            await h.run_until_async(lambda: stats.started.called, limit_s=120.0)
            assert stats.restored_agents == ["a1"]  # the stored ledger came back
        finally:
            h.stop()
            restarted.stop()
    finally:
        await as_deferred(client.aclose())


BURST = 500


@pytest_twisted.ensureDeferred
async def test_a_burst_of_500_hang_ups_through_a_pool_of_4_loses_nothing(tmp_path: Path) -> None:
    # 500 callers wait, then all hang up at once (as when a PBX restarts): 500 flags
    # and 500 SL outcomes through 4 connections, none lost, none twice.
    server = start(tmp_path / "redis")
    base = e2e_config()
    config = replace(base, state=StateConfig(folder=str(tmp_path / "state")))
    client: Any = make_redis_client(RedisConfig(url=server.url, max_connections=4, pool_timeout_s=5.0),
                               decode_responses=True)
    h = E2E.build(tmp_path, config=config, redis=client)
    try:
        calls = []
        for i in range(BURST):
            calls.append(h.call(CallerScript(number=f"0913{i:07d}", answers=AGENT)))
            if i % 50 == 49:
                await advance(h, 1.0)
        await h.run_until_async(
            lambda: len({e.call_id for e in h.routing if isinstance(e, CallQueued)}) == BURST,
            limit_s=300.0,
        )
        await advance(h, 30.0)  # past the short-abandon threshold
        for call in calls:
            call.hang_up()
        h.pump()
        journal = h.app.journal
        await h.run_until_async(
            lambda: len([e for e in h.routing if isinstance(e, CallAbandoned)]) == BURST
            and journal.depth == 0, limit_s=300.0,
        )
        assert journal.rejected_count == 0
        flags = await as_deferred(client.hgetall("shenava:{callbacks}:open"))
        assert len(flags) == BURST
        for flag_id in flags.values():
            flag = json.loads(await as_deferred(client.get(f"shenava:{{callbacks}}:flag:{flag_id}")))
            assert len(flag["reasons"]) == 1
        stats = h.app.agent_stats
        day = BucketKey("complaints", BucketKind.DAY, day_start(h.now, stats.sla))
        [counts] = await as_deferred(stats.store.buckets([day]))
        assert counts.abandoned == BURST and counts.offered == BURST
    finally:
        h.stop()
        await as_deferred(client.aclose())
        server.stop()


@pytest_twisted.ensureDeferred
async def test_a_slow_redis_loses_nothing_and_callers_still_hear_their_reference(tmp_path: Path) -> None:
    server = start_redis_server(tmp_path / "redis", extra_args=(
        "--appendfsync", "always", "--enable-debug-command", "yes"))
    h, client = build(tmp_path, server)
    sleeper: list[subprocess.Popen[bytes]] = []
    try:
        async def outage() -> None:
            # Redis stops answering for 3 s (longer than the client's 2 s read timeout)
            sleeper.append(subprocess.Popen(
                ["redis-cli", "-p", str(server.port), "DEBUG", "SLEEP", "3"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            await advance(h, 5.0)

        calls = await run_traffic_with_outage(h, outage)
        sleeper[0].wait(timeout=30)
        await reconcile(h, client, calls)
    finally:
        h.stop()
        await as_deferred(client.aclose())
        server.stop()


@pytest_twisted.ensureDeferred
async def test_the_daemon_killed_while_redis_is_away_loses_nothing(tmp_path: Path) -> None:
    server = start(tmp_path / "redis")
    h, client = build(tmp_path, server)
    try:
        refs = h.app.complaints.references
        await h.run_until_async(lambda: refs.ready, limit_s=30.0)
        server.stop()
        calls = await wave(h, 0)  # every record of these calls waits in the journal
        everyone = [c for handles in calls.values() for c in handles]
        await h.run_until_async(lambda: not any(h.alive(c) for c in everyone), limit_s=300.0)
        assert h.app.journal.depth > 0
        # kill -9 of the daemon: no stop, no flush; its clock never moves again
        restarted = start(tmp_path / "redis", port=server.port)
        successor, client2 = build(tmp_path, restarted)  # same state folder
        try:
            assert successor.app.journal.depth > 0  # the dead daemon's records, read back
            await reconcile(h, client2, calls, replayed_by=successor)
        finally:
            successor.stop()
            await as_deferred(client2.aclose())
            restarted.stop()
    finally:
        await as_deferred(client.aclose())
        server.stop()

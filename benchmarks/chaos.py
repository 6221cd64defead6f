"""Chaos: the daemon and the test PBX under traffic while Redis is restarted and killed.

    .venv/bin/python benchmarks/chaos.py [--calls 90] [--gap-s 2] [--faults 4] [--seed 1]

The daemon (the whole object graph, as ``tests.e2e_harness`` builds it: the test
PBX in virtual time, nothing faked in the daemon) runs against a real
``redis-server`` (AOF, ``appendfsync always``) with its journal in a state
folder. Callers arrive every ``--gap-s`` seconds of virtual time, a seeded mix
of a new complaint (then the line), a voicemail, and a caller who asks for an
agent (nobody is logged in: everyone who waits gives up, so every abandon is a
callback flag and an SL outcome). ``--faults`` times during the run Redis is
stopped (SIGTERM) or killed (SIGKILL), stays away 5 to 30 s of virtual time
with calls still arriving and is started again on the same data, or is made
slow (``DEBUG SLEEP 3``: no answer for longer than the client's read timeout).

At the end every call is reconciled against Redis: its complaint (the reference
the caller heard is stored, one complaint per call), its voicemail (record and
transcription job), its callback flag (one reason per event) and its SL outcome
(the day's ``slseen`` set and counters). The last line is one JSON object with
``placed``, ``accounted`` and ``lost_complaints``, ``lost_flags``,
``lost_voicemails``, ``lost_sl_outcomes``, ``double_counted`` (all must be 0),
and the daemon's RSS at start and end. The daemon is not killed here (it runs
in this process); its crash between applying and marking a journal entry is
covered by ``tests/test_journal.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shenava_base.aio import install_asyncio_reactor  # noqa: E402

reactor: Any = install_asyncio_reactor()

from twisted.internet.defer import ensureDeferred  # noqa: E402

from agent_stats.sla import BucketKey, BucketKind, day_start  # noqa: E402
from routing.callbacks import abandon_reason  # noqa: E402
from routing.events import CallAbandoned  # noqa: E402
from shenava.config import RedisConfig, StateConfig  # noqa: E402
from shenava.demo import luhn_complete  # noqa: E402
from shenava.redis_client import make_redis_client  # noqa: E402
from shenava.redis_server import RedisServer, start_redis_server  # noqa: E402
from shenava_base.aio import as_deferred  # noqa: E402
from testpbx.scripts import CallerScript  # noqa: E402
from tests.e2e_harness import E2E, e2e_config  # noqa: E402
from tests.paths import SAMPLE_RECORDING  # noqa: E402

COMPLAINT = ("1", "1", "3", "2", "3", luhn_complete("123456789") + "#", "1")
KINDS = ("complaint", "voicemail", "agent")


def rss_mb() -> float:
    """This process's resident set now (``VmRSS``), else its peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def start(folder: Path, port: int | None = None) -> RedisServer:
    return start_redis_server(folder, port=port, extra_args=(
        "--appendfsync", "always", "--enable-debug-command", "yes"))


async def advance(h: E2E, seconds: float) -> None:
    until = h.now + seconds
    await h.run_until_async(lambda: h.now >= until, limit_s=seconds + 1.0)


def heard(h: E2E, call: Any) -> str | None:
    commands = h.agi_commands(call)
    for i, command in enumerate(commands):
        if command.startswith("STREAM FILE") and "/your-reference" in command:
            for later in commands[i + 1:]:
                match = re.match(r"SAY DIGITS (\d+) ", later)
                if match:
                    return match.group(1)
    return None


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    server = start(folder / "redis")
    port = server.port
    servers = [server]
    base = e2e_config()
    config = replace(base, state=StateConfig(folder=str(folder / "state"), reference_block=50),
                     recordings=replace(base.recordings, dir=folder / "recordings" / "voicemail"))
    client: Any = make_redis_client(RedisConfig(
        url=server.url, max_connections=16, pool_timeout_s=2.0, connect_timeout_s=0.5,
        socket_timeout_s=2.0, health_check_interval_s=1.0), decode_responses=True)
    h = E2E.build(folder, config=config, redis=client)
    h.app.callflow.recording_name = h.app.recordings.service.recording_name
    rss_start = rss_mb()
    started = time.monotonic()
    try:
        refs = h.app.complaints.references
        await h.run_until_async(lambda: refs.ready, limit_s=30.0)
        fault_at = sorted(rng.sample(range(5, max(6, args.calls - 5)), min(args.faults, max(1, args.calls - 10))))
        calls: list[tuple[str, Any, str]] = []
        faults: list[str] = []
        away_until: float | None = None
        for i in range(args.calls):
            if away_until is not None and h.now >= away_until:
                servers.append(start(folder / "redis", port=port))
                away_until = None
            if i in fault_at and away_until is None:
                live = servers[-1]
                fault = rng.choice(("stop", "kill9", "slow"))
                faults.append(fault)
                if fault == "slow":  # Redis answers nothing for 3 s: past the read timeout
                    subprocess.Popen(["redis-cli", "-p", str(port), "DEBUG", "SLEEP", "3"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                elif fault == "stop":
                    live.stop()
                else:
                    live.process.kill()
                    live.process.wait()
                if fault != "slow":
                    away_until = h.now + rng.uniform(5.0, 30.0)
            kind = rng.choice(KINDS)
            number = f"0912{i:07d}"
            if kind == "complaint":
                script = CallerScript(number=number, answers=COMPLAINT, patience_s=40.0)
            elif kind == "voicemail":
                script = CallerScript(number=number, answers=("1", "4"), audio=SAMPLE_RECORDING)
            else:
                script = CallerScript(number=number, answers=("1", "3"), patience_s=40.0)
            calls.append((kind, h.call(script), number))
            await advance(h, args.gap_s)
        if away_until is not None:
            await advance(h, max(0.0, away_until - h.now))
            servers.append(start(folder / "redis", port=port))
        await h.run_until_async(lambda: not any(h.alive(c) for _k, c, _n in calls), limit_s=600.0)
        journal = h.app.journal
        await h.run_until_async(lambda: journal.depth == 0 and journal.redis_away_since is None,
                                limit_s=3600.0)
        result = await reconcile(h, client, calls)
        result.update(faults=faults, journal_kept=journal.kept_count, rejected=journal.rejected_count)
        return result | {"rss_start_mb": rss_start, "rss_end_mb": rss_mb(),
                         "wall_s": round(time.monotonic() - started, 1)}
    finally:
        h.stop()
        await as_deferred(client.aclose())
        for s in servers:
            s.stop()


async def reconcile(h: E2E, client: Any, calls: list[tuple[str, Any, str]]) -> dict[str, Any]:
    p = "shenava"
    refs = await as_deferred(client.zrange(f"{p}:{{complaints}}:all", 0, -1))
    by_call: dict[str, list[str]] = {}
    for ref in refs:
        c = json.loads(await as_deferred(client.get(f"{p}:{{complaints}}:c:{ref}")))
        by_call.setdefault(c["call_id"], []).append(ref)
    vms: dict[str, int] = {}
    for vm_id in await as_deferred(client.zrange(f"{p}:{{vm}}:index", 0, -1)):
        call_id = await as_deferred(client.hget(f"{p}:{{vm}}:vm:{vm_id}", "call_id"))
        vms[call_id] = vms.get(call_id, 0) + 1
    jobs = await as_deferred(client.xlen(f"{p}:{{vm}}:jobs"))
    flags = await as_deferred(client.hgetall(f"{p}:{{callbacks}}:open"))
    reasons: dict[str, list[tuple[str, str]]] = {}
    for number, flag_id in flags.items():
        flag = json.loads(await as_deferred(client.get(f"{p}:{{callbacks}}:flag:{flag_id}")))
        reasons[number] = [(r["kind"], r["source"]) for r in flag["reasons"]]
    abandoned = {e.call_id for e in h.routing if isinstance(e, CallAbandoned)}
    policy = h.app.complaints.callbacks.policy
    flagged = {  # a short abandon raises no flag
        e.call_id for e in h.routing if isinstance(e, CallAbandoned)
        and abandon_reason(e.call_id, e.at, e.at - e.joined_at, policy) is not None
    }
    stats = h.app.agent_stats
    day = BucketKey("complaints", BucketKind.DAY, day_start(h.now, stats.sla))
    [counts] = await as_deferred(stats.store.buckets([day]))
    lost = {"complaints": 0, "flags": 0, "voicemails": 0}
    doubled = 0
    accounted = 0
    for kind, call, number in calls:
        ok = True
        if kind in ("complaint", "voicemail"):
            mine = by_call.get(call.uniqueid, [])
            ref = heard(h, call) if kind == "complaint" else None
            if not mine or (kind == "complaint" and ref not in mine):
                lost["complaints"] += 1
                ok = False
            doubled += max(0, len(mine) - 1)
        if kind == "voicemail":
            n = vms.get(call.uniqueid, 0)
            if n == 0:
                lost["voicemails"] += 1
                ok = False
            doubled += max(0, n - 1)
        wants_flag = kind == "voicemail" or call.uniqueid in flagged
        if wants_flag:
            mine_r = reasons.get(number, [])
            if not mine_r:
                lost["flags"] += 1
                ok = False
            doubled += max(0, len(mine_r) - 1)  # one event, one reason
        accounted += ok
    voicemails = sum(1 for k, _c, _n in calls if k == "voicemail")
    doubled += max(0, jobs - voicemails)
    sl_counted = counts.abandoned + counts.abandoned_short
    seen = await as_deferred(client.scard(f"{p}:{{stats}}:slseen:{stats.store.day_of(h.now).isoformat()}"))
    return {
        "bench": "chaos",
        "placed": len(calls),
        "accounted": accounted,
        "lost_complaints": lost["complaints"],
        "lost_flags": lost["flags"],
        "lost_voicemails": lost["voicemails"] + max(0, voicemails - jobs),
        "lost_sl_outcomes": max(0, len(abandoned) - sl_counted),
        "double_counted": doubled + max(0, sl_counted - len(abandoned)) + max(0, seen - len(abandoned)),
        "sl_outcomes": len(abandoned),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=90)
    parser.add_argument("--gap-s", type=float, default=2.0, help="virtual seconds between callers")
    parser.add_argument("--faults", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}

    def go() -> None:
        d = ensureDeferred(run(args, Path(tempfile.mkdtemp(prefix="shenava-chaos-"))))
        d.addCallback(result.update)
        d.addErrback(lambda f: result.update(error=f.getTraceback()))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(go)
    reactor.run()
    print(json.dumps(result))
    keys = ("lost_complaints", "lost_flags", "lost_voicemails", "lost_sl_outcomes", "double_counted")
    return 0 if "error" not in result and not any(result[k] for k in keys) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Kill the leader of an active/standby pair under steady traffic, again and again.

    .venv/bin/python benchmarks/takeover.py [--kills 3] [--lease 3] [--every 3]

Real processes on loopback: ``shenava testpbx`` plays steady traffic (a caller
every ``--every`` seconds who asks for an agent, and answers a menu again
when a new daemon asks it again; four agents' phones answer
after 2 s and talk 4 s) and reports every caller's fate; two ``shenava run``
share it and a private redis-server. Each round: wait until callers are in
the menus, waiting and talking, SIGKILL the leader, time until the standby
has taken the callers over (its "take-over round" log line, written right
after the adopted callers' first AGI commands are sent), then start the
killed one again as the new standby. At the end the traffic stops and every
caller must have been bridged to an agent.

``--kills 20`` is the issue's full run (about two minutes); the default is 3.
The last line of output is one JSON object: ``takeovers``, ``callers_at_kill``
(callers on the line at the kills, summed), ``callers_lost`` (callers never
served: must be 0), ``takeover_s_p50``, ``takeover_s_p99`` (kill to take-over).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._takeover_rig import Daemon, Rig  # noqa: E402

ROUND_LIMIT_S = 30.0
DRAIN_LIMIT_S = 600.0  # after the last kill, until every caller has ended
MENU_ANSWERS = {"choose-language": "1", "main-menu": "3"}  # Persian, then an agent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def on_line(rig: Rig, now_s: float, started_at: float) -> int:
    """Callers placed and not yet ended (the PBX's report, against the plan's schedule)."""
    ended = len(rig.callers())
    placed = sum(1 for at, _ in _schedule(rig) if at <= now_s - started_at)
    return max(0, placed - ended)


def _schedule(rig: Rig) -> list[tuple[float, int]]:
    steady = rig.scenario["steady"]
    return [(steady["start_s"] + n * steady["every_s"], n) for n in range(steady["count"])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--every", type=float, default=3.0, help="seconds between callers")
    parser.add_argument("--gap", type=float, default=8.0, help="seconds of traffic between kills")
    args = parser.parse_args(argv)

    from shenava.redis_server import start_redis_server

    workdir = Path(tempfile.mkdtemp(prefix="shenava-takeover-"))
    redis = start_redis_server(workdir / "redis")
    round_s = args.lease + args.gap + 4.0
    count = int((args.kills * round_s + 10.0) / args.every) + 1
    scenario = {
        "phones": {f"PJSIP/10{i}": {"answer_after_s": 2.0, "talk_s": 4.0} for i in range(1, 5)},
        "steady": {"start_s": 1.0, "every_s": args.every, "count": count,
                   "caller": {"menu_answers": MENU_ANSWERS, "answer_delay_s": 1.5,
                              "patience_s": 3600}},
    }
    rig = Rig(workdir, redis.url, scenario,
              extra_config=f"[daemon]\nlease_s = {args.lease}\nstop_timeout_s = 5\n")
    takeovers: list[float] = []
    at_kill = 0
    try:
        rig.seed_agents_ready()
        rig.start_pbx()
        started_at = time.monotonic()
        leader = rig.start_daemon("d0")
        rig.wait_for(leader, "role: leader")
        standby = rig.start_daemon("d1")
        rig.wait_for(standby, "AMI connected")
        for n in range(args.kills):
            time.sleep(args.gap)
            at_kill += on_line(rig, time.monotonic(), started_at)
            rounds_before = standby.log_text().count("take-over round")
            rig.kill(leader)
            killed = time.monotonic()
            rig.wait_for(standby, "take-over round", limit_s=ROUND_LIMIT_S, count=rounds_before + 1)
            takeovers.append(time.monotonic() - killed)
            leader, standby = standby, rig.start_daemon(f"d{n + 2}")
            rig.wait_for(standby, "AMI connected")
        deadline = time.monotonic() + DRAIN_LIMIT_S
        while time.monotonic() < deadline and len(rig.callers()) < count:
            time.sleep(0.25)
        callers = rig.callers()
        lost = (count - len(callers)) + sum(1 for c in callers if c["bridged_at"] is None)
        print(f"{len(takeovers)} take-overs, {at_kill} callers on the line at the kills, "
              f"{lost} lost, of {count} callers", file=sys.stderr)
    finally:
        rig.close()
        redis.stop()
    result = {
        "bench": "takeover",
        "takeovers": len(takeovers),
        "lease_s": args.lease,
        "callers": count,
        "callers_at_kill": at_kill,
        "callers_lost": lost,
        "takeover_s_p50": round(statistics.median(takeovers), 3) if takeovers else None,
        "takeover_s_p99": round(percentile(takeovers, 0.99), 3) if takeovers else None,
    }
    print(json.dumps(result))
    return 0 if lost == 0 else 1


__all__ = ["Daemon", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

"""Chaos: a simulated peak with kill -9 of the daemon and a worker, AMI cuts and Redis kill -9s.

    .venv/bin/python benchmarks/chaos.py [--rate 2] [--duration 75] [--faults 8] [--seed 1]
    .venv/bin/python benchmarks/chaos.py --full      # the issue's run: 20 calls/s for 10 min, 40 faults

Everything is a real process on loopback:

- ``redis-server`` with AOF (``appendonly yes``, ``appendfsync always`` by
  default; ``--appendfsync everysec`` to try the other), its data in the run's
  folder, killed with SIGKILL and started again on the same port and data;
- ``shenava testpbx`` playing a traffic plan (``--scenario``, Poisson arrivals
  at ``--rate`` calls/s for ``--duration`` s; a seeded mix of complaints, then
  the line; voicemails; callers who ask for an agent) and reporting what each
  caller heard and did (``--report``: the references read to them, whether a
  voicemail was confirmed, when they were put on hold, when they ended). No
  agent is logged in, so everyone who waits gives up: every wait is an SL
  outcome (abandoned), and every wait past the short-abandon threshold a
  callback flag. ``kill -USR1`` makes it cut every AMI connection;
- ``shenava run`` with a generated config (a durable ``[state]`` folder: the
  journal; ``daemon.leader_lease = false`` unless ``--lease``), killed with
  SIGKILL and started again at once (the take-over picks the callers up);
- ``shenava worker --processes 2`` (Vosk, the Korean model standing in for
  Persian), one of whose worker processes is killed with SIGKILL (the pool
  starts another; the job is claimed after ``claim_idle_s``).

``--faults`` faults (the four kinds in turn, in a seeded order) happen at seeded
random times within the traffic. When the plan is played out and every caller
has ended, the journal drained and the transcription queue emptied (bounded),
every caller is reconciled against Redis by the call's Uniqueid and number:

- a caller who heard a reference has that complaint (and no call has two);
- a caller who heard "message saved" has one voicemail record, transcribed or
  with its job in the queue, a complaint, and a ``voicemail`` flag reason;
- a caller put on hold has exactly one SL outcome (``slseen``), and one
  ``abandoned`` flag reason if they waited past the threshold (by more than
  the timing slack); no flag has a reason twice.

Counted apart, not as losses: ``unexpected`` (records the PBX does not call
for: a flag or an SL outcome for a caller the daemon had queued when the PBX
had not yet played hold, among them callers whose IVR failed under overload,
an AGI command unanswered for 10 s, and who were handed to the line as the IVR
does then) and ``unfinished`` (callers still on the line at the
bound), and ``voicemails_parked`` (a record whose transcription failed
``recordings.max_attempts`` times, killed workers' starts included: kept, with
its complaint and flag, counted on the wallboard's health line and in
``/metrics``, queued again by ``shenava voicemail retry``), with
``voicemails_parked_why`` (their last errors) and ``voicemails_by_status`` (how
many records are ``transcribed``, ``pending`` or ``parked`` at the end: the
workers may not have caught up by the ``--drain-s`` bound, which is no loss).
Each run's folder (named in the JSON's ``folder``) keeps the logs: one
``daemon-N.log`` per daemon start, ``workers.log``, ``testpbx.log``,
``faults.jsonl`` (each fault with its wall time), ``callers.jsonl`` (what each
caller heard) and Redis's data. The last line is one JSON object with ``placed``, ``accounted``,
``lost_complaints``, ``lost_flags``, ``lost_voicemails``, ``lost_sl_outcomes``,
``double_counted`` (all must be 0), the faults done, and the daemon's RSS at
start and end (``rss_start_mb``: the first daemon once serving;
``rss_end_mb``: the last one at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._daemon_rig import daemon_config, free_port, shenava_command, vosk_model_config  # noqa: E402
from shenava.demo import luhn_complete  # noqa: E402
from shenava.redis_server import RedisServer, start_redis_server  # noqa: E402

SECRET = "chaos-secret"
PREFIX = "chaos"
SHORT_ABANDON_S = 5.0  # callbacks.short_abandon_s (the default)
SLACK_S = 1.5  # the PBX's hold start vs the daemon's join time
KINDS = (("complaint", 0.4), ("voicemail", 0.2), ("agent", 0.4))
FAULTS = ("daemon", "worker", "ami", "redis")
START_OFFSET_S = 8.0  # the plan's first caller, after the PBX starts
PATIENCE = {"complaint": 90.0, "voicemail": 150.0, "agent": 30.0}
HEALTH_TOKEN = "chaos-metrics-token"


def config_text(ami_port: int, redis_url: str, http_port: int, folder: Path, lease: bool) -> str:
    """The shared template (benchmarks/_daemon_rig.py) with a durable state folder, the
    lease setting, the run's voicemail folder and the Vosk model, and one agent (never
    logged in: every wait ends in an abandon)."""
    extra = f"""[state]
folder = "{folder / 'state'}"
reference_block = 200

[daemon]
leader_lease = {"true" if lease else "false"}
stop_timeout_s = 5

[recordings]
dir = "{folder / 'recordings' / 'voicemail'}"
claim_idle_s = 5
{vosk_model_config("fa")}"""
    return daemon_config(ami_port=ami_port, redis_url=redis_url, http_port=http_port, prefix=PREFIX,
                         secret=SECRET, agents=(("a1", "PJSIP/101"),), metrics_token=HEALTH_TOKEN,
                         extra=extra)


def plan(rng: random.Random, rate: float, duration_s: float) -> list[dict[str, Any]]:
    callers: list[dict[str, Any]] = []
    at = START_OFFSET_S + rng.expovariate(rate)
    names = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    while at < START_OFFSET_S + duration_s:
        kind = rng.choices(names, weights)[0]
        number = f"0913{len(callers):07d}"
        answers: dict[str, str] = {"choose-language": "1"}
        caller: dict[str, Any] = {"at": round(at, 3), "number": number, "tag": kind,
                                  "answer_delay_s": round(rng.uniform(0.5, 1.5), 2),
                                  "patience_s": PATIENCE[kind]}
        if kind == "complaint":
            account = luhn_complete("".join(rng.choice("0123456789") for _ in range(9)))
            answers.update({"main-menu": "1", "category-menu": str(rng.randint(1, 6)),
                            "urgency-menu": "2", "care-menu": "3",
                            "enter-account": account + "#", "confirm-number": "1"})
        elif kind == "voicemail":
            answers["main-menu"] = "4"
            caller["audio"] = "sample"
        else:
            answers["main-menu"] = "3"
        caller["menu_answers"] = answers
        callers.append(caller)
        at += rng.expovariate(rate)
    return callers


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def alive(pid: int) -> bool:
    """Running, not a zombie the pool has not reaped yet (killing one again does nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Chaos:
    args: argparse.Namespace
    folder: Path
    callers: list[dict[str, Any]]
    redis: RedisServer | None = None
    redis_port: int = 0
    pbx: subprocess.Popen[bytes] | None = None
    ami_port: int = 0
    daemon: subprocess.Popen[bytes] | None = None
    daemon_starts: int = 0
    http_port: int = 0
    workers: subprocess.Popen[bytes] | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)
    t0: float = 0.0

    # -- processes -----------------------------------------------------------------

    def start_redis(self) -> None:
        self.redis = start_redis_server(
            self.folder / "redis", port=self.redis_port or None,
            extra_args=("--appendonly", "yes", "--appendfsync", self.args.appendfsync))
        self.redis_port = self.redis.port

    def _log(self, name: str) -> IO[bytes]:
        out = (self.folder / f"{name}.log").open("ab")
        self.logs.append(out)
        return out

    def start_pbx(self) -> None:
        scenario = self.folder / "scenario.json"
        scenario.write_text(json.dumps({"callers": self.callers}), encoding="utf-8")
        secret = self.folder / "ami-secret"
        secret.write_text(SECRET + "\n", encoding="utf-8")
        self.pbx = subprocess.Popen(
            [*shenava_command(), "testpbx", "--port", "0", "--secret-file", str(secret),
             "--recordings", str(self.folder / "recordings"),
             "--scenario", str(scenario), "--report", str(self.folder / "callers.jsonl")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log("testpbx"))
        assert self.pbx.stdout is not None
        line = self.pbx.stdout.readline().decode()
        if "listening on" not in line:
            raise RuntimeError(f"test PBX did not start: {line!r}")
        self.ami_port = int(line.strip().rsplit(":", 1)[1])

    @property
    def config_path(self) -> Path:
        return self.folder / "shenava.toml"

    def write_config(self) -> None:
        assert self.redis is not None
        self.http_port = free_port()
        (self.folder / "recordings" / "voicemail").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config_text(
            self.ami_port, self.redis.url, self.http_port, self.folder, self.args.lease), encoding="utf-8")

    def start_daemon(self) -> None:
        self.daemon_starts += 1
        self.daemon = subprocess.Popen(
            [*shenava_command(), "run", "-c", str(self.config_path)],
            cwd=ROOT, stdout=self._log(f"daemon-{self.daemon_starts}"), stderr=subprocess.STDOUT)

    def start_workers(self) -> None:
        if self.args.workers <= 0:
            return
        self.workers = subprocess.Popen(
            [*shenava_command(), "worker", "-c", str(self.config_path),
             "--processes", str(self.args.workers)],
            cwd=ROOT, stdout=self._log("workers"), stderr=subprocess.STDOUT)

    def health(self) -> dict[str, Any] | None:
        try:
            # the journal's figures go to the metrics token (without it: liveness only)
            asked = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/api/health",
                                           headers={"Authorization": f"Bearer {HEALTH_TOKEN}"})
            with urllib.request.urlopen(asked, timeout=2) as r:
                return dict(json.loads(r.read()))
        except (OSError, ValueError):
            return None

    def wait(self, what: str, test: Any, limit_s: float, step_s: float = 0.5) -> bool:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if test():
                return True
            time.sleep(step_s)
        print(f"chaos: gave up waiting for {what} after {limit_s:.0f} s", file=sys.stderr)
        return False

    def daemon_serving(self) -> bool:
        h = self.health()
        return h is not None and h.get("ami") == "connected"

    # -- faults --------------------------------------------------------------------

    def fault(self, kind: str, rng: random.Random) -> dict[str, Any]:
        done: dict[str, Any] = {"kind": kind, "at_s": round(time.monotonic() - self.t0, 1)}
        if kind == "daemon":
            assert self.daemon is not None
            done["rss_mb"] = rss_mb(self.daemon.pid)
            self.daemon.send_signal(signal.SIGKILL)
            self.daemon.wait(timeout=10)
            self.start_daemon()
        elif kind == "worker":
            victims = [p for p in children(self.workers.pid)
                       if "resource_tracker" not in cmdline(p) and alive(p)] \
                if self.workers is not None else []
            if victims:
                victim = rng.choice(victims)
                os.kill(victim, signal.SIGKILL)
                done["pid"] = victim
            else:
                done["skipped"] = "no worker process"
        elif kind == "ami":
            assert self.pbx is not None
            self.pbx.send_signal(signal.SIGUSR1)
        elif kind == "redis":
            assert self.redis is not None
            self.redis.process.kill()
            self.redis.process.wait()
            away = rng.uniform(1.0, 8.0)
            done["away_s"] = round(away, 1)
            time.sleep(away)
            self.start_redis()
        return done

    # -- the run -------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        args = self.args
        rng = random.Random(args.seed + 1)
        self.start_redis()
        self.start_pbx()
        self.t0 = time.monotonic()
        self.write_config()
        self.start_daemon()
        self.wait("the daemon", self.daemon_serving, 60.0)
        assert self.daemon is not None
        rss_start = rss_mb(self.daemon.pid)
        self.start_workers()
        kinds = [FAULTS[i % len(FAULTS)] for i in range(args.faults)]
        rng.shuffle(kinds)
        span = (START_OFFSET_S + 0.1 * args.duration, START_OFFSET_S + 0.9 * args.duration)
        times = sorted(rng.uniform(*span) for _ in kinds)
        for at, kind in zip(times, kinds, strict=True):
            delay = at - (time.monotonic() - self.t0)
            if delay > 0:
                time.sleep(delay)
            self.faults.append(self.fault(kind, rng) | {"wall": round(time.time(), 3)})
            print(f"chaos: {self.faults[-1]}", file=sys.stderr)
            with (self.folder / "faults.jsonl").open("a", encoding="utf-8") as out:
                out.write(json.dumps(self.faults[-1]) + "\n")
        last_at = max(c["at"] for c in self.callers) if self.callers else 0.0
        ends_by = last_at + max(PATIENCE.values()) + 60.0
        self.wait("every caller to end", lambda: len(self.report()) >= len(self.callers),
                  max(10.0, ends_by - (time.monotonic() - self.t0)), 1.0)
        self.wait("the journal to drain", self.journal_drained, 300.0)
        self.wait("the transcription queue", self.transcribed, args.drain_s, 1.0)
        result = reconcile(self.callers, self.report(), self.redis_client())
        rss_end = rss_mb(self.daemon.pid) if self.daemon is not None else None
        health = self.health() or {}
        return result | {
            "rate": args.rate, "duration_s": args.duration, "appendfsync": args.appendfsync,
            "leader_lease": args.lease, "workers": args.workers,
            "faults": dict(Counter(f["kind"] for f in self.faults)),
            "daemon_starts": self.daemon_starts,
            "journal": health.get("journal"),
            "rss_start_mb": rss_start, "rss_end_mb": rss_end,
            "wall_s": round(time.monotonic() - self.t0, 1),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        }

    def report(self) -> list[dict[str, Any]]:
        path = self.folder / "callers.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def journal_drained(self) -> bool:
        h = self.health()
        j = (h or {}).get("journal") or {}
        return h is not None and j.get("depth") == 0 and j.get("redis_away_since") is None

    def redis_client(self) -> Any:
        import redis

        assert self.redis is not None
        return redis.Redis.from_url(self.redis.url, decode_responses=True)

    def transcribed(self) -> bool:
        if self.workers is None:
            return True
        r = self.redis_client()
        try:
            return int(r.xlen(f"{PREFIX}:{{vm}}:jobs")) == 0
        finally:
            r.close()

    def close(self) -> None:
        for process in (self.workers, self.daemon, self.pbx):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        if self.redis is not None:
            self.redis.stop()
        for out in self.logs:
            out.close()


def reconcile(callers: list[dict[str, Any]], ended: list[dict[str, Any]], r: Any) -> dict[str, Any]:
    """Every caller the PBX placed against what Redis holds (see the module's text)."""
    p = PREFIX
    complaints_by_call: dict[str, list[str]] = {}
    refs = r.zrange(f"{p}:{{complaints}}:all", 0, -1)
    for i in range(0, len(refs), 500):
        chunk = refs[i:i + 500]
        for ref, raw in zip(chunk, r.mget([f"{p}:{{complaints}}:c:{x}" for x in chunk]), strict=True):
            if raw:
                complaints_by_call.setdefault(json.loads(raw)["call_id"], []).append(ref)
    queued_jobs = {fields.get("vm") for _id, fields in r.xrange(f"{p}:{{vm}}:jobs")}
    vms_by_call: dict[str, list[tuple[str, str]]] = {}
    parked_why: Counter[str] = Counter()
    vm_status: Counter[str] = Counter()
    for vm_id in r.zrange(f"{p}:{{vm}}:index", 0, -1):
        call_id, status, error = r.hmget(f"{p}:{{vm}}:vm:{vm_id}", "call_id", "status", "last_error")
        vms_by_call.setdefault(call_id or "", []).append((vm_id, status or ""))
        vm_status[status or ""] += 1
        if status == "parked":
            parked_why[(error or "").split(": ", 1)[-1]] += 1
    reasons: dict[str, list[str]] = {}
    for number, flag_id in r.hgetall(f"{p}:{{callbacks}}:open").items():
        raw = r.get(f"{p}:{{callbacks}}:flag:{flag_id}")
        if raw:
            reasons[number] = [x["kind"] for x in json.loads(raw)["reasons"]]
    sl: Counter[str] = Counter()
    for key in r.scan_iter(f"{p}:{{stats}}:slseen:*"):
        for member in r.smembers(key):
            parts = member.split("|")
            if len(parts) >= 2:
                sl[parts[1]] += 1
    r.close()

    by_number = {c["number"]: c for c in ended}
    lost = Counter[str]()
    doubled = Counter[str]()
    unexpected = Counter[str]()
    accounted = unfinished = parked = 0
    for plan_entry in callers:
        c = by_number.get(plan_entry["number"])
        if c is None:
            unfinished += 1
            continue
        call_id, kind = c["uniqueid"], plan_entry["tag"]
        before = sum(lost.values())
        mine = complaints_by_call.get(call_id, [])
        doubled["complaints"] += max(0, len(mine) - 1)
        if c["references"] and not set(c["references"]) <= set(mine):
            lost["complaints"] += 1
        elif c["saved"] and not mine:
            lost["complaints"] += 1
        vms = vms_by_call.get(call_id, [])
        doubled["voicemails"] += max(0, len(vms) - 1)
        if c["saved"]:
            if not vms:
                lost["voicemails"] += 1
            elif any(status == "parked" for _vm_id, status in vms):
                parked += 1  # kept, its transcription given up after max_attempts: not lost
            elif not any(status == "transcribed" or vm_id in queued_jobs for vm_id, status in vms):
                lost["voicemails"] += 1  # a record whose job is gone
        mine_r = Counter(reasons.get(c["number"], []))
        doubled["flags"] += sum(max(0, n - 1) for n in mine_r.values())
        waited = (c["ended_at"] - c["queued_at"]) if c["queued_at"] is not None else None
        if c["saved"] and not mine_r["voicemail"]:
            lost["flags"] += 1
        if waited is not None and waited >= SHORT_ABANDON_S + SLACK_S and not mine_r["abandoned"]:
            lost["flags"] += 1
        if mine_r["abandoned"] and (waited is None or waited < SHORT_ABANDON_S - SLACK_S):
            unexpected["flags"] += 1
        if mine_r["voicemail"] and not vms:
            unexpected["flags"] += 1
        counted = sl.get(call_id, 0)
        doubled["sl_outcomes"] += max(0, counted - 1)
        if c["queued_at"] is not None and counted == 0:
            lost["sl_outcomes"] += 1
        if c["queued_at"] is None and counted:
            unexpected["sl_outcomes"] += 1
        if kind != "voicemail" and not c["saved"] and vms:
            unexpected["voicemails"] += 1
        accounted += sum(lost.values()) == before
    return {
        "bench": "chaos",
        "placed": len(callers),
        "accounted": accounted,
        "lost_complaints": lost["complaints"],
        "lost_flags": lost["flags"],
        "lost_voicemails": lost["voicemails"],
        "lost_sl_outcomes": lost["sl_outcomes"],
        "double_counted": sum(doubled.values()),
        "doubled": {k: v for k, v in doubled.items() if v},
        "unexpected": {k: v for k, v in unexpected.items() if v},
        "unfinished": unfinished,
        "voicemails_parked": parked,
        "voicemails_parked_why": dict(parked_why),
        "voicemails_by_status": dict(vm_status),
        "complaints_heard": sum(1 for c in ended if c["references"]),
        "voicemails_saved": sum(1 for c in ended if c["saved"]),
        "sl_outcomes": sum(1 for c in ended if c["queued_at"] is not None),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=2.0, help="calls per second (default 2)")
    parser.add_argument("--duration", type=float, default=75.0, help="seconds of arrivals (default 75)")
    parser.add_argument("--faults", type=int, default=8, help="faults in all (default 8: two of each kind)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="transcription worker processes (0: none)")
    parser.add_argument("--appendfsync", choices=("always", "everysec"), default="always")
    parser.add_argument("--lease", action="store_true", help="run with the leader lease (a pair's setting)")
    parser.add_argument("--drain-s", type=float, default=180.0,
                        help="at most this long for the transcription queue to empty at the end")
    parser.add_argument("--full", action="store_true",
                        help="the issue's run: --rate 20 --duration 600 --faults 40")
    args = parser.parse_args(argv)
    if args.full:
        args.rate, args.duration, args.faults = 20.0, 600.0, 40
    folder = Path(tempfile.mkdtemp(prefix="shenava-chaos-"))
    callers = plan(random.Random(args.seed), args.rate, args.duration)
    chaos = Chaos(args, folder, callers)
    result: dict[str, Any]
    try:
        result = chaos.run()
    except Exception as exc:  # the JSON line is still printed
        result = {"bench": "chaos", "error": repr(exc)}
    finally:
        chaos.close()
    result["folder"] = str(folder)
    print(json.dumps(result))
    keys = ("lost_complaints", "lost_flags", "lost_voicemails", "lost_sl_outcomes", "double_counted")
    return 0 if "error" not in result and not any(result.get(k) for k in keys) else 1


if __name__ == "__main__":
    raise SystemExit(main())

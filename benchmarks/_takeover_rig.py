"""Real processes for the take-over test and benchmark: ``shenava testpbx`` with a
traffic plan, one or two ``shenava run`` daemons, a real Redis, real SIGKILLs.

Everything listens on loopback and every wait is bounded. The agents are put
logged in and ready in Redis before the first daemon starts (as a day's first
log-in would), so no HTTP sign-in is needed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from benchmarks._daemon_rig import daemon_config, free_port, shenava_command

__all__ = ["AGENTS", "METRICS_TOKEN", "Daemon", "Rig", "config_text", "free_port", "run_async", "shenava_command"]

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
SECRET = "rig-secret"
METRICS_TOKEN = "rig-metrics-token"
AGENTS = (("a1", "PJSIP/101"), ("a2", "PJSIP/102"), ("a3", "PJSIP/103"), ("a4", "PJSIP/104"))
START_LIMIT_S = 30.0


ROUTING = "[routing]\nwrap_up_s = 1.0\n\n[routing.hold]\nannounce_every_s = 6.0\n"
"""Short wrap-ups and hold announcements, so the take-over runs see them."""


def config_text(ami_port: int, redis_url: str, http_port: int, prefix: str, extra: str = "") -> str:
    return daemon_config(ami_port=ami_port, redis_url=redis_url, http_port=http_port, prefix=prefix,
                         secret=SECRET, agents=AGENTS, metrics_token=METRICS_TOKEN,
                         extra=f"{ROUTING}\n{extra}")


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    http_port: int
    started_at: float

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


@dataclass
class Rig:
    workdir: Path
    redis_url: str
    scenario: dict[str, Any]
    prefix: str = "rig"
    extra_config: str = ""
    pbx: subprocess.Popen[bytes] | None = None
    ami_port: int = 0
    daemons: list[Daemon] = field(default_factory=list)
    _pbx_log: IO[bytes] | None = None

    @property
    def report_path(self) -> Path:
        return self.workdir / "callers.jsonl"

    def start_pbx(self) -> None:
        plan = self.workdir / "scenario.json"
        plan.write_text(json.dumps(self.scenario), encoding="utf-8")
        self._pbx_log = (self.workdir / "testpbx.log").open("wb")
        secret = self.workdir / "ami-secret"
        secret.write_text(SECRET + "\n", encoding="utf-8")
        self.pbx = subprocess.Popen(
            [*shenava_command(), "testpbx", "--port", "0", "--secret-file", str(secret),
             "--recordings", str(self.workdir / "recordings"),
             "--scenario", str(plan), "--report", str(self.report_path)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._pbx_log,
        )
        assert self.pbx.stdout is not None
        line = self.pbx.stdout.readline().decode()
        if "listening on" not in line:
            raise RuntimeError(f"test PBX did not start: {line!r}")
        self.ami_port = int(line.strip().rsplit(":", 1)[1])

    def seed_agents_ready(self) -> None:
        """Every agent logged in and ready from now (what the day's first log-in writes)."""
        from redis.asyncio import Redis

        from agent_stats.states import AgentState
        from agent_stats.store import LedgerWrite, StatsStore

        async def seed() -> None:
            client = Redis.from_url(self.redis_url)
            try:
                store = StatsStore(client, self.config().sla, prefix=self.prefix)
                now = time.time()
                await store.apply([LedgerWrite(a, (), now, AgentState.READY, None) for a, _ in AGENTS])
            finally:
                await client.aclose()

        run_async(seed)

    def config(self) -> Any:
        """The daemons' config, as ``shenava run`` reads it (for the stores' day keys)."""
        from shenava.config import Config, parse_toml

        text = config_text(self.ami_port or 5038, self.redis_url, 8080, self.prefix, self.extra_config)
        return Config.from_mapping(parse_toml(text))

    def start_daemon(self, name: str, http_port: int | None = None) -> Daemon:
        """``http_port``: another daemon's, as with one config on one host."""
        http_port = http_port or free_port()
        config = self.workdir / f"{name}.toml"
        config.write_text(
            config_text(self.ami_port, self.redis_url, http_port, self.prefix, self.extra_config),
            encoding="utf-8",
        )
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [*shenava_command(), "run", "-c", str(config)], cwd=ROOT, stdout=out, stderr=out,
            )
        daemon = Daemon(name, process, log, http_port, time.monotonic())
        self.daemons.append(daemon)
        return daemon

    def wait_for(self, daemon: Daemon, text: str, limit_s: float = START_LIMIT_S, count: int = 1) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if daemon.log_text().count(text) >= count:
                return
            if daemon.process.poll() is not None:
                raise RuntimeError(f"{daemon.name} exited: {daemon.log_text()[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"{daemon.name}: no {text!r} within {limit_s} s: {daemon.log_text()[-3000:]}")

    def kill(self, daemon: Daemon) -> None:
        if daemon.process.poll() is None:
            daemon.process.send_signal(signal.SIGKILL)
            daemon.process.wait(timeout=10)

    def callers(self) -> list[dict[str, Any]]:
        if not self.report_path.exists():
            return []
        return [json.loads(line) for line in self.report_path.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        for daemon in self.daemons:
            if daemon.process.poll() is None:
                daemon.process.send_signal(signal.SIGKILL)
                daemon.process.wait(timeout=10)
        if self.pbx is not None and self.pbx.poll() is None:
            self.pbx.send_signal(signal.SIGTERM)
            try:
                self.pbx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.pbx.kill()
                self.pbx.wait(timeout=10)
        if self._pbx_log is not None:
            self._pbx_log.close()


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end on a loop of its own (in a thread: the caller's
    thread may already run one, as under pytest-twisted's asyncio reactor)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()

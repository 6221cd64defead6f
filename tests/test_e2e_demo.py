"""``shenava demo`` as a user runs it: a real process, real loopback sockets, a real redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO_S = 6
LIMIT_S = 90  # the demo stops itself after DEMO_S; this only bounds a hang


@pytest.mark.slow
def test_demo_runs_and_prints_a_json_summary(tmp_path: Path) -> None:
    shenava = Path(sys.executable).with_name("shenava")
    command = (
        [str(shenava)] if shenava.exists() else [sys.executable, "-m", "shenava.cli"]
    ) + ["demo", "--duration", str(DEMO_S), "--json"]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=LIMIT_S, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["bench"] == "demo"
    assert summary["duration_s"] == DEMO_S
    assert summary["redis"] == "embedded redis-server"
    # callers were placed on the test PBX and every one reached the daemon's IVR
    assert summary["callers_placed"] >= 1
    assert summary["calls_arrived"] == summary["callers_placed"]
    handled = sum(summary["ivr_outcomes"].values()) + summary["calls_in_progress"]
    assert handled >= summary["callers_placed"]
    # the live figures went through the real Redis
    day = summary["redis_day_figures"]
    assert day is not None and day["in_progress"] == summary["calls_in_progress"]
    assert set(summary["agents"]) == {"a1", "a2", "a3", "a4"}
    assert "Traceback" not in done.stderr

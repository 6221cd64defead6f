"""``shenava demo`` as a user runs it: a real process, real loopback sockets, a real redis-server."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
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


@pytest.mark.slow
def test_the_links_the_demo_prints_work_in_the_order_printed(tmp_path: Path) -> None:
    """README's flow: ``scripts/demo`` prints links; a person opens the first one, then the
    others, in one browser. The first (it was ``HTTP API: .../api/agents``) must work with
    no session yet, and each after it in the same cookie jar: none answers 401."""
    shenava = Path(sys.executable).with_name("shenava")
    command = (
        [str(shenava)] if shenava.exists() else [sys.executable, "-m", "shenava.cli"]
    ) + ["demo", "--duration", "900", "--quiet"]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert process.stdout is not None
        printed: list[str] = []
        wanted = {"Wallboard", "Agent desk", "Sign-in page", "HTTP API"}
        for line in process.stdout:  # bounded by the demo: it exits if it cannot start
            printed.append(line)
            wanted.discard(line.split(":", 1)[0])
            if not wanted:
                break
        links = [(label, re.search(r"http://\S+", line).group(0))  # type: ignore[union-attr]
                 for label, line in ((ln.split(":", 1)[0], ln) for ln in printed)
                 if re.match(r"^[A-Za-z -]+: http://", line)]
        assert len(links) == 4, printed
        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        for label, url in links:
            with browser.open(url, timeout=30) as answer:  # an HTTPError (401...) fails here
                assert answer.status == 200, (label, url)
        assert {c.name for c in jar} == {"shenava_session"}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

"""``shenava check-sites``: the sites of one centre share their [sla] settings and no agent
id is at two sites; in the configs, and with ``--redis`` in what the running daemons
registered and stored in their shared Redis (a real redis-server)."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agent_stats.centre import sla_settings
from agent_stats.sla import SLAConfig
from agent_stats.states import AgentState
from shenava.check_config.findings import Finding, Severity
from shenava.check_config.run import read_registered, run_check_sites
from shenava.check_sites import check_centre

ROOT = Path(__file__).resolve().parent.parent


def site_config(folder: Path, site: str, agents: list[str], *, redis_url: str = "redis://127.0.0.1:1/0",
                sla: str = "", timezone: str = "Asia/Tehran", name: str | None = None) -> Path:
    text = (f'[ami]\nsecret = "x"\n[redis]\nurl = "{redis_url}"\n'
            f'[site]\nid = "{site}"\nname = "{site or "default"}"\ntimezone = "{timezone}"\n')
    if sla:
        text += "[sla]\n" + sla
    for n, agent in enumerate(agents):
        text += f'[[agents]]\nid = "{agent}"\nname = "{agent}"\nendpoint = "PJSIP/{100 + n}"\nlanguages = ["fa"]\n'
    path = folder / f"{name or site or 'default'}.toml"
    path.write_text(text)
    return path


def codes(findings: list[Finding], severity: Severity | None = None) -> list[str]:
    return [f.code for f in findings if severity is None or f.severity is severity]


def test_sites_that_agree_pass(tmp_path: Path) -> None:
    north = site_config(tmp_path, "north", ["n1", "n2"])
    south = site_config(tmp_path, "south", ["s1"])
    standby = site_config(tmp_path, "north", ["n1", "n2"], name="north-standby")  # its pair
    findings = check_centre([north, south, standby])
    assert codes(findings) == ["sites.agree"], findings
    assert "2 site(s)" in findings[0].message and "3 agent id(s)" in findings[0].message
    out = io.StringIO()
    assert run_check_sites([north, south], out=out) == 0
    assert out.getvalue().rstrip().endswith("all good: 0 error(s), 0 warning(s)")


def test_a_different_sla_setting_is_an_error_naming_the_key_and_the_sites(tmp_path: Path) -> None:
    north = site_config(tmp_path, "north", ["n1"])
    south = site_config(tmp_path, "south", ["s1"], sla="threshold_s = 30\nwindow_s = 900\n")
    findings = check_centre([north, south])
    errors = [f for f in findings if f.code == "sites.sla_differs"]
    assert [f.severity for f in errors] == [Severity.ERROR, Severity.ERROR]
    text = " ".join(f.message for f in errors)
    assert "sla.threshold_s is 20.0 at site 'north'" in text and "30.0 at site 'south'" in text
    assert "sla.window_s" in text
    assert "sites.agree" not in codes(findings)
    assert run_check_sites([north, south], out=io.StringIO()) == 1


def test_an_agent_id_at_two_sites_is_an_error(tmp_path: Path) -> None:
    north = site_config(tmp_path, "north", ["a1", "a2"])
    south = site_config(tmp_path, "south", ["a2", "s1"])
    findings = check_centre([north, south])
    shared = [f for f in findings if f.code == "sites.agent_id_shared"]
    assert len(shared) == 1 and shared[0].severity is Severity.ERROR
    assert "'a2'" in shared[0].message and "'north'" in shared[0].message and "'south'" in shared[0].message


def test_one_site_id_with_two_settings_and_other_warnings(tmp_path: Path) -> None:
    north = site_config(tmp_path, "north", ["n1"])
    other = site_config(tmp_path, "north", ["n9"], name="north-other")
    utc = site_config(tmp_path, "south", ["s1"], timezone="UTC", redis_url="redis://10.0.0.9:6379/0")
    findings = check_centre([north, other, utc])
    assert "sites.same_id" in codes(findings, Severity.ERROR)
    assert "sites.timezone_differs" in codes(findings, Severity.WARNING)
    assert "sites.redis_differs" in codes(findings, Severity.WARNING)
    bad = tmp_path / "bad.toml"
    bad.write_text("[site]\nid = \"North!\"\n")
    assert codes(check_centre([north, bad])) == ["config.invalid"]


def _in_thread(make: Callable[[], Any]) -> Any:
    """asyncio on a loop of its own (the test thread's loop is the reactor's)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(make).result(timeout=60)


def _store(redis_url: str, site: str, agents: list[str], sla: dict[str, Any] | None) -> None:
    from agent_stats.store import LedgerWrite, StatsStore
    from shenava.config import RedisConfig
    from shenava.redis_client import make_redis_client
    from shenava_base.sites import register_site

    async def write() -> None:
        client = make_redis_client(RedisConfig(url=redis_url))
        try:
            await register_site(client, "shenava", site, name=site, timezone="Asia/Tehran", sla=sla)
            await StatsStore(client, SLAConfig(), site=site).apply(
                [LedgerWrite(a, (), time.time(), AgentState.READY, None) for a in agents])
        finally:
            await client.aclose()

    _in_thread(lambda: asyncio.run(write()))


def test_with_redis_what_the_running_daemons_registered_and_stored(redis_url: str, tmp_path: Path) -> None:
    north = site_config(tmp_path, "north", ["n1", "n2"], redis_url=redis_url)
    _store(redis_url, "north", ["n1", "n2"], sla_settings(SLAConfig()))
    _store(redis_url, "south", ["s1"], sla_settings(SLAConfig()))
    findings = _in_thread(lambda: check_centre([north], registered=read_registered))
    assert codes(findings) == ["sites.agree"], findings
    # a daemon of site east runs with another threshold, and took calls as n2 once
    _store(redis_url, "east", ["e1", "n2"], sla_settings(SLAConfig(threshold_s=15.0)))
    _store(redis_url, "west", [], None)  # an earlier version's daemon: no [sla] registered
    findings = _in_thread(lambda: check_centre([north], registered=read_registered))
    assert "sites.sla_differs" in codes(findings, Severity.ERROR)
    assert any("15.0 at site 'east'" in f.message for f in findings)
    shared = [f for f in findings if f.code == "sites.agent_id_shared"]
    assert len(shared) == 1 and "'n2'" in shared[0].message and "'east'" in shared[0].message
    assert "sites.sla_unknown" in codes(findings, Severity.WARNING)
    # the command, as an operator runs it
    shenava = Path(sys.executable).with_name("shenava")
    command = [str(shenava)] if shenava.exists() else [sys.executable, "-m", "shenava.cli"]
    done = subprocess.run([*command, "check-sites", str(north), "--redis"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "[sites.sla_differs]" in done.stdout and "[sites.agent_id_shared]" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("problems found: 2 error(s)")

"""Two real ``shenava run`` daemons, sites "north" and "south", each with its own
``shenava testpbx`` process, on a real 3-master Redis Cluster: both lead their own
site at once, serve their own callers, and each site's counts and the centre's sum
are what the PBXs' callers did."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from benchmarks._takeover_rig import AGENTS, Rig, run_async
from tests.test_takeover_process import QUICK_TALKS, SCENARIO

CALLERS = {"north": 4, "south": 2}
LIMIT_S = 120.0
SETTLE_LIMIT_S = 60.0
"""A bound on the statistics writer's last batch reaching Redis (polled)."""


def scenario(count: int) -> dict[str, Any]:
    return dict(QUICK_TALKS, steady=dict(SCENARIO["steady"], count=count, every_s=1.0))


async def _seed(url: str, rig: Rig, site: str) -> None:
    """Every agent of ``site`` logged in and ready (what the day's first log-in writes)."""
    from agent_stats.states import AgentState
    from agent_stats.store import LedgerWrite, StatsStore
    from shenava.config import RedisConfig
    from shenava.redis_client import make_redis_client

    client = make_redis_client(RedisConfig(url=url))
    try:
        store = StatsStore(client, rig.config().sla, prefix=rig.prefix, site=site)
        await store.apply([LedgerWrite(a, (), time.time(), AgentState.READY, None) for a, _ in AGENTS])
    finally:
        await client.aclose()


async def _figures(url: str, rig: Rig) -> Any:
    from agent_stats.centre import read_centre
    from shenava.config import RedisConfig
    from shenava.redis_client import make_redis_client

    client = make_redis_client(RedisConfig(url=url))
    try:
        return await read_centre(client, rig.prefix, rig.config().sla, time.time())
    finally:
        await client.aclose()


@pytest.mark.slow
def test_two_sites_daemons_serve_their_own_callers_on_a_cluster(cluster_url: str, tmp_path: Path) -> None:
    rigs = {
        site: Rig(tmp_path / site, cluster_url, scenario(n), extra_config=f'[site]\nid = "{site}"\n')
        for site, n in CALLERS.items()
    }
    try:
        for site, rig in rigs.items():
            rig.workdir.mkdir(parents=True)
            run_async(lambda rig=rig, site=site: _seed(cluster_url, rig, site))  # type: ignore[misc]
            rig.start_pbx()
        daemons = {site: rig.start_daemon(site) for site, rig in rigs.items()}
        for site, rig in rigs.items():
            rig.wait_for(daemons[site], "role: leader")  # neither waits for the other's lease
        deadline = time.monotonic() + LIMIT_S
        while time.monotonic() < deadline and any(
            len(rig.callers()) < CALLERS[site] for site, rig in rigs.items()
        ):
            time.sleep(0.2)
        for site, rig in rigs.items():
            callers = rig.callers()
            assert len(callers) == CALLERS[site], daemons[site].log_text()[-3000:]
            assert all(c["bridged_at"] is not None for c in callers)
            with urllib.request.urlopen(f"http://127.0.0.1:{daemons[site].http_port}/api/health", timeout=5) as r:
                assert json.loads(r.read())["role"] == "leader"
        # the statistics writer's last batch: polled (bounded), not a fixed wait
        deadline = time.monotonic() + SETTLE_LIMIT_S
        while True:
            centre = run_async(lambda: _figures(cluster_url, rigs["north"]))
            by_site = {s.site: s for s in centre.sites}
            if all(site in by_site and (by_site[site].day.offered, by_site[site].day.answered)
                   == (n, n) for site, n in CALLERS.items()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sorted(by_site) == ["north", "south"]
        for site, n in CALLERS.items():
            assert (by_site[site].day.offered, by_site[site].day.answered, by_site[site].day.abandoned) == (n, n, 0)
        assert (centre.day.offered, centre.day.answered) == (6, 6)
    finally:
        for rig in rigs.values():
            rig.close()

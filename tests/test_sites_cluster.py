"""Two sites' daemons, each with its own test PBX, on a real 3-master Redis Cluster (and on one Redis).

Site "north" and site "south" run the whole daemon (``tests.e2e_harness``) in
virtual time against their own PBX and share the cluster through the daemon's
own cluster client. Each site's service level is computed here by hand from
its own routing events (DESIGN.md's definition) and compared with what its
daemon stored; the centre's is the sum of both. The complaint register, the
abuse reports and the callback flags are shared: a flag raised by north's
caller is seen by south but dialled by north alone. Neither daemon writes the
other's statistics (agents, breaks, heartbeat): their keys are in different
slots, named by the site.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from redis.crc import key_slot

from agent_stats.service import StatsService
from agent_stats.states import AgentState, NotReadyReason
from complaints.complaint import Channel
from routing.callbacks import FlagStatus
from routing.dispatch import CallAbandoned, CallCompleted
from shenava.config import Config
from shenava_base.aio import as_deferred
from testpbx.scripts import CallerScript, PhoneScript
from tests.e2e_harness import E2E, e2e_config
from tests.test_e2e_stats import by_hand

TALK_S = 25.0
LOST = "09120000004"  # north's caller who gives up: a callback flag of north's


PREFIX = "sitetest"
"""This test's own key prefix: its "no default-site key" check then sees only what
these two daemons wrote, not a key another test's daemon left in the shared
session server (seen twice in full runs, never alone)."""


def site_config(site: str) -> Config:
    config = e2e_config()
    return dataclasses.replace(config, site=dataclasses.replace(config.site, id=site),
                               redis=dataclasses.replace(config.redis, key_prefix=PREFIX))


async def traffic(h: E2E, callers: int, *, give_up_last: bool) -> None:
    """One agent takes ``callers`` calls one after another; the last may give up waiting."""
    h.phone("PJSIP/101", PhoneScript(answer_after_s=2.0, talk_s=TALK_S))
    h.log_in("a1")
    for i in range(1, callers + 1):
        last = i == callers and give_up_last
        h.call(CallerScript(number=f"0912000000{i}", answers=("1", "3"), patience_s=60.0 if last else None))
        h.advance(3.0)
    await h.run_until_async(
        lambda: len([e for e in h.routing if isinstance(e, (CallCompleted, CallAbandoned))]) == callers,
        limit_s=600.0,
    )
    h.advance(10.0)  # the last wrap-up ends
    await h.run_until_async(lambda: h.state("a1") is AgentState.READY, limit_s=60.0)


def stats(h: E2E) -> StatsService:
    service = h.app.agent_stats
    assert isinstance(service, StatsService)
    return service


async def until(h: E2E, check: Any, *, rounds: int = 400, step_s: float = 1.0) -> Any:
    """Advance ``h`` until the coroutine function ``check`` returns something true."""
    for _ in range(rounds):
        found = await as_deferred(check())
        if found:
            return found
        await h.run_until_async(lambda: True, limit_s=1.0)
        h.advance(step_s)
    raise AssertionError("never happened")


async def all_keys(client: Any) -> list[str]:
    found = []
    async for key in client.scan_iter(match=f"{PREFIX}:*", count=500):
        found.append(_s(key))
    return found


@pytest.fixture(params=["cluster", "one-redis"])
def shared_redis(request: pytest.FixtureRequest) -> Any:
    """The daemons' shared Redis: a 3-master cluster, or one server."""
    return request.getfixturevalue("cluster_client" if request.param == "cluster" else "redis_client")


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest_twisted.ensureDeferred
async def test_two_sites_count_their_own_calls_and_share_the_register(shared_redis: Any, tmp_path: Path) -> None:
    cluster_client = shared_redis
    north = E2E.build(tmp_path / "north", config=site_config("north"), redis=cluster_client)
    south = E2E.build(tmp_path / "south", config=site_config("south"), redis=cluster_client)
    try:
        # South's clock runs 1,000 s ahead, so the two heartbeats tell apart.
        south.advance(1000.0)
        await traffic(north, 4, give_up_last=True)
        await traffic(south, 2, give_up_last=False)

        # -- each site's SL, by hand from its own PBX's calls, and the centre's sum
        expected = {"north": by_hand(north), "south": by_hand(south)}
        assert expected["north"][0] == 4 and expected["north"][2] == 1
        assert expected["south"][0] == 2 and expected["south"][2] == 0
        for h in (north, south):
            await stats(h).flushed()
        for site, h in (("north", north), ("south", south)):
            store = stats(h).store
            day = await as_deferred(store.day_counts(stats(h).default_queue, store.day_of(h.now)))
            assert (day.offered, day.in_sl, day.abandoned) == expected[site], site
        # The centre's figures, read as north's daemon reads them (after both registered).
        board = north.app.centre
        await as_deferred(south.app.centre.refresh())
        centre = await as_deferred(board.refresh())
        assert [s.site for s in centre.sites] == ["north", "south"]
        for s in centre.sites:
            assert (s.day.offered, s.day.in_sl, s.day.abandoned) == expected[s.site]
        sums = tuple(sum(v[i] for v in expected.values()) for i in range(3))
        assert (centre.day.offered, centre.day.in_sl, centre.day.abandoned) == sums
        assert centre.day.service_level == sums[1] / sums[0]
        assert north.app.http is not None

        # -- no daemon touches the other's statistics: a break asked at north
        # is in north's line only, and each heartbeat is its own daemon's clock.
        stats(north).request_break("a1", NotReadyReason.LUNCH)
        await stats(north).flushed()
        assert [r.agent_id for r in await as_deferred(stats(south).store.break_line())] == []
        north_beat = (await as_deferred(stats(north).store.heartbeat())).at
        south_beat = (await as_deferred(stats(south).store.heartbeat())).at
        assert north_beat is not None and south_beat is not None
        assert north_beat <= north.now < south_beat - 900 and south_beat <= south.now

        # -- the complaint register and abuse reports are shared
        reg_n = north.app.complaints.register
        reg_s = south.app.complaints.register
        opened = await as_deferred(reg_n.open_complaint(north.now, category="billing", channel=Channel.AGENT,
                                                         number="09125550000"))
        seen = await as_deferred(reg_s.store.get(opened.reference))
        assert seen.reference == opened.reference
        other = await as_deferred(reg_s.open_complaint(south.now, category="billing", channel=Channel.AGENT,
                                                        number="09125550001"))
        assert other.reference != opened.reference  # one reference space for the centre
        await as_deferred(reg_s.report_abuse(south.now, agent_id="a1", number="09125550002", category="threat"))
        assert len(await as_deferred(reg_n.store.reports_for("09125550002"))) == 1

        # -- the callback flag of north's lost caller: shared, dialled by north alone
        cb_n = north.app.complaints.callbacks
        cb_s = south.app.complaints.callbacks

        async def raised() -> Any:
            return await cb_s.open_flag_for(LOST)

        flag = await until(north, raised, step_s=0.5)
        assert flag.site == "north"
        # South has free agents and lets time pass: it never dials north's flag.
        south.log_in("a2", "a3", "a4")
        for _ in range(60):
            await south.run_until_async(lambda: True, limit_s=1.0)
            south.advance(1.0)
        assert [m for m in south.actions("Originate") if m.get("Context") == "shenava-callback"] == []
        assert (await as_deferred(cb_s.get(flag.flag_id))).attempts == ()
        # North's agents come; north dials it.
        north.phones({f"PJSIP/10{i}": PhoneScript(answer_after_s=2.0, talk_s=20.0) for i in (2, 3, 4)})
        north.phone(f"PJSIP/{LOST}", PhoneScript(answer_after_s=3.0, talk_s=15.0))
        stats(north).cancel_break("a1")
        north.log_in("a2", "a3", "a4")

        async def closed() -> Any:
            current = await cb_n.get(flag.flag_id)
            return current if current.status is FlagStatus.CLOSED else None

        final = await until(north, closed)
        assert final.attempts and final.attempts[0].agent_id.startswith("a")
        dialled = [m for m in north.actions("Originate") if m.get("Context") == "shenava-callback"]
        assert [m.get("Exten") for m in dialled] == [LOST]

        # -- where the keys are: each site's per-site families in their own slot,
        # shared families without a site; and not all in one slot.
        keys = await as_deferred(all_keys(cluster_client))
        tags: dict[str, set[int]] = {}
        for key in keys:
            tag = key[key.index("{") + 1:key.index("}")]
            tags.setdefault(tag, set()).add(key_slot(key.encode()))
        assert all(len(slots) == 1 for slots in tags.values()), tags
        for family in ("stats", "live", "calls"):
            assert {f"{family}:north", f"{family}:south"} <= set(tags), (family, sorted(tags))
            assert tags[f"{family}:north"] != tags[f"{family}:south"]
        for shared in ("complaints", "callbacks", "sites"):
            assert shared in tags
        assert not any(t in tags for t in ("stats", "live", "calls")), [k for k in keys if k.split("{")[1].split("}")[0] in ("stats", "live", "calls")]  # no default site here
        # each agent's intervals in their own slot, the ledger heads in one hash per site
        for site in ("north", "south"):
            assert f"{PREFIX}:{{stats:{site}}}:heads" in keys
            assert not any(k.endswith(":ledger") for k in keys)
            assert any(k.startswith(f"{PREFIX}:{{stats:{site}:a1}}:intervals:") for k in keys)
        assert tags["stats:north:a1"] != tags["stats:north"] != tags["stats:south:a1"]
        assert len({next(iter(s)) for s in tags.values()}) >= 8
        register = await as_deferred(cluster_client.hgetall(f"{PREFIX}:{{sites}}:all"))
        name = north.app.config.site.name
        assert {_s(k): json.loads(v)["name"] for k, v in register.items()} == {"north": name, "south": name}
        # and the centre's figures reach the wallboard's JSON
        body = north.app.http.board.public(north.now, _NoCallbacks())
        assert [s["id"] for s in body["centre"]["sites"]] == ["north", "south"]
    finally:
        north.stop()
        south.stop()


class _NoCallbacks:
    def counts(self) -> dict[str, Any]:
        return {}

"""Sites on one Redis: the default site keeps the keys of earlier versions, named sites
their own; callback flags are claimed by their site's daemon; the centre's figures are
the sites' sums; the settings, the cluster client and check-config."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from agent_stats.centre import read_centre
from agent_stats.sla import CallRecord, Outcome, SLAConfig
from agent_stats.store import HeartbeatWrite, OutcomeWrite, StatsStore
from routing.callback_store import CallbackStore
from routing.callbacks import CallingHours, DialPolicy, abandon_reason
from shenava.call_state import CallStateStore
from shenava.check_config import check_config
from shenava.config import Config, ConfigError, RedisConfig, parse_toml
from shenava.leader import LeaderLease
from shenava.live_store import LiveFiguresStore
from shenava.redis_client import describe, make_redis_client
from shenava_base.aio import as_deferred
from shenava_base.sites import register_site, registered_sites, site_tag

T0 = 1_741_000_000.0
SLA = SLAConfig()
POLICY = DialPolicy(max_attempts=2, backoff_s=(300.0,), lease_ms=60_000)
BASE = '[ami]\nsecret = "x"\n'


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def test_site_tags() -> None:
    assert site_tag("stats") == "{stats}"
    assert site_tag("stats", "north") == "{stats:north}"


def test_the_default_site_keeps_every_key_name_of_earlier_versions() -> None:
    """An existing install is the default site: it reads what it stored before, unchanged."""
    assert StatsStore(Redis(), SLA)._key("heartbeat") == "shenava:{stats}:heartbeat"
    assert LiveFiguresStore(Redis(), "shenava")._key("in_progress") == "shenava:{live}:in_progress"
    calls = CallStateStore(Redis(), "shenava")
    assert (calls.live_key, calls.lease_key) == ("shenava:{calls}:live", "shenava:{calls}:leader")
    lease = LeaderLease(Redis(), "shenava", "me", None)  # type: ignore[arg-type]
    assert (lease.key, lease.epoch_key) == ("shenava:{calls}:leader", "shenava:{calls}:epoch")
    assert StatsStore(Redis(), SLA, site="north")._key("heartbeat") == "shenava:{stats:north}:heartbeat"
    assert StatsStore(Redis(), SLA)._ledger_key("a1") == "shenava:{stats}:ledger:a1"  # read, then moved
    assert StatsStore(Redis(), SLA)._heads_key() == "shenava:{stats}:heads"
    assert StatsStore(Redis(), SLA, site="north")._heads_key() == "shenava:{stats:north}:heads"
    assert StatsStore(Redis(), SLA, site="north")._intervals_key("a1", date(2026, 1, 2)) == (
        "shenava:{stats:north:a1}:intervals:2026-01-02")
    named = CallStateStore(Redis(), "shenava", "north")
    assert named.lease_key == LeaderLease(Redis(), "shenava", "me", None, site="north").key  # type: ignore[arg-type]
    assert named.lease_key == "shenava:{calls:north}:leader"


@pytest_twisted.ensureDeferred
async def test_a_flag_stored_before_sites_is_the_default_sites_and_named_sites_dial_their_own(
    redis_client: Redis,
) -> None:
    hours = CallingHours.always()
    old = CallbackStore(redis_client, "shenava", POLICY)  # the default site, as every earlier version
    north = CallbackStore(redis_client, "shenava", POLICY, site="north")
    reason = abandon_reason("call-1", T0, 30, POLICY)
    assert reason is not None
    legacy = await as_deferred(old.raise_reason("09121110000", reason, T0))
    stored = json.loads(await as_deferred(redis_client.get(f"shenava:{{callbacks}}:flag:{legacy.flag_id}")))
    assert "site" not in stored  # the JSON of earlier versions, unchanged
    theirs = await as_deferred(north.raise_reason("09122220000", reason, T0))
    assert theirs.site == "north"
    # both are in the shared index, and every site sees both
    assert {f.flag_id for f in await as_deferred(old.open_flags())} == {legacy.flag_id, theirs.flag_id}
    assert (await as_deferred(old.get(theirs.flag_id))).site == "north"
    # each daemon claims its own site's flag only
    claim = await as_deferred(north.claim_due(T0 + 1, hours, owner="north"))
    assert claim is not None and claim.flag.flag_id == theirs.flag_id
    assert await as_deferred(north.claim_due(T0 + 1, hours, owner="north")) is None
    claim = await as_deferred(old.claim_due(T0 + 1, hours, owner="old"))
    assert claim is not None and claim.flag.flag_id == legacy.flag_id
    assert await as_deferred(old.claim_due(T0 + 1, hours, owner="old")) is None
    south = CallbackStore(redis_client, "shenava", POLICY, site="south")
    assert await as_deferred(south.claim_due(T0 + 1, hours, owner="south")) is None


def _answered(call_id: str, wait_s: float) -> OutcomeWrite:
    call = CallRecord(queue="support", arrived_at=T0, joined_at=T0, outcome=Outcome.ANSWERED,
                      outcome_at=T0 + wait_s, call_id=call_id)
    return OutcomeWrite(call, agent_id="a1")


@pytest_twisted.ensureDeferred
async def test_the_centre_sums_the_sites_counters(redis_client: Redis) -> None:
    stores = {site: StatsStore(redis_client, SLA, site=site) for site in ("", "north")}
    await as_deferred(stores[""].apply([_answered("c1", 5.0), _answered("c2", 60.0), HeartbeatWrite(T0 + 61)]))
    await as_deferred(stores["north"].apply([_answered("c3", 5.0), HeartbeatWrite(T0 + 62)]))
    for site in stores:
        await as_deferred(register_site(redis_client, "shenava", site, name=f"n-{site}", timezone="UTC"))
    assert list(await as_deferred(registered_sites(redis_client, "shenava"))) == ["", "north"]
    centre = await as_deferred(read_centre(redis_client, "shenava", SLA, T0 + 70))
    by_site = {s.site: s for s in centre.sites}
    assert (by_site[""].day.offered, by_site[""].day.in_sl) == (2, 1)
    assert (by_site["north"].day.offered, by_site["north"].day.in_sl) == (1, 1)
    assert (centre.day.offered, centre.day.in_sl) == (3, 2)
    assert centre.day.service_level == 2 / 3  # the sum's ratio, not the mean of 1/2 and 1
    assert by_site["north"].heartbeat_at == T0 + 62
    body = centre.to_dict()
    assert [s["label"] for s in body["sites"]] == ["default", "north"]


# -- settings ---------------------------------------------------------------------------


def test_cluster_settings_from_a_url_or_a_list() -> None:
    one = Config.from_mapping(parse_toml(BASE + '[redis]\nurl = "redis+cluster://:pw@h1:7000,h2"\n'))
    assert one.redis.cluster and not one.redis.embedded
    two = Config.from_mapping(parse_toml(
        BASE + '[redis]\nurl = "redis://:pw@/"\ncluster_nodes = ["h1:7000", "h2:7001"]\n[site]\nid = "north"\n'
    ))
    assert two.redis.cluster_nodes == (("h1", 7000), ("h2", 7001)) and two.site.id == "north"
    assert describe(two.redis) == "cluster via h1:7000,h2:7001"
    assert Config.from_mapping(parse_toml(BASE)).site.id == ""


@pytest.mark.parametrize(("text", "message"), [
    ('[site]\nid = "North"\n', "site.id: expected 1-32 lowercase"),
    ('[site]\nid = "a{b}"\n', "site.id: expected 1-32 lowercase"),
    ('[redis]\ncluster_nodes = ["h:0"]\n', "redis.cluster_nodes[0]: expected a port"),
    ('[redis]\nurl = "redis+cluster://h:1"\ncluster_nodes = ["h:2"]\n', "redis.cluster_nodes: give the cluster"),
    ('[redis]\nsentinels = ["h:1"]\ncluster_nodes = ["h:2"]\n', "redis.cluster_nodes: Redis Cluster and Redis"),
    ('[redis]\nurl = "unix:///x"\ncluster_nodes = ["h:2"]\n', "redis.url: with redis.cluster_nodes"),
    ('[redis]\nurl = "redis+cluster://h:1/2"\n', "redis.url: a Redis Cluster has only database 0"),
    ('[redis]\nurl = "redis+cluster://h:1"\nwait_replicas = 1\n', "redis.wait_replicas: not available with Redis"),
])
def test_bad_site_and_cluster_settings_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_mapping(parse_toml(BASE + text))
    assert str(caught.value).startswith(message)


@pytest_twisted.ensureDeferred
async def test_the_daemons_client_is_a_cluster_client_that_finds_every_slot(cluster_url: str) -> None:
    client = make_redis_client(RedisConfig(url=cluster_url))
    try:
        assert isinstance(client, RedisCluster)
        for site in ("north", "south", "east"):
            await as_deferred(client.set(f"shenava:{site_tag('stats', site)}:x", site))
        assert _s(await as_deferred(client.get("shenava:{stats:east}:x"))) == "east"
    finally:
        await as_deferred(client.aclose())


def test_check_config_reads_the_cluster_and_the_register(cluster_url: str, tmp_path: Path) -> None:
    path = tmp_path / "shenava.toml"
    path.write_text(BASE + f'[redis]\nurl = "{cluster_url}"\n[site]\nid = "north"\n'
                    '[state]\nfolder = "/tmp"\n', encoding="utf-8")
    findings = {f.code: f for f in check_config(path, redis=True)}
    assert findings["redis.cluster_state"].severity.value == "ok"
    assert findings["redis.cluster_replicas"].severity.value == "warning"  # no replicas in the test cluster
    assert "site 'north'" in findings["site.id"].message
    assert "redis.unreachable" not in findings  # the durability settings of a master were read


@pytest_twisted.ensureDeferred
async def test_a_named_sites_batch_on_a_cluster_is_one_transaction_per_slot_and_reads_back(
    cluster_client: Any,
) -> None:
    from agent_stats.ledger import Interval
    from agent_stats.states import AgentState
    from agent_stats.store import LedgerWrite

    store = StatsStore(cluster_client, SLA, site="north")
    ops: list[Any] = [
        LedgerWrite(f"a{i}", (Interval(T0, T0 + 10, AgentState.READY),), T0 + 10, AgentState.ON_CALL, None)
        for i in range(1, 6)
    ]
    ops += [_answered("c1", 5.0), HeartbeatWrite(T0 + 11)]
    await as_deferred(store.apply(ops))  # a cross-slot MULTI would fail here (CROSSSLOT)
    again = StatsStore(cluster_client, SLA, site="north")
    loaded = await as_deferred(again.load_ledgers([f"a{i}" for i in range(1, 6)], T0 + 20))
    assert sorted(loaded) == [f"a{i}" for i in range(1, 6)]
    assert loaded["a3"].ledger.state is AgentState.ON_CALL
    assert (await as_deferred(again.day_counts("support", again.day_of(T0)))).offered == 1
    assert await as_deferred(again.agents()) == [f"a{i}" for i in range(1, 6)]
    slots = {again._intervals_key(f"a{i}", again.day_of(T0)) for i in range(1, 6)}
    from redis.crc import key_slot

    assert len({key_slot(k.encode()) for k in slots}) > 1


@pytest_twisted.ensureDeferred
async def test_each_site_has_its_own_leader_lease_on_a_cluster(cluster_client: Any) -> None:
    from twisted.internet.task import Clock

    from shenava.leader import LEADER

    clock = Clock()
    north = LeaderLease(cluster_client, "shenava", "n1", clock, site="north")
    south = LeaderLease(cluster_client, "shenava", "s1", clock, site="south")
    north_pair = LeaderLease(cluster_client, "shenava", "n2", clock, site="north")
    for lease in (north, south, north_pair):
        await lease._renew_or_acquire()  # the lease's scripts, on its site's slot
    assert (north.role, south.role) == (LEADER, LEADER)  # a site never waits for another's
    assert north_pair.role != LEADER  # but the pair of one site keeps one leader
    await north.release()
    await north_pair._renew_or_acquire()
    assert north_pair.role == LEADER and north_pair.fence == "2|n2"
    # the call state of a site, fenced by its own lease, in one script on one slot
    calls = CallStateStore(cluster_client, "shenava", "north")
    assert await as_deferred(calls.write({"c1": {"x": 1}}, [], fence=north_pair.fence)) >= 0


@pytest_twisted.ensureDeferred
async def test_the_leaders_redis_gate_holds_on_a_cluster_client(cluster_url: str) -> None:
    from shenava.leader import NotLeaderError, guard_redis

    client = make_redis_client(RedisConfig(url=cluster_url))
    allowed = [True]
    guard_redis(client, lambda: allowed[0])
    script = client.register_script("return redis.call('GET', KEYS[1])")
    try:
        await as_deferred(client.set("{stats:north}:k", "1"))
        allowed[0] = False
        with pytest.raises(NotLeaderError):
            await as_deferred(client.set("{stats:north}:k", "2"))
        with pytest.raises(NotLeaderError):
            await as_deferred(client.pipeline(transaction=True).set("{stats:north}:k", "3").execute())
        with pytest.raises(NotLeaderError):
            await as_deferred(script(keys=["{stats:north}:k"]))

        async def watched() -> None:
            async with client.pipeline(transaction=True) as pipe:
                await pipe.watch("{stats:north}:k")

        with pytest.raises(NotLeaderError):
            await as_deferred(watched())
        allowed[0] = True
        assert _s(await as_deferred(script(keys=["{stats:north}:k"]))) == "1"
    finally:
        await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_a_batch_over_many_agents_stays_within_the_nodes_connection_limit(cluster_url: str) -> None:
    from agent_stats.ledger import Interval
    from agent_stats.slot_pipes import CONCURRENCY
    from agent_stats.states import AgentState
    from agent_stats.store import LedgerWrite

    assert CONCURRENCY < 10
    client = make_redis_client(RedisConfig(url=cluster_url, max_connections=10))
    try:
        store = StatsStore(client, SLA, site="north")
        agents = [f"a{i}" for i in range(200)]
        await as_deferred(store.apply([
            LedgerWrite(a, (Interval(T0, T0 + 10, AgentState.READY),), T0 + 10, AgentState.ON_CALL, None)
            for a in agents
        ]))
        loaded = await as_deferred(store.load_ledgers(agents, T0 + 20))
        assert len(loaded) == 200 and all(s.repaired == 0 for s in loaded.values())
    finally:
        await as_deferred(client.aclose())


@pytest.mark.parametrize("redis_section", [
    'url = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"',
    'cluster_nodes = ["127.0.0.1:7000"]',
    'url = "redis+sentinel://127.0.0.1:26379/mymaster/0"',
    'sentinels = ["127.0.0.1:26379"]',
])
def test_the_users_store_takes_every_kind_of_redis_setting(redis_section: str) -> None:
    """The daemon's sign-in store is built from ``[redis]`` as the daemon's client is (no I/O yet)."""
    from shenava.users import RedisUserStore, store_for

    config = Config.from_mapping(parse_toml(BASE + f"[redis]\n{redis_section}\n"))
    assert isinstance(store_for(config), RedisUserStore)


def test_the_users_are_shared_through_the_cluster(cluster_url: str) -> None:
    from shenava.users import Role, User, store_for

    config = Config.from_mapping(parse_toml(BASE + f'[redis]\nurl = "{cluster_url}"\n'))
    store = store_for(config)
    assert store is not None
    store.put(User("sara", Role.SUPERVISOR, "hash", T0))
    other = store_for(Config.from_mapping(parse_toml(BASE + f'[redis]\nurl = "{cluster_url}"\n[site]\nid = "south"\n')))
    assert other is not None and other.get("sara") == User("sara", Role.SUPERVISOR, "hash", T0)


@pytest_twisted.ensureDeferred
async def test_a_single_site_install_reads_no_statistics_for_the_centre(redis_client: Redis) -> None:
    from twisted.internet.task import Clock

    from agent_stats.centre import CentreBoard

    board = CentreBoard(redis_client, "shenava", "", SLA, Clock(), name="Shenava", timezone="UTC")
    figures = await as_deferred(board.refresh())
    assert figures.sites == () and board.as_dict() is None  # the page has this site's own figures
    await as_deferred(register_site(redis_client, "shenava", "north", name="North", timezone="UTC"))
    figures = await as_deferred(board.refresh())
    assert [s.site for s in figures.sites] == ["", "north"]
    body = board.as_dict()
    assert body is not None and body["this_site"] == ""

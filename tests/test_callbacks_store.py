"""CallbackStore against a real redis-server: merging, the dial lease, two daemons."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_twisted
from redis.asyncio import Redis

from routing.callback_store import DUE_HINT_MAX_S, CallbackStore, Lease
from routing.callbacks import (
    AttemptOutcome,
    CallingHours,
    DialPolicy,
    LeaseLostError,
    Resolution,
    abandon_reason,
    follow_up_reason,
    ivr_request_reason,
    unresolved_complaint_reason,
    voicemail_reason,
)
from shenava_base.aio import as_deferred

TEHRAN = ZoneInfo("Asia/Tehran")
T0 = datetime(2025, 3, 1, 10, 0, tzinfo=TEHRAN).timestamp()
HOURS = CallingHours.always(TEHRAN)
POLICY = DialPolicy(max_attempts=2, backoff_s=(300.0,), lease_ms=60_000)


def store_for(client: Redis, policy: DialPolicy = POLICY) -> CallbackStore:
    return CallbackStore(client, "shenava", policy)


@pytest_twisted.ensureDeferred
async def test_every_source_merges_into_one_open_flag(redis_client: Redis) -> None:
    store = store_for(redis_client)
    abandon = abandon_reason("call-1", T0, 30, POLICY)
    assert abandon is not None
    reasons = [
        abandon,
        ivr_request_reason("call-2", T0 + 5, T0 + 200),
        voicemail_reason("rec-1", T0 + 10),
        follow_up_reason("a1", T0 + 20, T0 + 3600, "refund"),
        unresolved_complaint_reason("41415926", T0 + 30, 8 * 86400),
    ]
    for i, reason in enumerate(reasons):
        flag = await as_deferred(store.raise_reason("0912-123-4567", reason, T0 + i))
    assert flag.flag_id == "cb-0001" and len(flag.reasons) == 5
    assert await as_deferred(store.has_open_flag("09121234567"))
    assert not await as_deferred(store.has_open_flag("anonymous"))
    await as_deferred(store.attach_transcript("09121234567", "rec-1", "meter broken", T0 + 40))
    stored = await as_deferred(store.get("cb-0001"))
    assert stored.transcripts == ("meter broken",) and stored.due_at == T0
    keys = set(await as_deferred(redis_client.keys("*")))
    assert keys == {
        "shenava:{callbacks}:seq", "shenava:{callbacks}:flag:cb-0001",
        "shenava:{callbacks}:open", "shenava:{callbacks}:due",
        "shenava:{callbacks}:ver:09121234567",
    }


@pytest_twisted.ensureDeferred
async def test_concurrent_raises_for_one_number_make_one_flag(redis_client: Redis) -> None:
    clients = [Redis.from_url(_url(redis_client), decode_responses=True) for _ in range(4)]
    try:
        stores = [store_for(c) for c in clients]
        flags = await as_deferred(
            asyncio.gather(
                *(
                    stores[i % 4].raise_reason("09121234567", voicemail_reason(f"rec-{i}", T0), T0)
                    for i in range(20)
                )
            )
        )
        assert len({f.flag_id for f in flags}) == 1  # ids lost in the race are skipped
        open_flags = await as_deferred(store_for(redis_client).open_flags())
        assert len(open_flags) == 1 and len(open_flags[0].reasons) == 20
    finally:
        for c in clients:
            await as_deferred(c.aclose())


def _url(client: Redis) -> str:
    kw = client.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw.get('db', 0)}"


@pytest_twisted.ensureDeferred
async def test_claim_attempt_outcome_closes_only_on_outcome(redis_client: Redis) -> None:
    store = store_for(redis_client)
    await as_deferred(store.raise_reason("09121234567", voicemail_reason("rec-1", T0), T0))
    claim = await as_deferred(store.claim_due(T0 + 1, HOURS, owner="d1"))
    assert claim is not None
    flag = await as_deferred(store.start_attempt(claim.lease, T0 + 2, "a1"))
    assert flag.attempt_in_progress is not None
    flag = await as_deferred(
        store.record_outcome(claim.lease, 1, AttemptOutcome.NO_ANSWER, T0 + 30, by="a1")
    )
    assert flag.is_open
    assert await as_deferred(store.claim_due(T0 + 31, HOURS, owner="d1")) is None  # backoff
    assert await as_deferred(store.backlog(T0 + 31)) == 0
    claim = await as_deferred(store.claim_due(T0 + 330, HOURS, owner="d1"))
    assert claim is not None
    await as_deferred(store.start_attempt(claim.lease, T0 + 331, "a2"))
    flag = await as_deferred(
        store.record_outcome(claim.lease, 2, AttemptOutcome.BUSY, T0 + 340, by="a2")
    )
    assert flag.resolution is Resolution.UNREACHABLE
    attention = await as_deferred(store.needing_attention())
    assert [f.flag_id for f in attention] == [flag.flag_id]
    await as_deferred(store.acknowledge(flag.flag_id, T0 + 400, by="sup1"))
    assert await as_deferred(store.needing_attention()) == []
    assert not await as_deferred(store.has_open_flag("09121234567"))
    # a new reason after closing opens a new flag
    again = await as_deferred(store.raise_reason("09121234567", voicemail_reason("rec-2", T0 + 500), T0 + 500))
    assert again.flag_id == "cb-0002"


@pytest_twisted.ensureDeferred
async def test_no_claim_outside_calling_hours(redis_client: Redis) -> None:
    store = store_for(redis_client)
    hours = CallingHours.from_mapping({"timezone": "Asia/Tehran", "windows": {"daily": ["12:00-13:00"]}})
    await as_deferred(store.raise_reason("09121234567", voicemail_reason("rec-1", T0), T0))
    assert await as_deferred(store.claim_due(T0 + 60, hours, owner="d1")) is None
    assert await as_deferred(store.claim_due(T0 + 2 * 3600, hours, owner="d1")) is not None


@pytest_twisted.ensureDeferred
async def test_two_daemons_never_dial_one_flag_at_once(redis_client: Redis) -> None:
    other = Redis.from_url(_url(redis_client), decode_responses=True)
    try:
        d1, d2 = store_for(redis_client), store_for(other)
        for i in range(5):
            await as_deferred(d1.raise_reason(f"0912000000{i}", voicemail_reason(f"r{i}", T0), T0))
        # both daemons claim as fast as they can, concurrently
        claims = await as_deferred(
            asyncio.gather(*(s.claim_due(T0 + 1, HOURS, owner=n) for _ in range(5) for s, n in ((d1, "d1"), (d2, "d2"))))
        )
        got = [c for c in claims if c is not None]
        assert sorted(c.flag.flag_id for c in got) == [f"cb-000{i}" for i in range(1, 6)]
        # the losing daemon can neither start an attempt nor release the lease
        lease = got[0].lease
        stolen = Lease(lease.flag_id, "d9:forged")
        with pytest.raises(LeaseLostError):
            await as_deferred(d2.start_attempt(stolen, T0 + 2, "a9"))
        assert not await as_deferred(d2.release(stolen))
        with pytest.raises(LeaseLostError):
            await as_deferred(d2.extend(stolen))
        await as_deferred(d1.extend(lease))
        # after release, the flag can be claimed again (no attempt was made)
        assert await as_deferred(d1.release(lease))
        again = await as_deferred(d2.claim_due(T0 + 3, HOURS, owner="d2"))
        assert again is not None and again.flag.flag_id == lease.flag_id
    finally:
        await as_deferred(other.aclose())


@pytest_twisted.ensureDeferred
async def test_a_dead_daemons_attempt_is_interrupted_when_its_lease_expires(redis_client: Redis) -> None:
    store = store_for(redis_client, DialPolicy(max_attempts=3, backoff_s=(0.0,), lease_ms=1000))
    await as_deferred(store.raise_reason("09121234567", voicemail_reason("rec-1", T0), T0))
    claim = await as_deferred(store.claim_due(T0, HOURS, owner="d1"))
    assert claim is not None
    await as_deferred(store.start_attempt(claim.lease, T0, "a1"))
    # while the lease is held, nobody else gets the flag
    assert await as_deferred(store.claim_due(T0 + 1, HOURS, owner="d2")) is None
    # d1 dies; its lease expires (simulated: the key vanishes as PX would make it)
    await as_deferred(redis_client.delete("shenava:{callbacks}:lease:" + claim.lease.flag_id))
    second = await as_deferred(store.claim_due(T0 + 200, HOURS, owner="d2"))
    assert second is not None
    assert second.flag.attempts[0].outcome is AttemptOutcome.INTERRUPTED
    with pytest.raises(LeaseLostError):
        await as_deferred(store.start_attempt(claim.lease, T0 + 201, "a1"))
    # d1's late outcome is still recorded, not lost
    late = await as_deferred(
        store.record_outcome(claim.lease, 1, AttemptOutcome.NO_ANSWER, T0 + 202, by="a1")
    )
    assert late.attempts[0].outcome is AttemptOutcome.NO_ANSWER
    assert late.history[-1].event == "late_outcome"


@pytest_twisted.ensureDeferred
async def test_a_reason_merged_while_dialling_is_kept(redis_client: Redis) -> None:
    store = store_for(redis_client)
    await as_deferred(store.raise_reason("09121234567", voicemail_reason("rec-1", T0), T0))
    claim = await as_deferred(store.claim_due(T0, HOURS, owner="d1"))
    assert claim is not None
    await as_deferred(store.start_attempt(claim.lease, T0, "a1"))
    await as_deferred(store.raise_reason("09121234567", follow_up_reason("a2", T0 + 5, T0 + 5), T0 + 5))
    flag = await as_deferred(
        store.record_outcome(claim.lease, 1, AttemptOutcome.ANSWERED, T0 + 60, by="a1")
    )
    assert flag.resolution is Resolution.ANSWERED and len(flag.reasons) == 2


@pytest_twisted.ensureDeferred
async def test_purge_removes_transcripts_of_old_closed_flags(redis_client: Redis) -> None:
    store = store_for(redis_client)
    flag = await as_deferred(store.raise_reason("09121234567", voicemail_reason("rec-1", T0, "private words"), T0))
    await as_deferred(store.cancel(flag.flag_id, T0 + 10, by="sup1", note="customer called in"))
    assert await as_deferred(store.purge_closed(T0 + 100, retention_s=1000)) == []
    assert await as_deferred(store.purge_closed(T0 + 2000, retention_s=1000)) == [flag.flag_id]
    purged = await as_deferred(store.get(flag.flag_id))
    assert purged.transcripts == () and purged.purged_at == T0 + 2000
    assert purged.history[-1].event == "purged"
    assert await as_deferred(store.purge_closed(T0 + 3000, retention_s=1000)) == []


async def _commands(client: Redis) -> dict[str, int]:
    raw = await client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in raw.items()}


@pytest_twisted.ensureDeferred
async def test_a_claim_does_not_ask_redis_about_flags_the_daemon_is_dialling(
    redis_client: Redis,
) -> None:
    """Under traffic the dialer claims on every freed agent; the flags it is
    dialling were asked about each time (a GET for the site and a refused SET of
    the lease each): now they are skipped, and a flag's site is read once."""
    store = store_for(redis_client)
    for n in range(3):
        await as_deferred(store.raise_reason(f"0912123456{n}", voicemail_reason(f"rec-{n}", T0), T0))
    dialling = set()
    for _ in range(3):
        claim = await as_deferred(store.claim_due(T0 + 1, HOURS, owner="d1", skip=dialling))
        assert claim is not None and claim.flag.flag_id not in dialling
        dialling.add(claim.flag.flag_id)
    before = await as_deferred(_commands(redis_client))
    for _ in range(5):
        assert await as_deferred(store.claim_due(T0 + 2, HOURS, owner="d1", skip=dialling)) is None
    after = await as_deferred(_commands(redis_client))
    spent = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    spent["info"] = spent.get("info", 0) - 1
    # the claim that took the last due flag saw nothing else due: none of these reads
    assert {k: n for k, n in spent.items() if n} == {}
    before = await as_deferred(_commands(redis_client))
    assert await as_deferred(store.claim_due(T0 + 2 + DUE_HINT_MAX_S, HOURS, owner="d1", skip=dialling)) is None
    after = await as_deferred(_commands(redis_client))
    assert after["zrange"] - before["zrange"] == 1  # read again after DUE_HINT_MAX_S at most
    assert after.get("set", 0) == before.get("set", 0)  # the flags being dialled: not asked about
    # another daemon's lease is still asked about (and refused): the site is not read again
    other = store_for(redis_client)
    before = await as_deferred(_commands(redis_client))
    assert await as_deferred(other.claim_due(T0 + 2, HOURS, owner="d2")) is None
    assert await as_deferred(other.claim_due(T0 + 2, HOURS, owner="d2")) is None
    after = await as_deferred(_commands(redis_client))
    # the site once per flag, not once per claim; the lease and the flag in one round trip
    assert after["get"] - before["get"] == 3 + 2 * 3
    assert after["set"] - before["set"] == 6


@pytest_twisted.ensureDeferred
async def test_a_write_of_a_numbers_flag_fails_a_watch_of_its_version(redis_client: Redis) -> None:
    """The version is set (not incremented) by every write: a raise that watched it
    before another write of the same number must fail, even with the same value."""
    from redis.exceptions import WatchError

    store = store_for(redis_client)
    await as_deferred(store.raise_reason("09121234567", voicemail_reason("rec-1", T0), T0))
    version = "shenava:{callbacks}:ver:09121234567"
    assert await as_deferred(redis_client.get(version)) == "1"
    assert 0 < await as_deferred(redis_client.ttl(version))

    async def raced() -> None:
        async with redis_client.pipeline(transaction=True) as pipe:
            await pipe.watch(version)
            await store.raise_reason("09121234567", voicemail_reason("rec-2", T0), T0 + 1)
            pipe.multi()
            pipe.set("shenava:{callbacks}:x", "1")
            await pipe.execute()

    with pytest.raises(WatchError):
        await as_deferred(raced())


async def _spent(redis_client: Redis, work: Any) -> dict[str, int]:
    """The commands Redis executed for ``work`` (scripts' own included), by name."""
    before = await _commands(redis_client)
    await work
    after = await _commands(redis_client)
    out = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    out["info"] = out.get("info", 0) - 1
    return {k: n for k, n in out.items() if n}


@pytest_twisted.ensureDeferred
async def test_raising_a_reason_is_one_script(redis_client: Redis) -> None:
    """A new flag: one EVALSHA checking and writing (HSETNX of the number's open
    flag, the flag, its version, the due sets, the journal operation's marker),
    no WATCH/MULTI/EXEC and no INCR (ids are reserved in blocks). Before: WATCH,
    EXISTS, HGET, INCR, MULTI, SET x3, HSET, ZADD x2, EXEC (13, five round trips)."""
    store = CallbackStore(redis_client, "shenava", POLICY, site="north")
    await as_deferred(store.raise_reason("09120000000", voicemail_reason("rec-0", T0), T0))  # the id block
    spent = await as_deferred(_spent(redis_client, store.raise_reason(
        "09121234567", voicemail_reason("rec-1", T0), T0, op_id="op-1")))
    assert spent == {"evalsha": 1, "hsetnx": 1, "set": 3, "zadd": 2}
    # the next reason for the number merges into the flag as this store wrote it
    spent = await as_deferred(_spent(redis_client, store.raise_reason(
        "09121234567", abandon_reason("call-2", T0 + 5, 30, POLICY), T0 + 5, op_id="op-2")))
    assert spent == {"evalsha": 1, "get": 1, "set": 3, "zadd": 2}
    flag = await as_deferred(store.get("cb-0002"))
    assert [r.source for r in flag.reasons] == ["rec-1", "call-2"] and flag.site == "north"
    due = await as_deferred(redis_client.zscore("shenava:{callbacks}:due@north", "cb-0002"))
    assert due == await as_deferred(redis_client.zscore("shenava:{callbacks}:due", "cb-0002")) == T0
    assert await as_deferred(redis_client.hget("shenava:{callbacks}:open", "09121234567")) == "cb-0002"


@pytest_twisted.ensureDeferred
async def test_a_raise_finds_the_flag_another_daemon_wrote_or_changed(redis_client: Redis) -> None:
    """What a store assumed (no open flag; the flag as it last wrote it) is checked by
    the script; when another daemon changed it, the reason merges into what is there."""
    other = Redis.from_url(_url(redis_client), decode_responses=True)
    try:
        d1, d2 = store_for(redis_client), store_for(other)
        first = await as_deferred(d1.raise_reason("09121234567", voicemail_reason("rec-1", T0), T0))
        # d2 assumes a new flag: the script answers d1's, and d2 merges into it
        second = await as_deferred(d2.raise_reason("09121234567", voicemail_reason("rec-2", T0), T0 + 1))
        assert second.flag_id == first.flag_id and len(second.reasons) == 2
        # d1's memory of the flag is stale now: the script answers the stored one
        third = await as_deferred(d1.raise_reason("09121234567", voicemail_reason("rec-3", T0), T0 + 2))
        assert third.flag_id == first.flag_id
        assert [r.source for r in third.reasons] == ["rec-1", "rec-2", "rec-3"]
        # d2 closes it: d1's next reason opens a new flag, with an id of d1's block
        await as_deferred(d2.cancel(first.flag_id, T0 + 3, by="sup", note="done"))
        fourth = await as_deferred(d1.raise_reason("09121234567", voicemail_reason("rec-4", T0), T0 + 4))
        assert fourth.flag_id == "cb-0002" and [r.source for r in fourth.reasons] == ["rec-4"]
        # an id d2 reserved but did not use (the number had a flag) is its next one
        fifth = await as_deferred(d2.raise_reason("09120000000", voicemail_reason("rec-5", T0), T0 + 5))
        assert fifth.flag_id == "cb-0021"
        stored = {f.flag_id: f for f in await as_deferred(d1.open_flags())}
        assert set(stored) == {"cb-0002", "cb-0021"} and stored["cb-0002"].number == "09121234567"
    finally:
        await as_deferred(other.aclose())


@pytest_twisted.ensureDeferred
async def test_a_journal_operation_is_applied_once(redis_client: Redis) -> None:
    """A replayed operation changes nothing, while its flag is open and after it closed."""
    store = store_for(redis_client)
    flag = await as_deferred(store.raise_reason("09121234567", voicemail_reason("rec-1", T0), T0, op_id="op-1"))
    assert flag is not None
    fresh = store_for(redis_client)  # a restarted daemon: no memory of the flag
    assert await as_deferred(fresh.raise_reason(
        "09121234567", voicemail_reason("rec-1", T0), T0, op_id="op-1")) is None
    assert await as_deferred(store.raise_reason(
        "09121234567", voicemail_reason("rec-1", T0), T0, op_id="op-1")) is None
    await as_deferred(store.cancel(flag.flag_id, T0 + 1, by="sup", note="reached"))
    for s in (store, store_for(redis_client)):
        assert await as_deferred(s.raise_reason(
            "09121234567", voicemail_reason("rec-1", T0), T0 + 2, op_id="op-1")) is None
    assert await as_deferred(store.open_flags()) == []
    assert await as_deferred(redis_client.hgetall("shenava:{callbacks}:open")) == {}
    # a new operation for the number opens a new flag
    again = await as_deferred(store.raise_reason(
        "09121234567", voicemail_reason("rec-2", T0), T0 + 3, op_id="op-2"))
    assert again is not None and again.flag_id != flag.flag_id and again.is_open


@pytest_twisted.ensureDeferred
async def test_raising_on_a_cluster_is_one_script_in_the_callbacks_slot(
    cluster_client: Any, redis_cluster: Any
) -> None:
    import redis as sync_redis

    store = CallbackStore(cluster_client, "shenava", POLICY, site="north")
    other = CallbackStore(cluster_client, "shenava", POLICY)
    flag = await as_deferred(store.raise_reason("09121234567", voicemail_reason("rec-1", T0), T0, op_id="op-1"))
    for host, port in redis_cluster.addresses:  # a failover: the new master has no scripts
        with sync_redis.Redis(host=host, port=port) as node:
            node.script_flush()
    merged = await as_deferred(other.raise_reason(
        "09121234567", follow_up_reason("a1", T0 + 1, T0 + 1), T0 + 1, op_id="op-2"))
    assert flag is not None and merged is not None and merged.flag_id == flag.flag_id
    assert merged.site == "north" and len(merged.reasons) == 2
    assert await as_deferred(other.raise_reason(
        "09121234567", follow_up_reason("a1", T0 + 1, T0 + 1), T0 + 1, op_id="op-2")) is None
    claim = await as_deferred(store.claim_due(T0 + 2, HOURS, owner="d1"))
    assert claim is not None and claim.flag.flag_id == flag.flag_id


@pytest_twisted.ensureDeferred
async def test_a_dial_from_claim_to_outcome_is_four_round_trips_and_18_commands(redis_client: Redis) -> None:
    """Claim (the due set by rank, then the lease and the flag together), the attempt
    and the outcome (one checked script each, from the flag as the claim read it; the
    lease given back in the outcome's). Before: 27 commands (WATCH/MULTI/EXEC around
    each change, an UNWATCH after the claim's read, a script to release the lease)."""
    store = store_for(redis_client)
    await as_deferred(store.raise_reason("09121234567", voicemail_reason("rec-1", T0), T0))
    before = await as_deferred(_commands(redis_client))
    claim = await as_deferred(store.claim_due(T0 + 1, HOURS, owner="d1"))
    assert claim is not None
    await as_deferred(store.start_attempt(claim.lease, T0 + 2, "a1"))
    flag = await as_deferred(store.record_outcome(claim.lease, 1, AttemptOutcome.ANSWERED, T0 + 30, by="a1"))
    after = await as_deferred(_commands(redis_client))
    spent = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    spent["info"] = spent.get("info", 0) - 1
    assert {k: n for k, n in spent.items() if n} == {
        "zrange": 1, "set": 4, "get": 5, "evalsha": 2, "zadd": 2, "hdel": 1, "zrem": 2, "del": 1,
    }
    assert flag.resolution is Resolution.ANSWERED
    assert await as_deferred(redis_client.exists("shenava:{callbacks}:lease:" + flag.flag_id)) == 0
    assert await as_deferred(store.open_flags()) == []
    assert [f.flag_id for f in await as_deferred(store.closed_between(T0, T0 + 60))] == [flag.flag_id]


@pytest_twisted.ensureDeferred
async def test_claims_skip_the_read_only_while_nothing_can_be_due(redis_client: Redis) -> None:
    """What the last read and this store's own writes say is trusted at most
    DUE_HINT_MAX_S: a flag another daemon made due is claimed within it; a flag this
    store wrote due, a lease given back, a flag no longer skipped: at the next claim."""
    store = store_for(redis_client)
    assert await as_deferred(store.claim_due(T0, HOURS, owner="d1")) is None  # nothing at all
    # raised here, due in 60 s: no read before then, claimed when due
    await as_deferred(store.raise_reason("09120000001", ivr_request_reason("c1", T0, T0 + 60), T0))
    before = await as_deferred(_commands(redis_client))
    assert await as_deferred(store.claim_due(T0 + 5, HOURS, owner="d1")) is None
    assert (await as_deferred(_commands(redis_client))).get("zrange", 0) == before.get("zrange", 0)
    first = await as_deferred(store.claim_due(T0 + 60, HOURS, owner="d1"))
    assert first is not None and first.flag.number == "09120000001"
    # given back without an attempt (the customer was on a call): read at the next claim
    await as_deferred(store.release(first.lease))
    held = {first.flag.flag_id}
    assert await as_deferred(store.claim_due(T0 + 61, HOURS, owner="d1", skip=held)) is None
    again = await as_deferred(store.claim_due(T0 + 62, HOURS, owner="d1"))  # no longer skipped
    assert again is not None and again.flag.flag_id == first.flag.flag_id
    await as_deferred(store.release(again.lease))
    await as_deferred(store.cancel(again.flag.flag_id, T0 + 63, by="sup", note="reached"))
    assert await as_deferred(store.claim_due(T0 + 64, HOURS, owner="d1")) is None
    # another daemon raises a flag due at once: not seen until the hint runs out
    other = store_for(redis_client)
    await as_deferred(other.raise_reason("09120000002", voicemail_reason("rec-2", T0 + 64), T0 + 64))
    assert await as_deferred(store.claim_due(T0 + 65, HOURS, owner="d1")) is None
    late = await as_deferred(store.claim_due(T0 + 64 + DUE_HINT_MAX_S, HOURS, owner="d1"))
    assert late is not None and late.flag.number == "09120000002"
    # dialled by this store: the outcome it wrote says when the flag is due again
    await as_deferred(store.start_attempt(late.lease, T0 + 74, "a1"))
    await as_deferred(store.record_outcome(late.lease, 1, AttemptOutcome.NO_ANSWER, T0 + 75, by="a1"))
    before = await as_deferred(_commands(redis_client))
    assert await as_deferred(store.claim_due(T0 + 76, HOURS, owner="d1")) is None
    assert (await as_deferred(_commands(redis_client))).get("zrange", 0) == before.get("zrange", 0)


@pytest_twisted.ensureDeferred
async def test_a_flag_written_while_a_claim_reads_is_claimed_next(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raise whose write lands after a claim's due-set read, its reply before the
    read's: the claim that found nothing due put the hint past the new flag (up to
    ``DUE_HINT_MAX_S``), and the next claim did not read. The read's reply is held
    here until the raise is done."""
    store = store_for(redis_client)
    zrange = redis_client.zrange

    async def read_then_raise(*args: Any, **kwargs: Any) -> Any:
        pairs = await zrange(*args, **kwargs)
        await store.raise_reason("09121234567", voicemail_reason("rec-1", T0), T0)
        return pairs

    monkeypatch.setattr(redis_client, "zrange", read_then_raise)
    assert await as_deferred(store.claim_due(T0 + 1, HOURS, owner="d1")) is None  # read before the raise
    monkeypatch.setattr(redis_client, "zrange", zrange)
    claim = await as_deferred(store.claim_due(T0 + 1, HOURS, owner="d1"))
    assert claim is not None and claim.flag.number == "09121234567"

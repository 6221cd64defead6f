"""Opening a complaint is one checked script: its commands, replays, and changes made meanwhile.

Against a real redis-server (and the 3-master cluster for the slot check): the
script must keep what the ``WATCH`` transaction guaranteed: a reference opened
twice (a journal replay after an ambiguous failure) is kept once, as first
stored; a repeat is linked to the caller's latest complaint even when another
complaint of the caller, or a change to the previous one, lands between the
read and the write.
"""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
from redis.asyncio import Redis

from complaints.complaint import Channel, add_note, complaint_from_dict, complaint_to_dict
from complaints.store import ComplaintStore
from shenava_base.aio import as_deferred

T0 = 1_740_800_000.0
NUMBER = "09121234567"


async def _commands(client: Redis) -> dict[str, int]:
    raw = await client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in raw.items()}


def _spent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    out = {k: n - before.get(k, 0) for k, n in after.items()}
    out["info"] = out.get("info", 0) - 1
    return {k: n for k, n in out.items() if n}


@pytest_twisted.ensureDeferred
async def test_a_new_callers_complaint_is_one_script_of_seven_commands(redis_client: Redis) -> None:
    store = ComplaintStore(redis_client, "shenava")
    await as_deferred(store.open(T0, category="billing", channel=Channel.IVR, number="09120000001"))
    before = await as_deferred(_commands(redis_client))
    c = await as_deferred(store.open(
        T0 + 1, category="billing", channel=Channel.IVR, number=NUMBER, reference="27959136",
    ))
    spent = _spent(before, await as_deferred(_commands(redis_client)))
    # before: watch 2, get 1, zrange 1, multi, set, zadd 3, incr, exec (11)
    assert spent == {"evalsha": 1, "zrange": 1, "set": 1, "zadd": 3, "incr": 1}
    stored = await as_deferred(store.get(c.reference))
    assert stored == c and await as_deferred(store.for_number(NUMBER)) == [c]


@pytest_twisted.ensureDeferred
async def test_a_replayed_reference_is_kept_once_as_first_stored(redis_client: Redis) -> None:
    store = ComplaintStore(redis_client, "shenava")
    first = await as_deferred(store.open(
        T0, category="billing", channel=Channel.IVR, number=NUMBER, reference="27959136", call_id="c1",
    ))
    later = await as_deferred(store.open(T0 + 60, category="other", channel=Channel.IVR, number=NUMBER))
    no_number = await as_deferred(store.open(T0, category="x", channel=Channel.IVR, reference="64131972"))
    changes = await as_deferred(redis_client.get("shenava:{complaints}:changes"))
    first = await as_deferred(store.get(first.reference))  # linked to the later one
    for _ in range(2):  # replayed (the journal after an ambiguous failure), later fields differ
        again = await as_deferred(store.open(
            T0 + 120, category="changed", channel=Channel.AGENT, number=NUMBER, reference="27959136",
        ))
        assert again == first
        assert await as_deferred(store.open(
            T0 + 120, category="changed", channel=Channel.AGENT, reference="64131972",
        )) == no_number
    assert await as_deferred(redis_client.get("shenava:{complaints}:changes")) == changes
    assert [c.reference for c in await as_deferred(store.for_number(NUMBER))] == [
        first.reference, later.reference]
    assert (await as_deferred(store.get(later.reference))).repeat_of == first.reference


class _ChangesPreviousWhenRead:
    """A client whose first ``GET`` of the previous complaint is answered, then that
    complaint changes in Redis (an agent's note) before the script runs."""

    def __init__(self, client: Redis, reference: str) -> None:
        self._client = client
        self._key = f"shenava:{{complaints}}:c:{reference}"
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def get(self, key: str) -> Any:
        raw = await self._client.get(key)
        if key == self._key:
            self.reads += 1
            if self.reads == 1:
                noted = add_note(complaint_from_dict(json.loads(raw)), "called back", T0 + 5, by="a1")
                await self._client.set(key, json.dumps(complaint_to_dict(noted), ensure_ascii=False))
        return raw


@pytest_twisted.ensureDeferred
async def test_a_repeat_is_linked_to_the_previous_complaint_as_it_is_when_written(
    redis_client: Redis,
) -> None:
    store = ComplaintStore(redis_client, "shenava")
    first = await as_deferred(store.open(T0, category="billing", channel=Channel.IVR, number=NUMBER))
    racing = _ChangesPreviousWhenRead(redis_client, first.reference)
    second = await as_deferred(ComplaintStore(racing, "shenava").open(
        T0 + 10, category="billing", channel=Channel.IVR, number=NUMBER,
    ))
    assert racing.reads == 2  # the first link was refused (the previous had changed), read again
    assert second.repeat_of == first.reference
    linked = await as_deferred(store.get(first.reference))
    assert linked.repeats == (second.reference,)
    assert [n.text for n in linked.notes] == ["called back"]  # the agent's note kept


@pytest_twisted.ensureDeferred
async def test_a_complaint_opened_meanwhile_becomes_the_one_linked(redis_client: Redis) -> None:
    """The script's guess (the caller's latest) is wrong: it says which is latest now."""
    store = ComplaintStore(redis_client, "shenava")
    a = await as_deferred(store.open(T0, category="billing", channel=Channel.IVR, number=NUMBER))
    b = await as_deferred(store.open(T0 + 1, category="billing", channel=Channel.IVR, number=NUMBER))
    c = await as_deferred(store.open(T0 + 2, category="billing", channel=Channel.IVR, number=NUMBER))
    assert (b.repeat_of, c.repeat_of) == (a.reference, b.reference)
    assert (await as_deferred(store.get(b.reference))).repeats == (c.reference,)
    assert (await as_deferred(store.get(a.reference))).repeats == (b.reference,)


@pytest_twisted.ensureDeferred
async def test_opening_on_a_cluster_stays_in_one_slot(cluster_client: Any) -> None:
    store = ComplaintStore(cluster_client, "shenava")
    a = await as_deferred(store.open(T0, category="billing", channel=Channel.IVR, number=NUMBER))
    b = await as_deferred(store.open(T0 + 1, category="billing", channel=Channel.IVR, number=NUMBER))
    assert b.repeat_of == a.reference
    assert await as_deferred(store.open(
        T0 + 2, category="x", channel=Channel.IVR, number=NUMBER, reference=b.reference,
    )) == b
    assert [x.reference for x in await as_deferred(store.for_number(NUMBER))] == [a.reference, b.reference]


@pytest_twisted.ensureDeferred
async def test_a_callers_complaints_and_reports_read_together_on_a_cluster(
    cluster_client: Any, redis_cluster: Any
) -> None:
    """One ``ZUNION`` of the caller's two indexes (one slot), then one ``MGET``; the
    cluster client finds ``ZUNION``'s keys itself (no ``COMMAND GETKEYS``)."""
    from complaints.abuse import AbuseCategory
    from tests.test_cluster_xread import _commands as cluster_commands

    store = ComplaintStore(cluster_client, "shenava")
    a = await as_deferred(store.open(T0, category="billing", channel=Channel.IVR, number=NUMBER))
    report = await as_deferred(store.add_report(
        T0 + 1, agent_id="a1", number=NUMBER, category=AbuseCategory.THREAT, note="",
    ))
    b = await as_deferred(store.open(T0 + 2, category="billing", channel=Channel.IVR, number=NUMBER))
    before = cluster_commands(redis_cluster)
    complaints, reports = await as_deferred(store.caller_records_for(NUMBER))
    after = cluster_commands(redis_cluster)
    spent = {k: n - before.get(k, 0) for k, n in after.items() if k in ("zunion", "mget", "command|getkeys")}
    assert {k: n for k, n in spent.items() if n} == {"zunion": 1, "mget": 1}
    assert [c.reference for c in complaints] == [a.reference, b.reference]
    assert [r.report_id for r in reports] == [report.report_id]
    assert await as_deferred(store.caller_records_for("09350000000")) == ([], [])

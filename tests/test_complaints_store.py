"""The register against a real redis-server: open, repeat links, search, update, export, IVR."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from redis.asyncio import Redis

from complaints.complaint import Channel, ComplaintStatus
from complaints.errors import InvalidStatusChangeError, PermissionDeniedError, UnknownComplaintError
from complaints.roles import Actor, Role
from complaints.service import ComplaintRegister, ComplaintUpdate, RegisterPolicy
from complaints.store import ComplaintQuery, ComplaintStore
from shenava.aio import as_deferred

T0 = 1_740_800_000.0
DAY = 86400.0
AGENT = Actor("a1", Role.AGENT)
SUP = Actor("sup1", Role.SUPERVISOR)


def register(client: Redis, policy: RegisterPolicy | None = None) -> ComplaintRegister:
    return ComplaintRegister(ComplaintStore(client, "shenava"), policy)


@pytest_twisted.ensureDeferred
async def test_open_get_and_keys(redis_client: Redis) -> None:
    reg = register(redis_client)
    c = await as_deferred(
        reg.open_complaint(
            T0, category="billing", channel=Channel.IVR, number="0912 123 4567", language="fa",
            account="778899", call_id="1700000000.1", ivr={"urgency": "high"},
        )
    )
    assert len(c.reference) == 8 and c.number == "09121234567"
    got = await as_deferred(reg.get(AGENT, c.reference))
    assert got["number"] == "0912***4567" and got["ivr"] == {"urgency": "high"}
    keys = set(await as_deferred(redis_client.keys("*")))
    assert keys == {
        "shenava:{complaints}:seq", f"shenava:{{complaints}}:c:{c.reference}",
        "shenava:{complaints}:all", "shenava:{complaints}:status:open",
        "shenava:{complaints}:number:09121234567", "shenava:{complaints}:changes",
    }
    with pytest.raises(UnknownComplaintError):
        await as_deferred(reg.get(AGENT, "27959136"))


@pytest_twisted.ensureDeferred
async def test_a_repeat_complaint_is_linked_and_raises_priority(redis_client: Redis) -> None:
    reg = register(redis_client)
    first = await as_deferred(reg.open_complaint(T0, category="billing", channel=Channel.IVR, number="09121234567"))
    ctx = await as_deferred(reg.caller_context("09121234567", T0 + 10))
    assert ctx.open_complaint and not ctx.repeat_complainant and not ctx.abusive_caller
    second = await as_deferred(
        reg.open_complaint(T0 + DAY, category="billing", channel=Channel.AGENT, number="09121234567", by="a1")
    )
    assert second.repeat_of == first.reference
    linked = await as_deferred(reg.store.get(first.reference))
    assert linked.repeats == (second.reference,)
    ctx = await as_deferred(reg.caller_context("09121234567", T0 + DAY + 60))
    assert ctx.repeat_complainant and ctx.open_references == (first.reference, second.reference)
    other = await as_deferred(reg.caller_context("09350000000", T0))
    assert not other.open_complaint and not other.repeat_complainant
    assert not (await as_deferred(reg.caller_context(None, T0))).open_complaint


@pytest_twisted.ensureDeferred
async def test_updates_check_roles_and_keep_history(redis_client: Redis) -> None:
    reg = register(redis_client)
    c = await as_deferred(reg.open_complaint(T0, category="billing", channel=Channel.IVR, number="09121234567"))
    view = await as_deferred(
        reg.update(AGENT, c.reference, ComplaintUpdate(status=ComplaintStatus.IN_PROGRESS, note="looking"), T0 + 1)
    )
    assert view["status"] == "in_progress" and view["notes"][0]["by"] == "a1"
    with pytest.raises(PermissionDeniedError):
        await as_deferred(reg.update(AGENT, c.reference, ComplaintUpdate(status=ComplaintStatus.CLOSED, note="x"), T0 + 2))
    with pytest.raises(PermissionDeniedError):
        await as_deferred(reg.update(AGENT, c.reference, ComplaintUpdate(redress="refund"), T0 + 2))
    with pytest.raises(InvalidStatusChangeError):
        await as_deferred(reg.update(SUP, c.reference, ComplaintUpdate(status=ComplaintStatus.CLOSED, note="x"), T0 + 2))
    await as_deferred(reg.update(SUP, c.reference, ComplaintUpdate(redress="refund", status=ComplaintStatus.RESOLVED), T0 + 3))
    view = await as_deferred(reg.update(SUP, c.reference, ComplaintUpdate(status=ComplaintStatus.CLOSED), T0 + 4))
    assert view["number"] == "09121234567"
    assert [(h["by"], h["action"]) for h in view["history"]] == [
        ("system", "opened"), ("a1", "note"), ("a1", "status"), ("sup1", "redress"),
        ("sup1", "status"), ("sup1", "status"),
    ]
    stored = await as_deferred(reg.store.get(c.reference))
    assert stored.status is ComplaintStatus.CLOSED
    closed = await as_deferred(reg.store.closed_before(T0 + 10))
    assert [x.reference for x in closed] == [c.reference]
    # the failed updates changed nothing
    assert len(stored.history) == 6


@pytest_twisted.ensureDeferred
async def test_search_list_and_export(redis_client: Redis) -> None:
    reg = register(redis_client)
    refs = []
    for i, (cat, num) in enumerate([("billing", "09121111111"), ("service", "09122222222"), ("billing", "09123333333")]):
        c = await as_deferred(reg.open_complaint(T0 + i, category=cat, channel=Channel.IVR, number=num))
        refs.append(c.reference)
    await as_deferred(reg.update(AGENT, refs[2], ComplaintUpdate(note="Meter reading wrong"), T0 + 10))
    await as_deferred(reg.update(AGENT, refs[1], ComplaintUpdate(status=ComplaintStatus.IN_PROGRESS), T0 + 11))

    newest = await as_deferred(reg.search(AGENT, ComplaintQuery()))
    assert [v["reference"] for v in newest] == refs[::-1]
    billing = await as_deferred(reg.search(AGENT, ComplaintQuery(category="billing", limit=1, offset=1)))
    assert [v["reference"] for v in billing] == [refs[0]]
    text = await as_deferred(reg.search(AGENT, ComplaintQuery(text="meter")))
    assert [v["reference"] for v in text] == [refs[2]]
    in_progress = await as_deferred(reg.search(AGENT, ComplaintQuery(statuses=frozenset({ComplaintStatus.IN_PROGRESS}))))
    assert [v["reference"] for v in in_progress] == [refs[1]]
    by_agent = await as_deferred(reg.search(AGENT, ComplaintQuery(handled_by="a1")))
    assert {v["reference"] for v in by_agent} == {refs[1], refs[2]}
    by_number = await as_deferred(reg.search(SUP, ComplaintQuery(number="0912-222-2222")))
    assert [v["reference"] for v in by_number] == [refs[1]]
    with pytest.raises(PermissionDeniedError):  # searching by number would unmask it
        await as_deferred(reg.search(AGENT, ComplaintQuery(number="09122222222")))
    window = await as_deferred(reg.search(AGENT, ComplaintQuery(since=T0 + 1, until=T0 + 1)))
    assert [v["reference"] for v in window] == [refs[1]]

    exported = json.loads(await as_deferred(reg.export(SUP, ComplaintQuery(limit=1))))
    assert len(exported) == 3 and exported[0]["number"] == "09123333333"
    csv_text = await as_deferred(reg.export(SUP, ComplaintQuery(category="billing"), "csv"))
    assert csv_text.count("\r\n") == 3 and csv_text.startswith("reference,status,")
    with pytest.raises(PermissionDeniedError):
        await as_deferred(reg.export(AGENT, ComplaintQuery()))


@pytest_twisted.ensureDeferred
async def test_the_ivr_status_option_reads_the_register(redis_client: Redis) -> None:
    reg = register(redis_client)
    c = await as_deferred(reg.open_complaint(T0, category="billing", channel=Channel.IVR, number="09121234567"))
    status = await as_deferred(reg.ivr_status(c.reference + "#"))
    assert status.valid and status.found and status.status is ComplaintStatus.OPEN
    typo = c.reference[:-1] + str((int(c.reference[-1]) + 1) % 10)
    assert not (await as_deferred(reg.ivr_status(typo))).valid
    unknown = await as_deferred(reg.ivr_status("27959136" if c.reference != "27959136" else "14502341"))
    assert unknown.valid and not unknown.found


@pytest_twisted.ensureDeferred
async def test_stale_unresolved_complaints_raise_one_callback_per_age(redis_client: Redis) -> None:
    reg = register(redis_client, RegisterPolicy(unresolved_callback_s=7 * DAY))
    c = await as_deferred(reg.open_complaint(T0, category="billing", channel=Channel.IVR, number="09121234567"))
    await as_deferred(reg.open_complaint(T0, category="billing", channel=Channel.IVR))  # no number: no callback
    assert await as_deferred(reg.stale_for_callback(T0 + 6 * DAY)) == []
    stale = await as_deferred(reg.stale_for_callback(T0 + 7 * DAY))
    assert [x.reference for x in stale] == [c.reference]
    await as_deferred(reg.mark_callback_raised(c.reference, T0 + 7 * DAY))
    assert await as_deferred(reg.stale_for_callback(T0 + 8 * DAY)) == []
    assert len(await as_deferred(reg.stale_for_callback(T0 + 14 * DAY))) == 1

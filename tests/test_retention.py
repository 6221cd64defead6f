"""Retention: recordings and transcripts of closed complaints purged, and the purge recorded."""

from __future__ import annotations

import pytest_twisted
from redis.asyncio import Redis

from complaints.complaint import Channel, ComplaintStatus
from complaints.roles import Actor, Role
from complaints.service import ComplaintRegister, ComplaintUpdate, RegisterPolicy
from complaints.store import ComplaintStore
from shenava_base.aio import as_deferred

T0 = 1_740_800_000.0
DAY = 86400.0
SUP = Actor("sup1", Role.SUPERVISOR)


@pytest_twisted.ensureDeferred
async def test_purge_after_retention(redis_client: Redis) -> None:
    deleted: list[str] = []

    async def delete_recording(recording_id: str) -> None:
        deleted.append(recording_id)

    reg = ComplaintRegister(
        ComplaintStore(redis_client, "shenava"),
        RegisterPolicy(retention_s=30 * DAY),
        delete_recording=delete_recording,
    )
    closed = await as_deferred(reg.open_complaint(T0, category="billing", channel=Channel.VOICEMAIL, number="09121234567"))
    await as_deferred(reg.attach_transcript(closed.reference, "my bill doubled", T0 + 60, recording_id="rec-1"))
    await as_deferred(reg.update(SUP, closed.reference, ComplaintUpdate(status=ComplaintStatus.CLOSED, note="duplicate"), T0 + DAY))
    still_open = await as_deferred(reg.open_complaint(T0, category="billing", channel=Channel.VOICEMAIL, recordings=("rec-2",), transcript="hello"))

    assert await as_deferred(reg.purge_expired(T0 + 30 * DAY)) == []  # 29 days after closing
    assert await as_deferred(reg.purge_expired(T0 + 31 * DAY)) == [closed.reference]
    assert deleted == ["rec-1"]
    purged = await as_deferred(reg.store.get(closed.reference))
    assert purged.transcript is None and purged.recordings == () and purged.purged_at == T0 + 31 * DAY
    assert purged.status is ComplaintStatus.CLOSED and purged.history[-1].action == "purged"
    assert purged.history[-1].detail == {"recordings": "1", "transcript": "yes"}
    log = await as_deferred(reg.store.purge_log())
    assert [(e["reference"], e["at"]) for e in log] == [(closed.reference, T0 + 31 * DAY)]
    # the open complaint keeps its data; a second run purges nothing again
    kept = await as_deferred(reg.store.get(still_open.reference))
    assert kept.transcript == "hello" and kept.recordings == ("rec-2",)
    assert await as_deferred(reg.purge_expired(T0 + 400 * DAY)) == []
    assert deleted == ["rec-1"]


@pytest_twisted.ensureDeferred
async def test_a_failed_delete_leaves_the_complaint_to_purge_again(redis_client: Redis) -> None:
    attempts: list[str] = []

    async def flaky(recording_id: str) -> None:
        attempts.append(recording_id)
        if len(attempts) == 1:
            raise OSError("disk busy")

    reg = ComplaintRegister(ComplaintStore(redis_client, "shenava"), RegisterPolicy(retention_s=DAY), delete_recording=flaky)
    c = await as_deferred(reg.open_complaint(T0, category="x", channel=Channel.VOICEMAIL, recordings=("rec-9",)))
    await as_deferred(reg.update(SUP, c.reference, ComplaintUpdate(status=ComplaintStatus.CLOSED, note="spam"), T0))
    try:
        await as_deferred(reg.purge_expired(T0 + 2 * DAY))
    except OSError:
        pass
    assert (await as_deferred(reg.store.get(c.reference))).purged_at is None  # never claims a purge
    assert await as_deferred(reg.purge_expired(T0 + 2 * DAY)) == [c.reference]
    assert attempts == ["rec-9", "rec-9"]

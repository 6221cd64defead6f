"""Agents' reports of abusive callers: review, recovery at once, the next call steered."""

from __future__ import annotations

import pytest
import pytest_twisted
from redis.asyncio import Redis

from complaints.abuse import (
    AbusePolicy,
    RecoveryGrant,
    ReportStatus,
    needs_experienced_agent,
    new_report,
    review,
)
from complaints.errors import (
    InvalidComplaintError,
    NoteRequiredError,
    PermissionDeniedError,
    ReportAlreadyReviewedError,
)
from complaints.roles import Actor, Role
from complaints.service import ComplaintRegister, RegisterPolicy
from complaints.store import ComplaintStore
from routing.agents import AgentView
from routing.calls import WaitingCall
from routing.selection import choose_agent
from shenava_base.aio import as_deferred

T0 = 1_740_800_000.0
DAY = 86400.0
NUMBER = "09121234567"


def test_a_report_waits_for_review_and_the_review_is_final() -> None:
    r = new_report("ar-1", T0, agent_id="a1", number=NUMBER, category="threat", note="threatened me")
    assert r.status is ReportStatus.PENDING_REVIEW
    with pytest.raises(NoteRequiredError):
        review(r, upheld=True, reviewer="sup1", note="", now=T0 + 60)
    done = review(r, upheld=True, reviewer="sup1", note="warning letter sent", now=T0 + 60)
    assert (done.status, done.reviewer, done.review_note) == (ReportStatus.UPHELD, "sup1", "warning letter sent")
    with pytest.raises(ReportAlreadyReviewedError):
        review(done, upheld=False, reviewer="sup2", note="changed my mind", now=T0 + 90)
    with pytest.raises(InvalidComplaintError):
        new_report("ar-2", T0, agent_id="a1", number=NUMBER, category="rude-ish", note="")


def test_flag_for_experienced_agent_until_dismissed_or_window_ends() -> None:
    policy = AbusePolicy(flag_window_s=30 * DAY)
    r = new_report("ar-1", T0, agent_id="a1", number=NUMBER, category="verbal_abuse", note="")
    assert needs_experienced_agent([r], T0 + 1, policy)  # pending already counts: never a ban
    upheld = review(r, upheld=True, reviewer="s", note="ok", now=T0 + 2)
    assert needs_experienced_agent([upheld], T0 + 29 * DAY, policy)
    assert not needs_experienced_agent([upheld], T0 + 31 * DAY, policy)
    dismissed = review(r, upheld=False, reviewer="s", note="misheard", now=T0 + 2)
    assert not needs_experienced_agent([dismissed], T0 + 3, policy)
    assert not needs_experienced_agent([r], T0 + 1, AbusePolicy(route_to_experienced=False))
    assert needs_experienced_agent([r], T0 + 999 * DAY, AbusePolicy(flag_window_s=None))


@pytest_twisted.ensureDeferred
async def test_report_gives_recovery_and_steers_the_next_call(redis_client: Redis) -> None:
    grants: list[RecoveryGrant] = []
    reg = ComplaintRegister(
        ComplaintStore(redis_client, "shenava"),
        RegisterPolicy(abuse=AbusePolicy(recovery_s=600.0)),
        on_recovery=grants.append,
    )
    report = await as_deferred(
        reg.report_abuse(T0, agent_id="a1", number=NUMBER, category="verbal_abuse", note="shouted insults", call_id="c-1")
    )
    assert grants == [RecoveryGrant("a1", report.report_id, T0, 600.0)]  # at once

    ctx = await as_deferred(reg.caller_context(NUMBER, T0 + 3600))
    assert ctx.abusive_caller
    call = WaitingCall("c-2", T0 + 3600, "fa", "billing", "billing", abusive_caller=ctx.abusive_caller)
    junior = AgentView("a2", frozenset({"fa"}), frozenset({"billing"}), idle_since=T0)
    senior = AgentView("a3", frozenset({"fa"}), frozenset({"billing"}), idle_since=T0 + 100, experienced=True)
    assert choose_agent(call, [junior, senior], T0 + 3600).agent == senior
    seen = await as_deferred(reg.reports_for_next_agent(NUMBER, T0 + 3600))
    assert [v["note"] for v in seen] == ["shouted insults"] and seen[0]["number"] == "0912***4567"

    # the review goes to a supervisor; agents may not review
    with pytest.raises(PermissionDeniedError):
        await as_deferred(reg.review_abuse(Actor("a2", Role.AGENT), report.report_id, upheld=False, note="x", now=T0))
    pending = await as_deferred(reg.pending_abuse_reports(Actor("sup1", Role.SUPERVISOR)))
    assert [p["report_id"] for p in pending] == [report.report_id]
    view = await as_deferred(
        reg.review_abuse(Actor("sup1", Role.SUPERVISOR), report.report_id, upheld=False, note="line noise", now=T0 + 7200)
    )
    assert view["status"] == "dismissed" and view["reviewer"] == "sup1"
    assert await as_deferred(reg.pending_abuse_reports(Actor("sup1", Role.SUPERVISOR))) == []
    assert not (await as_deferred(reg.caller_context(NUMBER, T0 + 7300))).abusive_caller
    kept = await as_deferred(reg.store.all_reports())
    assert [(r.report_id, r.status, r.review_note) for r in kept] == [(report.report_id, ReportStatus.DISMISSED, "line noise")]


@pytest_twisted.ensureDeferred
async def test_a_failing_recovery_hook_does_not_lose_the_report(redis_client: Redis) -> None:
    def broken(grant: RecoveryGrant) -> None:
        raise RuntimeError("agent_stats is down")

    reg = ComplaintRegister(ComplaintStore(redis_client, "shenava"), on_recovery=broken)
    report = await as_deferred(reg.report_abuse(T0, agent_id="a1", number=NUMBER, category="threat"))
    assert (await as_deferred(reg.store.get_report(report.report_id))).agent_id == "a1"

"""An agent reports an abusive caller, end to end on the test PBX with a real Redis.

The agent gets recovery time right after the call (never counted against
them); the report waits for a supervisor and bans nobody; the caller's next
call goes to an experienced agent even though another agent has been idle
longer.
"""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from redis.asyncio import Redis

from agent_stats.states import AgentState, NotReadyReason
from complaints.abuse import AbuseCategory, ReportStatus
from routing.events import CallAnswered, CallOffered
from shenava_base.aio import as_deferred
from testpbx.scripts import CallerScript, PhoneScript
from tests.e2e_harness import E2E

CALLER = "09125550000"


@pytest_twisted.ensureDeferred
async def test_a_reported_caller_gets_an_experienced_agent_and_the_agent_recovers(
    redis_client: Redis, tmp_path: Path
) -> None:
    h = E2E.build(tmp_path, redis=redis_client)
    try:
        register = h.app.complaints.register
        h.phones({f"PJSIP/10{i}": PhoneScript(answer_after_s=2.0, talk_s=30.0) for i in (1, 2, 3)})
        assert not h.app.roster.get("a2").profile.experienced
        assert not h.app.roster.get("a3").profile.experienced
        assert h.app.roster.get("a1").profile.experienced
        h.log_in("a2")
        h.advance(1.0)
        h.log_in("a3")
        h.advance(1.0)
        h.log_in("a1")  # idle the shortest

        first = h.call(CallerScript(number=CALLER, answers=("1", "3")))
        await h.run_until_async(lambda: bool(h.events(CallAnswered, first)), limit_s=120.0)
        (answered,) = h.events(CallAnswered, first)
        assert answered.agent_id == "a2"  # idle longest
        report = await as_deferred(register.report_abuse(
            h.now, agent_id="a2", number=CALLER, category=AbuseCategory.VERBAL_ABUSE,
            note="shouted insults", call_id=first.uniqueid,
        ))
        assert report.status is ReportStatus.PENDING_REVIEW  # a supervisor decides, nobody is banned

        await h.run_until_async(lambda: not h.alive(first), limit_s=120.0)
        await h.run_until_async(
            lambda: h.state("a2") is AgentState.NOT_READY, limit_s=30.0
        )
        assert h.reason("a2") is NotReadyReason.RECOVERY

        second = h.call(CallerScript(number=CALLER, answers=("1", "3")))
        await h.run_until_async(lambda: bool(h.events(CallOffered, second)), limit_s=120.0)
        (offered,) = h.events(CallOffered, second)
        # a3 has been idle longer than a1, but the caller was reported
        assert h.app.roster.get("a3").idle_since < h.app.roster.get("a1").idle_since
        assert offered.agent_id == "a1"
    finally:
        h.stop()

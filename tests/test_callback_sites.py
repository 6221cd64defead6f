"""Two sites on one Redis: a customer's call in at one site wins over their callback at the other.

A flag is dialled by the site that opened it. Each site's dialer knew only the
calls of its own Asterisk: a customer talking to site A's agent was rung by
site B's callback (the agent at B waited on a busy line, or the customer got a
call waiting tone in the middle of their complaint). Now a site that sees a
customer with an open flag call in marks them on a call in Redis while the
call lasts; the other sites read the mark before they dial the flag (held, no
attempt) and, while they dial, once a second (the attempt ends
``customer_called_in``: not counted). Two daemons' dialling parts (their own
roster, AMI link and call tracker, the test's fakes) on one real Redis.
"""

from __future__ import annotations

import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.task import Clock

from agent_stats.states import AgentState
from routing.callback_dialer import CALLING_POLL_S, CALLING_RECHECK_S
from routing.callbacks import AttemptOutcome
from shenava_base.aio import as_deferred
from tests.test_callback_dialer import NUMBER, PREFIX, T0, Site, caller_arrives, caller_hangs_up

OTHER = "09127654321"


def _clock() -> Clock:
    clock = Clock()
    clock.advance(T0)
    return clock


def _sites(client: Redis, clock: Clock) -> tuple[Site, Site]:
    a = Site(client, clock, owner="a", site="tehran", cross_site=True)
    b = Site(client, clock, owner="b", site="shiraz", cross_site=True)
    return a, b


async def _settle(*sites: Site) -> None:
    for site in sites:
        await site.dialer.settled()


async def _after(clock: Clock, seconds: float, *sites: Site) -> None:
    clock.advance(seconds)
    await _settle(*sites)


@pytest_twisted.ensureDeferred
async def test_a_customer_calling_site_a_while_site_b_dials_them_wins(
    redis_client: Redis,
) -> None:
    clock = _clock()
    a, b = _sites(redis_client, clock)
    flag_id = await b.flag()  # their earlier call was at site B: B dials it
    await b.dial()
    [orig] = b.ami.originates()
    leg = orig["ChannelId"]
    b.agent_answers(leg)  # B's agent picked up; the callback context is about to dial

    caller_arrives(a, "in-1")  # the customer calls site A meanwhile
    await _settle(a)
    await _after(clock, CALLING_POLL_S, b)  # B asks once a second while it dials

    flag = await as_deferred(b.store.get(flag_id))
    assert [x.outcome for x in flag.attempts] == [AttemptOutcome.CUSTOMER_CALLED_IN]
    assert flag.round_attempts == ()  # not counted against the customer
    assert ("Hangup", (("Channel", f"PJSIP/100-{leg}"),)) in [(n, h) for n, h, _ in b.ami.actions]
    b.agent_hangs_up(leg)
    await _after(clock, 10.0, b)  # wrap-up over: B's agent is ready and B looks again
    assert b.roster.get("a1").state is AgentState.READY
    await b.dial()
    assert len(b.ami.originates()) == 1  # still on their call at A: not rung

    caller_hangs_up(a, "in-1")  # their call at A ends
    await _settle(a)
    await _after(clock, CALLING_RECHECK_S, b)
    await b.dial()
    assert [o["Exten"] for o in b.ami.originates()] == [NUMBER, NUMBER]


@pytest_twisted.ensureDeferred
async def test_a_customer_on_a_call_at_site_a_is_not_dialled_by_site_b_nor_counted(
    redis_client: Redis,
) -> None:
    clock = _clock()
    a, b = _sites(redis_client, clock)
    flag_id = await b.flag()
    caller_arrives(a, "in-1", "0912 123 4567")  # the number as site A's trunk formats it
    await _settle(a)
    await b.dial()
    assert b.ami.originates() == []
    flag = await as_deferred(b.store.get(flag_id))
    assert flag.attempts == () and flag.is_open

    caller_hangs_up(a, "in-1")
    await _settle(a)
    await _after(clock, CALLING_RECHECK_S, b)
    await b.dial()
    assert [o["Exten"] for o in b.ami.originates()] == [NUMBER]


@pytest_twisted.ensureDeferred
async def test_callers_without_an_open_flag_leave_no_mark(redis_client: Redis) -> None:
    a, _ = _sites(redis_client, _clock())
    caller_arrives(a, "in-2", OTHER)
    await _settle(a)
    assert await as_deferred(redis_client.keys(f"{PREFIX}:{{callbacks}}:calling:*")) == []

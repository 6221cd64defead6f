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


@pytest_twisted.ensureDeferred
async def test_a_late_outcome_after_another_daemons_claim_is_kept_and_not_doubled(
    redis_client: Redis,
) -> None:
    """Two daemons dial the flags of one site (a pair, or a daemon killed and the
    next one on another host). The first loses its lease mid-dial (paused; Redis
    away); the second claims the flag, marks that attempt ``interrupted`` and dials
    again. The first one's outcome (the customer answered) lands while the second
    attempt rings: once that attempt ends the flag is closed answered, each attempt
    counted once, and nobody dials a third time. Before, the late answer was kept
    in its attempt but the flag stayed open, and the customer was called again."""
    first_clock, second_clock = _clock(), _clock()  # the first daemon's is frozen: paused
    first = Site(redis_client, first_clock, owner="first")
    second = Site(redis_client, second_clock, owner="second", agents=("a2",))
    flag_id = await first.flag()
    await first.dial()
    leg1 = first.ami.originates()[0]["ChannelId"]
    first.agent_answers(leg1)
    await as_deferred(redis_client.delete(f"{PREFIX}:{{callbacks}}:lease:{flag_id}"))  # lapsed

    await second.dial()  # marks it interrupted; the next attempt after the backoff
    flag = await as_deferred(second.store.get(flag_id))
    assert [a.outcome for a in flag.attempts] == [AttemptOutcome.INTERRUPTED]
    await _after(second_clock, second.store.policy.backoff_s[0], second)
    await second.dial()
    [orig2] = second.ami.originates()
    flag = await as_deferred(second.store.get(flag_id))
    assert [a.outcome for a in flag.attempts] == [AttemptOutcome.INTERRUPTED, None]

    first.customer_dialled(leg1, "ANSWER")  # the first daemon's outcome, late
    await _settle(first)
    leg2 = orig2["ChannelId"]
    second.agent_answers(leg2)
    second.customer_dialled(leg2, "NOANSWER")
    await _settle(second)

    flag = await as_deferred(second.store.get(flag_id))
    assert [a.outcome for a in flag.attempts] == [AttemptOutcome.ANSWERED, AttemptOutcome.NO_ANSWER]
    assert not flag.is_open and str(flag.resolution) == "answered"
    assert len(flag.round_attempts) == 2
    await _after(second_clock, 60.0, second)
    await second.dial()
    assert len(second.ami.originates()) == 1 and len(first.ami.originates()) == 1


@pytest_twisted.ensureDeferred
async def test_changing_a_closed_flag_leaves_the_numbers_newer_flag_open(redis_client: Redis) -> None:
    """A late outcome (or a supervisor's acknowledgement) rewrites a flag closed
    before; the number may have a newer open flag by then. Before, that write took
    the number's ``open`` entry away from the newer flag: the next reason opened a
    third flag for the customer instead of merging."""
    from routing.callbacks import DialPolicy, abandon_reason

    clock = _clock()
    site = Site(redis_client, clock, policy=DialPolicy(max_attempts=1, backoff_s=(300.0,)))
    old_id = await site.flag()
    await site.dial()
    leg = site.ami.originates()[0]["ChannelId"]
    site.agent_answers(leg)
    site.customer_dialled(leg, "BUSY")  # the round's only attempt: closed unreachable
    await _settle(site)
    new_id = await site.flag()
    assert new_id != old_id
    await as_deferred(site.store.acknowledge(old_id, clock.seconds(), by="sup"))
    assert await as_deferred(redis_client.hget(f"{PREFIX}:{{callbacks}}:open", NUMBER)) == new_id
    reason = abandon_reason("call-2", clock.seconds(), 40.0, site.store.policy)
    assert reason is not None
    merged = await as_deferred(site.store.raise_reason(NUMBER, reason, clock.seconds()))
    assert merged.flag_id == new_id


async def _commands(client: Redis) -> dict[str, int]:
    stats = await as_deferred(client.info("commandstats"))
    return {k: int(v["calls"]) for k, v in stats.items()}


@pytest_twisted.ensureDeferred
async def test_a_call_in_costs_one_command_with_several_sites_and_none_alone(redis_client: Redis) -> None:
    """What the marks cost Redis: one script per call in while other sites are
    registered (whatever the caller's channels and AGI start repeat), nothing for a
    lone site; one more to take the mark away only for a caller who had a flag."""
    clock = _clock()
    alone = Site(redis_client, clock, owner="alone", site="tehran")
    several, _ = _sites(redis_client, clock)
    for site, expected in ((alone, {}), (several, {"cmdstat_evalsha": 1, "cmdstat_hexists": 1})):
        before = await _commands(redis_client)
        caller_arrives(site, f"in-{site.dialer}", OTHER)
        caller_arrives(site, f"in-{site.dialer}b", OTHER)  # a second channel of the same caller
        caller_hangs_up(site, f"in-{site.dialer}")
        caller_hangs_up(site, f"in-{site.dialer}b")
        await _settle(site)
        after = await _commands(redis_client)
        spent = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
        spent.pop("cmdstat_info", None)
        assert spent == expected  # one script (its HEXISTS counted inside), one round trip

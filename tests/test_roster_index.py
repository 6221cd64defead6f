"""The roster's per-call answers (agents per state, staffed, the longest-idle ready agent) come
from an index kept in step with every state change, never from a scan of every agent: under
random sequences of every way a state changes (by hand, by calls, a restore after a restart,
an outage reconciled, time standing still for ties), they equal the plain scan after every
step, and they answer without iterating the roster at all. So do the callback gate and the
agent pick built on them, and the statistics' headroom figures."""

from __future__ import annotations

import contextlib
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from agent_stats.erlang import predicted_service_level
from agent_stats.errors import AgentStatsError
from agent_stats.ledger import AgentLedger
from agent_stats.roster import AgentProfile, AgentRoster, AgentStatus
from agent_stats.states import STAFFED_STATES, AgentState, NotReadyReason
from routing.callback_dialer import CallbackDialer
from routing.callbacks import CallingHours, DialPolicy, dial_gate
from tests.stats_helpers import T0, clock_at, make_service
from tests.test_callback_dialer import FakeAMI, FakeTracker

AGENTS = 5
OPS = ("log_in", "log_out", "ready", "not_ready", "ringing", "answered", "call_ended",
       "ring_failed", "ring_cancelled", "resume_call", "resume_ringing", "restore", "reconcile",
       "time", "waiting")
REASONS = (None, NotReadyReason.BREAK, NotReadyReason.MISSED, NotReadyReason.LUNCH)


class _NoScan(dict[str, Any]):
    """The roster's agents, refusing to be walked while the index answers."""

    def __iter__(self) -> Any:
        raise AssertionError("the roster was scanned")

    def values(self) -> Any:
        raise AssertionError("the roster was scanned")

    def items(self) -> Any:
        raise AssertionError("the roster was scanned")


class _Store:
    """What the gate reads of the callback store: its policy."""

    policy = DialPolicy()


def scan_count(roster: AgentRoster, state: AgentState) -> int:
    return sum(1 for s in roster if s.state is state)


def scan_staffed(roster: AgentRoster) -> int:
    return sum(1 for s in roster if s.state in STAFFED_STATES)


def scan_pick(roster: AgentRoster) -> AgentStatus | None:
    """The dialler's pick as it was: ``min`` over every ready agent, in config order."""
    free = [s for s in roster if s.state is AgentState.READY]
    return min(free, key=lambda s: s.idle_since) if free else None


@contextlib.contextmanager
def no_scan(roster: AgentRoster) -> Any:
    agents = roster._agents
    roster._agents = _NoScan(agents)
    try:
        yield
    finally:
        roster._agents = agents


class World:
    def __init__(self) -> None:
        self.clock = clock_at(T0)
        profiles = [AgentProfile(f"a{i}", f"a{i}", f"PJSIP/{100 + i}", ("fa",)) for i in range(AGENTS)]
        self.roster = AgentRoster(profiles, T0)
        self.waiting = 0
        self.levels_asked = 0
        self.dialer = CallbackDialer(
            store=_Store(), ami=FakeAMI(), tracker=FakeTracker(),  # type: ignore[arg-type]
            roster=self.roster, waiting_calls=lambda: self.waiting, clock=self.clock,
            hours=CallingHours.always(), owner="d1",
            service_level=lambda now: self.level(self.roster.staffed - 1),
            staffed_service_level=lambda now: self.level(self.roster.staffed),
        )
        self.n = 0

    def level(self, staffed: int) -> float:
        """A service level that grows with the agents staffed (asked only when it matters)."""
        self.levels_asked += 1
        return min(1.0, max(0, staffed) / 4)

    def step(self, op: str, k: int, back: int = 0, who: int | None = None) -> None:
        roster, now = self.roster, self.clock.seconds()
        agent = f"a{(k if who is None else who) % AGENTS}"
        self.n += 1
        reason = REASONS[k % len(REASONS)]
        with contextlib.suppress(AgentStatsError):  # busy, or a clock behind a restored ledger
            if op == "log_in":
                roster.log_in(agent, now)
            elif op == "log_out":
                roster.log_out(agent, now)
            elif op == "ready":
                roster.set_ready(agent, now)
            elif op == "not_ready":
                roster.set_not_ready(agent, reason or NotReadyReason.PERSONAL, now)
            elif op == "ringing":
                roster.ringing(agent, f"c{self.n}", now)
            elif op == "answered":
                roster.answered(agent, bool(k % 2), now)
            elif op == "call_ended":
                roster.call_ended(agent, now)
            elif op == "ring_failed":
                roster.ring_failed(agent, now, reason)
            elif op == "ring_cancelled":
                roster.ring_cancelled(agent, now)
            elif op == "resume_call":
                roster.resume_call(agent, f"c{self.n}", now)
            elif op == "resume_ringing":
                roster.resume_ringing(agent, f"c{self.n}", now)
            elif op == "restore":
                # a stored ledger since a moment that breaks the config order: often in the
                # agent's state already (a quick restart: only ``idle_since`` moves), else any
                state = tuple(AgentState)[k % len(AgentState)]
                why = (reason or NotReadyReason.TECHNICAL) if state is AgentState.NOT_READY else None
                if k % 2:
                    state, why = roster.get(agent).ledger.key
                since = max(T0, now - back)
                roster.restore(AgentLedger(agent, since, state, why))
            elif op == "reconcile":
                roster.reconcile(agent, now - (k % 90), now)
            elif op == "time":
                self.clock.advance(1 + k % 3)
            elif op == "waiting":
                self.waiting = k % 3

    def check(self) -> None:
        roster, now = self.roster, self.clock.seconds()
        counts = {s: scan_count(roster, s) for s in AgentState}
        staffed, pick, free = scan_staffed(roster), scan_pick(roster), counts[AgentState.READY]
        gate = dial_gate(now, CallingHours.always(), DialPolicy(), free_agents=free,
                         waiting_calls=self.waiting, service_level=min(1.0, max(0, staffed - 1) / 4),
                         staffed_service_level=min(1.0, staffed / 4))
        asked = self.levels_asked
        with no_scan(roster):
            assert {s: roster.count(s) for s in AgentState} == counts
            assert roster.staffed == staffed
            assert roster.longest_idle_ready() is pick
            assert self.dialer._pick_agent() is pick
            assert self.dialer.gate(now) == gate
        # the levels (Erlang C) are asked only when hours, free agents and waiting calls pass
        assert self.levels_asked - asked == (2 if free >= 1 and self.waiting == 0 else 0)
        # every ready agent under its current key, no one else (a missed ``idle_since``
        # would not always change the pick at once)
        assert roster._index._ready == {
            s.profile.agent_id: (s.idle_since, i) for i, s in enumerate(roster)
            if s.state is AgentState.READY}
        # the heap stays O(ready agents), stale entries included
        assert len(roster._index._heap) <= 2 * counts[AgentState.READY] + 33


@settings(max_examples=400)
@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, AGENTS - 1), st.integers(0, 60),
                          st.integers(0, 6)), max_size=80))
def test_the_index_equals_the_scan_after_every_step(ops: list[tuple[str, int, int, int]]) -> None:
    world = World()
    world.check()
    for op, who, k, back in ops:
        world.step(op, k, back, who)
        world.check()


def test_ties_go_to_the_agent_listed_first_and_stale_entries_stay_bounded() -> None:
    world = World()
    roster, now = world.roster, world.clock.seconds()
    for i in reversed(range(AGENTS)):
        roster.log_in(f"a{i}", now)  # all ready at the same second
    world.check()
    assert roster.longest_idle_ready() is roster.get("a0")
    for n in range(500):  # agents cycle through ready without ever being picked
        agent = f"a{1 + n % (AGENTS - 1)}"
        world.clock.advance(1)
        roster.set_not_ready(agent, NotReadyReason.BREAK, world.clock.seconds())
        roster.set_ready(agent, world.clock.seconds())
        world.check()
    assert roster.longest_idle_ready() is roster.get("a0")


def test_the_headroom_figures_count_the_staffed_without_a_scan(redis_client: Redis) -> None:
    """The statistics' staffed ``N`` (headroom, staffed SL, spare, the break desk's reason)."""
    clock = clock_at(T0)
    roster, service = make_service(redis_client, clock)
    rng = random.Random(16)
    agents = [s.profile.agent_id for s in roster]
    for n in range(200):
        agent, now = rng.choice(agents), clock.seconds()
        op = rng.choice(("log_in", "log_out", "not_ready", "ready", "ringing", "answered",
                         "call_ended"))
        with contextlib.suppress(AgentStatsError):
            if op == "log_in":
                roster.log_in(agent, now)
            elif op == "log_out":
                roster.log_out(agent, now)
            elif op == "not_ready":
                roster.set_not_ready(agent, NotReadyReason.BREAK, now)
            elif op == "ready":
                roster.set_ready(agent, now)
            elif op == "ringing":
                roster.ringing(agent, f"c{n}", now)
            elif op == "answered":
                roster.answered(agent, False, now)
            else:
                roster.call_ended(agent, now)
        if n % 3 == 0:
            service.recent.arrived(now)
        clock.advance(rng.choice((0, 1, 5)))
        now = clock.seconds()
        staffed, traffic = scan_staffed(roster), service.traffic(now)
        threshold = service.sla.threshold_s
        with no_scan(roster):
            assert service.headroom_service_level(now) == predicted_service_level(
                max(0, staffed - 1), traffic, threshold)
            assert service.staffed_service_level(now) == predicted_service_level(
                staffed, traffic, threshold)
            service.spare(now)
            assert f"{staffed} agents staffed" in service.break_wait_reason(now)

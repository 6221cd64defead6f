"""The dispatcher's answers to "how many callers wait" and "which call is this agent's" come
from indexes kept in step with every transition (join, ring, answer, miss, hang-ups, a
choice in the hold, adoption after a restart, wrap-up), never from a scan of every call:
under random sequences of those, they equal the plain scan after every step, and they
answer without iterating the calls at all."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from agent_stats.roster import AgentProfile, AgentRoster
from agent_stats.states import AgentState, NotReadyReason
from ami_bridge.events import ChannelHungUp, OriginateFinished
from routing.calls import WaitingCall
from routing.dispatch import CallDispatcher, DispatchConfig
from routing.hold import CALLBACK_KEY
from routing.router import Router
from routing.scoring import ScoringConfig
from routing.selection import SelectionConfig
from tests.test_callback_dialer import FakeAMI, FakeTracker

T0 = 1_741_000_000.0
AGENTS = 4
OPS = ("join", "join", "ready", "not_ready", "answer", "miss", "leg_hangup", "caller_hangup",
       "choice", "time", "adopt_waiting", "adopt_ringing", "adopt_talking")


class _NoScan(dict[str, Any]):
    """The dispatcher's calls, refusing to be walked while the indexes answer."""

    def __iter__(self) -> Any:
        raise AssertionError("the calls were scanned")

    def values(self) -> Any:
        raise AssertionError("the calls were scanned")

    def items(self) -> Any:
        raise AssertionError("the calls were scanned")


def scan_waiting(d: CallDispatcher) -> int:
    return sum(1 for w in d._calls.values() if w.agent_id is None and not w.ended)


def scan_call_of_agent(d: CallDispatcher, agent_id: str) -> WaitingCall | None:
    for w in d._calls.values():
        if w.agent_id == agent_id and not w.ended:
            return w.call
    return None


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        profiles = [AgentProfile(f"a{i}", f"a{i}", f"PJSIP/{100 + i}", ("fa",)) for i in range(AGENTS)]
        self.roster = AgentRoster(profiles, T0)
        self.tracker = FakeTracker()
        self.d = CallDispatcher(
            ami=FakeAMI(), tracker=self.tracker, roster=self.roster,  # type: ignore[arg-type]
            router=Router(ScoringConfig(), SelectionConfig()), clock=self.clock,  # type: ignore[arg-type]
            config=DispatchConfig(wrap_up_s=5.0),
        )
        self.n = 0

    def now(self) -> float:
        return self.clock.seconds()

    def agent(self, k: int) -> str:
        return f"a{k % AGENTS}"

    def legs(self) -> list[str]:
        return sorted(self.d._legs)

    def ringing(self) -> list[str]:
        """Legs whose agent's phone rings (Asterisk settles each once: answered or not)."""
        out = []
        for leg, (call_id, _agent) in sorted(self.d._legs.items()):
            w = self.d._calls.get(call_id)
            if w is not None and w.leg_id == leg and w.answered_at is None:
                out.append(leg)
        return out

    def calls(self) -> list[str]:
        return list(self.d._calls)

    def record(self, k: int, phase: str) -> dict[str, Any] | None:
        """A call an earlier daemon held, with an agent who is free to take it (or None)."""
        self.n += 1
        record: dict[str, Any] = {"call_id": f"old{self.n}", "joined_at": self.now() - 30,
                                  "arrived_at": self.now() - 40, "language": "fa",
                                  "caller_number": "0912", "phase": phase}
        if phase != "waiting":
            agent = self.agent(k)
            if self.roster.get(agent).state is not AgentState.READY or self.d.call_of_agent(agent):
                return None
            record.update(agent_id=agent, leg_id=f"shenava-leg-old{self.n}", answered_at=self.now() - 5,
                          leg_channel=f"PJSIP/old-{self.n}")
        return record

    def step(self, op: str, k: int) -> None:
        d, roster, now = self.d, self.roster, self.now()
        if op == "join":
            self.n += 1
            d.join(call_id=f"c{self.n}", channel=f"PJSIP/c{self.n}", caller_number="0912",
                   language="fa", category=None, arrived_at=now)
        elif op == "ready":
            agent = self.agent(k)
            state = roster.get(agent).state
            if state is AgentState.LOGGED_OUT:
                roster.log_in(agent, now)
            elif state is AgentState.NOT_READY:
                roster.set_ready(agent, now)
        elif op == "not_ready":
            agent = self.agent(k)
            if roster.get(agent).state is AgentState.READY:
                roster.set_not_ready(agent, NotReadyReason.BREAK, now)
        elif op in ("answer", "miss") and self.ringing():
            leg = self.ringing()[k % len(self.ringing())]
            self.tracker.emit(OriginateFinished(
                at=now, action_id="", success=op == "answer", reason=4 if op == "answer" else 3,
                uniqueid=leg, channel=f"PJSIP/{leg}"))
        elif op == "leg_hangup" and self.legs():
            leg = self.legs()[k % len(self.legs())]
            cause = (16, 19, 0)[k % 3]
            self.tracker.emit(ChannelHungUp(now, leg, leg, f"PJSIP/{leg}", cause, "x"))
        elif op == "caller_hangup" and self.calls():
            call = self.calls()[k % len(self.calls())]
            self.tracker.emit(ChannelHungUp(now, call, call, f"PJSIP/{call}", 16, "normal"))
        elif op == "choice" and self.calls():
            call = self.calls()[k % len(self.calls())]
            d._left_for_choice(call, CALLBACK_KEY if k % 2 else "2")
        elif op == "time":
            self.clock.advance(1 + k % 7)
        elif op == "adopt_waiting":
            record = self.record(k, "waiting")
            assert record is not None
            d.adopt_waiting(record, f"PJSIP/{record['call_id']}")
        elif op == "adopt_ringing" and (record := self.record(k, "ringing")) is not None:
            d.adopt_ringing(record, f"PJSIP/{record['call_id']}")
        elif op == "adopt_talking" and (record := self.record(k, "talking")) is not None:
            d.adopt_talking(record, f"PJSIP/{record['call_id']}")

    def check(self) -> None:
        d = self.d
        expected = scan_waiting(d), {f"a{i}": scan_call_of_agent(d, f"a{i}") for i in range(AGENTS)}
        calls, d._calls = d._calls, _NoScan(d._calls)
        try:
            got = d.waiting, {f"a{i}": d.call_of_agent(f"a{i}") for i in range(AGENTS)}
        finally:
            d._calls = calls
        assert got == expected
        # the Originates' reverse index: every ActionID under its leg, nothing else
        assert sorted(d._originates.items()) == sorted(
            (a, leg) for leg, ids in d._originates_of_leg.items() for a in ids)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 60)), max_size=60))
def test_the_indexes_equal_the_scan_after_every_step(ops: list[tuple[str, int]]) -> None:
    world = World()
    world.check()
    for op, k in ops:
        world.step(op, k)
        world.check()


def test_a_busy_centre_without_a_scan() -> None:
    """Every kind of step taken at least once, in a deterministic order."""
    world = World()
    for op in ("ready", "join", "join", "answer", "join", "ready", "miss", "time", "ready", "adopt_talking",
               "adopt_ringing", "adopt_waiting", "leg_hangup", "choice", "caller_hangup", "time", "time"):
        for k in range(AGENTS):
            world.step(op, k)
            world.check()
    assert world.d.waiting >= 0

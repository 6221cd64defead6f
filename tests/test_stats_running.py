"""The heartbeat's per-agent figures are kept incrementally: same values, work independent of the day."""

from __future__ import annotations

import random
from typing import Any

import pytest

from agent_stats.breaks import BreakConfig, allowance, last_break_end
from agent_stats.ledger import AgentLedger, Interval
from agent_stats.roster import AgentRoster
from agent_stats.running import CallLog
from agent_stats.service import StatsService
from agent_stats.sla import day_start
from agent_stats.states import AgentState, NotReadyReason
from agent_stats.store import StatsStore
from agent_stats.wellbeing import HandledCall, WellbeingConfig, signals
from routing.dispatch import CallAnswered, CallCompleted
from tests.stats_helpers import PROFILES, SLA, T0, clock_at


def offline_service(now: float) -> tuple[AgentRoster, StatsService]:
    """A service whose writer never runs (not started): the figures only."""
    clock = clock_at(now)
    roster = AgentRoster(PROFILES, now)
    service = StatsService(
        store=StatsStore(None, SLA),  # type: ignore[arg-type]
        roster=roster, clock=clock, sla=SLA, breaks=BreakConfig(), wellbeing=WellbeingConfig(),
    )
    return roster, service


def busy_day(roster: AgentRoster, service: StatsService, agent: str, rng: random.Random,
             start: float, cycles: int) -> tuple[float, list[HandledCall]]:
    """Calls, breaks and personal time, a cycle after another; returns the end and the calls."""
    t = start
    calls: list[HandledCall] = []
    roster.log_in(agent, t)
    for n in range(cycles):
        call_id = f"{agent}-{n}"
        t += rng.uniform(1, 30)
        roster.ringing(agent, call_id, t)
        t += rng.uniform(1, 5)
        hard = rng.random() < 0.2
        roster.answered(agent, hard, t)
        answered = t
        service.on_routing_event(CallAnswered(call_id, t, agent, t - 10, hard))
        t += rng.choice([rng.uniform(20, 300), 1300.0])
        roster.call_ended(agent, t)
        service.on_routing_event(CallCompleted(call_id, t, agent, answered))
        calls.append(HandledCall(answered, t, hard, call_id))
        t += rng.uniform(1, 20)
        r = rng.random()
        if r < 0.1:
            reason = rng.choice([NotReadyReason.BREAK, NotReadyReason.PERSONAL,
                                 NotReadyReason.LUNCH, NotReadyReason.RECOVERY])
            roster.set_not_ready(agent, reason, t)
            t += rng.uniform(30, 700)
        roster.set_ready(agent, t)
    return t, calls


def test_running_figures_equal_the_full_recomputation_across_midnight() -> None:
    rng = random.Random(3)
    start = T0 + 12 * 3600  # 20:00: the day runs past midnight
    roster, service = offline_service(start)
    # ticks interleaved with the changes, so the figures are folded in piece by piece
    t = start
    all_calls: list[HandledCall] = []
    for _ in range(12):
        t, calls = busy_day(roster, service, "a1", rng, t, 25)
        all_calls += calls
        if rng.random() < 0.5:
            roster.set_not_ready("a1", NotReadyReason.PERSONAL, t)
            service.check_wellbeing(t + 1)
        for now in (t + 1, t + 400):
            ledger = roster.get("a1").ledger
            d0 = day_start(now, SLA)
            got = service.allowances(now)["a1"]
            want = allowance(ledger.intervals_between(d0, now, now), service.break_config)
            assert got.earned_s == pytest.approx(want.earned_s)
            assert got.taken_s == pytest.approx(want.taken_s)
            assert got.exempt_s == pytest.approx(want.exempt_s)
            assert service._standing("a1", now)[1] == last_break_end(
                ledger.intervals, service.break_config)
            service.check_wellbeing(now)
            assert service.signals["a1"] == signals(ledger, all_calls, now, d0, service.wellbeing)
        roster.log_out("a1", t + 400)
        t += 500
    assert t > day_start(start, SLA) + 86400  # crossed midnight


def test_a_restored_ledger_is_read_afresh() -> None:
    roster, service = offline_service(T0 + 4000)
    ledger = AgentLedger("a1", T0 + 3000, AgentState.READY, None, [
        Interval(T0, T0 + 2000, AgentState.READY),
        Interval(T0 + 2000, T0 + 3000, AgentState.NOT_READY, NotReadyReason.BREAK),
    ])
    assert service.allowances(T0 + 4000)["a1"].taken_s == 0
    roster.restore(ledger)
    assert service.allowances(T0 + 4000)["a1"].taken_s == 1000
    assert service._standing("a1", T0 + 4000)[1] == T0 + 3000


def _touched(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts intervals looked at: durations read and closed intervals copied out of ledgers."""
    seen = {"n": 0}
    duration: Any = Interval.__dict__["duration"]
    intervals: Any = AgentLedger.__dict__["intervals"]

    def counted_duration(self: Interval) -> float:
        seen["n"] += 1
        return duration.fget(self)  # type: ignore[no-any-return]

    def counted_intervals(self: AgentLedger) -> tuple[Interval, ...]:
        out: tuple[Interval, ...] = intervals.fget(self)
        seen["n"] += len(out)
        return out

    monkeypatch.setattr(Interval, "duration", property(counted_duration))
    monkeypatch.setattr(AgentLedger, "intervals", property(counted_intervals))
    return seen


def tick_work(monkeypatch: pytest.MonkeyPatch, cycles: int) -> int:
    roster, service = offline_service(T0)
    rng = random.Random(5)
    end = T0
    for p in PROFILES:
        end = max(end, busy_day(roster, service, p.agent_id, rng, T0, cycles)[0])
    service.clock.advance(end + 60 - service.clock.seconds())  # type: ignore[attr-defined]
    service.request_break("a1", NotReadyReason.BREAK)  # someone in the line: decide reads it
    service.tick()  # folds in the day so far
    for p in PROFILES:  # one more change each
        roster.set_not_ready(p.agent_id, NotReadyReason.TECHNICAL, end + 100)
        roster.set_ready(p.agent_id, end + 110)
    service.clock.advance(400)  # type: ignore[attr-defined]  # past the fairness period
    with monkeypatch.context() as m:
        seen = _touched(m)
        service.tick()
    return seen["n"]


def test_a_tick_late_in_a_busy_day_looks_at_what_changed_not_at_the_whole_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    short = tick_work(monkeypatch, 20)
    long = tick_work(monkeypatch, 200)
    # ten times the day; the tick's work stays about the same (the last hour, the changes)
    assert long < 2 * short + 200, (short, long)


def test_a_service_running_for_days_keeps_a_bounded_ledger_and_the_same_figures() -> None:
    rng = random.Random(11)
    roster, service = offline_service(T0)
    twin = AgentLedger("a1", T0)  # every change, never pruned
    roster.subscribe(lambda ch: twin.transition(ch.at, ch.new, ch.new_reason)
                     if ch.agent_id == "a1" else None)
    all_calls: list[HandledCall] = []
    sizes, call_sizes = [], []
    for day in range(6):
        start = T0 + day * 86400
        service.clock.advance(start - service.clock.seconds())  # type: ignore[attr-defined]
        t, calls = busy_day(roster, service, "a1", rng, start, 60)
        all_calls += calls
        for now in (t + 1, t + 400):
            service.clock.advance(now - service.clock.seconds())  # type: ignore[attr-defined]
            service.tick()
            ledger = roster.get("a1").ledger
            d0 = day_start(now, SLA)
            got = service.allowances(now)["a1"]
            want = allowance(twin.intervals_between(d0, now, now), service.break_config)
            assert (got.earned_s, got.taken_s, got.exempt_s) == pytest.approx(
                (want.earned_s, want.taken_s, want.exempt_s))
            assert service._standing("a1", now)[1] == last_break_end(
                twin.intervals, service.break_config)
            hour = now - service.wellbeing.occupancy_window_s
            assert ledger.totals(hour, now, now) == twin.totals(hour, now, now)
            not_ready = {r: v for (s, r), v in twin.totals(d0, now, now).seconds.items()
                         if s is AgentState.NOT_READY}
            assert service.agent_day("a1").not_ready_today(ledger, d0, now) == pytest.approx(
                not_ready)
            assert service.signals["a1"] == signals(twin, all_calls, now, d0, service.wellbeing)
            # the ledger holds what the occupancy window reads, whatever the hour of the day
            assert list(ledger.intervals) == [i for i in twin.intervals if i.end > hour]
        sizes.append(len(roster.get("a1").ledger.intervals))
        call_sizes.append(len(service._call_logs["a1"]))
        # the traffic samples of the last half hour, today's alerts: not every one since the start
        now = service.clock.seconds()
        assert all(at >= now - 1800 for at in service._completions)
        assert all(a.at >= day_start(now, SLA) for a in service.alerts_raised)
        roster.log_out("a1", t + 400)
    assert twin.interval_count == roster.get("a1").ledger.interval_count
    assert max(sizes) < twin.interval_count / 20, (sizes, twin.interval_count)
    # calls since the last reset (or in the hard-call window), not the day's: the day's
    # hard and long calls are counts
    assert max(call_sizes) < 60 / 2, call_sizes
    assert service.alerts_count > len(service.alerts_raised)  # the earlier days' were counted


def test_an_agent_who_never_rests_holds_the_hard_call_window_of_calls_not_the_day() -> None:
    rng = random.Random(7)
    window, long_s = 3600.0, 600.0
    log = CallLog(long_s)
    calls: list[tuple[float, float, bool]] = []  # answered, ended, hard
    reset = T0 + 60.0  # logged in, then never a rest: the reset stays
    t = reset
    sizes = []
    for n in range(400):  # about 30 hours of calls, across a midnight
        t += rng.uniform(10, 200)
        hard = rng.random() < 0.2
        log.answered(f"c{n}", t, hard)
        end = t + rng.choice([rng.uniform(20, 300), 700.0])
        log.completed(f"c{n}", end)
        calls.append((t, end, hard))
        t = end
        now = t + 1
        d0 = day_start(now, SLA)
        log.prune(now - window, d0, reset)
        sizes.append(len(log))
        assert log.count(reset, now) == len(calls)
        assert log.hard(d0, now) == sum(1 for a, _, h in calls if h and a >= d0)
        assert log.hard(now - window, now, open_first=True) == sum(
            1 for a, _, h in calls if h and now - window < a <= now)
        assert log.long_calls(d0, now) == sum(1 for a, e, _ in calls if a >= d0 and e - a >= long_s)
    assert max(sizes) < 60, max(sizes)  # an hour of calls, not 400

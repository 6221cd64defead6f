"""Many timeouts behind one timer: each still fires at its own deadline, in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.task import Clock

from ami_bridge.deadlines import Deadlines


def test_each_deadline_fires_at_its_time_with_one_timer_scheduled() -> None:
    clock = Clock()
    deadlines = Deadlines(clock)
    fired: list[tuple[str, float]] = []

    def note(name: str) -> None:
        fired.append((name, clock.seconds()))

    for n in range(50):
        deadlines.call_later(10.0 + n, note, f"a{n}")
        clock.advance(0.01)
    assert len(clock.getDelayedCalls()) == 1  # not one per deadline
    early = deadlines.call_later(2.0, note, "early")  # earlier than all: takes the timer
    assert len(clock.getDelayedCalls()) == 1
    gone = deadlines.call_later(3.0, note, "gone")
    gone.cancel()
    assert not gone.active() and early.active()
    clock.advance(2.0)
    assert fired == [("early", clock.seconds())] and not early.active()
    clock.advance(7.5)  # a0 is due at 10.0
    assert fired[-1] == ("a0", 10.0)
    clock.advance(100.0)
    assert [name for name, _ in fired] == ["early", *[f"a{n}" for n in range(50)]]
    assert not clock.getDelayedCalls()


def test_a_callback_that_adds_a_later_deadline_does_not_delay_those_due() -> None:
    clock = Clock()
    deadlines = Deadlines(clock)
    fired: list[str] = []

    def first() -> None:
        fired.append("first")
        deadlines.call_later(50.0, fired.append, "later")

    deadlines.call_later(1.0, first)
    deadlines.call_later(1.0, fired.append, "second")
    clock.advance(1.0)
    assert fired == ["first", "second"]
    clock.advance(50.0)
    assert fired == ["first", "second", "later"]


class _CountingClock(Clock):
    """A ``task.Clock`` that counts the ``callLater``s made on it."""

    def __init__(self) -> None:
        super().__init__()
        self.made = 0

    def callLater(self, delay: float, f: Callable[..., object], *args: object, **kw: object) -> Any:
        self.made += 1
        return super().callLater(delay, f, *args, **kw)


def test_cancelling_every_deadline_leaves_a_timer_that_fires_nothing_and_then_nothing() -> None:
    clock = _CountingClock()
    deadlines = Deadlines(clock)
    fired: list[int] = []
    handles = [deadlines.call_later(5.0, fired.append, n) for n in range(3)]
    for handle in handles:
        handle.cancel()
        handle.cancel()  # twice is harmless
    assert len(clock.getDelayedCalls()) == 1  # kept: the next deadline will likely be later
    clock.advance(5.0)
    assert fired == [] and not clock.getDelayedCalls()
    deadlines.call_later(1.0, fired.append, 9)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(1.0)
    assert fired == [9] and not clock.getDelayedCalls() and clock.made == 2


def test_clear_forgets_every_deadline_and_leaves_nothing_scheduled() -> None:
    clock = Clock()
    deadlines = Deadlines(clock)
    fired: list[int] = []
    kept = [deadlines.call_later(5.0 + n, fired.append, n) for n in range(3)]
    deadlines.call_later(1.0, fired.append, 99).cancel()
    deadlines.clear()
    assert not clock.getDelayedCalls() and not any(d.active() for d in kept)
    clock.advance(100.0)
    assert fired == []
    deadlines.call_later(1.0, fired.append, 7)  # still usable after
    clock.advance(1.0)
    assert fired == [7]


def test_actions_answered_at_once_set_one_timer_per_timeout_not_one_each() -> None:
    # The daemon's pattern: an action, its answer a few ms later, the line
    # idle until the next one. The old timer was cancelled at each idle spell
    # and set again by the next action: one callLater (and a cancel) each.
    clock = _CountingClock()
    deadlines = Deadlines(clock)
    fired: list[int] = []
    for n in range(1000):  # 100 s of actions, 10 a second, each answered in 5 ms
        handle = deadlines.call_later(10.0, fired.append, n)
        clock.advance(0.005)
        handle.cancel()
        clock.advance(0.095)
    assert fired == []
    assert clock.made <= 11 and deadlines.timers_set == clock.made  # one per 10-s timeout
    late = deadlines.call_later(10.0, fired.append, -1)
    clock.advance(9.999)
    assert fired == [] and late.active()
    clock.advance(0.001)
    assert fired == [-1]
    clock.advance(20.0)
    assert not clock.getDelayedCalls()


def test_an_earlier_deadline_moves_the_kept_timer_sooner() -> None:
    clock = _CountingClock()
    deadlines = Deadlines(clock)
    fired: list[str] = []
    deadlines.call_later(10.0, fired.append, "gone").cancel()
    deadlines.call_later(2.0, fired.append, "soon")  # earlier than the kept timer
    deadlines.call_later(8.0, fired.append, "later")  # later: the timer stays
    assert len(clock.getDelayedCalls()) == 1 and clock.made == 2
    clock.advance(2.0)
    assert fired == ["soon"]
    clock.advance(6.0)
    assert fired == ["soon", "later"]
    clock.advance(10.0)
    assert fired == ["soon", "later"] and not clock.getDelayedCalls()


def test_cancelled_deadlines_do_not_pile_up_while_others_stay_live() -> None:
    clock = Clock()
    deadlines = Deadlines(clock)
    fired: list[int] = []
    deadlines.call_later(1000.0, fired.append, -1)  # one long-lived deadline: never idle
    for n in range(10_000):
        deadlines.call_later(10.0, fired.append, n).cancel()
        clock.advance(0.001)
    assert len(deadlines._heap) <= 2 * 64 + 2  # rebuilt when cancelled ones outnumber the live
    clock.advance(1000.0)
    assert fired == [-1]


def test_equal_deadlines_fire_in_the_order_they_were_set() -> None:
    clock = Clock()
    deadlines = Deadlines(clock)
    fired: list[int] = []
    for n in range(20):
        deadlines.call_later(3.0, fired.append, n)
    clock.advance(3.0)
    assert fired == list(range(20))

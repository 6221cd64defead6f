"""Many timeouts behind one timer: each still fires at its own deadline, in order."""

from __future__ import annotations

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


def test_cancelling_every_deadline_leaves_nothing_scheduled() -> None:
    clock = Clock()
    deadlines = Deadlines(clock)
    handles = [deadlines.call_later(5.0, lambda: None) for _ in range(3)]
    for handle in handles:
        handle.cancel()
        handle.cancel()  # twice is harmless
    assert not clock.getDelayedCalls()
    deadlines.call_later(1.0, lambda: None)
    assert len(clock.getDelayedCalls()) == 1


def test_equal_deadlines_fire_in_the_order_they_were_set() -> None:
    clock = Clock()
    deadlines = Deadlines(clock)
    fired: list[int] = []
    for n in range(20):
        deadlines.call_later(3.0, fired.append, n)
    clock.advance(3.0)
    assert fired == list(range(20))

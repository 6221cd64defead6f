"""A finished call leaves nothing behind in the daemon's per-call structures.

Calls of every ending (answered and completed, hung up in the IVR, abandoned
while waiting, a second AGI session on the same channel) run end to end
through the test PBX; once every channel is gone, the call flow, the tracker
and the AMI protocol hold nothing of them. ``CallFlow._seen`` once kept every
call's Uniqueid for the life of the daemon (with ``CallCounts``' wait lists,
about 1.7 KB a call).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted

from shenava.app import CallCounts
from testpbx.scripts import CallerScript, PhoneScript
from tests.e2e_harness import E2E


@pytest.fixture
def h(tmp_path: Path) -> Iterator[E2E]:
    harness = E2E.build(tmp_path)
    yield harness
    harness.stop()


def per_call_sizes(h: E2E) -> dict[str, int]:
    app = h.app
    protocol = app.connection.protocol
    assert protocol is not None
    return {
        "callflow.sessions": len(app.callflow._sessions),
        "callflow.seen": len(app.callflow._seen),
        "tracker.channels": len(app.tracker.channels),
        "tracker.calls": len(app.tracker.calls),
        "tracker.by_name": len(app.tracker._by_name),
        "tracker.locals": len(app.tracker._locals),
        "protocol.agi": len(protocol._agi),
        "protocol.agi_by_channel": len(protocol._agi_by_channel),
        "protocol.lists": len(protocol._lists),
        "counts.callers": len(app.counts.callers),
    }


def test_finished_calls_leave_nothing_behind(h: E2E) -> None:
    h.phone("PJSIP/101", PhoneScript(answer_after_s=2.0, talk_s=20.0))
    h.log_in("a1")
    calls = [
        h.call(CallerScript(number="09120000001", answers=("1", "3"))),  # to an agent, talks
        h.call(CallerScript(number="09120000002", answers=("1",), hangup_after_s=8.0)),  # hangs up in the IVR
        h.call(CallerScript(number="09120000003", answers=("1", "3"), patience_s=5.0)),  # gives up waiting
    ]
    h.run_until(lambda: h.app.callflow.sessions_started == 3, limit_s=120.0)
    assert h.app.callflow._seen  # kept while the calls are up
    h.run_until(lambda: not any(h.alive(c) for c in calls) and not h.world.channels(), limit_s=600.0)
    h.advance(30.0)  # wrap-up and anything scheduled after the hang-ups
    assert per_call_sizes(h) == dict.fromkeys(per_call_sizes(h), 0)


def test_call_counts_keep_a_bounded_number_of_waits() -> None:
    counts = CallCounts()
    for n in range(50_000):
        counts.waits_answered.append(float(n))
        counts.waits_abandoned.append(float(n))
    assert len(counts.waits_answered) == len(counts.waits_abandoned) == counts.waits_answered.maxlen


def test_a_caller_who_hangs_up_while_their_complaint_is_opened_does_not_join_the_line(h: E2E) -> None:
    """Found by the soak benchmark: the caller gave up while the new complaint
    was being opened (a Redis round trip), the call flow put them in the
    waiting line all the same, and nothing ever took them out again (3 % of
    the calls of a 30-minute run stayed in the line)."""
    from twisted.internet.defer import Deferred
    from twisted.internet.task import deferLater

    from routing.events import CallQueued
    from shenava.demo import luhn_complete

    account = luhn_complete("123456789") + "#"
    call = h.call(CallerScript(number="09120000009", answers=("1", "1", "1", "1", "1", account, "1")))

    def slow_register(outcome: object, channel: str) -> Deferred[str | None]:
        call.hang_up()  # the caller gives up while the register is slow
        return deferLater(h.clock, 1.0, lambda: "4711")

    h.app.callflow.open_complaint = slow_register
    h.run_until(lambda: not h.alive(call) and not h.world.channels(), limit_s=120.0)
    h.advance(30.0)
    assert not h.events(CallQueued, call)
    assert h.app.dispatcher.waiting == 0
    assert per_call_sizes(h) == dict.fromkeys(per_call_sizes(h), 0)


def test_the_routing_decision_history_keeps_its_configured_cap(tmp_path: Path) -> None:
    """The router keeps every assignment's explanation (about 1.2 KB) for
    ``shenava explain``: at most ``[routing] decision_history`` of them, and the
    daemon says once that older ones are being forgotten."""
    from dataclasses import replace

    from twisted.logger import globalLogPublisher

    from tests.e2e_harness import e2e_config

    config = e2e_config()
    harness = E2E.build(tmp_path, config=replace(config, routing=replace(config.routing, decision_history=2)))
    seen: list[dict[str, object]] = []
    observer: Any = seen.append
    globalLogPublisher.addObserver(observer)
    try:
        harness.phone("PJSIP/101", PhoneScript(answer_after_s=1.0, talk_s=2.0))
        harness.log_in("a1")
        for n in range(4):
            call = harness.call(CallerScript(number=f"0912000001{n}", answers=("1", "3")))
            harness.run_until(lambda call=call: not harness.alive(call), limit_s=600.0)  # type: ignore[misc]
            harness.advance(30.0)  # wrap-up: the agent is ready again
        router = harness.app.router
        assert harness.app.counts.answered == 4
        assert router.decisions_kept() == 2
        assert router.decisions_forgotten == 2
    finally:
        globalLogPublisher.removeObserver(observer)
        harness.stop()
    full = [e for e in seen if "decision history is full" in str(e.get("log_format", ""))]
    assert len(full) == 1


def _recorder(clock: Any) -> Any:
    from shenava.call_state import CallStateRecorder, CallStateStore

    store = CallStateStore(cast(Any, None), "t")  # never written: not the leader
    return CallStateRecorder(store, clock, [lambda call_id: None], may_write=lambda: False)


def test_the_calls_remembered_as_this_daemons_own_are_one_hour_of_calls() -> None:
    """Found by the soak's allocation trace: every call's Uniqueid and time stayed
    in the recorder's "own calls" until 10,000 were held, and past that the whole
    map was copied on every change (an hour of calls at 10 calls/s is 36,000)."""
    from twisted.internet.task import Clock

    from shenava.call_state import OWN_MEMORY_S

    clock = Clock()
    recorder = _recorder(clock)
    for n in range(5_000):  # one call a second for 5,000 s
        recorder.mark(f"c{n}")
        clock.advance(1.0)
        assert recorder.own_kept() <= OWN_MEMORY_S + 1
    assert not recorder.own("c0")
    assert recorder.own("c4999") and recorder.own(f"c{5_000 - int(OWN_MEMORY_S)}")
    assert recorder.own_forgotten_early == 0


def test_the_own_calls_have_a_hard_cap_whatever_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    from twisted.internet.task import Clock
    from twisted.logger import globalLogPublisher

    from shenava import call_state

    monkeypatch.setattr(call_state, "OWN_MAX", 100)
    clock = Clock()
    recorder = _recorder(clock)
    seen: list[dict[str, object]] = []
    observer: Any = seen.append
    globalLogPublisher.addObserver(observer)
    try:
        for n in range(250):  # all within the hour
            recorder.mark(f"c{n}")
            clock.advance(0.01)
    finally:
        globalLogPublisher.removeObserver(observer)
    assert recorder.own_kept() == 100
    assert recorder.own_forgotten_early == 150
    assert recorder.own("c249") and not recorder.own("c149")
    assert len([e for e in seen if "forgotten as this daemon's own early" in str(e.get("log_format"))]) == 1


@pytest_twisted.ensureDeferred
async def test_each_take_over_round_keeps_only_its_own_calls(redis_client: Any, tmp_path: Path) -> None:
    """Found by the soak's allocation trace (under load the AMI link was cut and
    resynchronised): the take-over's record of adopted calls kept every round's
    calls for the daemon's life. It now holds the last round's."""
    from shenava.takeover import CallStateExtension

    h = E2E.build(tmp_path, redis=redis_client, killable=True)
    h.log_in("a1")
    h.advance(1.0)
    h.kill()
    late = h.call(CallerScript(number="0935222001", answers=("1", "3")))  # arrives while no daemon runs
    h.advance(5.0)
    app = h.start_again(redis=redis_client)
    extension = app.takeover
    assert isinstance(extension, CallStateExtension)
    await h.run_until_async(lambda: extension.takeover.adopted, limit_s=120)
    assert extension.takeover.adopted == {late.uniqueid: "new"}
    await extension.recorder.flushed()
    h.drop_link(refuse=1)
    h.wait_reconnected()
    await h.run_until_async(lambda: extension.takeover.rounds >= 2, limit_s=60)
    assert extension.takeover.adopted == {}  # the daemon's own caller now: not taken over again
    h.stop()

"""The push of the live figures (``shenava.http.push``) and the counts it is built from.

The browser side is in ``test_browser_pages.py``; here the hub runs on a
``task.Clock`` with the real object graph and Redis, and pages are stand-in
requests that keep what they are sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from agent_stats.running import AgentDay
from agent_stats.sla import day_start
from agent_stats.states import AgentState, NotReadyReason
from routing.calls import WaitingCall
from routing.dispatch import CallAbandoned, CallQueued
from shenava.app import Shenava
from shenava.config import default_config
from shenava.http import install
from shenava.http.push import HEARTBEAT_S, PushHub
from tests.stats_helpers import T0, step_to


class Page:
    """A stand-in for a ``twisted.web`` request kept open by the push."""

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.sent: list[bytes] = []
        self.finished: Deferred[None] = Deferred()

    def setHeader(self, name: bytes, value: bytes) -> None:  # noqa: N802 - twisted's name
        self.headers[name] = value

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def notifyFinish(self) -> Deferred[None]:  # noqa: N802 - twisted's name
        return self.finished

    def finish(self) -> None:
        pass

    def events(self) -> list[tuple[str, Any]]:
        out = []
        for block in b"".join(self.sent).split(b"\n\n"):
            lines = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line
                         and not line.startswith(b":"))
            if b"event" in lines:
                out.append((lines[b"event"].decode(), json.loads(lines[b"data"])))
        return out


class _NoEndpoint:
    def connect(self, factory: Any) -> Any:
        raise AssertionError("not connected in this test")


@pytest_twisted.async_yield_fixture()
async def app(redis_client: Redis) -> AsyncIterator[tuple[Shenava, Clock]]:
    clock = Clock()
    clock.advance(T0)
    shenava = Shenava(default_config(), reactor=clock, redis=redis_client, endpoint=_NoEndpoint())
    service = shenava.extensions["agent_stats"]
    await service.started
    try:
        yield shenava, clock
    finally:
        await service.stop()
        shenava.extensions["complaints"].stop()
        shenava.extensions["recordings"].stop()


def hub_of(app: Shenava) -> PushHub:
    hub = install(app).push
    assert isinstance(hub, PushHub)
    return hub


@pytest_twisted.ensureDeferred
async def test_every_wallboard_gets_the_same_bytes_and_a_desk_only_its_own(
    app: tuple[Shenava, Clock],
) -> None:
    shenava, clock = app
    for agent in ("a1", "a2", "a3"):
        shenava.roster.log_in(agent, clock.seconds())
    hub = hub_of(shenava)
    walls = [Page() for _ in range(3)]
    desk = Page()
    for page in walls:
        hub.connect(page, None)  # type: ignore[arg-type]
    hub.connect(desk, "a2")  # type: ignore[arg-type]
    assert walls[0].headers[b"content-type"].startswith(b"text/event-stream")
    assert hub.viewers == 4
    for page in (*walls, desk):
        page.sent.clear()
    step_to(clock, T0 + 1)
    shenava.roster.set_not_ready("a1", NotReadyReason.TRAINING, clock.seconds())
    step_to(clock, T0 + 2)
    # one encoding, the same object written to every wallboard
    assert walls[0].sent and all(p.sent == walls[0].sent for p in walls[1:])
    assert all(a is b for a, b in zip(walls[0].sent, walls[1].sent, strict=True))
    names = [name for name, _ in walls[0].events()]
    assert names.count("board") == 2 and "agents" in names
    changed = [d for name, d in walls[0].events() if name == "agents"]
    assert [r["id"] for d in changed for r in d["rows"]] == ["a1"]  # only the agent who changed
    row = changed[0]["rows"][0]
    assert (row["state"], row["reason"]) == ("not_ready", "training")
    # the desk: the queue's figures and its own row, nobody else's
    kinds = {name for name, _ in desk.events()}
    assert kinds == {"queue", "me"}
    mine = [d for name, d in desk.events() if name == "me"]
    assert {d["agent"]["id"] for d in mine} == {"a2"}
    assert all("break_line" not in d and "alerts" not in d for n, d in desk.events() if n == "queue")
    # heartbeats keep idle proxies from closing the stream
    for page in walls:
        page.sent.clear()
    step_to(clock, T0 + 2 + HEARTBEAT_S)
    assert b": keep-alive\n\n" in walls[0].sent
    # pages that leave are forgotten; the clock stops with the last one
    for page in (*walls, desk):
        page.finished.callback(None)
    assert hub.viewers == 0 and hub._loop is None


@pytest_twisted.ensureDeferred
async def test_a_late_wallboard_gets_the_whole_picture(app: tuple[Shenava, Clock]) -> None:
    shenava, clock = app
    hub = hub_of(shenava)
    first = Page()
    hub.connect(first, None)  # type: ignore[arg-type]
    step_to(clock, T0 + 3)
    late = Page()
    hub.connect(late, None)  # type: ignore[arg-type]
    events = late.events()
    assert [name for name, _ in events] == ["series", "board", "agents"]
    assert sorted(r["id"] for r in events[2][1]["rows"]) == ["a1", "a2", "a3", "a4"]
    first.finished.callback(None)
    late.finished.callback(None)


@pytest_twisted.ensureDeferred
async def test_waiting_figures_follow_routing_without_a_sort(app: tuple[Shenava, Clock]) -> None:
    shenava, clock = app
    board = install(shenava).board
    line = shenava.router.line
    emit = shenava.dispatcher._emit
    for i, joined in enumerate((T0 - 50, T0 - 30, T0 - 10)):
        call = WaitingCall(f"c{i}", joined, "fa", "", "billing")
        emit(CallQueued(call.call_id, joined, joined, "fa", "billing", "09120000000"))
        line.join(call)
    assert (board.waits.count, board.waits.longest_wait_s(T0)) == (3, 50.0)
    # the oldest rings an agent (out of the line for now): the next one is the longest
    line.leave("c0")
    assert (board.waits.count, board.waits.longest_wait_s(T0)) == (2, 30.0)
    line.join(WaitingCall("c0", T0 - 50, "fa", "", "billing"))
    assert board.waits.longest_wait_s(T0) == 50.0
    line.leave("c0")
    emit(CallAbandoned("c0", T0, T0 - 50, "09120000000", None))
    assert board.waits.longest_wait_s(T0) == 30.0
    # a call that left without an event is found out, and the figure is still right
    line.leave("c1")
    line.leave("c2")
    assert board.waits.longest_wait_s(T0) is None
    counts = board.states.current(T0)
    assert counts.get(AgentState.LOGGED_OUT) == 4
    shenava.roster.log_in("a1", T0)
    assert board.states.counts[AgentState.READY] == 1
    assert board.states_now(T0)["logged_out"] == 3


@pytest_twisted.ensureDeferred
async def test_not_ready_time_kept_as_it_goes_equals_the_ledgers(app: tuple[Shenava, Clock]) -> None:
    shenava, clock = app
    service = shenava.extensions["agent_stats"]
    roster = shenava.roster
    roster.log_in("a1", T0)
    step_to(clock, T0 + 100)
    roster.set_not_ready("a1", NotReadyReason.TRAINING, clock.seconds())
    step_to(clock, T0 + 160)
    roster.set_ready("a1", clock.seconds())
    step_to(clock, T0 + 200)
    roster.set_not_ready("a1", NotReadyReason.PERSONAL, clock.seconds())
    step_to(clock, T0 + 245)
    now = clock.seconds()
    ledger = roster.get("a1").ledger
    today = day_start(now, service.sla)
    day: AgentDay = service.agent_day("a1")
    kept = day.not_ready_today(ledger, today, now)
    totals = ledger.totals(today, now, now)
    assert sum(kept.values()) == totals.state(AgentState.NOT_READY) == 105.0
    assert kept == {NotReadyReason.TRAINING: 60.0, NotReadyReason.PERSONAL: 45.0}


class EndingPage(Page):
    def __init__(self) -> None:
        super().__init__()
        self.ended = 0

    def finish(self) -> None:
        self.ended += 1


@pytest_twisted.ensureDeferred
async def test_stopping_the_http_extension_ends_every_stream(app: tuple[Shenava, Clock]) -> None:
    shenava, _ = app
    hub = hub_of(shenava)
    wall, desk = EndingPage(), EndingPage()
    hub.connect(wall, None)  # type: ignore[arg-type]
    hub.connect(desk, "a1")  # type: ignore[arg-type]
    shenava.extensions["http"].stop()
    assert (wall.ended, desk.ended) == (1, 1)
    assert hub._loop is None


async def _until(condition: Any, what: str) -> None:
    """Let the real reactor run (Redis answers) until ``condition()``; a bound, not a timing."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    for _ in range(500):
        if condition():
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError(f"never: {what}")


@pytest_twisted.ensureDeferred
async def test_review_pages_get_the_registers_stamps_and_see_them_move(
    app: tuple[Shenava, Clock],
) -> None:
    from complaints.complaint import Channel
    from complaints.roles import Actor, Role
    from complaints.service import ComplaintUpdate
    from shenava.aio import as_deferred
    from shenava.http.push import CALLBACKS_EVERY_S

    shenava, clock = app
    register = shenava.extensions["complaints"].register
    hub = hub_of(shenava)
    pages = [Page(), Page()]
    for page in pages:
        hub.connect(page, None, review=True)  # type: ignore[arg-type]
    assert hub.viewers == 2 and not hub.supervisors

    def stamps(page: Page) -> list[dict[str, Any]]:
        return [d for name, d in page.events() if name == "review"]

    await _until(lambda: hub._stamps, "the first stamps read")
    step_to(clock, clock.seconds() + 1)
    first = stamps(pages[0])[-1]
    assert set(first) == {"now", "register", "abuse", "abuse_pending", "callbacks"}
    # only stamps go to a review page: nobody's figures or rows
    assert {name for name, _ in pages[0].events()} == {"review"}
    assert pages[0].sent[-1] is pages[1].sent[-1]  # one encoding for every review page
    # a complaint opened, then noted; an abuse report: each moves its stamp
    c = await as_deferred(register.open_complaint(
        clock.seconds(), category="billing", channel=Channel.IVR, number="09121234567"))
    await as_deferred(register.update(Actor("sara", Role.SUPERVISOR), c.reference,
                                      ComplaintUpdate(note="called back"), clock.seconds()))
    await as_deferred(register.report_abuse(clock.seconds(), agent_id="a1", number="09121234567",
                                            category="threat", note=""))
    step_to(clock, clock.seconds() + CALLBACKS_EVERY_S)
    await _until(lambda: hub._stamps.get("abuse_pending") == first["abuse_pending"] + 1,
                 "the new stamps read")
    step_to(clock, clock.seconds() + 1)
    moved = stamps(pages[1])[-1]
    assert moved["register"] == first["register"] + 2  # opened, then noted
    assert moved["abuse"] > first["abuse"] and moved["abuse_pending"] == first["abuse_pending"] + 1
    for page in pages:
        page.finished.callback(None)
    assert hub.viewers == 0 and hub._loop is None and hub._stamps == {}

"""complaints.wiring end to end: real Redis, real routing and call flow, a fake AMI link."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock

from agent_stats.roster import AgentProfile, AgentRoster
from agent_stats.states import AgentState, NotReadyReason
from ami_bridge.events import ChannelHungUp
from complaints.complaint import Channel, ComplaintStatus
from complaints.roles import Actor, Role
from complaints.service import ComplaintUpdate, RegisterPolicy
from complaints.wiring import ComplaintsExtension, install
from ivr.machine import EndReason, MenuMachine, Outcome
from ivr.menu_schema import Request, load_menus
from routing.callbacks import AttemptOutcome, CallingHours, DialPolicy, ReasonKind, Resolution
from routing.dispatch import CallDispatcher, DispatchConfig
from routing.events import CallLeftForChoice
from routing.router import Router
from routing.scoring import ScoringConfig
from routing.selection import SelectionConfig
from shenava.callflow import CallFlow
from shenava_base.aio import as_deferred
from tests.test_callback_dialer import T0, FakeAMI, FakeTracker, agent_answers, customer_dialled

NUMBER = "09121234567"
SUPERVISOR = Actor("sup1", Role.SUPERVISOR)


@dataclass
class FakeApp:
    """The parts of ``shenava.app.Shenava`` that ``install`` uses, with a fake AMI link."""

    redis: Redis
    reactor: Clock
    agents: tuple[AgentProfile, ...]
    config: Any = None
    agent_stats: Any = None
    complaints: Any = None
    journal: Any = None
    takeover: Any = None

    def __post_init__(self) -> None:
        self.config = SimpleNamespace(
            redis=SimpleNamespace(key_prefix="t"),
            site=SimpleNamespace(timezone="UTC", callback_context="site-callbacks", id=""),
            callbacks=SimpleNamespace(policy=DialPolicy(), hours=CallingHours.always()),
            complaints=RegisterPolicy(retention_s=30 * 86400.0),
        )
        now = self.reactor.seconds()
        self.connection = FakeAMI()
        self.tracker = FakeTracker()
        self.roster = AgentRoster(self.agents, now)
        self.router = Router(ScoringConfig(), SelectionConfig())
        self.dispatcher = CallDispatcher(
            ami=self.connection, tracker=self.tracker, roster=self.roster, router=self.router,  # type: ignore[arg-type]
            clock=self.reactor, config=DispatchConfig(),  # type: ignore[arg-type]
        )
        self.callflow = CallFlow(
            ami=self.connection, tracker=self.tracker, clock=self.reactor,  # type: ignore[arg-type]
            machine=MenuMachine(load_menus()), dispatcher=self.dispatcher,
            support_context="shenava-complaints",
        )

    def ext(self) -> ComplaintsExtension:
        ext = self.complaints
        assert isinstance(ext, ComplaintsExtension)
        return ext

    async def settle(self) -> None:
        ext = self.ext()
        await ext.sources.settled()
        await ext.dialer.settled()


AGENTS = (
    AgentProfile("new", "New", "PJSIP/101", ("fa", "en")),
    AgentProfile("old", "Experienced", "PJSIP/102", ("fa", "en"), experienced=True),
)


@pytest.fixture
def app(redis_client: Redis) -> FakeApp:
    clock = Clock()
    clock.advance(T0)
    app = FakeApp(redis_client, clock, AGENTS)
    app.complaints = install(app)
    return app


def outcome(requested: Request, *, call_id: str = "call-1", category: str | None = "billing",
            number: str = NUMBER, recording: str | None = None) -> Outcome:
    return Outcome(
        call_id=call_id, caller_number=number, language="fa", requested=requested,
        ended=EndReason.COMPLETED,
        path=("language", "category"), started_at=T0 - 60, ended_at=T0, category=category,
        recording=recording,
    )


@pytest_twisted.ensureDeferred
async def test_abandon_raises_flag_dialled_in_hours_and_outcome_closes_it(app: FakeApp) -> None:
    clock = app.reactor
    app.dispatcher.join(call_id="c-1", channel="PJSIP/trunk-1", caller_number=NUMBER,
                        language="fa", category="billing", arrived_at=clock.seconds())
    clock.advance(40)  # nobody is logged in: the caller waits, then gives up
    app.tracker.emit(ChannelHungUp(clock.seconds(), "c-1", "c-1", "PJSIP/trunk-1", 16, ""))
    await app.settle()
    ext = app.ext()
    flag = await as_deferred(ext.callbacks.open_flag_for(NUMBER))
    assert flag is not None and flag.reasons[0].kind is ReasonKind.ABANDONED

    app.roster.log_in("old", clock.seconds())  # an agent becomes free: the dialer is poked
    await app.settle()
    [orig] = app.connection.originates()
    assert (orig["Channel"], orig["Context"], orig["Exten"]) == ("PJSIP/102", "site-callbacks", NUMBER)
    leg = orig["ChannelId"]
    agent_answers(app.tracker, clock, leg)
    customer_dialled(app.tracker, clock, leg, "ANSWER")
    await app.settle()
    closed = await as_deferred(ext.callbacks.get(flag.flag_id))
    assert closed.resolution is Resolution.ANSWERED
    assert closed.attempts[0].outcome is AttemptOutcome.ANSWERED


@pytest_twisted.ensureDeferred
async def test_short_abandon_raises_no_flag(app: FakeApp) -> None:
    clock = app.reactor
    app.dispatcher.join(call_id="c-1", channel="PJSIP/trunk-1", caller_number=NUMBER,
                        language="fa", category="billing", arrived_at=clock.seconds())
    clock.advance(2)
    app.tracker.emit(ChannelHungUp(clock.seconds(), "c-1", "c-1", "PJSIP/trunk-1", 16, ""))
    await app.settle()
    assert await as_deferred(app.ext().callbacks.open_flag_for(NUMBER)) is None


@pytest_twisted.ensureDeferred
async def test_new_complaint_reference_is_read_back_and_status_is_heard(app: FakeApp) -> None:
    await app.callflow.deliver(outcome(Request.AGENT), "PJSIP/trunk-1")
    # "your reference is" and the digit files in one Playback (SAY DIGITS plays the same files)
    said = [cmd for _, cmd in app.connection.agi_commands if "your-reference" in cmd]
    assert len(said) == 1 and said[0].startswith("EXEC Playback shenava/your-reference&digits/")
    reference = said[0].split(" ", 2)[2].replace("shenava/your-reference", "").replace("&digits/", "")
    assert len(reference) == 8 and reference.isdigit()
    register = app.ext().register
    complaint = await as_deferred(register.store.get(reference))
    assert (complaint.category, complaint.number, complaint.channel) == ("billing", NUMBER, Channel.IVR)

    assert await app.callflow.lookup_complaint(reference) == "received"
    await as_deferred(register.update(
        SUPERVISOR, reference, ComplaintUpdate(status=ComplaintStatus.WAITING_FOR_CUSTOMER), T0 + 1,
    ))
    assert await app.callflow.lookup_complaint(reference) == "awaiting_customer"
    unknown = "1234567" + str((int(reference[-1]) + 0) % 10)  # any other valid-looking input
    assert await app.callflow.lookup_complaint(unknown if unknown != reference else "0") is None


@pytest_twisted.ensureDeferred
async def test_repeat_complaint_raises_priority(app: FakeApp) -> None:
    register = app.ext().register
    await as_deferred(register.open_complaint(T0 - 86400, category="billing", channel=Channel.IVR, number=NUMBER))
    facts = await app.callflow.caller_facts(NUMBER)  # type: ignore[misc]
    assert facts["open_complaint"] and not facts["recent_call"]
    await app.callflow.deliver(outcome(Request.AGENT), "PJSIP/trunk-1")
    facts = await app.callflow.caller_facts(NUMBER)  # type: ignore[misc]
    assert facts["recent_call"] is True
    assert "recent" in app.dispatcher.explain("call-1")


@pytest_twisted.ensureDeferred
async def test_ivr_and_hold_callbacks_keep_the_callers_place(app: FakeApp) -> None:
    clock = app.reactor
    await app.callflow.deliver(outcome(Request.CALLBACK, call_id="ivr-1"), "PJSIP/trunk-1")
    await app.settle()
    flag = await as_deferred(app.ext().callbacks.open_flag_for(NUMBER))
    assert flag is not None and flag.reasons[0].kind is ReasonKind.IVR_REQUEST
    assert flag.reasons[0].due_at == clock.seconds()  # nobody ahead of them

    other = "09350000001"
    event = CallLeftForChoice("hold-1", clock.seconds(), clock.seconds() - 30, "callback", other, 4,
                              "PJSIP/trunk-2", "fa")
    assert app.callflow.on_hold_choice is not None
    await maybeDeferred(app.callflow.on_hold_choice, event, None)
    flag = await as_deferred(app.ext().callbacks.open_flag_for(other))
    assert flag is not None and flag.due_at > clock.seconds()  # three callers were ahead

    vm = CallLeftForChoice("hold-2", clock.seconds(), clock.seconds() - 30, "voicemail", other, 2,
                           "PJSIP/trunk-3", "fa")
    await maybeDeferred(app.callflow.on_hold_choice, vm, "shenava-vm/vm-1")
    flag = await as_deferred(app.ext().callbacks.attach_transcript(other, "shenava-vm/vm-1", "hello", clock.seconds()))
    assert flag.transcripts == ("hello",)


@pytest_twisted.ensureDeferred
async def test_hold_choice_chains_an_earlier_handler(redis_client: Redis) -> None:
    clock = Clock()
    clock.advance(T0)
    app = FakeApp(redis_client, clock, AGENTS)
    seen: list[str | None] = []
    app.callflow.on_hold_choice = lambda event, recording: seen.append(recording)
    app.complaints = install(app)
    event = CallLeftForChoice("hold-1", T0, T0 - 30, "voicemail", NUMBER, 1, "PJSIP/trunk-2", "fa")
    assert app.callflow.on_hold_choice is not None
    await maybeDeferred(app.callflow.on_hold_choice, event, "shenava-vm/vm-9")
    assert seen == ["shenava-vm/vm-9"]
    flag = await as_deferred(app.ext().callbacks.open_flag_for(NUMBER))
    assert flag is not None and flag.reasons[0].source == "shenava-vm/vm-9"


@pytest_twisted.ensureDeferred
async def test_abuse_report_gives_recovery_and_steers_the_next_call(app: FakeApp) -> None:
    clock = app.reactor
    roster = app.roster
    for a in ("new", "old"):
        roster.log_in(a, clock.seconds())
    roster.ringing("new", "c-9", clock.seconds())
    roster.answered("new", False, clock.seconds())
    register = app.ext().register
    await as_deferred(register.report_abuse(clock.seconds(), agent_id="new", number=NUMBER, category="threat"))
    assert roster.get("new").state is AgentState.ON_CALL  # never cut off mid-call
    clock.advance(60)
    roster.call_ended("new", clock.seconds())
    assert roster.get("new").reason is NotReadyReason.RECOVERY

    roster.set_ready("new", clock.seconds())  # back from recovery, idle longest
    clock.advance(5)
    roster.set_not_ready("old", NotReadyReason.PERSONAL, clock.seconds())
    roster.set_ready("old", clock.seconds())
    await app.callflow.deliver(outcome(Request.AGENT, call_id="c-10"), "PJSIP/trunk-1")
    [orig] = app.connection.originates()
    assert orig["Channel"] == "PJSIP/102"  # the experienced agent, although "new" idled longer


@pytest_twisted.ensureDeferred
async def test_recovery_starts_at_once_for_a_free_agent(app: FakeApp) -> None:
    app.roster.log_in("old", T0)
    await as_deferred(app.ext().register.report_abuse(T0, agent_id="old", number=NUMBER, category="verbal_abuse"))
    assert app.roster.get("old").reason is NotReadyReason.RECOVERY


@pytest_twisted.ensureDeferred
async def test_periodic_sweep_and_purge_on_the_clock(app: FakeApp) -> None:
    clock = app.reactor
    ext = app.ext()
    deleted: list[str] = []

    async def delete(recording_id: str) -> None:
        deleted.append(recording_id)

    ext.register.set_delete_recording(delete)
    stale = await as_deferred(ext.register.open_complaint(
        T0, category="billing", channel=Channel.IVR, number=NUMBER))
    done = await as_deferred(ext.register.open_complaint(
        T0, category="billing", channel=Channel.VOICEMAIL, number="09350000002",
        recordings=("shenava-vm/vm-2",), transcript="words"))
    await as_deferred(ext.register.update(
        SUPERVISOR, done.reference, ComplaintUpdate(status=ComplaintStatus.RESOLVED), T0))
    await as_deferred(ext.register.update(
        SUPERVISOR, done.reference, ComplaintUpdate(status=ComplaintStatus.CLOSED), T0))

    clock.advance(8 * 86400)  # the jobs run on the clock: the sweep is due, the purge not yet
    await ext.jobs.sweep()
    flag = await as_deferred(ext.callbacks.open_flag_for(NUMBER))
    assert flag is not None and flag.reasons[0].complaint_ref == stale.reference
    assert deleted == []

    clock.advance(23 * 86400)
    purged = await ext.jobs.purge()
    assert purged["complaints"] == [done.reference]
    assert deleted == ["shenava-vm/vm-2"]
    after = await as_deferred(ext.register.store.get(done.reference))
    assert after.transcript is None and after.purged_at is not None

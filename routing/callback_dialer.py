"""Dialling callback flags: the agent's leg first, then the customer (transcript 42).

When the dial gate is open (calling hours, a free agent, service-level
headroom: :func:`routing.callbacks.dial_gate`), the dialer claims the flag due
longest (a Redis lease, so two daemons never dial one flag), takes the agent
who has been idle longest out of routing (``roster.ringing``), records the
attempt, and originates the agent's phone into the callback context
(``[shenava-callback]`` in ``etc/asterisk/extensions.conf``) with the customer
number as the extension and ``SHENAVA_CALLBACK`` riding along. Once the agent
answers, that context ``Dial``\\ s the customer from the agent's channel, so
the customer's phone rings only when an agent is on the line.

How each attempt ends, from the events the call tracker reports:

- the agent's leg fails (``OriginateResponse`` not answered): ``agent_unavailable``
  (not counted against the customer; the agent goes not ready as after a
  missed inbound call);
- ``DialEnd`` of the customer leg: ``ANSWER`` -> ``answered``, ``NOANSWER`` ->
  ``no_answer``, ``BUSY`` -> ``busy``, ``CONGESTION``/``CHANUNAVAIL`` ->
  ``failed``, or ``wrong_number`` when the network said the number does not
  exist (hang-up causes 1, 3, 22, 28), ``CANCEL`` (the agent hung up while it
  rang) -> ``no_answer``;
- the agent's leg hangs up with no ``DialEnd``: ``no_answer`` if the customer's
  phone was being dialled, else ``failed`` (the dialplan never dialled: a
  supervisor sees it once the round is exhausted).

The outcome is recorded as soon as it is known (an answered call closes its
flag at the answer, so a crash mid-conversation cannot have the customer called
again). With the daemon's journal (``journal=``) it is journalled first
(``callback.outcome``, fsynced in ``state.folder``) and applied to Redis from
there, retried while Redis is away: a ``kill -9`` during an outage keeps it,
and the next daemon on that folder applies it once (the attempt's outcome is
set once: a replay finds it ended and does nothing). Until it is applied the
flag is not claimed here (a previous run's pending outcomes included), so the
next claim does not mark that attempt ``interrupted`` first. Before, the
outcome waited in memory only, and the kill lost it: the attempt came back
``interrupted`` (counted) and a customer who had answered was called again.
The agent is on the call until their leg hangs up, then in wrap-up,
then ready, like after an inbound call.

A flag whose customer is on a call right now (in the IVR, waiting in line,
talking to an agent: :class:`routing.live_numbers.LiveNumbers`) is not dialled:
its lease is released without an attempt (nothing is counted against the
customer), the next due flag is tried, and the dialer looks again when that
customer's last channel hangs up (and at its timer). A customer who calls in
while their callback is being dialled (the agent's phone ringing, or their own
phone ringing from the callback context) wins: the agent's leg is hung up (on
its ``Newchannel`` if Asterisk had not created it yet), the attempt ends
``customer_called_in`` (not counted, no backoff), the agent goes back to ready
(not ``missed``), and the flag waits for the end of their call like the one
above. Before, the agent answered and the callback context rang the customer
in the middle of their own call, and routing could hand that call to a second
agent.

Several sites (``cross_site``: in the daemon, while the register of sites
lists others) share the flags, and a
customer may call any site while another dials their callback (a flag is
dialled by the site that opened it). A site that sees a customer with an open
flag call in marks the number in Redis while their call lasts
(:meth:`routing.callback_store.CallbackStore.mark_calling`: one script per call
in, nothing written for callers without a flag); every site's dialer reads
the mark before it dials a flag (held ``CALLING_RECHECK_S``, then looked at
again: no attempt counted) and, while its dials are in progress, once every
``CALLING_POLL_S`` (one ``MGET``): a marked customer wins as above
(``customer_called_in``). Before, a site saw only its own Asterisk's calls, and
rang a customer who was talking to another site's agent.

The dialer runs when something may have opened the gate (an agent became
ready, a waiting call left the line, a flag was raised: :meth:`poke`) and on a
modest timer for flags that became due with nothing happening; never a busy
loop. One dialling cycle runs at a time; a poke during a cycle reruns it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, fail, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from agent_stats.roster import AgentChange, AgentRoster, AgentStatus
from agent_stats.states import AgentState, NotReadyReason
from ami_bridge import actions
from ami_bridge.codec import Message
from ami_bridge.events import (
    ORIGINATE_BUSY,
    ORIGINATE_NO_ANSWER,
    ChannelCreated,
    ChannelHungUp,
    DialEnded,
    DialStarted,
    OriginateFinished,
    TrackerEvent,
)
from ami_bridge.tracker import handles
from routing.callback_store import CallbackStore, Lease
from routing.callbacks import (
    AttemptAlreadyEndedError,
    AttemptOutcome,
    CallbackError,
    CallbackFlag,
    CallingHours,
    GateDecision,
    UnknownAttemptError,
    UnknownFlagError,
    dial_gate,
)
from routing.channel_ids import ChannelIds
from routing.live_numbers import LiveNumbers
from shenava_base.aio import as_deferred
from shenava_base.clock import Clock
from shenava_base.journal import RecordJournal, number_key
from shenava_base.outage import OutageNote
from shenava_base.privacy import mask_number

log = Logger()

CALLBACK_CONTEXT = "shenava-callback"
CALL_ID_PREFIX = "callback:"
CALLBACK_LEG_PREFIX = "shenava-cb-"
NOTHING_DUE_RECHECK_S = 1.0
"""After a claim that found nothing to dial, agents freed within this long do not ask again."""
"""``AgentStatus.current_call`` of an agent on a callback: ``callback:<flag id>``."""
WRONG_NUMBER_CAUSES = frozenset({1, 3, 22, 28})
"""Q.850 causes that mean the number is wrong: unallocated, no route, number
changed, invalid number format."""
CALLING_POLL_S = 1.0
"""While dialling (several sites), how often the dialer asks whether its customers called
in at another site (one ``MGET`` of their numbers)."""
CALLING_RECHECK_S = 5.0
"""A flag whose customer is on a call at another site is looked at again this much later."""
OUTCOME_KIND = "callback.outcome"
"""The journal's kind for an attempt's outcome."""
OUTCOMES_KEY = "callback-outcomes"
"""Every outcome entry's ordering key too: ``Journal.pending`` finds a previous run's by it."""
OUTCOME_RETRY_FIRST_S = 0.5
OUTCOME_RETRY_MAX_S = 5.0
"""The backoff of an attempt's outcome retried while Redis is away."""
_DIAL_STATUS_OUTCOMES = {
    "ANSWER": AttemptOutcome.ANSWERED,
    "NOANSWER": AttemptOutcome.NO_ANSWER,
    "BUSY": AttemptOutcome.BUSY,
    "CANCEL": AttemptOutcome.NO_ANSWER,
    "CONGESTION": AttemptOutcome.FAILED,
    "CHANUNAVAIL": AttemptOutcome.FAILED,
}


def outcome_of_dial(status: str, customer_cause: int | None) -> AttemptOutcome:
    """The attempt's outcome from the customer leg's ``DialStatus`` and hang-up cause."""
    outcome = _DIAL_STATUS_OUTCOMES.get(status.upper(), AttemptOutcome.FAILED)
    if outcome is AttemptOutcome.FAILED and customer_cause in WRONG_NUMBER_CAUSES:
        return AttemptOutcome.WRONG_NUMBER
    return outcome


class AMIActions(Protocol):
    def send_action(
        self, action: str, headers: Any = (), *, timeout: float | None = None
    ) -> Deferred[Message]: ...


class EventSource(Protocol):
    def subscribe(self, subscriber: Callable[[TrackerEvent], object]) -> None: ...



ServiceLevel = Callable[[float], float | None]
"""The live service level at ``now`` (``None``: nothing offered yet)."""


@dataclass(frozen=True, slots=True)
class CallbackDialConfig:
    context: str = CALLBACK_CONTEXT
    agent_ring_timeout_s: float = 20.0
    tick_s: float = 60.0
    """The timer that finds flags that fell due while nothing else happened."""
    wrap_up_s: float = 10.0
    on_agent_no_answer: NotReadyReason | None = NotReadyReason.MISSED


@dataclass(slots=True, eq=False)
class _Dial:
    flag_id: str
    number: str
    lease: Lease
    attempt_no: int
    agent_id: str
    endpoint: str
    leg_id: str
    action_id: str | None = None
    agent_answered: bool = False
    customer_uniqueid: str | None = None
    customer_cause: int | None = None
    outcome: AttemptOutcome | None = None
    keepalive: Any = None
    channel: str | None = None
    """The agent leg's channel name, once Asterisk reported it."""
    gave_way: bool = False
    """The customer called in meanwhile: the agent's leg is being hung up."""


class CallbackDialer:
    def __init__(
        self,
        *,
        store: CallbackStore,
        ami: AMIActions,
        tracker: EventSource,
        roster: AgentRoster,
        waiting_calls: Callable[[], int],
        clock: Clock,
        hours: CallingHours,
        owner: str,
        service_level: ServiceLevel | None = None,
        staffed_service_level: ServiceLevel | None = None,
        config: CallbackDialConfig | None = None,
        channel_ids: ChannelIds | None = None,
        journal: RecordJournal | None = None,
        cross_site: bool | Callable[[], bool] = False,
    ) -> None:
        self._store = store
        self._several_sites: Callable[[], bool] = (
            cross_site if callable(cross_site) else (lambda: cross_site)
        )
        self._marks: dict[str, Deferred[Any]] = {}
        """Numbers this site marked on a call (their mark's write)."""
        self._held_elsewhere: dict[str, float] = {}
        """Flags whose customer is on a call at another site: flag id -> look again then."""
        self._calling_poll: Any = None
        self._recheck: Any = None
        self._sites_outage = OutageNote(
            "callback calls-in across sites", "calls in here are not told to the other sites, "
            "nor theirs seen here", log, clock.seconds,
        )
        self._ami = ami
        self._roster = roster
        self._waiting_calls = waiting_calls
        self._clock = clock
        self._hours = hours
        self._owner = owner
        self._service_level = service_level
        self._staffed_service_level = staffed_service_level
        self._config = config or CallbackDialConfig()
        self._dials: dict[str, _Dial] = {}  # by agent leg Uniqueid (our ChannelId)
        self._leg_ids = channel_ids or ChannelIds(CALLBACK_LEG_PREFIX)
        self._cycle: Deferred[None] | None = None
        self._again = False
        self._cycling = False
        """A cycle's coroutine runs: a poke now is seen by it (``_again``). Its Deferred
        (``_cycle``) fires one loop turn after the coroutine returns: a poke in between
        must start a new cycle, not wait on the one already over."""
        self._running = False
        self._tick: Any = None
        self._in_flight: set[Deferred[Any]] = set()
        self.last_gate: GateDecision | None = None
        self._nothing_due_until = -math.inf
        """Until then a :meth:`nudge` does not ask Redis (its last claim found nothing)."""
        channel_of = getattr(tracker, "channel", None)
        self.live_numbers = LiveNumbers(
            caller_of=lambda uniqueid: getattr(channel_of(uniqueid) if channel_of else None, "caller_num", None),
            ignore=lambda uniqueid: uniqueid in self._dials,
        )
        self.live_numbers.on_free = self._on_number_free
        self.live_numbers.on_call_in = self._on_call_in
        self._channel_of = channel_of
        self._unrecorded: set[str] = set()
        """Flags whose attempt's outcome is being stored (retried while Redis is away)."""
        self._outcome_outage = OutageNote(
            "callback outcomes", "each is kept in memory and stored when Redis answers", log,
            clock.seconds,
        )
        self._held: dict[str, str] = {}
        """Flags not dialled because their customer is on a call: flag id -> number."""
        self._cycle_outage = OutageNote(
            "callback dialling", "due callbacks wait (nothing is claimed or lost)", log,
            clock.seconds,
        )
        self._journal = journal
        if journal is not None:
            # a previous run's, not applied yet: not claimed (and marked interrupted) before
            # (read before registering: the journal starts applying them then)
            for payload in journal.pending(OUTCOME_KIND, OUTCOMES_KEY):
                self._unrecorded.add(str(payload["flag_id"]))
            journal.register(OUTCOME_KIND, self._apply_journalled)
        tracker.subscribe(self.live_numbers.on_tracker_event)
        tracker.subscribe(self._on_tracker_event)
        roster.subscribe(self._on_agent_change)

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        self._schedule_tick(0.0)

    def stop(self) -> None:
        """Stop dialling new flags; calls in progress still get their outcomes recorded."""
        self._running = False
        for call in (self._tick, self._calling_poll, self._recheck):
            if call is not None and call.active():
                call.cancel()
        self._tick = self._calling_poll = self._recheck = None

    @property
    def dialling(self) -> int:
        return len(self._dials)

    def number_of(self, flag_id: str) -> str | None:
        """The customer number this daemon is dialling for ``flag_id`` (None: not dialling it)."""
        return next((d.number for d in self._dials.values() if d.flag_id == flag_id), None)

    def _schedule_tick(self, delay: float) -> None:
        self._tick = self._clock.callLater(delay, self._on_tick)

    def _on_tick(self) -> None:
        if not self._running:
            return
        self.poke()
        self._schedule_tick(self._config.tick_s)

    # -- when to look -------------------------------------------------------------

    def poke(self) -> Deferred[None]:
        """Something may have opened the gate: dial what is due. Fires when the cycle ends."""
        self._nothing_due_until = -math.inf
        if not self._running:
            return succeed(None)
        if self._cycling and self._cycle is not None:
            self._again = True
            return self._cycle
        self._cycling = True
        d = as_deferred(self._run_cycle())
        self._cycle = d
        d.addCallbacks(self._cycle_ok, self._cycle_failed)
        d.addBoth(self._cycle_over, d)
        return d

    def flag_raised(self, flag: CallbackFlag) -> Deferred[None]:
        """A flag was raised here: :meth:`poke`. One whose customer is on a call now (an
        IVR callback request, made before the caller hangs up) waits for the hang-up among
        the held flags, not claimed only to be given back (a lease and a release, five
        Redis commands, then claimed again when the call ends)."""
        if flag.is_open and flag.site == self._store.site and flag.number in self.live_numbers:
            self._held[flag.flag_id] = flag.number
        return self.poke()

    def nudge(self) -> Deferred[None]:
        """An agent was freed or the line got shorter: :meth:`poke`, unless a claim found
        nothing due within ``NOTHING_DUE_RECHECK_S`` and no flag was raised since.

        Under traffic these come several times per call, and each asked Redis for
        the due flags (``ZRANGEBYSCORE``) only to find the same ones in progress;
        a flag that falls due meanwhile waits this long at most (a raised flag,
        the timer and an outcome still poke at once)."""
        if self._clock.seconds() < self._nothing_due_until:
            return succeed(None)
        if self._cycling and self._cycle is not None:
            self._again = True
            return self._cycle
        return self.poke()

    def _cycle_ok(self, result: None) -> None:
        self._cycle_outage.ok()

    def _cycle_failed(self, failure: Failure) -> None:
        """Redis away or slow: one warning per outage, not a traceback per cycle (the
        timer and every poke run one); anything else is a failure with its traceback."""
        if self._cycle_outage.expected(failure.value):
            self._cycle_outage.failed(failure.value)
        else:
            log.failure("callback dialling cycle failed", failure)

    def _cycle_over(self, result: object, cycle: Deferred[None]) -> None:
        if self._cycle is cycle:  # not a newer one started after this one's coroutine returned
            self._cycle = None
            self._cycling = False  # (a cycle cancelled before its coroutine ran)

    def settled(self) -> Deferred[Any]:
        """Fires when the running cycle and every outcome being stored are done (tests, shutdown)."""
        pending = list(self._in_flight)
        if self._cycle is not None:
            pending.append(self._cycle)
        return DeferredList(pending, consumeErrors=True)

    def _on_number_free(self, number: str) -> None:
        """A customer whose callback waited for their call to end has hung up: dial now."""
        mark = self._marks.pop(number, None)
        if mark is not None:  # after the mark's write (one connection of a pool each)
            mark.addCallback(lambda marked: self._unmark(number) if marked else None)
        if number in self._held.values():
            self.poke()

    def _on_call_in(self, number: str) -> None:
        """A customer called in: a callback of theirs being dialled gives way (here, and
        at the other sites through the number's mark)."""
        if number not in self._marks and self._several_sites():
            d = self._track(as_deferred(self._store.mark_calling(number)))
            d.addErrback(self._mark_failed, number)
            self._marks[number] = d
        for dial in list(self._dials.values()):
            if dial.number == number and dial.outcome is None:
                self._give_way(dial)

    def _mark_failed(self, failure: Failure, number: str) -> bool:
        self._sites_failed(failure, "{number}'s call here not told to the other sites", number)
        return False

    def _sites_failed(self, failure: Failure, what: str, number: str = "") -> None:
        """Redis away (one warning per outage), or not the leader (a standby: said by the
        leader lease); anything else each time."""
        error = failure.value
        if getattr(error, "code", None) == "leader.not_leader":
            return
        if isinstance(error, BaseException) and self._sites_outage.expected(error):
            self._sites_outage.failed(error)
            return
        log.warn("callback: " + what + " ({error})", number=mask_number(number),
                 error=failure.getErrorMessage())

    def _unmark(self, number: str) -> None:
        d = self._track(as_deferred(self._store.unmark_calling(number)))
        d.addCallback(lambda _: self._sites_outage.ok())
        d.addErrback(self._sites_failed, "the end of {number}'s call here not told to the other "
                     "sites; their mark lapses by itself", number)

    def _poll_calling(self) -> None:
        """Dials in progress whose customer called in at another site give way."""
        self._calling_poll = None
        numbers = {d.number for d in self._dials.values() if d.outcome is None and not d.gave_way}
        if not numbers:
            return
        d = self._track(as_deferred(self._store.calling(numbers)))

        def found(calling: set[str]) -> None:
            self._sites_outage.ok()
            for dial in list(self._dials.values()):
                if dial.number in calling and dial.outcome is None and not dial.gave_way:
                    self._give_way(dial)

        d.addCallbacks(found, self._sites_failed,
                       errbackArgs=("could not ask whether customers being dialled called in elsewhere",))
        d.addBoth(lambda _: self._watch_calling())

    def _watch_calling(self) -> None:
        if self._calling_poll is None and self._dials and self._several_sites():
            self._calling_poll = self._clock.callLater(CALLING_POLL_S, self._poll_calling)

    def _recheck_later(self) -> None:
        if self._recheck is None or not self._recheck.active():
            self._recheck = self._clock.callLater(CALLING_RECHECK_S, self.poke)

    def _give_way(self, dial: _Dial) -> None:
        log.info(
            "callback {flag} attempt {attempt}: {number} called in meanwhile; agent {agent}'s "
            "leg is hung up and the callback waits until their call ends",
            flag=dial.flag_id, attempt=dial.attempt_no, number=mask_number(dial.number),
            agent=dial.agent_id,
        )
        dial.gave_way = True
        self._held[dial.flag_id] = dial.number
        self._record(dial, AttemptOutcome.CUSTOMER_CALLED_IN, "the customer called in meanwhile")
        self._hang_up_leg(dial)

    def _hang_up_leg(self, dial: _Dial) -> None:
        """Hang up the agent's leg by its name (Asterisk's ``Hangup`` takes a name); a leg
        not created yet is hung up on its ``Newchannel`` (:meth:`_on_tracker_event`)."""
        if dial.channel is None:
            tracked = self._channel_of(dial.leg_id) if self._channel_of is not None else None
            dial.channel = getattr(tracked, "name", None)
        if dial.channel:
            self._ami.send_action("Hangup", [("Channel", dial.channel)]).addErrback(lambda _: None)

    def _skipped(self) -> set[str]:
        """Flags not to claim: those being dialled, and those whose customer is still on a call."""
        self._held = {f: n for f, n in self._held.items() if n in self.live_numbers}
        skipped = {d.flag_id for d in self._dials.values()} | set(self._held) | self._unrecorded
        if self._held_elsewhere:
            now = self._clock.seconds()
            self._held_elsewhere = {f: t for f, t in self._held_elsewhere.items() if t > now}
            skipped |= set(self._held_elsewhere)
        return skipped

    def _on_agent_change(self, change: AgentChange) -> None:
        if change.new is AgentState.READY:
            self.nudge()

    # -- the gate --------------------------------------------------------------------

    def gate(self, now: float) -> GateDecision:
        """``dial_gate`` on the roster's kept counts; the service levels (Erlang C, O(agents)
        when the traffic moved) only once calling hours, free agents and waiting calls pass,
        the only case where ``dial_gate`` reads them."""
        free_agents, waiting_calls = self._roster.count(AgentState.READY), self._waiting_calls()
        policy = self._store.policy
        decision = dial_gate(
            now, self._hours, policy, free_agents=free_agents, waiting_calls=waiting_calls,
            service_level=None, staffed_service_level=None,
        )
        if not decision.open or (self._service_level is None and self._staffed_service_level is None):
            return decision
        level = self._service_level(now) if self._service_level is not None else None
        staffed = (
            self._staffed_service_level(now) if self._staffed_service_level is not None else None
        )
        return dial_gate(
            now, self._hours, policy, free_agents=free_agents, waiting_calls=waiting_calls,
            service_level=level, staffed_service_level=staffed,
        )

    def _note_gate(self, decision: GateDecision) -> None:
        """Log when the gate changes which test holds callbacks (not every cycle)."""
        before, self.last_gate = self.last_gate, decision
        if before is not None and before.gate == decision.gate:
            return
        if decision.open:
            if before is not None:
                log.info("callbacks may be dialled again: {reason}", reason=decision.reason)
        else:
            log.info(
                "callback dialling held by the {gate} gate: {reason}",
                gate=decision.gate, reason=decision.reason,
            )

    def _pick_agent(self) -> AgentStatus | None:
        """The ready agent idle longest (the roster keeps them ordered: no scan per call)."""
        return self._roster.longest_idle_ready()

    # -- one cycle ----------------------------------------------------------------------

    async def _run_cycle(self) -> None:
        try:
            while True:
                self._again = False
                while self._running and await self._dial_one():
                    pass
                if not (self._again and self._running):
                    return
        finally:
            self._cycling = False  # decided at once: a later poke starts a new cycle

    async def _dial_one(self) -> bool:
        """Dial one due flag; ``False`` when nothing more can be dialled now."""
        now = self._clock.seconds()
        decision = self.gate(now)
        self._note_gate(decision)
        if not decision.open:
            return False
        claim = await self._store.claim_due(now, self._hours, self._owner, skip=self._skipped())
        if claim is None:
            self._nothing_due_until = now + NOTHING_DUE_RECHECK_S
            return False
        if claim.flag.number in self.live_numbers:
            # Still in the IVR, waiting or talking: not rung by their own callback. No
            # attempt is recorded; the flag is tried again once they hang up.
            self._held[claim.flag.flag_id] = claim.flag.number
            log.info(
                "callback {flag} waits: {number} is on a call now; dialled after it ends",
                flag=claim.flag.flag_id, number=mask_number(claim.flag.number),
            )
            await self._store.release(claim.lease)
            return True
        if self._several_sites() and await self._store.calling([claim.flag.number]):
            # On a call at another site: the same, looked at again a little later.
            self._held_elsewhere[claim.flag.flag_id] = self._clock.seconds() + CALLING_RECHECK_S
            log.info(
                "callback {flag} waits: {number} is on a call at another site now",
                flag=claim.flag.flag_id, number=mask_number(claim.flag.number),
            )
            await self._store.release(claim.lease)
            self._recheck_later()
            return True
        # Redis took a moment: the agent may have been given an inbound call meanwhile.
        now = self._clock.seconds()
        agent = self._pick_agent() if self.gate(now).open else None
        if agent is None:
            await self._store.release(claim.lease)
            return False
        agent_id = agent.profile.agent_id
        call_id = CALL_ID_PREFIX + claim.flag.flag_id
        self._roster.ringing(agent_id, call_id, now)
        try:
            flag = await self._store.start_attempt(claim.lease, now, agent_id)
        except CallbackError as exc:
            log.warn(
                "callback {flag} not dialled: {error}", flag=claim.flag.flag_id, error=str(exc)
            )
            self._release_agent(agent_id, call_id)
            await self._store.release(claim.lease)
            return True
        leg_id = self._leg_ids.next(agent_id)
        dial = _Dial(
            flag.flag_id, flag.number, claim.lease, flag.attempts[-1].number, agent_id,
            agent.profile.endpoint, leg_id,
        )
        if flag.number in self.live_numbers:
            # They called in while the attempt was being stored: nothing is dialled.
            self._give_way(dial)
            self._release_agent(agent_id, call_id)
            return True
        self._dials[leg_id] = dial
        self._keep_lease(dial)
        self._originate(dial)
        self._watch_calling()
        return True

    def _release_agent(self, agent_id: str, call_id: str) -> None:
        status = self._roster.get(agent_id)
        if status.state is AgentState.RINGING and status.current_call == call_id:
            self._roster.ring_cancelled(agent_id, self._clock.seconds())

    def _originate(self, dial: _Dial) -> None:
        log.info(
            "callback {flag} attempt {attempt}: ringing agent {agent} for {number}",
            flag=dial.flag_id, attempt=dial.attempt_no, agent=dial.agent_id,
            number=mask_number(dial.number),
        )
        action = actions.originate_context(
            dial.endpoint,
            self._config.context,
            dial.number,
            channel_id=dial.leg_id,
            timeout_s=self._config.agent_ring_timeout_s,
            caller_id=f'"Callback" <{dial.number}>',
            variables={"SHENAVA_CALLBACK": dial.flag_id, "SHENAVA_ATTEMPT": str(dial.attempt_no)},
        )
        d = self._ami.send_action(action.name, action.headers)
        d.addCallbacks(
            self._originate_queued, self._originate_refused, callbackArgs=(dial,), errbackArgs=(dial,)
        )

    def _originate_queued(self, response: Message, dial: _Dial) -> None:
        dial.action_id = response.get("ActionID")

    def _originate_refused(self, failure: Any, dial: _Dial) -> None:
        log.warn(
            "Originate of callback {flag} refused: {error}", flag=dial.flag_id,
            error=failure.getErrorMessage(),
        )
        self._agent_leg_failed(dial, technical=True)

    # -- the lease, while the call lasts ---------------------------------------------------

    def _keep_lease(self, dial: _Dial) -> None:
        every = self._store.policy.lease_ms / 1000.0 / 3.0
        dial.keepalive = self._clock.callLater(every, self._extend, dial)

    def _extend(self, dial: _Dial) -> None:
        if dial.outcome is not None or self._dials.get(dial.leg_id) is not dial:
            return
        d = self._track(as_deferred(self._store.extend(dial.lease)))
        d.addErrback(
            lambda f: log.warn(
                "callback {flag}: dial lease lost ({error}); the outcome is still recorded",
                flag=dial.flag_id, error=f.getErrorMessage(),
            )
        )
        self._keep_lease(dial)

    # -- what Asterisk reports ---------------------------------------------------------------

    @handles(OriginateFinished, DialStarted, DialEnded, ChannelHungUp, ChannelCreated)
    def _on_tracker_event(self, event: TrackerEvent) -> None:
        if isinstance(event, OriginateFinished):
            self._on_originate_finished(event)
        elif isinstance(event, DialStarted):
            dial = self._dials.get(event.caller_uniqueid or "")
            if dial is not None:
                dial.customer_uniqueid = event.dest_uniqueid
                if dial.gave_way:
                    self._hang_up_leg(dial)
        elif isinstance(event, ChannelCreated):
            dial = self._dials.get(event.uniqueid)
            if dial is not None:
                dial.channel = event.channel
                if dial.gave_way:
                    self._hang_up_leg(dial)
        elif isinstance(event, DialEnded):
            dial = self._dials.get(event.caller_uniqueid or "")
            if dial is not None and dial.outcome is None:
                outcome = outcome_of_dial(event.status, dial.customer_cause)
                self._record(dial, outcome, f"DialStatus {event.status}")
        elif isinstance(event, ChannelHungUp):
            self._on_hangup(event)

    def _dial_of_originate(self, event: OriginateFinished) -> _Dial | None:
        if event.uniqueid is not None and event.uniqueid in self._dials:
            return self._dials[event.uniqueid]
        for dial in self._dials.values():
            if dial.agent_answered:
                continue
            if (dial.action_id is not None and dial.action_id == event.action_id) or (
                event.uniqueid is None and event.channel == dial.endpoint
            ):
                return dial
        return None

    def _on_originate_finished(self, event: OriginateFinished) -> None:
        dial = self._dial_of_originate(event)
        if dial is None or dial.agent_answered:
            return
        if not event.success:
            technical = event.reason not in (ORIGINATE_NO_ANSWER, ORIGINATE_BUSY)
            self._agent_leg_failed(dial, technical=technical)
            return
        dial.agent_answered = True
        dial.channel = dial.channel or event.channel or None
        self._roster.answered(dial.agent_id, False, event.at)
        if dial.gave_way:
            self._hang_up_leg(dial)

    def _on_hangup(self, event: ChannelHungUp) -> None:
        dial = self._dials.get(event.uniqueid)
        if dial is None:
            for candidate in self._dials.values():
                if candidate.customer_uniqueid == event.uniqueid:
                    candidate.customer_cause = event.cause
            return
        if not dial.agent_answered:
            if dial.gave_way:  # hung up by us while it rang: the agent missed nothing
                self._forget(dial)
                self._release_agent(dial.agent_id, CALL_ID_PREFIX + dial.flag_id)
            return  # else the agent's phone never answered: OriginateResponse settles it
        if dial.outcome is None:
            if dial.customer_uniqueid is not None:
                self._record(dial, AttemptOutcome.NO_ANSWER, "the agent hung up while it rang")
            else:
                self._record(dial, AttemptOutcome.FAILED, "the customer's leg was never dialled")
        self._forget(dial)
        self._roster.call_ended(dial.agent_id, event.at)
        self._clock.callLater(self._config.wrap_up_s, self._wrap_up_over, dial.agent_id)

    def _agent_leg_failed(self, dial: _Dial, *, technical: bool) -> None:
        if self._dials.get(dial.leg_id) is not dial:
            return
        self._forget(dial)
        why = "the agent's phone could not be reached" if technical else "the agent did not answer"
        self._record(dial, AttemptOutcome.AGENT_UNAVAILABLE, why)
        status = self._roster.get(dial.agent_id)
        if dial.gave_way:
            self._release_agent(dial.agent_id, CALL_ID_PREFIX + dial.flag_id)
        elif status.state is AgentState.RINGING and status.current_call == CALL_ID_PREFIX + dial.flag_id:
            reason = NotReadyReason.TECHNICAL if technical else self._config.on_agent_no_answer
            self._roster.ring_failed(dial.agent_id, self._clock.seconds(), reason)

    def _wrap_up_over(self, agent_id: str) -> None:
        if self._roster.get(agent_id).state is AgentState.WRAP_UP:
            self._roster.set_ready(agent_id, self._clock.seconds())

    def _forget(self, dial: _Dial) -> None:
        self._dials.pop(dial.leg_id, None)
        if dial.keepalive is not None and dial.keepalive.active():
            dial.keepalive.cancel()

    # -- outcomes ------------------------------------------------------------------------------

    def _record(self, dial: _Dial, outcome: AttemptOutcome, note: str) -> None:
        if dial.outcome is not None:
            return
        dial.outcome = outcome
        if dial.keepalive is not None and dial.keepalive.active():
            dial.keepalive.cancel()
        now = self._clock.seconds()
        log.info(
            "callback {flag} attempt {attempt}: {outcome}", flag=dial.flag_id,
            attempt=dial.attempt_no, outcome=outcome.value,
        )
        self._unrecorded.add(dial.flag_id)
        if self._journal is not None:
            self._journal_outcome(dial, outcome, now, note)
            return
        self._store_in_memory(dial, outcome, now, note)

    def _store_in_memory(self, dial: _Dial, outcome: AttemptOutcome, now: float, note: str) -> None:
        """Without a journal (or one that cannot keep it): retried in memory until stored."""
        d = self._track(ensureDeferred(self._store_outcome(dial, outcome, now, note)))
        d.addCallbacks(
            lambda _: self.poke(),
            lambda f: log.failure(
                "outcome {outcome} of callback {flag} attempt {attempt} not recorded", f,
                outcome=outcome.value, flag=dial.flag_id, attempt=dial.attempt_no,
            ),
        )

    def _journal_outcome(self, dial: _Dial, outcome: AttemptOutcome, now: float, note: str) -> None:
        """Journal the outcome; the journal applies it (:meth:`_apply_journalled`), now or,
        after a ``kill -9``, in the next daemon on this ``state.folder``."""
        assert self._journal is not None
        payload = {
            "flag_id": dial.flag_id, "token": dial.lease.token, "attempt": dial.attempt_no,
            "outcome": outcome.value, "at": now, "by": dial.agent_id, "note": note,
        }
        try:
            d = self._journal.submit(OUTCOME_KIND, payload, (OUTCOMES_KEY, number_key(dial.number)))
        except Exception as exc:  # noqa: BLE001 - kept in memory instead, said below
            d = fail(exc)

        def not_kept(failure: Failure) -> None:
            log.error(
                "outcome {outcome} of callback {flag} attempt {attempt} not journalled ({error}); "
                "kept in memory until Redis stores it",
                outcome=outcome.value, flag=dial.flag_id, attempt=dial.attempt_no,
                error=failure.getErrorMessage(),
            )
            self._store_in_memory(dial, outcome, now, note)

        self._track(d).addErrback(not_kept)

    async def _apply_journalled(self, entry: dict[str, Any]) -> None:
        """Store a journalled outcome (idempotent: the journal may replay it).

        An attempt that has an outcome already had this one applied (a replay
        after a crash before the journal's cursor moved), or one recorded by
        other means: either way nothing more is written. A late outcome for an
        attempt a claim marked ``interrupted`` replaces that mark
        (``routing.callbacks.record_outcome``)."""
        flag_id = str(entry["flag_id"])
        lease = Lease(flag_id, str(entry["token"]))
        attempt = int(entry["attempt"])
        try:
            await self._store.record_outcome(
                lease, attempt, AttemptOutcome(entry["outcome"]), float(entry["at"]),
                by=str(entry["by"]), note=str(entry.get("note") or ""),
            )
        except AttemptAlreadyEndedError:
            await self._store.release(lease)  # if still held (its reply was lost)
        except (UnknownFlagError, UnknownAttemptError) as exc:
            log.warn("journalled outcome of callback {flag} attempt {attempt} not applied: {error}",
                     flag=flag_id, attempt=attempt, error=str(exc))
        self._unrecorded.discard(flag_id)
        self.poke()

    async def _store_outcome(self, dial: _Dial, outcome: AttemptOutcome, now: float, note: str) -> None:
        """Record the outcome, retrying (backoff from ``OUTCOME_RETRY_FIRST_S`` to
        ``OUTCOME_RETRY_MAX_S``) while Redis is away, slow or loading: an outcome is
        never dropped (docs/complaints.md). Before, one failed write lost it: the
        lease then expired and the next claim recorded the attempt ``interrupted``
        (counted), so a customer who had answered kept an open flag and was called
        again. Meanwhile the flag is not claimed by this daemon (:meth:`_skipped`)."""
        delay = OUTCOME_RETRY_FIRST_S
        tried = False
        try:
            while True:
                try:
                    await as_deferred(self._store.record_outcome(
                        dial.lease, dial.attempt_no, outcome, now, by=dial.agent_id, note=note,
                    ))
                    break
                except AttemptAlreadyEndedError:
                    if not tried:
                        raise
                    # Stored by an earlier try whose reply was lost; give the lease back.
                    await as_deferred(self._store.release(dial.lease))
                    break
                except Exception as exc:
                    if not self._outcome_outage.expected(exc):
                        raise
                    self._outcome_outage.failed(exc)
                tried = True
                await deferLater(cast(Any, self._clock), delay, lambda: None)
                delay = min(delay * 2, OUTCOME_RETRY_MAX_S)
            self._outcome_outage.ok()
        finally:
            self._unrecorded.discard(dial.flag_id)

    def _track(self, d: Deferred[Any]) -> Deferred[Any]:
        self._in_flight.add(d)

        def done(result: object) -> object:
            self._in_flight.discard(d)
            return result

        d.addBoth(done)
        return d


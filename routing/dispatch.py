"""Connecting waiting callers to agents over AMI: the routing decisions, acted on.

The :class:`~routing.router.Router` decides (pure); this module acts:

1. A caller who wants an agent joins the waiting line and hears the hold loop
   (music under AsyncAGI, see :mod:`routing.hold`).
2. When the router assigns an agent, the agent's leg is originated with a
   ``ChannelId`` we choose, so we know its Uniqueid before Asterisk reports it
   (transcript 40). The agent's phone rings; the caller keeps hearing music.
3. ``OriginateResponse`` ``Success`` means the agent answered: the service
   level counts the answer now, and the AMI ``Bridge`` joins the two.
   Anything else (``Reason`` 3 no answer, 5 busy, 0/8 failure) sends the call
   back to its place in the line and tries the next agent at once; the agent
   who missed it goes not ready (reason ``missed``, or ``technical`` when the
   phone could not be reached) as configured. A failure is settled by
   whichever comes first of: the ``OriginateResponse`` (by its ActionID; its
   ``Reason`` says busy or no answer), the leg's own ``Hangup`` when its cause
   says the agent did not take the call (no answer 19, busy 17: transcript
   41), or the ``Hangup`` of a Local leg's ``;2`` half with such a cause. A
   Local leg's ``;1`` hangs up with ``Cause: 0`` when its ``;2`` is busy, and
   may do so before the response (transcript 46): that cause decides nothing,
   so the leg waits for the response (``ORIGINATE_RESPONSE_WAIT_S`` at most,
   then ``technical``).
4. A caller who hangs up while the agent's phone rings: the agent's leg is
   hung up and the agent is ready again (no fault of theirs).
5. When the call ends, the agent goes to wrap-up, then ready after
   ``wrap_up_s``.
6. While the AMI link is down nothing is originated (an agent is not put
   not-ready for a broken link): assignments wait for the reconnect. After the
   reconnect and resync, waiting callers hear their hold loop again, and a
   leg whose ``OriginateResponse`` was lost is settled from the resync (up:
   answered, gone: back to the line with no fault of the agent).

Why ``Bridge`` and not ``Redirect``: with the originated leg the caller stays
under our control (music, announcements, their place) while the agent's phone
rings, and a no-answer costs the caller nothing. The price (transcript 43) is
that the caller is hung up when the agent hangs up; nothing follows a
conversation today, so that is acceptable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from agent_stats.roster import AgentChange, AgentRoster, AgentStatus
from agent_stats.states import AgentState, NotReadyReason
from ami_bridge import actions
from ami_bridge.agi import AGIResult
from ami_bridge.codec import Message
from ami_bridge.errors import ConnectionLostError
from ami_bridge.events import (
    ORIGINATE_BUSY,
    ORIGINATE_NO_ANSWER,
    ChannelHungUp,
    OriginateFinished,
    TrackerEvent,
)
from ami_bridge.tracker import CallTracker, handles
from routing.agents import AgentState as RoutingAgentState
from routing.agents import AgentView
from routing.calls import Urgency, WaitingCall
from routing.channel_ids import ChannelIds
from routing.events import (
    CallAbandoned,
    CallAnswered,
    CallAnsweredBefore,
    CallCompleted,
    CallLeftForChoice,
    CallOffered,
    CallQueued,
    RoutingEvent,
)
from routing.hold import CALLBACK_KEY, HoldConfig, HoldLoop
from routing.router import Assignment, Router
from shenava_base.clock import Clock

log = Logger()

LEG_PREFIX = "shenava-leg-"
"""Uniqueids (``ChannelId``) of the agent legs this dispatcher originates; the
callback dialler's legs have their own prefix and are none of its business."""

GENERAL_SKILL = "general"
"""Every agent has it; a call needs it when no agent has its category as a skill."""

# Q.850 causes of an unanswered agent leg that mean "the agent did not take it"
# (busy, no response, no answer, rejected); any other cause is a technical fault.
AGENT_MISSED_CAUSES = frozenset({17, 18, 19, 21})
STATE_UP = 6  # Asterisk's ChannelState for an answered channel
ORIGINATE_RESPONSE_WAIT_S = 5.0
"""How long a leg that hung up with an undecisive cause waits for its
``OriginateResponse`` (it comes within milliseconds on a working link)."""
OTHER_HALF_SUFFIX = "-2"
"""A Local agent leg's ``;2`` half gets ``OtherChannelId`` = leg id + this."""


class AMIActions(Protocol):
    def send_action(
        self, action: str, headers: Any = (), *, timeout: float | None = None
    ) -> Deferred[Message]: ...

    def agi(
        self, channel: str, command: str, *, command_id: str | None = None,
        timeout: float | None = None,
    ) -> Deferred[AGIResult]: ...



@dataclass(frozen=True, slots=True)
class DispatchConfig:
    ring_timeout_s: float = 20.0
    wrap_up_s: float = 10.0
    on_no_answer: NotReadyReason | None = NotReadyReason.MISSED
    agent_leg_application: str = "Wait"
    agent_leg_max_s: int = 7200
    caller_id: str = '"Shenava" <complaints>'
    hold: HoldConfig = field(default_factory=HoldConfig)


# -- per call state ------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Waiting:
    call: WaitingCall
    channel: str
    caller_number: str
    arrived_at: float
    hold: HoldLoop | None = None
    language_on_channel: bool = False  # CHANNEL(language) is call.language already
    agent_id: str | None = None
    leg_id: str | None = None
    leg_channel: str | None = None
    answered_at: float | None = None
    bridged: bool = False
    ended: bool = False
    seq: int = 0  # its place in the dispatcher's calls (insertion order): call_of_agent's tie-break


class CallDispatcher:
    def __init__(
        self,
        *,
        ami: AMIActions,
        tracker: CallTracker,
        roster: AgentRoster,
        router: Router,
        clock: Clock,
        config: DispatchConfig,
        channel_ids: ChannelIds | None = None,
    ) -> None:
        self._ami = ami
        self._roster = roster
        self._router = router
        self._clock = clock
        self._config = config
        # Every call routing holds, by call id. ``agent_id`` and ``ended`` of a call in it are
        # changed only through _put/_pop/_set_agent/_end, which keep the two indexes in step:
        self._calls: dict[str, _Waiting] = {}
        self._unassigned = 0  # calls in it with no agent and not ended (``waiting``)
        self._of_agent: dict[str, dict[str, _Waiting]] = {}  # agent -> its calls not ended
        self._next_seq = 0
        self._tracker = tracker
        # agent leg Uniqueid (our ChannelId) -> (call_id, agent_id)
        self._legs: dict[str, tuple[str, str]] = {}
        # a Local leg's ;2 half (our OtherChannelId) -> the leg's Uniqueid
        self._far_halves: dict[str, str] = {}
        self._leg_ids = channel_ids or ChannelIds(LEG_PREFIX)
        # Originate ActionID -> agent leg Uniqueid: a failed OriginateResponse
        # names no Uniqueid, only the ActionID.
        self._originates: dict[str, str] = {}
        self._originates_of_leg: dict[str, list[str]] = {}  # the reverse: leg -> its ActionIDs
        self._link_up = True
        self._history_full_logged = False
        self._held: list[Assignment] = []
        self._observers: list[Callable[[RoutingEvent], object]] = []
        self._agent_skills = frozenset(
            skill for status in roster for skill in status.profile.skills
        )
        self.choice_handler: Callable[[CallLeftForChoice], object] | None = None
        # Told the call id whenever a call's routing state changes (the call
        # state recorder writes it to Redis; see shenava.call_state).
        self.on_change: Callable[[str], object] | None = None
        tracker.subscribe(self._on_tracker_event)
        roster.subscribe(self._on_agent_change)
        add_state_observer = getattr(ami, "add_state_observer", None)
        if add_state_observer is not None:
            add_state_observer(self._on_link_state)

    # -- observers ---------------------------------------------------------

    def subscribe(self, observer: Callable[[RoutingEvent], object]) -> None:
        self._observers.append(observer)

    def _changed(self, call_id: str) -> None:
        if self.on_change is not None:
            self.on_change(call_id)

    def _emit(self, event: RoutingEvent) -> None:
        self._changed(event.call_id)
        for observer in list(self._observers):
            try:
                observer(event)
            except Exception:
                log.failure("routing observer failed on {event}", event=type(event).__name__)

    # -- queries -----------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Calls waiting for an agent (no agent's phone ringing for them, not ended). O(1)."""
        return self._unassigned

    def call_of_agent(self, agent_id: str) -> WaitingCall | None:
        """The call ringing or talking to ``agent_id`` (the earliest held, should there be
        two). O(1): an index by agent, not a scan of every call."""
        calls = self._of_agent.get(agent_id)
        if not calls:
            return None
        if len(calls) == 1:
            return next(iter(calls.values())).call
        return min(calls.values(), key=_by_seq).call

    # -- the calls held, and their indexes ----------------------------------------

    def _index(self, waiting: _Waiting, step: int) -> None:
        if waiting.ended:
            return
        if waiting.agent_id is None:
            self._unassigned += step
            return
        if step > 0:
            self._of_agent.setdefault(waiting.agent_id, {})[waiting.call.call_id] = waiting
            return
        calls = self._of_agent[waiting.agent_id]
        del calls[waiting.call.call_id]
        if not calls:
            del self._of_agent[waiting.agent_id]

    def _put(self, waiting: _Waiting) -> None:
        """Hold ``waiting`` (in place of any call of the same id, which keeps its place)."""
        call_id = waiting.call.call_id
        old = self._calls.get(call_id)
        if old is not None:
            self._index(old, -1)
            waiting.seq = old.seq
        else:
            waiting.seq = self._next_seq
            self._next_seq += 1
        self._calls[call_id] = waiting
        self._index(waiting, +1)

    def _pop(self, call_id: str) -> _Waiting | None:
        waiting = self._calls.pop(call_id, None)
        if waiting is not None:
            self._index(waiting, -1)
        return waiting

    def _holds_this(self, waiting: _Waiting) -> bool:
        return self._calls.get(waiting.call.call_id) is waiting

    def _set_agent(self, waiting: _Waiting, agent_id: str | None, leg_id: str | None) -> None:
        held = self._holds_this(waiting)
        if held:
            self._index(waiting, -1)
        waiting.agent_id, waiting.leg_id = agent_id, leg_id
        if held:
            self._index(waiting, +1)

    def _end(self, waiting: _Waiting) -> None:
        if self._holds_this(waiting):
            self._index(waiting, -1)
        waiting.ended = True

    def position(self, call_id: str) -> int | None:
        try:
            return self._router.line.position(call_id).in_bucket
        except Exception:
            return None

    def explain(self, call_id: str) -> str:
        return self._router.explain(call_id, self._clock.seconds())

    # -- a caller joins ------------------------------------------------------

    def join(
        self,
        *,
        call_id: str,
        channel: str,
        caller_number: str,
        language: str,
        category: str | None,
        arrived_at: float,
        joined_at: float | None = None,
        language_on_channel: bool = False,
        **facts: Any,
    ) -> WaitingCall:
        """Put a caller in the waiting line (``facts``: urgency, vulnerable, ...).

        ``language_on_channel``: the channel's ``CHANNEL(language)`` is already
        ``language`` (the IVR just played in it), so the hold does not set it."""
        now = self._clock.seconds()
        category = category or GENERAL_SKILL
        skill = category if category in self._agent_skills else GENERAL_SKILL
        call = WaitingCall(
            call_id=call_id,
            joined_at=now if joined_at is None else joined_at,
            language=language,
            skill=skill,
            category=category,
            **facts,
        )
        waiting = _Waiting(call, channel, caller_number, arrived_at,
                           language_on_channel=language_on_channel)
        self._put(waiting)
        self._emit(CallQueued(call_id, now, arrived_at, language, category, caller_number))
        self._start_hold(waiting)
        self._act(self._router.on_call_joined(call, now))
        return call

    def _agi(self, channel: str, command: str) -> Deferred[AGIResult]:
        return self._ami.agi(channel, command)

    def _position_number(self, call_id: str) -> int | None:
        return self.position(call_id)  # already 1 for the first in line

    def _left_for_choice(self, call_id: str, key: str) -> None:
        waiting = self._calls.get(call_id)
        if waiting is None or waiting.agent_id is not None or waiting.ended:
            return
        now = self._clock.seconds()
        position = self._position_number(call_id)
        self._end(waiting)
        self._act(self._router.on_call_left(call_id, now))
        choice = "callback" if key == CALLBACK_KEY else "voicemail"
        event = CallLeftForChoice(
            call_id, now, waiting.call.joined_at, choice, waiting.caller_number, position,
            waiting.channel, waiting.call.language,
        )
        self._emit(event)
        if self.choice_handler is not None:
            self.choice_handler(event)

    # -- agents ------------------------------------------------------------

    def view(self, status: AgentStatus) -> AgentView:
        state = {
            AgentState.READY: RoutingAgentState.READY,
            AgentState.RINGING: RoutingAgentState.RINGING,
            AgentState.ON_CALL: RoutingAgentState.ON_CALL,
            AgentState.WRAP_UP: RoutingAgentState.WRAP_UP,
            AgentState.LOGGED_OUT: RoutingAgentState.LOGGED_OUT,
        }.get(status.state, RoutingAgentState.NOT_READY)
        if status.reason is NotReadyReason.RECOVERY:
            state = RoutingAgentState.RECOVERY
        profile = status.profile
        return AgentView(
            agent_id=profile.agent_id,
            languages=frozenset(profile.languages),
            skills=frozenset((*profile.skills, GENERAL_SKILL)),
            state=state,
            idle_since=status.idle_since,
            experienced=profile.experienced,
            last_call_hard=status.last_call_hard,
        )

    def _on_agent_change(self, change: AgentChange) -> None:
        now = change.at
        if change.new is AgentState.READY:
            self._act(self._router.on_agent_ready(self.view(self._roster.get(change.agent_id)), now))
        elif change.old is AgentState.READY or change.new in (
            AgentState.NOT_READY, AgentState.LOGGED_OUT
        ):
            if self.call_of_agent(change.agent_id) is None:
                self._act(self._router.on_agent_unavailable(change.agent_id, now))

    # -- acting on decisions -------------------------------------------------

    def _act(self, assignments: list[Assignment]) -> None:
        if assignments and self._router.decisions_forgotten and not self._history_full_logged:
            self._history_full_logged = True
            log.info(
                "the routing decision history is full: the latest {kept} decisions are kept "
                "for explain, older ones are forgotten ([routing] decision_history)",
                kept=self._router.decision_history,
            )
        for assignment in assignments:
            if self._link_up:
                self._connect(assignment)
            else:
                self._held.append(assignment)

    def _connect(self, assignment: Assignment) -> None:
        waiting = self._calls.get(assignment.call_id)
        if waiting is None or waiting.ended:
            return
        now = self._clock.seconds()
        status = self._roster.get(assignment.agent_id)
        leg_id = self._leg_ids.next(status.profile.agent_id)
        self._set_agent(waiting, status.profile.agent_id, leg_id)
        self._legs[leg_id] = (assignment.call_id, status.profile.agent_id)
        other_id = None
        if status.profile.endpoint.lower().startswith("local/"):
            other_id = leg_id + OTHER_HALF_SUFFIX
            self._far_halves[other_id] = leg_id
        self._roster.ringing(status.profile.agent_id, assignment.call_id, now)
        self._emit(CallOffered(assignment.call_id, now, status.profile.agent_id))
        action = actions.originate_application(
            status.profile.endpoint,
            self._config.agent_leg_application,
            str(self._config.agent_leg_max_s),
            channel_id=leg_id,
            other_channel_id=other_id,
            timeout_s=self._config.ring_timeout_s,
            caller_id=self._config.caller_id,
            variables={"SHENAVA_CALL": assignment.call_id},
        )
        d = self._ami.send_action(action.name, action.headers)
        d.addCallbacks(
            self._originate_queued, self._originate_refused,
            callbackArgs=(leg_id,), errbackArgs=(assignment.call_id, leg_id),
        )

    def _originate_queued(self, response: Message, leg_id: str) -> None:
        if leg_id in self._legs and response.action_id:
            self._originates[response.action_id] = leg_id
            self._originates_of_leg.setdefault(leg_id, []).append(response.action_id)

    def _originate_refused(self, failure: Any, call_id: str, leg_id: str) -> None:
        log.warn(
            "Originate of agent leg {leg} refused: {error}", leg=leg_id,
            error=failure.getErrorMessage(),
        )
        if failure.check(ConnectionLostError):
            # The link broke, not the agent's phone: the resync after the
            # reconnect tells whether the leg exists (see _resync_legs).
            return
        self._leg_failed(call_id, leg_id, technical=True)

    @handles(OriginateFinished, ChannelHungUp)
    def _on_tracker_event(self, event: TrackerEvent) -> None:
        if isinstance(event, OriginateFinished):
            self._on_originate_finished(event)
        elif isinstance(event, ChannelHungUp):
            self._on_hangup(event)

    def _on_originate_finished(self, event: OriginateFinished) -> None:
        leg_id = event.uniqueid or self._originates.get(event.action_id, "")
        answered_leg = self._originates.pop(event.action_id, None)
        if answered_leg is not None:
            action_ids = self._originates_of_leg.get(answered_leg, [])
            if event.action_id in action_ids:
                action_ids.remove(event.action_id)
            if not action_ids:
                self._originates_of_leg.pop(answered_leg, None)
        leg = self._legs.get(leg_id)
        if leg is None:
            if event.success and event.uniqueid and event.uniqueid.startswith(LEG_PREFIX):
                # Our leg, answered after we gave up on it (e.g. across a
                # reconnect): nobody is waiting for this agent any more.
                self._ami.send_action(*_hangup(event.channel)).addErrback(lambda _: None)
            return
        call_id = leg[0]
        if not event.success:
            technical = event.reason not in (ORIGINATE_NO_ANSWER, ORIGINATE_BUSY)
            self._leg_failed(call_id, leg_id, technical=technical)
            return
        waiting = self._calls.get(call_id)
        if waiting is None or waiting.ended or waiting.leg_id != leg_id:
            # The caller left while the agent's phone rang; the leg is being hung up.
            self._legs.pop(leg_id, None)
            self._ami.send_action(*_hangup(event.channel)).addErrback(lambda _: None)
            return
        now = event.at
        assert waiting.agent_id is not None
        waiting.answered_at = now
        waiting.leg_channel = event.channel
        if waiting.hold is not None:
            waiting.hold.stop()
        self._router.on_call_answered(call_id)
        self._roster.answered(waiting.agent_id, waiting.call.hard, now)
        self._emit(CallAnswered(call_id, now, waiting.agent_id, waiting.call.joined_at, waiting.call.hard))
        action = actions.bridge(waiting.channel, event.channel)
        d = self._ami.send_action(action.name, action.headers)
        d.addCallbacks(
            lambda _: self._bridged(waiting),
            self._bridge_failed,
            errbackArgs=(call_id,),
        )

    def _bridged(self, waiting: _Waiting) -> None:
        waiting.bridged = True
        self._changed(waiting.call.call_id)

    def _bridge_failed(self, failure: Any, call_id: str) -> None:
        waiting = self._calls.get(call_id)
        log.warn("Bridge for call {call} failed: {error}", call=call_id, error=failure.getErrorMessage())
        if waiting is not None and waiting.leg_channel:
            self._ami.send_action(*_hangup(waiting.leg_channel)).addErrback(lambda _: None)

    def _leg_failed(
        self, call_id: str, leg_id: str, *, technical: bool, agent_fault: bool = True
    ) -> None:
        leg = self._legs.pop(leg_id, None)
        if leg is None:
            return
        self._far_halves.pop(leg_id + OTHER_HALF_SUFFIX, None)
        for action_id in self._originates_of_leg.pop(leg_id, ()):
            self._originates.pop(action_id, None)
        agent_id = leg[1]
        waiting = self._calls.get(call_id)
        now = self._clock.seconds()
        if waiting is not None and waiting.leg_id == leg_id:
            self._set_agent(waiting, None, None)
            self._changed(call_id)
        # First put the call back (it may go straight to another ready agent),
        # then settle the agent who missed it.
        if waiting is not None and not waiting.ended:
            self._act(self._router.on_connect_failed(call_id, now))
        if agent_id in self._roster and self._roster.get(agent_id).state is AgentState.RINGING:
            if not agent_fault:
                self._roster.ring_cancelled(agent_id, now)
                return
            reason = NotReadyReason.TECHNICAL if technical else self._config.on_no_answer
            self._roster.ring_failed(agent_id, now, reason)

    def _on_hangup(self, event: ChannelHungUp) -> None:
        leg = self._legs.get(event.uniqueid)
        if leg is not None:
            self._agent_leg_gone(leg[0], event)
            return
        leg_id = self._far_halves.pop(event.uniqueid, None)
        if leg_id is not None:
            self._far_half_gone(leg_id, event)
            return
        waiting = self._calls.get(event.uniqueid)
        if waiting is not None:
            self._caller_gone(waiting, event.at)

    def _caller_gone(self, waiting: _Waiting, now: float) -> None:
        call_id = waiting.call.call_id
        if waiting.hold is not None:
            waiting.hold.stop()
        if waiting.ended:
            self._pop(call_id)
            self._changed(call_id)
            return
        self._end(waiting)
        self._changed(call_id)
        if waiting.answered_at is not None:
            # A normal end from the caller's side: free the agent's leg too.
            if waiting.leg_channel:
                self._ami.send_action(*_hangup(waiting.leg_channel)).addErrback(lambda _: None)
            return
        ringing = waiting.agent_id
        self._act(self._router.on_call_left(call_id, now))
        if ringing is not None and waiting.leg_id is not None:
            # The leg stays known until Asterisk settles it (OriginateResponse
            # or its hang-up), so a late answer is hung up too.
            self._cancel_leg(waiting.leg_id)
            if self._roster.get(ringing).state is AgentState.RINGING:
                self._roster.ring_cancelled(ringing, now)
        self._pop(call_id)
        self._emit(CallAbandoned(call_id, now, waiting.call.joined_at, waiting.caller_number, ringing))

    def _cancel_leg(self, leg_id: str) -> None:
        # Asterisk's Hangup takes a channel name; the tracker knows the name of
        # the leg by the Uniqueid we chose. A leg not yet created has no name:
        # the Originate then fails or, if answered, is hung up on its response.
        channel = self._channel_name(leg_id)
        if channel:
            self._ami.send_action(*_hangup(channel)).addErrback(lambda _: None)

    def _channel_name(self, uniqueid: str) -> str | None:
        channel = self._tracker.channel(uniqueid)
        return channel.name if channel is not None else None

    def _agent_leg_gone(self, call_id: str, event: ChannelHungUp) -> None:
        waiting = self._calls.get(call_id)
        if (
            waiting is not None and waiting.leg_id == event.uniqueid
            and waiting.answered_at is None and not waiting.ended
        ):
            # Never answered: busy, no answer, unreachable. The failed
            # OriginateResponse comes later and without the Uniqueid, so settle
            # it now; the caller goes to the next agent at once. A hang-up
            # noticed only by the resync (``missed``) is nobody's fault.
            if event.missed:
                self._leg_failed(call_id, event.uniqueid, technical=False, agent_fault=False)
            elif event.cause in AGENT_MISSED_CAUSES:
                self._leg_failed(call_id, event.uniqueid, technical=False)
            else:
                # Cause 0 of a Local ;1 whose ;2 was busy (transcript 46), or
                # a real fault: the OriginateResponse's Reason tells.
                self._clock.callLater(
                    ORIGINATE_RESPONSE_WAIT_S, self._no_response, call_id, event.uniqueid
                )
            return
        self._legs.pop(event.uniqueid, None)
        self._far_halves.pop(event.uniqueid + OTHER_HALF_SUFFIX, None)
        if waiting is None or waiting.answered_at is None or waiting.agent_id is None:
            return  # a leg hung up after its caller left (we hung it up)
        now = event.at
        agent_id = waiting.agent_id
        self._pop(call_id)
        self._end(waiting)
        self._emit(CallCompleted(call_id, now, agent_id, waiting.answered_at))
        self._roster.call_ended(agent_id, now)
        self._clock.callLater(self._config.wrap_up_s, self._wrap_up_over, agent_id)

    # -- call state that outlives the process ------------------------------------

    def snapshot(self, call_id: str) -> dict[str, Any] | None:
        """The call's routing state as plain JSON values (None: routing holds none)."""
        waiting = self._calls.get(call_id)
        if waiting is None or (waiting.ended and waiting.answered_at is None):
            return None
        call = waiting.call
        if waiting.answered_at is not None:
            phase = "talking"
        elif waiting.leg_id is not None:
            phase = "ringing"
        else:
            phase = "waiting"
        facts = rejoin_facts(call)
        facts["urgency"] = call.urgency.value
        facts["urgent_words"] = list(call.urgent_words)
        return {
            "phase": phase,
            "channel": waiting.channel,
            "caller_number": waiting.caller_number,
            "arrived_at": waiting.arrived_at,
            "joined_at": call.joined_at,
            "language": call.language,
            "category": call.category,
            "facts": facts,
            "agent_id": waiting.agent_id,
            "leg_id": waiting.leg_id,
            "leg_channel": waiting.leg_channel,
            "answered_at": waiting.answered_at,
            "hard": call.hard,
        }

    def adopt_waiting(self, record: dict[str, Any], channel: str) -> WaitingCall:
        """A caller who was waiting under an earlier daemon: back on hold in their place.

        The original join time keeps their place and their service-level
        clock; no ``CallQueued`` is emitted, so the call is counted once."""
        now = self._clock.seconds()
        call = self._waiting_call(record)
        waiting = _Waiting(call, channel, str(record.get("caller_number") or ""),
                           float(record.get("arrived_at") or call.joined_at))
        self._put(waiting)
        self._changed(call.call_id)
        self._start_hold(waiting)
        self._act(self._router.on_call_joined(call, now))
        return call

    def adopt_ringing(self, record: dict[str, Any], channel: str) -> None:
        """A caller whose agent's phone was ringing when the earlier daemon stopped.

        The leg's own events settle it (an ``OriginateResponse`` is sent to
        every session, and matched here by the leg's Uniqueid; a hang-up by
        its cause); the caller hears their hold loop meanwhile."""
        call = self._waiting_call(record)
        agent_id = str(record["agent_id"])
        leg_id = str(record["leg_id"])
        waiting = _Waiting(call, channel, str(record.get("caller_number") or ""),
                           float(record.get("arrived_at") or call.joined_at))
        waiting.agent_id, waiting.leg_id = agent_id, leg_id
        self._put(waiting)
        self._legs[leg_id] = (call.call_id, agent_id)
        self._far_halves[leg_id + OTHER_HALF_SUFFIX] = leg_id
        now = self._clock.seconds()
        self._router.adopt_assignment(call, agent_id, now)
        if agent_id in self._roster:
            self._roster.resume_ringing(agent_id, call.call_id, now)
        self._changed(call.call_id)
        self._start_hold(waiting)

    def adopt_talking(self, record: dict[str, Any], channel: str) -> None:
        """A caller bridged to an agent under an earlier daemon: answered already,
        the agent on the call until one of them hangs up. The answer is counted
        again under its outcome id (``CallAnsweredBefore``): once in all, even
        when the earlier daemon's outcome never reached its journal's disk."""
        call = self._waiting_call(record)
        agent_id = str(record["agent_id"])
        leg_id = str(record.get("leg_id") or "")
        waiting = _Waiting(call, channel, str(record.get("caller_number") or ""),
                           float(record.get("arrived_at") or call.joined_at))
        waiting.agent_id, waiting.leg_id = agent_id, leg_id or None
        waiting.leg_channel = record.get("leg_channel") or None
        waiting.answered_at = float(record.get("answered_at") or self._clock.seconds())
        waiting.bridged = True
        self._emit(CallAnsweredBefore(call.call_id, waiting.answered_at, agent_id, call.joined_at,
                                      waiting.arrived_at, bool(record.get("hard", call.hard))))
        self._put(waiting)
        if leg_id:
            self._legs[leg_id] = (call.call_id, agent_id)
        if agent_id in self._roster:
            self._roster.resume_call(agent_id, call.call_id, self._clock.seconds())
        self._changed(call.call_id)

    def settle_adopted_legs(self) -> None:
        """Legs adopted from an earlier daemon: answered or gone while nobody watched."""
        self._resync_legs()

    def ended_while_away(self, record: dict[str, Any]) -> None:
        """A call an earlier daemon held, gone before this one took over: its
        outcome is counted now, once (an abandon, or a completed conversation)."""
        now = self._clock.seconds()
        call_id = str(record["call_id"])
        if call_id in self._calls:
            return
        phase = record.get("phase")
        agent_id = record.get("agent_id")
        if phase == "talking" and agent_id:
            answered_at = float(record.get("answered_at") or now)
            joined_at = float(record["joined_at"])
            self._emit(CallAnsweredBefore(
                call_id, answered_at, str(agent_id), joined_at,
                float(record.get("arrived_at") or joined_at), bool(record.get("hard")),
            ))
            self._emit(CallCompleted(call_id, now, str(agent_id), answered_at))
            if agent_id in self._roster and self._roster.get(str(agent_id)).state is AgentState.ON_CALL:
                self.end_in_wrap_up(str(agent_id), now)
        elif phase in ("waiting", "ringing"):
            leg_id = record.get("leg_id")
            if leg_id:
                self._cancel_leg(str(leg_id))
            ringing = str(agent_id) if phase == "ringing" and agent_id else None
            self._emit(CallAbandoned(
                call_id, now, float(record["joined_at"]), str(record.get("caller_number") or ""),
                ringing, found_after_restart=True,
            ))
            if ringing and ringing in self._roster and self._roster.get(ringing).state is AgentState.RINGING:
                self._roster.ring_cancelled(ringing, now)

    def end_in_wrap_up(self, agent_id: str, now: float) -> None:
        """The agent's call is over (found after a restart): wrap-up, then ready."""
        self._roster.call_ended(agent_id, now)
        self._clock.callLater(self._config.wrap_up_s, self._wrap_up_over, agent_id)

    def holds(self, call_id: str) -> bool:
        return call_id in self._calls

    def _waiting_call(self, record: dict[str, Any]) -> WaitingCall:
        facts = dict(record.get("facts") or {})
        known = set(WaitingCall.__dataclass_fields__)
        facts = {k: v for k, v in facts.items() if k in known}
        if "urgency" in facts:
            facts["urgency"] = Urgency(facts["urgency"])
        if "urgent_words" in facts:
            facts["urgent_words"] = tuple(facts["urgent_words"])
        category = str(record.get("category") or GENERAL_SKILL)
        skill = category if category in self._agent_skills else GENERAL_SKILL
        return WaitingCall(
            call_id=str(record["call_id"]),
            joined_at=float(record["joined_at"]),
            language=str(record.get("language") or "fa"),
            skill=skill,
            category=category,
            **facts,
        )

    def _far_half_gone(self, leg_id: str, event: ChannelHungUp) -> None:
        """The ``;2`` half of a Local agent leg: its cause is the phone's (17 busy)."""
        leg = self._legs.get(leg_id)
        if leg is None or event.missed or event.cause not in AGENT_MISSED_CAUSES:
            return
        waiting = self._calls.get(leg[0])
        if waiting is not None and waiting.leg_id == leg_id and waiting.answered_at is None:
            self._leg_failed(leg[0], leg_id, technical=False)

    def _no_response(self, call_id: str, leg_id: str) -> None:
        """The leg hung up unanswered and no OriginateResponse came to say why."""
        waiting = self._calls.get(call_id)
        if leg_id in self._legs and (waiting is None or waiting.answered_at is None):
            self._leg_failed(call_id, leg_id, technical=True)

    # -- the AMI link -------------------------------------------------------------

    def _on_link_state(self, state: Any) -> None:
        up = getattr(state, "value", state) == "connected"
        if up == self._link_up:
            return
        self._link_up = up
        if up:
            self._relinked()

    def _relinked(self) -> None:
        """Back after a reconnect (the tracker has already resynchronised)."""
        self._resync_legs()
        for waiting in list(self._calls.values()):
            if waiting.ended or waiting.agent_id is not None:
                continue
            if waiting.hold is not None:
                waiting.hold.stop()
            self._start_hold(waiting)
        held, self._held = self._held, []
        for assignment in held:
            if self._router.assigned_agent(assignment.call_id) == assignment.agent_id:
                self._connect(assignment)
        # An agent whose held call left meanwhile is still out of the router's
        # ready set: offer them again.
        now = self._clock.seconds()
        for assignment in held:
            status = self._roster.get(assignment.agent_id)
            if status.state is AgentState.READY and self.call_of_agent(assignment.agent_id) is None:
                if assignment.agent_id not in {a.agent_id for a in self._router.ready_agents()}:
                    self._act(self._router.on_agent_ready(self.view(status), now))

    def _resync_legs(self) -> None:
        """Legs that were ringing when the link broke: their outcome may be lost."""
        for leg_id, (call_id, _agent_id) in list(self._legs.items()):
            waiting = self._calls.get(call_id)
            if waiting is None or waiting.answered_at is not None or waiting.leg_id != leg_id:
                continue
            channel = self._tracker.channel(leg_id)
            if channel is None:
                # Never made, or gone while we were away (a missed hang-up is
                # handled by _agent_leg_gone): nobody's fault.
                self._leg_failed(call_id, leg_id, technical=False, agent_fault=False)
            elif channel.state == STATE_UP:
                self._on_originate_finished(OriginateFinished(
                    at=self._clock.seconds(), action_id="", success=True, reason=4,
                    uniqueid=leg_id, channel=channel.name,
                ))

    def _start_hold(self, waiting: _Waiting) -> None:
        call_id = waiting.call.call_id
        waiting.hold = HoldLoop(
            self._agi,
            waiting.channel,
            waiting.call.language,
            self._config.hold,
            position=lambda: self._position_number(call_id),
            on_choice=lambda key: self._left_for_choice(call_id, key),
            set_language=not waiting.language_on_channel,
        )
        waiting.hold.start()

    def _wrap_up_over(self, agent_id: str) -> None:
        status = self._roster.get(agent_id)
        if status.state is AgentState.WRAP_UP:
            self._roster.set_ready(agent_id, self._clock.seconds())


def _by_seq(waiting: _Waiting) -> int:
    return waiting.seq


def _hangup(channel: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    action = actions.hangup(channel)
    return action.name, action.headers


def rejoin_facts(call: WaitingCall) -> dict[str, Any]:
    """The facts of a call, for joining again with the same place (callbacks)."""
    return {
        k: getattr(call, k)
        for k in ("urgency", "vulnerable", "open_complaint", "recent_call", "callback_flag",
                  "urgent_words", "abusive_caller", "high_severity")
    }


__all__ = [
    "CallAbandoned",
    "CallAnswered",
    "CallAnsweredBefore",
    "CallCompleted",
    "CallDispatcher",
    "CallLeftForChoice",
    "CallOffered",
    "CallQueued",
    "DispatchConfig",
    "RoutingEvent",
    "rejoin_facts",
]

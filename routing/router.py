"""The routing core: events in, assignments out. Pure: no I/O, no clock, no polling.

Each event (a call joins, an agent becomes ready, an agent goes away, a call
leaves, a connection fails) is handled at once and returns the assignments it
makes; the caller (the daemon) originates and bridges them. Nothing waits for a
timer: a call waits only while no ready agent can take it.

Invariant, after every event: no ready agent can take any waiting call. Hence
when a call joins, at most the agents with its language and skill need looking
at, and when an agent becomes ready, only the tops of the buckets it serves.

An assigned call is *reserved*: it is out of the line and its agent out of the
ready set until the daemon reports the answer (:meth:`Router.on_call_answered`),
a failure (:meth:`Router.on_connect_failed`, the call goes back to its place), or
a hang-up. So a call is never assigned twice, and two agents that become ready
at the same moment get two different calls.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import product

from routing.agents import AgentState, AgentView
from routing.calls import WaitingCall
from routing.errors import AgentNotReadyError, CallAlreadyAssignedError, UnknownCallError
from routing.explain import format_parts, why_ahead
from routing.scoring import Score, ScoringConfig, score
from routing.selection import SelectionConfig, choose_agent, choose_ready
from routing.waiting_line import Bucket, WaitingLine

DEFAULT_DECISION_HISTORY = 2_000
"""Assignments kept for ``explain`` (the latest; about 1.2 KB each, explanation
and score). ``[routing] decision_history`` sets it."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """Connect this call to this agent; ``explanation`` says why, in words."""

    call_id: str
    agent_id: str
    explanation: str
    at: float
    call_hard: bool
    score: Score
    agent_reason: str


class Router:
    """Matches waiting calls and ready agents as events arrive."""

    def __init__(
        self,
        scoring: ScoringConfig,
        selection: SelectionConfig | None = None,
        decision_history: int = DEFAULT_DECISION_HISTORY,
    ) -> None:
        self._line = WaitingLine(scoring)
        self._selection = selection or SelectionConfig()
        self._ready: dict[str, AgentView] = {}
        self._ready_by_bucket: dict[Bucket, dict[str, AgentView]] = {}
        self._reserved: dict[str, tuple[WaitingCall, str]] = {}
        self._agent_call: dict[str, str] = {}
        self._decisions: OrderedDict[str, Assignment] = OrderedDict()
        self._history = max(1, decision_history)
        self.decisions_forgotten = 0
        """Assignments dropped from the history (the oldest first) to keep it at its cap."""

    @property
    def line(self) -> WaitingLine:
        return self._line

    def ready_agents(self) -> list[AgentView]:
        return list(self._ready.values())

    def assigned_agent(self, call_id: str) -> str | None:
        """The agent a call is being connected to, if any."""
        found = self._reserved.get(call_id)
        return found[1] if found else None

    # -- events -----------------------------------------------------------------

    def on_call_joined(self, call: WaitingCall, now: float) -> list[Assignment]:
        """A call wants an agent: it goes to the best ready agent, or waits."""
        if call.call_id in self._reserved:
            raise CallAlreadyAssignedError(call.call_id, self._reserved[call.call_id][1])
        self._line.join(call)
        return self._route_call(call, now, "call joined")

    def on_agent_ready(self, agent: AgentView, now: float) -> list[Assignment]:
        """An agent is free: it gets the best call it can take, if any."""
        return self.on_agents_ready([agent], now)

    def on_agents_ready(self, agents: Iterable[AgentView], now: float) -> list[Assignment]:
        """Several agents free at the same moment: the best calls are handed out
        one by one, each to the agent the selection rules prefer, so no call is
        given twice and the hard-call rule can pick between them."""
        batch = list(agents)
        returned: list[WaitingCall] = []
        for agent in batch:
            if agent.state is not AgentState.READY:
                raise AgentNotReadyError(agent.agent_id, agent.state.value)
        for agent in batch:
            call = self._cancel_reservation_of(agent.agent_id)
            if call is not None:
                returned.append(call)
            self._remove_ready(agent.agent_id)
            self._add_ready(agent)
        assignments = self._serve_agents(batch, now)
        for call in returned:
            if call.call_id in self._line:
                assignments.extend(self._route_call(call, now, "call returned to the line"))
        return assignments

    def on_agent_unavailable(self, agent_id: str, now: float) -> list[Assignment]:
        """An agent can take no call (not ready, recovery, logged out, busy).

        If a call was ringing for this agent and not yet answered, it goes back
        to its place in the line and may go to another agent at once.
        """
        self._remove_ready(agent_id)
        call = self._cancel_reservation_of(agent_id)
        if call is None:
            return []
        return self._route_call(call, now, "call returned to the line")

    def adopt_assignment(self, call: WaitingCall, agent_id: str, now: float) -> None:
        """A call already being connected to ``agent_id`` (found after a daemon
        restart): reserved as if assigned here, so its outcome settles it."""
        self._remove_ready(agent_id)
        if call.call_id in self._line:
            self._line.leave(call.call_id)
        self._reserved[call.call_id] = (call, agent_id)
        self._agent_call[agent_id] = call.call_id

    def on_call_answered(self, call_id: str) -> None:
        """The agent answered: the reservation is done with."""
        found = self._reserved.pop(call_id, None)
        if found is None:
            raise UnknownCallError(call_id)
        self._agent_call.pop(found[1], None)

    def on_connect_failed(self, call_id: str, now: float) -> list[Assignment]:
        """The agent's leg was not answered (or busy, or failed): the call goes
        back to its place in the line. The agent stays out of the ready set until
        the daemon reports it ready again."""
        found = self._reserved.pop(call_id, None)
        if found is None:
            raise UnknownCallError(call_id)
        call, agent_id = found
        self._agent_call.pop(agent_id, None)
        self._line.join(call)
        return self._route_call(call, now, "call returned to the line")

    def on_call_left(self, call_id: str, now: float) -> list[Assignment]:
        """The caller hung up, chose a callback or voicemail: forget the call.

        Idempotent: a call routing never saw, or already forgot, is ignored. If
        the call was ringing an agent, the agent stays reserved until the daemon
        reports it ready (it has the agent's leg to hang up first).
        """
        if call_id in self._line:
            self._line.leave(call_id)
        found = self._reserved.pop(call_id, None)
        if found is not None:
            self._agent_call.pop(found[1], None)
        return []

    # -- explanations -------------------------------------------------------------

    def explain(self, call_id: str, now: float) -> str:
        """Why a call was first, or why it is not (yet)."""
        if call_id in self._line:
            explanation = self._line.explain(call_id, now)
            call = explanation.call
            text = explanation.render()
            if not explanation.ahead:
                text += (
                    f"\nwaiting because no ready agent speaks {call.language} "
                    f"with skill {call.skill}"
                )
            return text
        decided = self._decisions.get(call_id)
        if decided is None:
            raise UnknownCallError(call_id)
        status = "ringing" if call_id in self._reserved else "no longer ringing"
        return f"{decided.explanation}\n(status: {status})"

    def decision(self, call_id: str) -> Assignment | None:
        """The last assignment of this call, while it is remembered."""
        return self._decisions.get(call_id)

    @property
    def decision_history(self) -> int:
        """How many assignments are kept for :meth:`explain` (the latest)."""
        return self._history

    def decisions_kept(self) -> int:
        return len(self._decisions)

    # -- internals ------------------------------------------------------------------

    def _route_call(self, call: WaitingCall, now: float, trigger: str) -> list[Assignment]:
        # By the invariant, an agent able to take this call has no other call it
        # could take, so the call is that agent's best call.
        candidates = self._ready_by_bucket.get((call.language, call.skill))
        if not candidates:
            return []
        agent, reason = self._choose(call, candidates, now)
        self._line.leave(call.call_id)
        return [self._assign(call, agent, reason, now, trigger)]

    def _serve_agents(self, batch: list[AgentView], now: float) -> list[Assignment]:
        assignments: list[Assignment] = []
        while True:
            best: WaitingCall | None = None
            for agent in batch:
                if agent.agent_id not in self._ready:
                    continue
                call = self._line.peek_best(agent.languages, agent.skills)
                if call is not None and (best is None or self._before(call, best)):
                    best = call
            if best is None:
                return assignments
            candidates = self._ready_by_bucket[(best.language, best.skill)]
            agent, reason = self._choose(best, candidates, now)
            self._line.leave(best.call_id)
            trigger = "agent ready" if len(batch) == 1 else f"{len(batch)} agents ready at once"
            assignments.append(self._assign(best, agent, reason, now, trigger))

    def _choose(
        self, call: WaitingCall, candidates: dict[str, AgentView], now: float
    ) -> tuple[AgentView, str]:
        """The agent for ``call`` among its bucket's ready agents, and why.

        Every one of them is ready and eligible (the buckets' invariant), so
        :func:`choose_ready` takes the fast way; :func:`choose_agent`, which also
        explains exclusions, is the same rule should that ever not hold."""
        chosen = choose_ready(call, candidates.values(), now, self._selection)
        if chosen is not None:
            return chosen
        decision = choose_agent(call, candidates.values(), now, self._selection)
        assert decision.agent is not None  # every candidate is ready and eligible
        return decision.agent, decision.reason

    def _before(self, a: WaitingCall, b: WaitingCall) -> bool:
        return self._line.rank(a.call_id) < self._line.rank(b.call_id)

    def _assign(
        self,
        call: WaitingCall,
        agent: AgentView,
        agent_reason: str,
        now: float,
        trigger: str,
    ) -> Assignment:
        self._remove_ready(agent.agent_id)
        self._reserved[call.call_id] = (call, agent.agent_id)
        self._agent_call[agent.agent_id] = call.call_id
        config = self._line.config
        mine = score(call, now, config)
        text = [
            f"call {call.call_id} -> agent {agent.agent_id} ({trigger})",
            f"call score {mine.total:.0f} = {format_parts(mine.parts)}",
        ]
        others = self._line.count_for(agent.languages, agent.skills)
        runner_up = self._line.peek_best(agent.languages, agent.skills)
        if runner_up is None:
            text.append(f"no other call waiting that {agent.agent_id} could take")
        else:
            theirs = score(runner_up, now, config)
            text.append(
                f"first of {others + 1} calls {agent.agent_id} could take; "
                f"next best: {why_ahead(mine, theirs)}"
            )
        text.append(f"agent: {agent_reason}")
        assignment = Assignment(
            call_id=call.call_id,
            agent_id=agent.agent_id,
            explanation="\n".join(text),
            at=now,
            call_hard=call.hard,
            score=mine,
            agent_reason=agent_reason,
        )
        self._remember(assignment)
        return assignment

    def _remember(self, assignment: Assignment) -> None:
        self._decisions[assignment.call_id] = assignment
        self._decisions.move_to_end(assignment.call_id)
        while len(self._decisions) > self._history:
            self._decisions.popitem(last=False)
            self.decisions_forgotten += 1

    def _add_ready(self, agent: AgentView) -> None:
        self._ready[agent.agent_id] = agent
        for bucket in product(agent.languages, agent.skills):
            self._ready_by_bucket.setdefault(bucket, {})[agent.agent_id] = agent

    def _remove_ready(self, agent_id: str) -> None:
        agent = self._ready.pop(agent_id, None)
        if agent is None:
            return
        for bucket in product(agent.languages, agent.skills):
            agents = self._ready_by_bucket.get(bucket)
            if agents is not None:
                agents.pop(agent_id, None)
                if not agents:
                    del self._ready_by_bucket[bucket]

    def _cancel_reservation_of(self, agent_id: str) -> WaitingCall | None:
        call_id = self._agent_call.pop(agent_id, None)
        if call_id is None:
            return None
        call, _ = self._reserved.pop(call_id)
        self._line.join(call)
        return call

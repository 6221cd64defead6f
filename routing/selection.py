"""Choosing the agent for a call (DESIGN.md, "Agent selection").

Among ready agents with the call's language and skill, the one idle longest;
but an agent whose last call was hard is not handed another hard call while an
eligible agent whose last call was not hard exists, and a caller reported as
abusive goes to an experienced agent when one is eligible. Agents in recovery,
not ready, or busy are never chosen.

The hard-call rule comes before the experience preference: the first protects
an agent's wellbeing ("never", in the design), the second is a preference.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from operator import attrgetter

from routing.agents import AgentState, AgentView
from routing.calls import WaitingCall

_NOT_READY_WORDS = {
    AgentState.LOGGED_OUT: "logged out",
    AgentState.RINGING: "already ringing",
    AgentState.ON_CALL: "on a call",
    AgentState.WRAP_UP: "in wrap-up",
    AgentState.NOT_READY: "not ready",
    AgentState.RECOVERY: "in recovery",
}


@dataclass(frozen=True, slots=True)
class SelectionConfig:
    """Switches for the agent-selection rules."""

    spare_hard_in_a_row: bool = True
    abusive_caller_prefers_experienced: bool = True


@dataclass(frozen=True, slots=True)
class AgentDecision:
    """The chosen agent (or none) and why.

    ``eligible`` lists every ready agent with the call's language and skill,
    idle longest first; ``excluded`` gives each other agent and the reason.
    """

    call_id: str
    agent: AgentView | None
    reason: str
    eligible: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...]


def _exclusion(agent: AgentView, call: WaitingCall) -> str | None:
    if agent.state is not AgentState.READY:
        return _NOT_READY_WORDS[agent.state]
    if call.language not in agent.languages:
        return f"does not speak {call.language}"
    if call.skill not in agent.skills:
        return f"lacks skill {call.skill}"
    return None


def choose_agent(
    call: WaitingCall,
    agents: Iterable[AgentView],
    now: float,
    config: SelectionConfig = SelectionConfig(),  # noqa: B008 - frozen, so safe to share
) -> AgentDecision:
    """Pick the agent for ``call`` among ``agents`` at ``now``; pure."""
    eligible: list[AgentView] = []
    excluded: list[tuple[str, str]] = []
    for agent in agents:
        why_not = _exclusion(agent, call)
        if why_not is None:
            eligible.append(agent)
        else:
            excluded.append((agent.agent_id, why_not))
    eligible.sort(key=lambda a: (a.idle_since, a.agent_id))
    eligible_ids = tuple(a.agent_id for a in eligible)
    if not eligible:
        return AgentDecision(
            call.call_id,
            None,
            f"no ready agent speaks {call.language} with skill {call.skill}",
            eligible_ids,
            tuple(excluded),
        )

    notes: list[str] = []
    candidates = eligible
    if call.hard and config.spare_hard_in_a_row:
        fresh = [a for a in candidates if not a.last_call_hard]
        spared = [a.agent_id for a in candidates if a.last_call_hard]
        if fresh and spared:
            candidates = fresh
            notes.append(f"spared {', '.join(spared)} (last call was hard)")
        elif spared:
            notes.append("every eligible agent's last call was hard")
    if call.abusive_caller and config.abusive_caller_prefers_experienced:
        candidates = _prefer_experienced(candidates, notes)

    chosen = candidates[0]
    reason = _reason(chosen, now, len(candidates), len(eligible), notes)
    return AgentDecision(call.call_id, chosen, reason, eligible_ids, tuple(excluded))


def _prefer_experienced(candidates: list[AgentView], notes: list[str]) -> list[AgentView]:
    """The experienced among ``candidates`` for a caller reported abusive (all of
    them when none is), saying so in ``notes``."""
    experienced = [a for a in candidates if a.experienced]
    if not experienced:
        notes.append("no experienced agent eligible for a caller reported abusive")
        return candidates
    if len(experienced) < len(candidates):
        notes.append("experienced agent for a caller reported abusive")
    return experienced


def _reason(chosen: AgentView, now: float, candidates: int, eligible: int, notes: list[str]) -> str:
    reason = f"{chosen.agent_id} idle longest ({now - chosen.idle_since:.0f} s) of {candidates}"
    reason += f" candidate(s), {eligible} eligible"
    if notes:
        reason += "; " + "; ".join(notes)
    return reason


_idle_order = attrgetter("idle_since", "agent_id")  # (idle_since, agent_id), in C


def choose_ready(
    call: WaitingCall,
    agents: Collection[AgentView],
    now: float,
    config: SelectionConfig = SelectionConfig(),  # noqa: B008 - frozen, so safe to share
) -> tuple[AgentView, str] | None:
    """:func:`choose_agent`'s agent and reason, for ``agents`` that are all eligible.

    The router's ready agents of the call's bucket are all ready with its language
    and skill: no exclusion to explain, so no sort and no lists of every agent,
    one ``min`` of each rule's candidates. None when ``agents`` is empty or one of
    them is not eligible (ask :func:`choose_agent`)."""
    if not agents:
        return None
    language, skill = call.language, call.skill
    for agent in agents:
        if (
            agent.state is not AgentState.READY
            or language not in agent.languages
            or skill not in agent.skills
        ):
            return None
    notes: list[str] = []
    candidates: Collection[AgentView] = agents
    if call.hard and config.spare_hard_in_a_row:
        fresh = [a for a in candidates if not a.last_call_hard]
        if len(fresh) < len(candidates):
            if fresh:
                spared = sorted((a for a in candidates if a.last_call_hard), key=_idle_order)
                notes.append(f"spared {', '.join(a.agent_id for a in spared)} (last call was hard)")
                candidates = fresh
            else:
                notes.append("every eligible agent's last call was hard")
    if call.abusive_caller and config.abusive_caller_prefers_experienced:
        candidates = _prefer_experienced(list(candidates), notes)
    chosen = min(candidates, key=_idle_order)
    return chosen, _reason(chosen, now, len(candidates), len(agents), notes)

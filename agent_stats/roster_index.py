"""The roster's answers per call without a scan: agents per state, the longest-idle ready one.

The callback gate asks, for every call, how many agents are ready and how many
are staffed (the ``N`` of Erlang C), and the dialler then takes the ready agent
idle longest. Counting the roster for each answer is O(agents) per call (about
1 ms at 200 agents, and more than the rest of the call at 10,000), so the roster
keeps this index in step with every state change (``AgentRoster._move`` and
``restore``, the only places a state or ``idle_since`` changes).

The ready agents sit in a heap keyed ``(idle_since, position in the config)``:
the same agent ``min`` over the roster in config order would return (ties go to
the agent listed first). An agent who leaves ``READY`` is not taken out of the
heap at once: its entry goes stale (its key is no longer the agent's current
one) and is dropped when it reaches the top; the heap is rebuilt when stale
entries outnumber the live ones, so it stays O(ready agents) in size and every
operation is O(log n) amortised.
"""

from __future__ import annotations

import heapq

from agent_stats.states import STAFFED_STATES, AgentState

_Key = tuple[float, int]


class StateIndex:
    """Agents per state and the ready agents by ``idle_since``; told of every change."""

    def __init__(self, agents: int) -> None:
        self._counts: dict[AgentState, int] = dict.fromkeys(AgentState, 0)
        self._counts[AgentState.LOGGED_OUT] = agents
        self._staffed = 0
        self._ready: dict[str, _Key] = {}
        """Each ready agent's current heap key."""
        self._heap: list[tuple[float, int, str]] = []

    def count(self, state: AgentState) -> int:
        return self._counts[state]

    @property
    def staffed(self) -> int:
        """Agents ready, ringing, on a call or in wrap-up (``STAFFED_STATES``)."""
        return self._staffed

    def moved(
        self, agent_id: str, position: int, old: AgentState, new: AgentState, idle_since: float
    ) -> None:
        """The agent went from ``old`` to ``new`` (the same state: only ``idle_since`` moved)."""
        if old is not new:
            self._counts[old] -= 1
            self._counts[new] += 1
            self._staffed += (new in STAFFED_STATES) - (old in STAFFED_STATES)
        if new is AgentState.READY:
            key = (idle_since, position)
            if self._ready.get(agent_id) != key:
                self._ready[agent_id] = key
                heapq.heappush(self._heap, (idle_since, position, agent_id))
                if len(self._heap) > 2 * len(self._ready) + 32:
                    self._rebuild()
        elif old is AgentState.READY:
            del self._ready[agent_id]

    def longest_idle_ready(self) -> str | None:
        """The ready agent with the earliest ``idle_since`` (first in the config on a tie)."""
        heap, ready = self._heap, self._ready
        while heap:
            idle_since, position, agent_id = heap[0]
            if ready.get(agent_id) == (idle_since, position):
                return agent_id
            heapq.heappop(heap)
        return None

    def _rebuild(self) -> None:
        self._heap = [(key[0], key[1], agent_id) for agent_id, key in self._ready.items()]
        heapq.heapify(self._heap)

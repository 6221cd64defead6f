"""Which events make the wellbeing heartbeat look at an agent again, and which can wait.

A look at an agent (``StatsService.check_wellbeing``) plans the next one for
the first moment its alerts could change *if the agent stayed in the state it
was in at that look* (``running.steady_until``: the occupancy alert's flip
solved from the window's known past, the time-without-break and long-call
thresholds, the oldest hard call leaving its window, at most
``ALERT_HORIZON_S`` ahead). An event before that planned look needs a look
of its own only if it can bring some alert's change *earlier* than planned.
Later is harmless: the planned look finds the alerts as they are, and plans
again from the state the agent is then in.

A state change (:func:`LookFilter.change_look`):

* a rest starting or ending, a login or logout, or a rest of ``min_rest_s``
  or longer (or a logout) closed: always a whole look (the time since a break
  moves);
* otherwise only the occupancy window's trajectory moves, and a look, if
  needed, is at the occupancy alone (``OCCUPANCY_LOOK``: the other alerts'
  due time planned at the last whole look still holds). What enters the
  window per second is ``handling - limit * staffed`` (the margin ``m`` whose
  sign the alert follows) and ``staffed``. While the alert is off it comes on
  when ``m > 0`` and enough staffed time; if neither grows faster in the new
  state than in the state the plan assumed, it cannot come on earlier. While
  it is on, symmetrically, if neither grows slower it cannot go earlier. So
  from a look during a call or wrap-up (the fastest-growing state) with the
  alert off, ready/ringing/not ready change nothing; from a look while
  ready with the alert on, neither does a call. What leaves the window is
  the ledger of ``occupancy_window_s`` ago, the same whatever happens now, as
  long as the planned look comes before the state entered now leaves the
  window (``planned <= at + occupancy_window_s``).

A call answered (:func:`LookFilter.answer_look_by`): a whole look for a hard
call (the hard-calls alert), any call when ``consecutive_calls_limit`` is
set, or a long-call alert still on; a call that would reach ``long_call_s``
before the planned look moves that look to the moment it would
(:meth:`LookFilter.plan_by`). (Its state change is judged as above.) A call's
end is judged by the service: it can only end a long-call alert.

The pages' figures are not refreshed by the heartbeat: an agent's last glance
older than ``SIGNALS_REFRESH_S`` is brought to the last check when read
(:func:`refreshed`, ``WellbeingWatch.last_glance``). Every event that needs a
whole look forgets what the last look assumed (:meth:`LookFilter.forget`).

The equality with a look at every agent on every tick is the property
``tests/test_wellbeing_incremental.py`` and
``tests/test_wellbeing_tick_equivalence.py`` check over random histories.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection

from agent_stats.ledger import AgentLedger
from agent_stats.roster import AgentChange
from agent_stats.running import Glance, WindowSums
from agent_stats.states import (
    HANDLING_STATES,
    REST_REASONS,
    STAFFED_STATES,
    AgentState,
    NotReadyReason,
)
from agent_stats.wellbeing import ALERT_LOOK_EARLY_S, AlertKind, WellbeingConfig


class Look(enum.Enum):
    """What an event needs of the heartbeat (:meth:`LookFilter.change_look`)."""

    NONE = "none"
    OCCUPANCY = "occupancy"
    """Only the occupancy window's trajectory moved: a look at the occupancy alone
    (``WellbeingWatch``), which becomes a whole look if the alert flips."""
    WHOLE = "whole"


NO_LOOK, OCCUPANCY_LOOK, WHOLE_LOOK = Look.NONE, Look.OCCUPANCY, Look.WHOLE


def _resting(state: AgentState, reason: NotReadyReason | None) -> bool:
    return state is AgentState.NOT_READY and reason in REST_REASONS


class LookFilter:
    """What each agent's last look assumed: its state's occupancy rates and the planned look."""

    __slots__ = ("_config", "_looked", "_state_rates")

    def __init__(self, config: WellbeingConfig) -> None:
        self._config = config
        self._looked: dict[str, tuple[float, float, float, float]] = {}
        """agent -> (margin rate ``handling - limit * staffed``, staffed rate, planned look,
        when an alert other than occupancy is next due)."""
        self._state_rates = {state: self._rates(state) for state in AgentState}

    def _rates(self, state: AgentState) -> tuple[float, float]:
        staffed = 1.0 if state in STAFFED_STATES else 0.0
        handling = 1.0 if state in HANDLING_STATES else 0.0
        return handling - self._config.occupancy_limit * staffed, staffed

    def looked(
        self, agent_id: str, state: AgentState, planned_at: float, others_at: float
    ) -> None:
        """The agent was looked at in ``state``; its next look is planned at ``planned_at``,
        the first alert other than occupancy is due at ``others_at`` (``<= planned_at``
        when nothing else is)."""
        m, s = self._state_rates[state]
        self._looked[agent_id] = (m, s, planned_at, others_at)

    def others_due_at(self, agent_id: str) -> float:
        """When an alert other than occupancy is next due, as planned at the agent's last
        whole look (-inf: unknown, a whole look is needed)."""
        looked = self._looked.get(agent_id)
        return -math.inf if looked is None else looked[3]

    def forget(self, agent_id: str) -> None:
        """What the last look assumed no longer holds (an event needs a look, logged out,
        gone): every event needs a look, and the next one is a whole look."""
        self._looked.pop(agent_id, None)

    def planned_at(self, agent_id: str) -> float:
        """When the agent's alerts are next due (-inf: unknown, a whole look is needed)."""
        looked = self._looked.get(agent_id)
        return -math.inf if looked is None else looked[2]

    def change_needs_look(self, change: AgentChange, active: Collection[AlertKind]) -> bool:
        """Whether a state change can move an alert earlier than the planned look.

        ``active``: the agent's alerts at its last look."""
        return self.change_look(change, active) is not NO_LOOK

    def change_look(self, change: AgentChange, active: Collection[AlertKind]) -> Look:
        """What look a state change needs: none, a look at the occupancy alone (only the
        occupancy window's trajectory moved the wrong way), or a whole look.

        ``active``: the agent's alerts at its last look."""
        looked = self._looked.get(change.agent_id)
        if looked is None:
            return WHOLE_LOOK
        if change.old is AgentState.LOGGED_OUT or change.new is AgentState.LOGGED_OUT:
            return WHOLE_LOOK
        if _resting(change.old, change.old_reason) != _resting(change.new, change.new_reason):
            return WHOLE_LOOK
        rest_s = self._config.min_rest_s
        if any(
            i.state is AgentState.LOGGED_OUT
            or (_resting(i.state, i.reason) and i.duration >= rest_s)
            for i in change.closed
        ):
            return WHOLE_LOOK  # a reset: the time since a break starts again
        m0, s0, planned, _ = looked
        m, s = self._state_rates[change.new]
        if m == m0 and s == s0:
            return NO_LOOK  # the same trajectory as planned (ready/ringing, call/wrap-up)
        if planned > change.at + self._config.occupancy_window_s:
            return OCCUPANCY_LOOK  # the state entered now leaves the window before the look
        if AlertKind.HIGH_OCCUPANCY in active:
            return OCCUPANCY_LOOK if m < m0 or s < s0 else NO_LOOK  # it could go sooner
        return OCCUPANCY_LOOK if m > m0 or s > s0 else NO_LOOK  # it could come sooner

    def answer_needs_look(
        self, agent_id: str, at: float, hard: bool, active: Collection[AlertKind]
    ) -> bool:
        """Whether a call answered at ``at`` can move an alert earlier than the planned look."""
        return self.answer_look_by(agent_id, at, hard, active) != math.inf

    def answer_look_by(
        self, agent_id: str, at: float, hard: bool, active: Collection[AlertKind]
    ) -> float | None:
        """What a call answered at ``at`` needs: a whole look (None), or a look by the
        returned time (``inf``: none before the planned one). A call that could become
        long before the planned look needs one only when it would be long."""
        looked = self._looked.get(agent_id)
        config = self._config
        if (looked is None or hard or config.consecutive_calls_limit is not None
                or AlertKind.LONG_CALL in active):
            return None
        by = at + config.long_call_s
        return by - ALERT_LOOK_EARLY_S if looked[2] > by else math.inf

    def plan_by(self, agent_id: str, at: float) -> None:
        """The agent's next look is moved to ``at`` if that is earlier than planned."""
        looked = self._looked.get(agent_id)
        if looked is not None and at < looked[2]:
            self._looked[agent_id] = (looked[0], looked[1], at, looked[3])


ALERT_HORIZON_S = 900.0
"""How far ahead a look plans the alerts when none can change sooner (less, to spread
the looks: see :func:`refresh_horizon_s`); a look due only for the horizon, with no
other alert due, is at the occupancy alone. It keeps the planned look within
``long_call_s`` of any call answered (the default 1,200 s), so calls seldom need a
look of their own."""

_GOLDEN = 0.6180339887498949


def refresh_horizon_s(order: int, now: float, refresh_s: float) -> float:
    """How far ahead an agent nothing happens to is looked at (or glanced at) again: in
    ``(refresh_s / 2, refresh_s]``, at one of the agent's own slots (every ``refresh_s /
    2``, at a phase taken from its place ``order`` in the roster, spread evenly).

    Without the slots, agents looked at together (every agent at the first
    tick, or after a restore) would all be looked at again together,
    ``refresh_s`` later, and again: one heavy tick in twenty."""
    period = refresh_s / 2
    phase = (order * _GOLDEN) % 1.0 * period
    slot = (((now + refresh_s - phase) // period) * period) + phase
    return min(refresh_s, max(period, slot - now))


_KEEP = object()


def refreshed(g: Glance, ledger: AgentLedger, window: WindowSums, now: float,
              config: WellbeingConfig, current_call_s: object = _KEEP) -> Glance:
    """The agent's last glance brought to ``now``, when nothing happened to it that a
    whole look must see (no rest, login, logout or hard call since it, no other alert
    due): for the pages (``WellbeingWatch.last_glance``) and a look at the occupancy
    alone (``WellbeingWatch._occupancy_look``, which also takes the current call's
    length again: ``current_call_s``, a float or None).

    Occupancy and the window's seconds are taken again (what moves with time
    alone); the time since the break and the current call's length run on
    from the last look (no rest, login or logout came between: those make a
    look); the counts stay (a hard call, or any call when consecutive calls are
    limited, makes a look, and the first hard call leaving its window is an
    alert due). A long call that ended without a long-call alert leaves its
    length here, which nothing reads while no such alert is up."""
    staffed, handling = window.last(ledger, now, config.occupancy_window_s)
    later = now - g.now
    since = g.since_break_s
    if since is not None and not g.resting:
        since += later
    if current_call_s is _KEEP:
        current = g.current_call_s
        current_call_s = None if current is None else current + later
    return Glance(
        g.agent_id, now, since, g.resting, handling / staffed if staffed > 0 else None,
        staffed, handling, g.consecutive_calls, g.hard_calls_recent,
        current_call_s,  # type: ignore[arg-type]
        g.near,
    )

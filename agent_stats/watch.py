"""The wellbeing watch: which agent to look at, their alerts, and the figures the pages show.

:class:`WellbeingWatch` is the part of :class:`~agent_stats.service.StatsService`
that runs ``check_wellbeing`` at every heartbeat. It owns the alerts (active,
today's, the count since the start), each agent's last look
(:class:`~agent_stats.running.Glance`) and the plan of the next looks
(:class:`~agent_stats.running.LookSchedule`,
:class:`~agent_stats.wellbeing_looks.LookFilter`). The ledgers are the
roster's; each agent's running day and call log come from the service
(``agent_day``, ``call_log``). Time is passed in (``now``); nothing here reads
a clock.

Incremental: an agent is looked at when something happened to it that can
change its alerts sooner than planned (``wellbeing_looks``: a rest, a login or
logout, a hard call, a change of state that moves the occupancy window the
wrong way, a restore) and when its alerts could next change with time alone
(``running.steady_parts``: a heap of due times, ``running.LookSchedule``). A
look is *whole* (every figure, every alert planned again) or, when only the
occupancy can have moved (the trajectory changed, or its planned flip or the
horizon is due, and no other alert is due), *at the occupancy alone*
(``_occupancy_look``: the window's seconds and its next flip; a whole look
if the alert flips or the figures are within rounding of a threshold). An
agent nothing happens to costs the heartbeat nothing between its due times;
the pages' figures of an agent not looked at for ``SIGNALS_REFRESH_S`` are
taken when read (``last_glance``). The alerts are those a look at every agent
would find at this tick (``tests/test_wellbeing_tick_equivalence.py``,
``tests/test_wellbeing_incremental.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace

from twisted.logger import Logger

from agent_stats.ledger import AgentLedger
from agent_stats.roster import AgentRoster
from agent_stats.running import (
    AgentDay,
    CallLog,
    Glance,
    LookSchedule,
    WindowSums,
    alert_kinds,
    glance,
    near_threshold,
    occupancy_due,
    running_signals,
    steady_parts,
)
from agent_stats.sla import SLAConfig, day_start
from agent_stats.states import AgentState
from agent_stats.store import AlertRaised, AlertRecord, Operation
from agent_stats.wellbeing import (
    ALERT_LOOK_EARLY_S,
    Alert,
    AlertKind,
    WellbeingConfig,
    WellbeingSignals,
    alerts,
    ledger_signals,
    window_seconds,
)
from agent_stats.wellbeing_looks import (
    ALERT_HORIZON_S,
    LookFilter,
    refresh_horizon_s,
    refreshed,
)

log = Logger()

HANDLED_KEEP_S = 86400.0
SIGNALS_REFRESH_S = 300.0
"""An agent nothing happens to is looked at again at least this often (the
wallboard's occupancy and time since a break); alerts come when due, sooner."""


class WellbeingWatch:
    """Each logged-in agent's alerts and last look, kept up to date at the heartbeat."""

    def __init__(
        self,
        *,
        roster: AgentRoster,
        sla: SLAConfig,
        wellbeing: WellbeingConfig,
        agent_day: Callable[[str], AgentDay],
        call_log: Callable[[str], CallLog],
        submit: Callable[[Operation], None],
    ) -> None:
        self.roster = roster
        self.sla = sla
        self.wellbeing = wellbeing
        self._agent_day = agent_day
        self._call_log = call_log
        self._submit = submit
        self.alerts_raised: list[AlertRecord] = []
        """Today's alerts (pruned at the heartbeat); ``alerts_count`` counts them all."""
        self.alerts_count = 0
        self.active_alerts: dict[str, dict[AlertKind, Alert]] = {}
        self.signals: Mapping[str, WellbeingSignals] = _SignalsAtLastCheck(self)
        """Each logged-in agent's exact signals at the last check, computed when read."""
        self.glances: dict[str, Glance] = {}
        """Each logged-in agent's alert figures when last looked at (``running.glance``)."""
        self.checked_at = -math.inf
        self.looks = LookSchedule(s.profile.agent_id for s in roster)
        self.look_filter = LookFilter(wellbeing)
        self.alert_horizon_s = ALERT_HORIZON_S
        """How far ahead a look plans the next one (``wellbeing_looks.ALERT_HORIZON_S``)."""
        self.windows: dict[str, WindowSums] = {}
        self._order: dict[str, int] = {}
        self.whole_looks = 0
        """Whole looks made since the start (``check``; for the benchmark)."""
        self.occupancy_looks = 0
        """Looks at the occupancy alone (``_occupancy_look``) made since the start."""

    def look_at(self, agent_id: str) -> None:
        """Something happened to the agent that its planned look does not cover: look at the
        next tick (a whole look: what its last look assumed no longer holds)."""
        self.looks.changed(agent_id)
        self.look_filter.forget(agent_id)

    def look_at_occupancy(self, agent_id: str) -> None:
        """Only the agent's occupancy trajectory moved (``LookFilter.change_look``): look at
        the next tick, at the occupancy alone unless it flips (what the last whole look
        planned for the other alerts still holds)."""
        self.looks.changed(agent_id)

    def look_by(self, agent_id: str, at: float) -> None:
        """Look at the agent by ``at`` at the latest (``LookFilter.answer_look_by``)."""
        self.looks.plan_by(agent_id, at)
        self.look_filter.plan_by(agent_id, at)

    def forget_before(self, today: float) -> None:
        """Today's alerts only (the figures read no more)."""
        if self.alerts_raised and self.alerts_raised[0].at < today:
            self.alerts_raised = [a for a in self.alerts_raised if a.at >= today]

    def check(self, now: float) -> list[AlertRecord]:
        """New alerts of logged-in agents are recorded and logged (``StatsService.check_wellbeing``)."""
        raised: list[AlertRecord] = []
        start = day_start(now, self.sla)
        self.checked_at = now
        if not self._order:
            self._order = {s.profile.agent_id: i for i, s in enumerate(self.roster)}
        roster, config, order_of = self.roster, self.wellbeing, self._order
        glances, windows, active = self.glances, self.windows, self.active_alerts
        looks, look_filter = self.looks, self.look_filter
        hard_window_s = config.hard_calls_window_s
        horizon_s = self.alert_horizon_s
        for agent_id in looks.take(now, order_of):
            if agent_id not in roster:
                look_filter.forget(agent_id)
                continue
            status = roster.get(agent_id)
            ledger = status.ledger
            if look_filter.others_due_at(agent_id) > now and self._occupancy_look(
                    agent_id, status.state, ledger, now, horizon_s, raised, start):
                self.occupancy_looks += 1
                continue
            self.whole_looks += 1
            calls = self._call_log(agent_id)
            day = self._agent_day(agent_id)
            day.sync(ledger, start)
            # the hard-call window needs the calls' times; the counts since the last
            # reset and of the day are kept as counts: older calls are forgotten
            reset = ledger.origin if day.last_reset is None else day.last_reset
            calls.prune(now - hard_window_s, start, reset)
            if status.state is AgentState.LOGGED_OUT:
                active.pop(agent_id, None)
                glances.pop(agent_id, None)
                look_filter.forget(agent_id)
                continue
            window = windows.get(agent_id)
            if window is None:
                window = windows[agent_id] = WindowSums()
            horizon = refresh_horizon_s(order_of.get(agent_id, 0), now, horizon_s)
            g = glances[agent_id] = glance(ledger, day, calls, window, now, start, config)
            if g.near:
                planned = others = now
            else:
                occupancy_at, others = steady_parts(
                    g, ledger, window, calls, config, HANDLED_KEEP_S, horizon)
                planned = min(occupancy_at, others)
            looks.plan(agent_id, planned)
            look_filter.looked(agent_id, status.state, planned, others)
            before = active.get(agent_id)
            if before is None:
                before = active[agent_id] = {}
            kinds = alert_kinds(g, config)
            if not g.near and len(kinds) == len(before) and all(k in before for k in kinds):
                continue  # the same alerts (their figures are read from the glance)
            sig = g.signals()
            if g.near or (AlertKind.HIGH_OCCUPANCY in kinds
                          and AlertKind.HIGH_OCCUPANCY not in before):
                # near a threshold, or an occupancy alert to record: the exact occupancy
                # (``running_signals``' figure; the glance's others are exact already)
                _, _, occupancy, staffed = ledger_signals(ledger, reset, now, config)
                sig = replace(sig, occupancy=occupancy, staffed_in_window_s=staffed)
            found = {a.kind: a for a in alerts(sig, config)}
            for kind, alert in found.items():
                if kind not in before:
                    self._raise(alert, now, raised)
            self.active_alerts[agent_id] = found
        self.alerts_raised.extend(raised)
        self.alerts_count += len(raised)
        return raised

    def _raise(self, alert: Alert, now: float, raised: list[AlertRecord]) -> None:
        record = AlertRecord(alert.agent_id, alert.kind.value, float(alert.value),
                             float(alert.limit), now)
        raised.append(record)
        self._submit(AlertRaised(record))
        log.warn(
            "wellbeing alert for {agent}: {kind} ({value:g}, limit {limit:g})",
            agent=alert.agent_id, kind=alert.kind.value, value=float(alert.value),
            limit=float(alert.limit),
        )

    def _occupancy_look(
        self, agent_id: str, state: AgentState, ledger: AgentLedger, now: float,
        horizon_s: float, raised: list[AlertRecord], start: float,
    ) -> bool:
        """A look when only the occupancy alert (or the horizon) is due: nothing happened
        to the agent that its last whole look did not plan for (no event needed a look:
        ``LookFilter``), and no other alert is due before ``others_due_at``, so only the
        occupancy window has moved. Its figures are taken again (``refreshed``); unless
        they are near a threshold, the occupancy alert comes or goes here (coming, with
        the exact figure a whole look records: ``_occupancy_flipped``), the next look is
        planned from the occupancy's next flip and the other alerts' due time, and True
        is returned. False: a whole look is needed (the figures are too close to a
        threshold to tell, or a call became long)."""
        g = self.glances.get(agent_id)
        before = self.active_alerts.get(agent_id)
        if g is None or before is None or state is AgentState.LOGGED_OUT:
            return False
        config = self.wellbeing
        window = self.windows.get(agent_id)
        if window is None:
            return False
        # a call answered since the whole look (it did not need one: it could not
        # become long before the planned look, which may now move later)
        calls = self._call_log(agent_id)
        current = calls.current_call_s(now)
        fresh = refreshed(g, ledger, window, now, config, current)
        staffed, handling = fresh.staffed_s, fresh.handling_s
        if near_threshold(staffed, handling, config):
            return False
        occupancy = fresh.occupancy
        on = (occupancy is not None and occupancy > config.occupancy_limit
              and staffed >= config.occupancy_min_staffed_s)
        others = self.look_filter.others_due_at(agent_id)
        if current is not None:
            if current >= config.long_call_s:
                if AlertKind.LONG_CALL not in before:
                    return False
            else:
                others = min(others, now + (config.long_call_s - current) - ALERT_LOOK_EARLY_S)
        if on != (AlertKind.HIGH_OCCUPANCY in before):
            found = self._occupancy_flipped(agent_id, ledger, before, on, now)
            if found is None:
                return False
            if on:
                self._raise(found[AlertKind.HIGH_OCCUPANCY], now, raised)
            self.active_alerts[agent_id] = found
        self.glances[agent_id] = fresh
        oldest = calls.oldest()
        if oldest is not None and oldest < now - 2 * config.hard_calls_window_s:
            # calls long out of the hard-call window: forgotten as a whole look forgets them
            # (at most two windows' worth kept; the last reset is the last whole look's: a
            # rest or a logout since makes a whole look)
            reset = self._agent_day(agent_id).last_reset
            calls.prune(now - config.hard_calls_window_s, start,
                        ledger.origin if reset is None else reset)
        horizon = refresh_horizon_s(self._order.get(agent_id, 0), now, horizon_s)
        planned = min(occupancy_due(window, ledger, now, config, horizon, (staffed, handling)),
                      others)
        self.looks.plan(agent_id, planned)
        self.look_filter.looked(agent_id, state, planned, others)
        return True

    def _occupancy_flipped(
        self, agent_id: str, ledger: AgentLedger, before: dict[AlertKind, Alert], on: bool,
        now: float,
    ) -> dict[AlertKind, Alert] | None:
        """The agent's alerts when only the occupancy alert came (``on``) or went, as a whole
        look finds them: the others as they were (none is due: ``others_due_at``), in
        :func:`~agent_stats.wellbeing.alerts`' order; one coming carries the exact
        occupancy (``window_seconds``, what a whole look records). None: the exact
        figures disagree (a whole look decides)."""
        config = self.wellbeing
        occupancy_alert = None
        if on:
            staffed, handling = window_seconds(ledger, now - config.occupancy_window_s, now)
            occupancy = handling / staffed if staffed > 0 else None
            if (occupancy is None or not occupancy > config.occupancy_limit
                    or staffed < config.occupancy_min_staffed_s):
                return None
            occupancy_alert = Alert(agent_id, AlertKind.HIGH_OCCUPANCY, occupancy,
                                    config.occupancy_limit)
        found: dict[AlertKind, Alert] = {}
        for kind in AlertKind:
            if kind is AlertKind.HIGH_OCCUPANCY:
                if occupancy_alert is not None:
                    found[kind] = occupancy_alert
            elif kind in before:
                found[kind] = before[kind]
        return found

    def exact_signals(self, agent_id: str) -> WellbeingSignals | None:
        """The agent's signals at the last check (None: logged out then, or never looked at).

        An agent who changed since is read at its change (the figures stay
        consistent with its current state)."""
        if agent_id not in self.glances or agent_id not in self.roster:
            return None
        status = self.roster.get(agent_id)
        if status.state is AgentState.LOGGED_OUT:
            return None
        now = max(self.checked_at, status.ledger.since)
        return running_signals(
            status.ledger, self._agent_day(agent_id), self._call_log(agent_id), now,
            day_start(now, self.sla), self.wellbeing,
        )

    def last_glance(self, agent_id: str) -> Glance | None:
        """The agent's figures as of its last look, for the pages (None: not looked at, or
        logged out at its last look).

        A look is made only when an event or an alert needs one; a glance older
        than ``SIGNALS_REFRESH_S`` at the last check is brought to that check
        here, when read (``wellbeing_looks.refreshed``: occupancy taken again,
        the times run on), so an agent nothing happens to costs the heartbeat
        nothing and the pages' figures are at most ``SIGNALS_REFRESH_S`` old."""
        g = self.glances.get(agent_id)
        if g is None:
            return None
        at = self.checked_at
        if g.now + SIGNALS_REFRESH_S < at and agent_id in self.roster:
            window = self.windows.get(agent_id)
            if window is None:
                window = self.windows[agent_id] = WindowSums()
            g = self.glances[agent_id] = refreshed(
                g, self.roster.get(agent_id).ledger, window, at, self.wellbeing)
        return g

    def alert_value(self, alert: Alert, now: float) -> float:
        """An active alert's figure at ``now``, from the agent's last look (times grow on)."""
        g = self.last_glance(alert.agent_id)
        if g is None:
            return float(alert.value)
        later = max(0.0, now - g.now)
        kind = alert.kind
        if kind is AlertKind.NO_BREAK and g.since_break_s is not None:
            return g.since_break_s + later
        if kind is AlertKind.LONG_CALL and g.current_call_s is not None:
            return g.current_call_s + later
        if kind is AlertKind.HIGH_OCCUPANCY and g.occupancy is not None:
            return g.occupancy
        if kind is AlertKind.HARD_CALLS:
            return float(g.hard_calls_recent)
        if kind is AlertKind.CONSECUTIVE_CALLS:
            return float(g.consecutive_calls)
        return float(alert.value)

    def glance(self, agent_id: str, now: float) -> tuple[float | None, float | None]:
        """Time since the last break (at ``now``) and occupancy (when last looked at)."""
        g = self.last_glance(agent_id)
        if g is None:
            return None, None
        since = g.since_break_s
        if since is not None and not g.resting:
            since += max(0.0, now - g.now)
        return since, g.occupancy


class _SignalsAtLastCheck(Mapping[str, WellbeingSignals]):
    """``StatsService.signals``: exact signals at the last check, per agent, when read."""

    def __init__(self, watch: WellbeingWatch) -> None:
        self._watch = watch
        self._cache: dict[str, WellbeingSignals] = {}
        self._cached_at = -math.inf

    def __getitem__(self, agent_id: str) -> WellbeingSignals:
        watch = self._watch
        if self._cached_at != watch.checked_at:
            self._cache.clear()
            self._cached_at = watch.checked_at
        found = self._cache.get(agent_id)
        if found is None:
            found = watch.exact_signals(agent_id)
            if found is None:
                raise KeyError(agent_id)
            if found.now == self._cached_at:
                self._cache[agent_id] = found
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._watch.glances))

    def __len__(self) -> int:
        return len(self._watch.glances)

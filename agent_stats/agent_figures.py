"""Each agent's running figures: the day (allowance, not-ready time, last break) and call log.

:class:`AgentFigures` keeps, per agent, the :class:`~agent_stats.running.AgentDay`
(running sums of the day, folded in from the ledger before its intervals are
dropped) and the :class:`~agent_stats.running.CallLog` (the calls the
wellbeing alerts count). The break desk reads ``standing`` (unused allowance,
the last break's end), the wellbeing watch reads both, and the heartbeat runs
``prune_ledgers``. Time is passed in.
"""

from __future__ import annotations

from agent_stats.breaks import Allowance, BreakConfig
from agent_stats.roster import AgentRoster
from agent_stats.running import AgentDay, CallLog
from agent_stats.sla import SLAConfig, day_start
from agent_stats.wellbeing import WellbeingConfig


class AgentFigures:
    """The agents' running days and call logs, made when first asked for."""

    def __init__(
        self, *, roster: AgentRoster, sla: SLAConfig, breaks: BreakConfig,
        wellbeing: WellbeingConfig,
    ) -> None:
        self.roster = roster
        self.sla = sla
        self.breaks = breaks
        self.wellbeing = wellbeing
        self.days: dict[str, AgentDay] = {}
        self.call_logs: dict[str, CallLog] = {}

    def day(self, agent_id: str) -> AgentDay:
        """The agent's running figures of the day (allowance, not-ready time), kept as it goes."""
        day = self.days.get(agent_id)
        if day is None:
            day = self.days[agent_id] = AgentDay(self.breaks, self.wellbeing)
        return day

    def call_log(self, agent_id: str) -> CallLog:
        log_ = self.call_logs.get(agent_id)
        if log_ is None:
            log_ = self.call_logs[agent_id] = CallLog(self.wellbeing.long_call_s)
        return log_

    def standing(self, agent_id: str, now: float) -> tuple[float, float | None]:
        """Today's unused allowance and the last break's end (running figures: no day scan)."""
        ledger = self.roster.get(agent_id).ledger
        day = self.day(agent_id)
        allowed = day.allowance(ledger, day_start(now, self.sla), now)
        return allowed.unused_s, day.last_break_end

    def prune_ledgers(self, now: float) -> int:
        """Drop closed intervals no live figure reads any more; returns how many.

        Occupancy reads the last ``occupancy_window_s``; the day's allowance,
        not-ready time, last break and last reset are running sums
        (``running.AgentDay``), brought up to date here before the ledger lets
        go, so no figure changes and an agent's ledger holds about an hour of
        intervals whatever the time of day (Redis keeps every interval, and a
        restart reads the days back)."""
        horizon = now - self.wellbeing.occupancy_window_s
        today = day_start(now, self.sla)
        dropped = 0
        for status in self.roster:
            ledger = status.ledger
            if not ledger.prunable(horizon):
                continue
            self.day(status.profile.agent_id).sync(ledger, today)
            dropped += ledger.prune(horizon)
        return dropped

    def allowances(self, now: float) -> dict[str, Allowance]:
        start = day_start(now, self.sla)
        return {
            s.profile.agent_id: self.day(s.profile.agent_id).allowance(s.ledger, start, now)
            for s in self.roster
        }

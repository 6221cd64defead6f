"""The live figures: what the wallboard, the desk and ``/metrics`` show, from memory.

:func:`live_figures` is :meth:`StatsService.snapshot
<agent_stats.service.StatsService.snapshot>`: per queue the rolling window, the
interval and the day (:func:`counts_dict`), each agent's state with the
wellbeing watch's last look (time since a break, occupancy, alerts) and their
place in the break line, the line itself and the day's break and alert
figures. Pure: everything is passed in, ``now`` too. The pages read it once a
second (``shenava.http.push``); nothing is published to Redis for them.
"""

from __future__ import annotations

from typing import Any

from agent_stats.break_desk import BreakDesk
from agent_stats.roster import AgentRoster
from agent_stats.sla import SLAConfig, SLATally, SLCounts, day_start
from agent_stats.states import HANDLING_STATES, STAFFED_STATES, AgentState
from agent_stats.watch import WellbeingWatch


def counts_dict(c: SLCounts) -> dict[str, Any]:
    return {
        "offered": c.offered,
        "answered": c.answered,
        "answered_in_sl": c.answered_in_sl,
        "abandoned": c.abandoned,
        "abandoned_short": c.abandoned_short,
        "voicemail": c.voicemail,
        "callback": c.callback,
        "sl": c.service_level,
        "sl1": c.servicelevel_perf,
        "sl2": c.servicelevel_perf2,
        "average_answer_wait_s": c.average_answer_wait_s,
    }


def live_figures(
    now: float,
    *,
    sla: SLAConfig,
    tally: SLATally,
    queue_names: list[str],
    roster: AgentRoster,
    desk: BreakDesk,
    watch: WellbeingWatch,
    fairness_today: float,
    journal: dict[str, Any] | None,
) -> dict[str, Any]:
    """The live figures at ``now``, JSON-able."""
    queues = {
        q: {
            "rolling": counts_dict(tally.rolling(q, now)),
            "interval": counts_dict(tally.interval(q, now)),
            "day": counts_dict(tally.day(q, now)),
        }
        for q in queue_names
    }
    states: dict[str, int] = {s.value: 0 for s in AgentState}
    reasons: dict[str, int] = {}
    agents: list[dict[str, Any]] = []
    handling = staffed = 0
    positions = {r.agent_id: i for i, r in enumerate(desk.line.waiting(), start=1)}
    for status in roster:
        agent_id = status.profile.agent_id
        states[status.state.value] += 1
        if status.reason is not None:
            reasons[status.reason.value] = reasons.get(status.reason.value, 0) + 1
        staffed += int(status.state in STAFFED_STATES)
        handling += int(status.state in HANDLING_STATES)
        since_break, occupancy = watch.glance(agent_id, watch.checked_at)
        agents.append({
            "agent_id": agent_id,
            "name": status.profile.name,
            "state": status.state.value,
            "reason": status.reason.value if status.reason else None,
            "since": status.ledger.since,
            "since_break_s": since_break,
            "occupancy": occupancy,
            "break_position": positions.get(agent_id),
            "break_after_call": agent_id in desk.pending_grants,
            "alerts": sorted(k.value for k in watch.active_alerts.get(agent_id, {})),
        })
    return {
        "at": now,
        "queues": queues,
        "agents": agents,
        "states": states,
        "not_ready_reasons": reasons,
        "occupancy_now": handling / staffed if staffed else None,
        "break_line": [
            {"agent_id": r.agent_id, "reason": r.reason.value, "requested_at": r.requested_at,
             "waited_s": now - r.requested_at, "position": i}
            for i, r in enumerate(desk.line.waiting(), start=1)
        ],
        "breaks_granted": desk.grants_made,
        "break_wait_max_s": desk.break_wait_max_s,
        "fairness_today": fairness_today,
        "alerts": [
            {"agent_id": a.agent_id, "kind": a.kind.value,
             "value": watch.alert_value(a, watch.checked_at), "limit": float(a.limit)}
            for per_agent in watch.active_alerts.values() for a in per_agent.values()
        ],
        "alerts_today": sum(1 for a in watch.alerts_raised if a.at >= day_start(now, sla)),
        "journal": journal,
    }

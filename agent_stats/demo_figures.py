"""What the demo shows of the statistics, and the simulated agents' break requests."""

from __future__ import annotations

import random
from typing import Any

from twisted.logger import Logger

from agent_stats.errors import AgentStatsError
from agent_stats.service import StatsService
from agent_stats.states import STAFFED_STATES, AgentState, NotReadyReason

log = Logger()

BREAK_ASK_EVERY_S = 20.0
"""On average, how often one simulated agent asks for a break."""
BREAK_LENGTH_S = {NotReadyReason.PERSONAL: (5.0, 15.0), NotReadyReason.BREAK: (10.0, 30.0)}
PERSONAL_SHARE = 0.4


def _service(app: Any) -> StatsService | None:
    service = app.extensions.get("agent_stats")
    return service if isinstance(service, StatsService) else None


def summary(app: Any) -> dict[str, Any]:
    """The service level (named: ours and app_queue's two), breaks and fairness, alerts.

    ``service_level.counted`` is the SL's denominator: answered calls plus
    those abandoned after the short-abandon threshold (quicker ones are left
    out by the definition); it is not another "offered" count.
    """
    service = _service(app)
    if service is None:
        return {"available": False}
    snap = service.snapshot()
    day = snap["queues"][service.default_queue]["day"]
    sla = service.sla
    waits = [g.waited_s or 0.0 for g in service.grants]
    queued = [g for g in service.grants if g.reason in service.break_config.queued_reasons]
    by_reason: dict[str, int] = {}
    for g in service.grants:
        by_reason[g.reason.value] = by_reason.get(g.reason.value, 0) + 1
    service.fairness_today = _fairness(service)
    return {
        "service_level": {
            "threshold_s": sla.threshold_s,
            "short_abandon_s": sla.short_abandon_s,
            "target": sla.target,
            "sl": day["sl"],
            "app_queue_servicelevel_perf": day["sl1"],
            "app_queue_servicelevel_perf2": day["sl2"],
            "counted": day["answered"] + day["abandoned"],
            "answered": day["answered"],
            "answered_in_threshold": day["answered_in_sl"],
            "abandoned_counted": day["abandoned"],
            "abandoned_short_not_counted": day["abandoned_short"],
        },
        "breaks": {
            "granted": service.grants_made,
            "granted_by_reason": by_reason,
            "waited_for_headroom": sum(1 for g in queued if (g.waited_s or 0.0) > 0),
            "wait_max_s": round(max(waits, default=0.0), 3),
            "wait_mean_s": round(sum(waits) / len(waits), 3) if waits else 0.0,
            "forced_at_max_wait": sum(1 for g in service.grants if g.forced),
            "line_now": len(service.line),
            "fairness_index": round(service.fairness_today, 4),
        },
        "wellbeing_alerts": service.alerts_count,
    }


def _fairness(service: StatsService) -> float:
    from agent_stats.breaks import fairness_index

    return fairness_index(service.allowances(service.clock.seconds()))


def simulate_breaks(reactor: Any, app: Any, rng: random.Random) -> None:
    """Simulated agents ask for personal and regular breaks now and then, and come back.

    Each ask goes through ``StatsService.request_break``: a personal break is
    granted at once; a regular one may wait in the fair line. Whoever is on a
    break the simulation started gets back to ready after a short while.
    """
    service = _service(app)
    if service is None:
        return
    agents = [s.profile.agent_id for s in app.roster]
    if not agents:
        return
    rate = len(agents) / BREAK_ASK_EVERY_S

    def back(agent_id: str, reason: NotReadyReason) -> None:
        status = app.roster.get(agent_id)
        if status.state is AgentState.NOT_READY and status.reason is reason:
            try:
                app.roster.set_ready(agent_id, reactor.seconds())
            except AgentStatsError as exc:
                log.debug("simulated agent {agent} not back: {e}", agent=agent_id, e=exc)
            return
        if status.state is AgentState.NOT_READY or agent_id in service.pending_grants or (
            service.line.position(agent_id) is not None
        ):
            reactor.callLater(5.0, back, agent_id, reason)

    def ask() -> None:
        agent_id = rng.choice(agents)
        status = app.roster.get(agent_id)
        if status.state in STAFFED_STATES and agent_id not in service.pending_grants:
            reason = (
                NotReadyReason.PERSONAL if rng.random() < PERSONAL_SHARE else NotReadyReason.BREAK
            )
            try:
                service.request_break(agent_id, reason)
            except AgentStatsError as exc:
                log.debug("simulated break not asked: {e}", e=exc)
            else:
                lo, hi = BREAK_LENGTH_S[reason]
                reactor.callLater(rng.uniform(lo, hi), back, agent_id, reason)
        reactor.callLater(rng.expovariate(rate), ask)

    reactor.callLater(rng.expovariate(rate), ask)

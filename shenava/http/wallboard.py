"""``GET /api/wallboard``: one read-only snapshot of the live figures, for the browser pages.

Nothing is computed here that the daemon does not already compute: the
service level and the day's outcomes are :meth:`StatsService.snapshot`'s, the
break allowances :meth:`StatsService.allowances`', the not-ready time the
agent's ledger totals, the waiting line ``GET /api/calls``' own answer, the
callback counts :class:`~routing.callback_store.CallbackStore`'s. This module
only gathers them into one answer, so a page polls one URL instead of five.

Who sees what: supervisors and admins every agent; an agent the queue figures
and their own row only (others' allowances and wellbeing alerts are personal).
There are no caller numbers in the answer.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from twisted.logger import Logger
from twisted.web.server import Request

from agent_stats.jalali import to_jalali
from agent_stats.roster import AgentStatus
from agent_stats.service import StatsService
from agent_stats.sla import day_start
from agent_stats.states import AgentState
from complaints.roles import Actor, Role
from shenava.http.agents import agent_view
from shenava.http.calls import CallsApi
from shenava.http.health import journal_health
from shenava.http.jsonapi import Route, resolve, route

log = Logger()


class WallboardApi:
    def __init__(self, app: Any, calls: CallsApi) -> None:
        self._app = app
        self._calls = calls

    def routes(self) -> list[Route]:
        return [route("GET", "/wallboard", self.wallboard)]

    def _now(self) -> float:
        return float(self._app.reactor.seconds())

    def _stats(self) -> StatsService | None:
        service = self._app.extensions.get("agent_stats")
        return service if isinstance(service, StatsService) else None

    async def wallboard(self, request: Request, actor: Actor) -> dict[str, Any]:
        now = self._now()
        service = self._stats()
        line = self._calls.list_calls(request, actor)
        mine = actor.actor_id if actor.role is Role.AGENT else None
        body: dict[str, Any] = {
            "now": now,
            "you": {"id": actor.actor_id, "role": actor.role.value},
            "site": self._site(now),
            "statistics": "ok" if service is not None else "not running",
            "journal": journal_health(self._app),
            "waiting": {
                "calls": line["waiting"],
                "longest_wait_s": max((c["waited_s"] for c in line["calls"]), default=None),
            },
            "callbacks": await self._callbacks(now),
        }
        statuses = [s for s in self._app.roster if mine is None or s.profile.agent_id == mine]
        if service is None:
            body.update(sla=None, queue=None, queues={}, occupancy_now=None, fairness_today=None,
                        break_line=[], alerts=[])
            body["agents"] = [agent_view(s) for s in statuses]
            return body
        snap = service.snapshot(now)
        names = {s.profile.agent_id: s.profile.name for s in self._app.roster}
        body.update(
            sla={"threshold_s": service.sla.threshold_s, "target": service.sla.target,
                 "window_s": service.sla.window_s},
            queue=service.default_queue,
            queues=snap["queues"],
            occupancy_now=snap["occupancy_now"],
            fairness_today=snap["fairness_today"],
            break_line=[
                {**r, "name": names.get(r["agent_id"], r["agent_id"])}
                for r in snap["break_line"] if mine is None or r["agent_id"] == mine
            ],
            alerts=[
                {**a, "name": names.get(a["agent_id"], a["agent_id"])}
                for a in snap["alerts"] if mine is None or a["agent_id"] == mine
            ],
        )
        figures = {a["agent_id"]: a for a in snap["agents"]}
        allowances = service.allowances(now)
        today = day_start(now, service.sla)
        body["agents"] = [
            _agent_row(s, figures.get(s.profile.agent_id, {}),
                       allowances.get(s.profile.agent_id), today, now)
            for s in statuses
        ]
        return body

    def _site(self, now: float) -> dict[str, Any]:
        site = self._app.config.site
        day = datetime.fromtimestamp(now, site.tzinfo).date()
        return {
            "name": site.name,
            "timezone": site.timezone,
            "today": day.isoformat(),
            "today_jalali": to_jalali(day).isoformat(),
        }

    async def _callbacks(self, now: float) -> dict[str, Any]:
        """Open callback flags (and those due now, and those needing a person's look)."""
        store = getattr(self._app.extensions.get("complaints"), "callbacks", None)
        if store is None:
            return {"status": "not running", "open": None, "due": None, "needing_attention": None}
        try:
            open_flags = await resolve(store.backlog(math.inf))
            due = await resolve(store.backlog(now))
            attention = await resolve(store.needing_attention())
        except (RedisError, OSError) as exc:  # Redis down: the rest is still served
            log.warn("wallboard: callback flags unavailable: {error}", error=str(exc))
            return {"status": "unavailable", "open": None, "due": None, "needing_attention": None}
        return {"status": "ok", "open": int(open_flags), "due": int(due),
                "needing_attention": len(attention)}


def _agent_row(
    status: AgentStatus, figures: dict[str, Any], allowance: Any, today: float, now: float
) -> dict[str, Any]:
    totals = status.ledger.totals(today, now, now)
    not_ready = {
        reason.value: seconds
        for (state, reason), seconds in totals.seconds.items()
        if state is AgentState.NOT_READY and reason is not None and seconds > 0
    }
    return {
        **agent_view(status),
        "not_ready_today_s": totals.state(AgentState.NOT_READY),
        "not_ready_today_by_reason": dict(sorted(not_ready.items())),
        "allowance": None if allowance is None else {
            "earned_s": allowance.earned_s,
            "taken_s": allowance.taken_s,
            "exempt_s": allowance.exempt_s,
            "left_s": allowance.unused_s,
        },
        "since_break_s": figures.get("since_break_s"),
        "occupancy": figures.get("occupancy"),
        "break_position": figures.get("break_position"),
        "break_after_call": figures.get("break_after_call", False),
        "alerts": figures.get("alerts", []),
    }

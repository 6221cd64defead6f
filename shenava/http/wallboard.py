"""The pages' live figures: :class:`LiveBoard`, and ``GET /api/wallboard`` that answers from it.

Nothing is computed here that the daemon does not already keep, and nothing is
recomputed from a whole collection on the way:

- the service level and the day's outcomes are the statistics service's
  incremental tally (:class:`agent_stats.sla.SLATally`);
- calls waiting is the waiting line's length, the longest wait the first call
  still in the line among those kept in join order here (:class:`WaitFigures`,
  fed by routing's events): no sort, no scoring of every call;
- agents by state, staffed and handling are counted as the roster changes
  (:class:`StateCounts`), resynchronised from the roster now and then;
- each agent's allowance and not-ready time are the running figures of the
  day (:class:`agent_stats.running.AgentDay`): no scan of the day's intervals;
- the callback counts are two ``ZCOUNT`` and a ``ZCARD``.

The push (:mod:`shenava.http.push`) builds the shared part once a second and
writes the same bytes to every page; ``GET /api/wallboard`` builds the same
figures for one request (tools and tests), agent rows exact to the second.

Who sees what: supervisors and admins every agent; an agent the queue figures
and their own row only (others' allowances and wellbeing alerts are personal).
There are no caller numbers in the answer (the callback list masks them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from twisted.logger import Logger
from twisted.web.server import Request

from agent_stats.centre import SiteNow
from agent_stats.jalali import to_jalali
from agent_stats.roster import AgentChange, AgentStatus
from agent_stats.service import StatsService, counts_dict
from agent_stats.sla import day_start
from agent_stats.states import HANDLING_STATES, STAFFED_STATES, AgentState
from complaints.roles import Actor, Role
from routing.events import CallAbandoned, CallAnswered, CallLeftForChoice, CallQueued, RoutingEvent
from shenava.http.agents import agent_view
from shenava.http.auth import require_supervisor
from shenava.http.errors import BadFieldError, MissingFieldError
from shenava.http.health import journal_health, parked_voicemails
from shenava.http.jsonapi import Route, read_json, resolve, route

log = Logger()

BREAK_LINE_SHOWN = 50
"""Rows of the break line (and of the alerts) in the shared figures; the total is given too."""
ALERTS_SHOWN = 50
CALLBACKS_SHOWN = 10
"""Open callback flags listed on the wallboard (the first to be dialled)."""
_TERMINAL = (CallAnswered, CallAbandoned, CallLeftForChoice)
BUSY_STATES = (AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP)
"""A site's "busy" agents on the wallboard's row of sites."""


class WaitFigures:
    """How many calls wait and since when the longest has, kept from routing's events.

    ``CallQueued`` adds a call at the end (events come in time order, so the
    first kept call that is still in the line joined it first); an answer,
    abandon or choice removes it. A call ringing an agent is out of the line
    for that time and is skipped, as ``GET /api/calls`` would not list it. The
    count is the line's own length."""

    def __init__(self, line: Any) -> None:
        self._line = line
        self._joined: dict[str, None] = {}

    def attach(self, dispatcher: Any) -> None:
        dispatcher.subscribe(self.on_routing_event)

    def on_routing_event(self, event: RoutingEvent) -> None:
        if isinstance(event, CallQueued):
            self._joined[event.call_id] = None
        elif isinstance(event, _TERMINAL):
            self._joined.pop(event.call_id, None)

    @property
    def count(self) -> int:
        return len(self._line)

    def longest_wait_s(self, now: float) -> float | None:
        line = self._line
        if not len(line):
            return None
        skipped = 0
        for call_id in self._joined:
            call = line.get(call_id)
            if call is not None:
                return round(now - call.joined_at, 1)
            skipped += 1
            if skipped > 2 * len(line) + 64:
                break  # calls kept here that left without an event: start again from the line
        self._joined = dict.fromkeys(c.call_id for c in sorted(line, key=lambda c: c.joined_at))
        first = next(iter(self._joined), None)
        call = line.get(first) if first is not None else None
        return None if call is None else round(now - call.joined_at, 1)


class StateCounts:
    """Agents per state, kept as the roster changes; a full recount every ``resync_s``."""

    RESYNC_S = 60.0

    def __init__(self, roster: Any) -> None:
        self._roster = roster
        self.counts: dict[AgentState, int] = {}
        self._synced_at = -math.inf
        roster.subscribe(self.on_agent_change)

    def on_agent_change(self, change: AgentChange) -> None:
        self.counts[change.old] = self.counts.get(change.old, 0) - 1
        self.counts[change.new] = self.counts.get(change.new, 0) + 1

    def current(self, now: float) -> dict[AgentState, int]:
        if now >= self._synced_at + self.RESYNC_S or any(n < 0 for n in self.counts.values()):
            self._synced_at = now
            counts: dict[AgentState, int] = {}
            for status in self._roster:
                counts[status.state] = counts.get(status.state, 0) + 1
            self.counts = counts
        return self.counts


@dataclass(frozen=True)
class Callbacks:
    """The callback flags' counts (and the first few to be dialled)."""

    status: str
    open: int | None = None
    due: int | None = None
    needing_attention: int | None = None
    first: tuple[dict[str, Any], ...] = ()

    def counts(self) -> dict[str, Any]:
        return {"status": self.status, "open": self.open, "due": self.due,
                "needing_attention": self.needing_attention}


class LiveBoard:
    """Builds the live figures from what the daemon keeps (one instance per daemon)."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self.waits = WaitFigures(app.router.line)
        self.waits.attach(app.dispatcher)
        self.states = StateCounts(app.roster)
        self.acknowledged: dict[tuple[str, str], dict[str, Any]] = {}
        """Wellbeing alerts a supervisor has seen: ``(agent, kind) -> {by, at}``."""

    def now(self) -> float:
        return float(self._app.reactor.seconds())

    @property
    def roster(self) -> Any:
        return self._app.roster

    def stats(self) -> StatsService | None:
        service = self._app.agent_stats
        return service if isinstance(service, StatsService) else None

    def names(self) -> dict[str, str]:
        return {s.profile.agent_id: s.profile.name for s in self._app.roster}

    # -- the shared figures --------------------------------------------------------------

    def site(self, now: float) -> dict[str, Any]:
        site = self._app.config.site
        day = datetime.fromtimestamp(now, site.tzinfo).date()
        return {
            "name": site.name,
            "timezone": site.timezone,
            "today": day.isoformat(),
            "today_jalali": to_jalali(day).isoformat(),
        }

    def public(self, now: float, callbacks: Callbacks) -> dict[str, Any]:
        """What every page may see: the queue's figures, no person's."""
        service = self.stats()
        body: dict[str, Any] = {
            "now": now,
            "site": self.site(now),
            "statistics": "ok" if service is not None else "not running",
            "journal": journal_health(self._app),
            "voicemails_parked": parked_voicemails(self._app),
            "waiting": {"calls": self.waits.count, "longest_wait_s": self.waits.longest_wait_s(now)},
            "callbacks": callbacks.counts(),
        }
        centre = self._app.centre
        if centre is not None:
            body["centre"] = centre.as_dict()  # every site's SL and their sum (agent_stats.centre)
        if service is None:
            body.update(sla=None, queue=None, queues={}, occupancy_now=None, fairness_today=None)
            return body
        tally = service.tally
        body.update(
            sla={"threshold_s": service.sla.threshold_s, "target": service.sla.target,
                 "window_s": service.sla.window_s},
            queue=service.default_queue,
            queues={
                q: {
                    "rolling": counts_dict(tally.rolling(q, now)),
                    "interval": counts_dict(tally.interval(q, now)),
                    "day": counts_dict(tally.day(q, now)),
                }
                for q in service.queues()
            },
            fairness_today=service.fairness_today,
        )
        counts = self.states.current(now)
        staffed = sum(n for s, n in counts.items() if s in STAFFED_STATES)
        handling = sum(n for s, n in counts.items() if s in HANDLING_STATES)
        body["occupancy_now"] = handling / staffed if staffed else None
        return body

    def states_now(self, now: float) -> dict[str, int]:
        counts = self.states.current(now)
        return {s.value: counts.get(s, 0) for s in AgentState}

    def break_line(self, now: float, only: str | None = None,
                   limit: int | None = None) -> list[dict[str, Any]]:
        service = self.stats()
        if service is None:
            return []
        names = self._app.roster
        rows: list[dict[str, Any]] = []
        for i, r in enumerate(service.line.waiting(), start=1):
            if only is not None and r.agent_id != only:
                continue
            if limit is not None and len(rows) >= limit:
                break
            rows.append({
                "agent_id": r.agent_id,
                "name": names.get(r.agent_id).profile.name if r.agent_id in names else r.agent_id,
                "reason": r.reason.value, "requested_at": r.requested_at,
                "waited_s": now - r.requested_at, "position": i,
                # granted by then at the latest, headroom or not (the fair line's maximum wait)
                "latest_at": r.requested_at + service.break_config.max_wait_s,
            })
        return rows

    def alerts(self, only: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        service = self.stats()
        if service is None:
            return []
        roster = self._app.roster
        rows: list[dict[str, Any]] = []
        for agent_id, per_agent in service.active_alerts.items():
            if only is not None and agent_id != only:
                continue
            for a in per_agent.values():
                if limit is not None and len(rows) >= limit:
                    return rows
                rows.append({
                    "agent_id": a.agent_id,
                    "name": roster.get(agent_id).profile.name if agent_id in roster else agent_id,
                    "kind": a.kind.value, "value": float(a.value), "limit": float(a.limit),
                    "acknowledged": self.acknowledged.get((agent_id, a.kind.value)),
                })
        return rows

    def alert_count(self) -> int:
        service = self.stats()
        return 0 if service is None else sum(len(a) for a in service.active_alerts.values())

    def forget_cleared_acknowledgements(self) -> None:
        """An alert that went away and comes back is new: its acknowledgement goes."""
        service = self.stats()
        if service is None or not self.acknowledged:
            return
        for agent_id, kind in list(self.acknowledged):
            kinds = service.active_alerts.get(agent_id, {})
            if not any(k.value == kind for k in kinds):
                del self.acknowledged[(agent_id, kind)]

    # -- agents ----------------------------------------------------------------------

    def agent_row(self, status: AgentStatus, now: float,
                  positions: dict[str, int] | None = None) -> dict[str, Any]:
        """One agent's row, exact at ``now`` (running figures, no scan of the day)."""
        row = agent_view(status)
        service = self.stats()
        if service is None:
            return row
        agent_id = status.profile.agent_id
        today = day_start(now, service.sla)
        day = service.agent_day(agent_id)
        allowance = day.allowance(status.ledger, today, now)
        by_reason = day.not_ready_today(status.ledger, today, now)
        sig = service.signals.get(agent_id)
        if positions is None:
            position = service.line.position(agent_id) if len(service.line) else None
        else:
            position = positions.get(agent_id)
        row.update(
            not_ready_today_s=sum(by_reason.values()),
            not_ready_today_by_reason={
                r.value: s for r, s in sorted(by_reason.items(), key=lambda i: str(i[0]))
                if r is not None and s > 0
            },
            allowance={
                "earned_s": allowance.earned_s,
                "taken_s": allowance.taken_s,
                "exempt_s": allowance.exempt_s,
                "left_s": allowance.unused_s,
            },
            since_break_s=None if sig is None else sig.since_break_s,
            # the end of the last rest; none while resting (it would move every tick)
            rested_at=None if sig is None or not sig.since_break_s
            else sig.now - sig.since_break_s,
            occupancy=None if sig is None else sig.occupancy,
            break_position=position,
            break_after_call=agent_id in service.pending_grants,
            alerts=sorted(k.value for k in service.active_alerts.get(agent_id, {})),
        )
        return row

    def positions(self) -> dict[str, int]:
        service = self.stats()
        if service is None or not len(service.line):
            return {}
        return {r.agent_id: i for i, r in enumerate(service.line.waiting(), start=1)}

    def rows(self, now: float, statuses: Iterable[AgentStatus]) -> list[dict[str, Any]]:
        positions = self.positions()
        return [self.agent_row(s, now, positions) for s in statuses]

    # -- this site among the centre's ------------------------------------------------

    async def site_now(self, now: float, sites: list[str]) -> SiteNow:
        """This site's figures of the moment, which every site's wallboard shows
        (:mod:`agent_stats.centre` publishes them every few seconds; an asyncio coroutine)."""
        counts = self.states.current(now)
        due: int | None = None
        store = getattr(self._app.complaints, "callbacks", None)
        if store is not None:
            try:
                # run inside the centre's asyncio task: the store's coroutine is awaited as it is
                due = int(await store.site_backlog(now, sites))
            except (RedisError, OSError) as exc:
                log.warn("wallboard: this site's callbacks due unavailable: {error}", error=str(exc))
        return SiteNow(
            at=now, waiting=self.waits.count, longest_wait_s=self.waits.longest_wait_s(now),
            ready=counts.get(AgentState.READY, 0),
            busy=sum(counts.get(s, 0) for s in BUSY_STATES),
            not_ready=counts.get(AgentState.NOT_READY, 0),
            callbacks_due=due,
        )

    # -- callback flags ------------------------------------------------------------------

    async def callbacks(self, now: float, first: int = 0) -> Callbacks:
        """Counts of open flags (and those due, and those needing a person's look)."""
        store = getattr(self._app.complaints, "callbacks", None)
        if store is None:
            return Callbacks("not running")
        try:
            open_flags = await resolve(store.backlog(math.inf))
            due = await resolve(store.backlog(now))
            attention = await resolve(store.attention_count())
            listed = await resolve(store.first_due(first)) if first else []
        except (RedisError, OSError) as exc:  # Redis down: the rest is still served
            log.warn("wallboard: callback flags unavailable: {error}", error=str(exc))
            return Callbacks("unavailable")
        return Callbacks("ok", int(open_flags), int(due), int(attention),
                         tuple(_flag_row(f) for f in listed))

    async def review_stamps(self) -> dict[str, int] | None:
        """The register's change counters (None: no register here, or Redis away)."""
        register = getattr(self._app.complaints, "register", None)
        if register is None:
            return None
        try:
            changes, abuse, pending = await resolve(register.store.change_stamps())
        except (RedisError, OSError) as exc:
            log.warn("wallboard: the register's changes unavailable: {error}", error=str(exc))
            return None
        return {"register": changes, "abuse": abuse, "abuse_pending": pending}


def _flag_row(flag: Any) -> dict[str, Any]:
    """A callback flag as the wall may show it: reasons, due, attempts; the number masked."""
    from shenava_base.privacy import mask_number

    return {
        "flag_id": flag.flag_id,
        "number": mask_number(flag.number),
        "due_at": flag.due_at,
        "opened_at": flag.opened_at,
        "reasons": sorted({str(r.kind) for r in flag.reasons}),
        "attempts": len(flag.attempts),
        "last_outcome": str(flag.attempts[-1].outcome) if flag.attempts
        and flag.attempts[-1].outcome else None,
    }


class WallboardApi:
    def __init__(self, app: Any, board: LiveBoard) -> None:
        self._app = app
        self._board = board

    def routes(self) -> list[Route]:
        return [
            route("GET", "/wallboard", self.wallboard),
            route("POST", "/wallboard/alerts/acknowledge", self.acknowledge),
        ]

    async def wallboard(self, request: Request, actor: Actor) -> dict[str, Any]:
        board = self._board
        now = board.now()
        mine = actor.actor_id if actor.role is Role.AGENT else None
        callbacks = await board.callbacks(now)
        body = board.public(now, callbacks)
        body["you"] = {"id": actor.actor_id, "role": actor.role.value}
        statuses = [s for s in self._app.roster if mine is None or s.profile.agent_id == mine]
        body["break_line"] = board.break_line(now, only=mine)
        body["alerts"] = board.alerts(only=mine)
        body["states"] = board.states_now(now)
        body["agents"] = board.rows(now, statuses)
        return body

    def acknowledge(self, request: Request, actor: Actor) -> dict[str, Any]:
        """A supervisor has seen an agent's wellbeing alert (it stays until it clears)."""
        require_supervisor(actor, "acknowledging a wellbeing alert")
        body = read_json(request)
        for field in ("agent_id", "kind"):
            if not isinstance(body.get(field), str) or not body[field]:
                raise MissingFieldError(field, f"{field}: required, a string")
        agent_id, kind = body["agent_id"], body["kind"]
        active = {a["kind"] for a in self._board.alerts(only=agent_id)}
        if kind not in active:
            raise BadFieldError("kind", f"{agent_id} has no active {kind!r} alert")
        now = self._board.now()
        seen = {"by": actor.actor_id, "at": now}
        self._board.acknowledged[(agent_id, kind)] = seen
        log.info("wellbeing alert {kind} of {agent} acknowledged by {actor}",
                 kind=kind, agent=agent_id, actor=actor.actor_id)
        return {"now": now, "agent_id": agent_id, "kind": kind, "acknowledged": seen}

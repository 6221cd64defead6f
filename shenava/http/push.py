"""``GET /api/events``: the live figures pushed to the pages over Server-Sent Events.

One clock for every page: a ``LoopingCall`` on the daemon's reactor runs once
a second while at least one page is connected. Each second it builds the
shared figures once (:class:`~shenava.http.wallboard.LiveBoard`), encodes them
once, and writes the same bytes to every connection; the cost of a second is
the same for one wallboard as for five hundred, bar the socket writes.

Events (``event:`` name, ``data:`` one JSON object)::

    board    supervisors: the queue's figures, agents by state, the break line
             and the alerts (the first 50 of each), the callback backlog
    agents   supervisors: agent rows, all of them when a page connects, then only
             those that changed ({"rows": [...], "full": bool}); durations in the
             rows are rounded to the minute and "since" times are absolute, so a
             row changes when something happens, not every second
    series   supervisors: the charts' history when a page connects (service
             level and outcomes per interval today, calls waiting and longest
             wait over the last hour, agents by state); later points ride in
             "board" ("sample", "interval")
    queue    desks: the queue's figures only (no person's)
    me       one agent's desk: their own row, exact to the second
    review   review pages (``?view=review``): stamps of the register, the abuse
             reports and the callback backlog ({"now", "register", "abuse",
             "abuse_pending", "callbacks"}); a page re-reads a list only when
             its stamp moved. The stamps are read every ``CALLBACKS_EVERY_S``
             (three counters in one round trip, whatever the register's size)
             and encoded once a second for every review page.

Who gets what: supervisor or admin the wallboard's events (with ``?agent=ID`` a
desk's instead); an agent only their own desk's; anyone ``?view=review``'s.

A comment line (``: keep-alive``) goes to every connection every
``HEARTBEAT_S`` so proxies keep idle connections open; the browser's
``EventSource`` reconnects by itself (``retry:`` asks for 3 s) and gets the
full picture again. The history of the last hour is kept in memory while
pages are connected; the day's intervals are read back from Redis when the
clock starts.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from agent_stats.service import counts_dict
from agent_stats.sla import DAY_S, BucketKey, BucketKind, day_start, interval_start
from complaints.roles import Role
from shenava.http.auth import actor_of
from shenava.http.errors import ApiError, MethodNotAllowedError, TooManyStreamsError
from shenava.http.jsonapi import write_error
from shenava.http.wallboard import (
    ALERTS_SHOWN,
    BREAK_LINE_SHOWN,
    CALLBACKS_SHOWN,
    Callbacks,
    LiveBoard,
)
from shenava_base.aio import as_deferred

log = Logger()

TICK_S = 1.0
HEARTBEAT_S = 15.0
ROWS_EVERY_S = 15.0
"""Every agent row is rebuilt this often; between, only those of agents who changed."""
CALLBACKS_EVERY_S = 5.0
SAMPLE_EVERY_S = 10.0
HISTORY_S = 3600.0
RETRY_MS = 3000
MAX_STREAMS_PER_SESSION = 8
"""Event streams one sign-in may hold at once (a page each): more are refused 429."""
SLOW_READER_S = 30.0
"""A stream whose socket stays full this long is dropped (its page reconnects): the
unsent seconds would otherwise pile up in the daemon's memory."""


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event: JSON on one ``data:`` line (JSON has no raw newlines)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return b"event: " + event.encode("ascii") + b"\ndata: " + text.encode("utf-8") + b"\n\n"


def _minutes(seconds: float | None) -> int | None:
    return None if seconds is None else int(round(seconds / 60.0))


def board_row(row: dict[str, Any], now: float) -> dict[str, Any]:
    """An exact agent row made stable for the wall: minutes, and absolute times."""
    allowance = row.get("allowance")
    rested_at = row.get("rested_at")
    occupancy = row.get("occupancy")
    return {
        "id": row["id"], "name": row["name"], "state": row["state"], "reason": row["reason"],
        "since": row["since"],
        "not_ready_today_min": _minutes(row.get("not_ready_today_s")),
        "allowance_min": None if allowance is None else {
            k[:-2]: _minutes(v) for k, v in allowance.items()
        },
        "rested_at": None if rested_at is None else round(rested_at),
        "occupancy": None if occupancy is None else round(occupancy, 2),
        "break_position": row.get("break_position"),
        "break_after_call": row.get("break_after_call", False),
        "alerts": row.get("alerts", []),
    }


@implementer(IPushProducer)
class Connection:
    """One page's stream; the producer its channel pauses while the socket is full."""

    __slots__ = ("request", "agent", "review", "paused_at")

    def __init__(self, request: Request, agent: str | None, review: bool = False) -> None:
        self.request = request
        self.agent = agent
        self.review = review
        self.paused_at: float | None = None
        """When the reader stopped taking what was written (None: it keeps up)."""

    def pauseProducing(self) -> None:
        if self.paused_at is None:
            self.paused_at = -math.inf  # stamped by the next second (the hub's clock)

    def resumeProducing(self) -> None:
        self.paused_at = None

    def stopProducing(self) -> None:
        pass


class Series:
    """The charts' history: samples of the last hour, and the day's intervals."""

    def __init__(self) -> None:
        self.samples: deque[dict[str, Any]] = deque()
        self.intervals: dict[float, dict[str, Any]] = {}
        self.day: float | None = None
        self.sampled_at = -math.inf

    def sample(self, point: dict[str, Any]) -> None:
        self.samples.append(point)
        cutoff = point["at"] - HISTORY_S
        while self.samples and self.samples[0]["at"] < cutoff:
            self.samples.popleft()

    def interval(self, start: float, counts: dict[str, Any]) -> dict[str, Any]:
        row = {"start": start, **_interval_figures(counts)}
        self.intervals[start] = row
        return row

    def history(self) -> dict[str, Any]:
        return {
            "samples": list(self.samples),
            "intervals": [self.intervals[k] for k in sorted(self.intervals)],
        }


def _interval_figures(c: dict[str, Any]) -> dict[str, Any]:
    return {k: c.get(k) for k in ("offered", "answered", "answered_in_sl", "abandoned", "sl")}


class PushHub:
    """The connected pages and the once-a-second push."""

    def __init__(self, board: LiveBoard, reactor: Any) -> None:
        self.board = board
        self._reactor = reactor
        self.supervisors: list[Connection] = []
        self.desks: dict[str, list[Connection]] = {}
        self.reviews: list[Connection] = []
        self._stamps: dict[str, Any] = {}
        self._loop: LoopingCall | None = None
        self._callbacks = Callbacks("not read yet")
        self._callbacks_at = -math.inf
        self._reading_callbacks = False
        self._rows: dict[str, bytes] = {}
        """Each agent's row as last sent to the wallboards: what every one of them has."""
        self._rows_complete = False
        self._rows_at = -math.inf
        self._dirty: set[str] = set()
        self._full_rows: bytes | None = None
        self._heartbeat_at = -math.inf
        self._queue_bytes = b""
        self._board_bytes = b""
        self._history_bytes: bytes | None = None
        self.series = Series()
        self.ticks = 0
        self.session_ended: Callable[[Request], bool] = lambda request: False
        """Whether a stream's session has ended (the edge's Gate answers): its stream ends."""
        board_roster = board.roster
        board_roster.subscribe(lambda change: self._dirty.add(change.agent_id))

    # -- connections --------------------------------------------------------------------

    @property
    def viewers(self) -> int:
        return len(self.supervisors) + sum(len(c) for c in self.desks.values()) + len(self.reviews)

    def _all(self) -> list[Connection]:
        return [*self.supervisors, *(c for cs in self.desks.values() for c in cs), *self.reviews]

    def streams_of(self, session: object) -> int:
        """How many open streams were let in with this session (by its id)."""
        sid = getattr(session, "session_id", None)
        conns = self._all()
        return sum(1 for c in conns
                   if getattr(getattr(c.request, "session", None), "session_id", None) == sid)

    def connect(self, request: Request, agent: str | None, *, review: bool = False) -> None:
        conn = Connection(request, agent, review)
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")  # nginx: do not hold the stream back
        request.write(b"retry: %d\n\n" % RETRY_MS)
        register = getattr(request, "registerProducer", None)  # tests' pages may lack it
        if register is not None:
            register(conn, True)  # the channel pauses it while the socket is full
        if review:
            self.reviews.append(conn)
            if not self._stamps:
                self._callbacks_at = -math.inf  # read the stamps at the next second
        elif agent is None:
            self.supervisors.append(conn)
        else:
            self.desks.setdefault(agent, []).append(conn)
        request.notifyFinish().addBoth(lambda _: self._gone(conn))
        if self._loop is None:
            if agent is None and not review:
                request.write(sse("series", self.series.history()))
            self._start()  # its first second goes out at once
        else:
            self._welcome(conn, self.board.now())

    def _gone(self, conn: Connection) -> None:
        if conn.review:
            if conn in self.reviews:
                self.reviews.remove(conn)
            if not self.reviews:
                self._stamps = {}  # not kept up to date without a review page
        elif conn.agent is None:
            if conn in self.supervisors:
                self.supervisors.remove(conn)
        else:
            conns = self.desks.get(conn.agent, [])
            if conn in conns:
                conns.remove(conn)
            if not conns:
                self.desks.pop(conn.agent, None)
        if not self.viewers:
            self.stop()

    def _start(self) -> None:
        loop = LoopingCall(self.tick)
        loop.clock = self._reactor
        self._loop = loop
        self._rows = {}
        self._rows_complete = False
        self._rows_at = -math.inf
        self._callbacks_at = -math.inf
        self._stamps = {}
        self._load_intervals()
        loop.start(TICK_S, now=True).addErrback(lambda f: log.failure("push failed", failure=f))

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()

    def close(self) -> None:
        """Finish every connection (daemon shutdown)."""
        self.stop()
        for conn in self._all():
            try:
                _unregister(conn.request)
                conn.request.finish()
            except Exception:  # already gone
                pass

    def _welcome(self, conn: Connection, now: float) -> None:
        """A new page gets the whole picture at once (the bytes of this second)."""
        if conn.review:
            if self._stamps:
                conn.request.write(self._review_frame(now))
        elif conn.agent is None:
            if not self._rows_complete:
                self._rows_at = -math.inf  # every row goes out at the next second
            if self._full_rows is None:
                self._full_rows = sse("agents", {"now": now, "full": True, "rows": [
                    json.loads(b) for b in self._rows.values()]})
            if self._history_bytes is None:
                self._history_bytes = sse("series", self.series.history())
            conn.request.write(self._history_bytes + self._board_bytes + self._full_rows)
        else:
            conn.request.write(self._queue_bytes + self._me(conn.agent, now))

    # -- the second ---------------------------------------------------------------------

    def tick(self) -> None:
        """One second: build, encode once, write. A failure is logged and the next second
        tries again (the pages show "connection lost" after 5 s of silence)."""
        try:
            self._tick()
        except Exception:
            log.failure("push: this second's figures failed")

    def _tick(self) -> None:
        board = self.board
        now = board.now()
        self.ticks += 1
        self._end_signed_out(now)
        if not self.viewers:
            return
        self._refresh_callbacks(now)
        board.forget_cleared_acknowledgements()
        public = board.public(now, self._callbacks)
        self._queue_bytes = sse("queue", public)
        self._history_bytes = None
        self._full_rows = None
        if self.supervisors:
            self._push_board(public, now)
        for agent, conns in self.desks.items():
            frame = self._me(agent, now)
            for conn in conns:
                conn.request.write(self._queue_bytes + frame)
        if self.reviews and self._stamps:
            frame = self._review_frame(now)
            for conn in self.reviews:
                conn.request.write(frame)
        if now >= self._heartbeat_at + HEARTBEAT_S:
            self._heartbeat_at = now
            for conn in self._all():
                conn.request.write(b": keep-alive\n\n")

    def _end_signed_out(self, now: float) -> None:
        """Finish the streams whose session has ended (sign-out, a removed user, a new
        role) and those not read for :data:`SLOW_READER_S`."""
        for conn in self._all():
            if conn.paused_at == -math.inf:
                conn.paused_at = now
            slow = conn.paused_at is not None and now - conn.paused_at >= SLOW_READER_S
            if slow:
                log.info("push: a stream not read for {s:.0f} s dropped", s=SLOW_READER_S)
            if slow or self.session_ended(conn.request):
                channel = conn.request.channel
                try:
                    _unregister(conn.request)
                    conn.request.finish()
                    if channel is not None and slow and channel.transport is not None:
                        # a graceful close waits for the unsent bytes, which a reader that
                        # stopped reading never takes: the connection would stay for ever
                        transport: Any = channel.transport  # an ITCPTransport
                        transport.abortConnection()
                    elif channel is not None:
                        channel.loseConnection()  # signed out: no keep-alive either
                except Exception:  # already gone
                    pass
                self._gone(conn)

    def _push_board(self, public: dict[str, Any], now: float) -> None:
        board = self.board
        shared = dict(public)
        shared["states"] = board.states_now(now)
        shared["break_line"] = board.break_line(now, limit=BREAK_LINE_SHOWN)
        service = board.stats()
        shared["break_line_total"] = len(service.line) if service is not None else 0
        shared["alerts"] = board.alerts(limit=ALERTS_SHOWN)
        shared["alerts_total"] = board.alert_count()
        shared["callback_list"] = list(self._callbacks.first)
        shared["interval"] = self._interval_now(now)
        if now >= self.series.sampled_at + SAMPLE_EVERY_S:
            self.series.sampled_at = now
            point = {"at": now, "waiting": public["waiting"]["calls"],
                     "longest_wait_s": public["waiting"]["longest_wait_s"],
                     "states": shared["states"]}
            self.series.sample(point)
            shared["sample"] = point
        self._board_bytes = sse("board", shared)
        changed = self._changed_rows(now)
        frame = self._board_bytes
        if changed:
            frame += sse("agents", {"now": now, "full": False, "rows": changed})
        for conn in self.supervisors:
            conn.request.write(frame)

    def _interval_now(self, now: float) -> dict[str, Any] | None:
        service = self.board.stats()
        if service is None:
            return None
        start = interval_start(now, service.sla)
        today = day_start(now, service.sla)
        if self.series.day != today:
            self.series.day = today
            self.series.intervals = {}
        counts = counts_dict(service.tally.interval(service.default_queue, now))
        return self.series.interval(start, counts)

    def _changed_rows(self, now: float) -> list[dict[str, Any]]:
        """Rows to send this second: all every ``ROWS_EVERY_S``, else the changed agents'."""
        board = self.board
        roster = board.roster
        if now >= self._rows_at + ROWS_EVERY_S:
            self._rows_at = now
            self._rows_complete = True
            self._dirty.clear()
            statuses = list(roster)
        else:
            service = board.stats()
            if service is not None:
                # places in the break line move when anyone joins or leaves it
                self._dirty.update(r.agent_id for r in service.line.waiting())
                self._dirty.update(service.pending_grants)
            statuses = [roster.get(a) for a in self._dirty if a in roster]
            self._dirty.clear()
        if not statuses:
            return []
        positions = board.positions()
        out = []
        for status in statuses:
            row = board_row(board.agent_row(status, now, positions), now)
            encoded = json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            if self._rows.get(row["id"]) != encoded:
                self._rows[row["id"]] = encoded
                out.append(row)
        return out

    def _review_frame(self, now: float) -> bytes:
        """The review pages' second: the stamps as last read (one encoding for all)."""
        return sse("review", {"now": now, **self._stamps})

    def _me(self, agent: str, now: float) -> bytes:
        board = self.board
        roster = board.roster
        if agent not in roster:
            return sse("me", {"now": now, "agent": None})
        return sse("me", {
            "now": now,
            "agent": board.agent_row(roster.get(agent), now),
            "break_line": board.break_line(now, only=agent),
            "alerts": board.alerts(only=agent),
        })

    # -- reads from Redis, off the second's path --------------------------------------------

    def _refresh_callbacks(self, now: float) -> None:
        if self._reading_callbacks or now < self._callbacks_at + CALLBACKS_EVERY_S:
            return
        self._reading_callbacks = True
        self._callbacks_at = now
        first = CALLBACKS_SHOWN if self.supervisors or self.reviews else 0

        async def read() -> None:
            self._callbacks = await self.board.callbacks(now, first)
            if self.reviews:
                stamps = await self.board.review_stamps()
                if stamps is not None:
                    listed = self._callbacks
                    self._stamps = {**stamps, "callbacks": _digest(
                        [listed.open, listed.due, listed.needing_attention, list(listed.first)])}

        def done(_: object) -> None:
            self._reading_callbacks = False

        d = ensureDeferred(read())
        d.addErrback(lambda f: log.failure("push: callback flags not read", failure=f))
        d.addBoth(done)

    def _load_intervals(self) -> None:
        """The day's intervals before this daemon's memory, from the statistics store."""
        service = self.board.stats()
        if service is None:
            return
        now = self.board.now()
        first = day_start(now, service.sla)
        step = service.sla.interval_s
        current = interval_start(now, service.sla)
        starts = [first + i * step for i in range(int(DAY_S // step)) if first + i * step < current]
        queue = service.default_queue
        keys = [BucketKey(queue, BucketKind.INTERVAL, s) for s in starts]

        def got(counts: list[Any]) -> None:
            if self.series.day not in (None, first):
                return  # a new day began meanwhile
            self.series.day = first
            for start, c in zip(starts, counts, strict=True):
                self.series.interval(start, counts_dict(c))
            self._history_bytes = frame = sse("series", self.series.history())
            for conn in self.supervisors:
                conn.request.write(frame)

        d = as_deferred(service.store.buckets(keys))
        d.addCallback(got)
        d.addErrback(lambda f: log.warn("push: the day's intervals not read: {error}",
                                        error=f.getErrorMessage()))


def _digest(value: Any) -> str:
    """A short stamp of a JSON-able value: equal values, equal stamps."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=6).hexdigest()


def _unregister(request: Request) -> None:
    """The stream's producer off its channel (a kept-alive connection may take another)."""
    if getattr(request, "producer", None) is not None:
        request.unregisterProducer()


class EventsResource(Resource):
    """``GET /api/events``: an SSE stream for the asking page (see the module's text)."""

    isLeaf = True

    def __init__(self, hub: PushHub) -> None:
        super().__init__()
        self._hub = hub

    def render(self, request: Request) -> bytes | int:
        if request.method not in (b"GET",):
            write_error(request, MethodNotAllowedError(
                request.method.decode("ascii", "replace"), ("GET",)))
            return NOT_DONE_YET
        try:
            actor = actor_of(request)
        except ApiError as exc:
            write_error(request, exc)
            return NOT_DONE_YET
        given: dict[bytes, list[bytes]] = request.args or {}
        wanted = given.get(b"agent")
        review = given.get(b"view") == [b"review"]
        agent: str | None
        if review:
            agent = None  # the stamps carry nobody's data: any role may follow them
        elif actor.role is Role.AGENT:
            agent = actor.actor_id
        else:
            agent = wanted[0].decode("utf-8", "replace")[:64] if wanted else None
        session = getattr(request, "session", None)
        if session is not None and self._hub.streams_of(session) >= MAX_STREAMS_PER_SESSION:
            write_error(request, TooManyStreamsError(
                f"this sign-in has {MAX_STREAMS_PER_SESSION} pages following the figures "
                "already; close some"))
            return NOT_DONE_YET
        self._hub.connect(request, agent, review=review)
        return NOT_DONE_YET


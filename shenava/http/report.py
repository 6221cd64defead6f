"""``GET /api/report``: the report of ``shenava report`` for the browser (supervisors).

Query: ``from`` and ``to`` (local dates ``YYYY-MM-DD``, or Jalali ``1405/09/15``;
``to`` defaults to ``from``, ``from`` to today), ``format`` ``json`` (default) or
``csv``, ``by`` ``all``, ``days``, ``intervals`` (15-minute) or ``agents`` (CSV
only), ``lang`` ``en`` or ``fa`` (column names and dates of the CSV). The
figures are :func:`agent_stats.report.build_report`'s, read from Redis, the
same as the command's. At most ``MAX_DAYS`` days at once.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from shenava.http.auth import actor_of, require_supervisor
from shenava.http.errors import ApiError, BadFieldError, MethodNotAllowedError, UnavailableError
from shenava.http.jsonapi import write_error, write_json
from shenava_base.aio import as_deferred

log = Logger()

MAX_DAYS = 31
BY = ("all", "days", "intervals", "agents")


class ReportResource(Resource):
    isLeaf = True

    def __init__(self, app: Any) -> None:
        super().__init__()
        self._app = app

    def render(self, request: Request) -> int:
        if request.method != b"GET":
            write_error(request, MethodNotAllowedError(
                request.method.decode("ascii", "replace"), ("GET",)))
            return NOT_DONE_YET
        d = ensureDeferred(self._answer(request))
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _failed(self, failure: Any, request: Request) -> None:
        if request.finished:
            return
        if failure.check(ApiError):
            write_error(request, failure.value)
            return
        log.failure("report failed", failure=failure)
        write_error(request, UnavailableError("the report could not be read from Redis",
                                              code="http.report_unavailable"))

    async def _answer(self, request: Request) -> None:
        from agent_stats.report import build_report, parse_day, render_csv, render_json
        from agent_stats.service import StatsService

        actor = actor_of(request)
        require_supervisor(actor, "reading the report")
        service = self._app.agent_stats
        if not isinstance(service, StatsService):
            raise UnavailableError("the report needs the statistics service (Redis)",
                                   code="http.report_unavailable")
        args: dict[bytes, list[bytes]] = request.args or {}

        def arg(name: str, default: str) -> str:
            values = args.get(name.encode())
            return values[0].decode("utf-8", "replace")[:32] if values else default

        now = float(self._app.reactor.seconds())
        today = datetime.fromtimestamp(now, self._app.config.site.tzinfo).date().isoformat()
        try:
            first = parse_day(arg("from", today))
            last = parse_day(arg("to", arg("from", today)))
        except Exception as exc:  # ValueError, JalaliRangeError
            raise BadFieldError("from", f"a date, YYYY-MM-DD or Jalali YYYY/MM/DD: {exc}") from None
        if last < first or (last - first).days >= MAX_DAYS:
            raise BadFieldError("to", f"from 'from' to at most {MAX_DAYS} days after")
        fmt, by, lang = arg("format", "json"), arg("by", "all"), arg("lang", "en")
        if fmt not in ("json", "csv") or by not in BY or lang not in ("en", "fa"):
            raise BadFieldError("format", "format json|csv, by all|days|intervals|agents, lang en|fa")
        names = {s.profile.agent_id: s.profile.name for s in self._app.roster}
        store = service.store
        ids = sorted(set(await as_deferred(store.agents())) | set(names))
        report = await as_deferred(build_report(store, first, last, now,
                                                breaks=service.break_config, names=names,
                                                agent_ids=ids))
        if fmt == "csv":
            body = render_csv(report, lang, by).encode("utf-8")
            request.setHeader(b"content-type", b"text/csv; charset=utf-8")
            name = f"shenava-report-{first.isoformat()}-{last.isoformat()}-{by}.csv"
            request.setHeader(b"content-disposition", f'attachment; filename="{name}"'.encode())
            request.setHeader(b"cache-control", b"no-store")
            request.setHeader(b"content-length", str(len(body)).encode())
            request.write(body)
            request.finish()
            return
        write_json(request, 200, json.loads(render_json(report, lang)))

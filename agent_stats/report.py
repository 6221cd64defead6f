"""``shenava report``: figures for a date range from Redis, as a table, CSV or JSON.

Sections:

* ``days``: per local date and queue, the SL figures and Jain's fairness index
  of the day's breaks (taken / earned across agents);
* ``intervals``: per 15-minute interval and queue with any call: offered,
  answered, answered in threshold, abandoned (long, and short ones left out),
  SL, app_queue's ServicelevelPerf (SL1) and ServicelevelPerf2 (SL2), and the
  agents' seconds in each state within it;
* ``agents``: per agent over the range: seconds in each state (they sum to the
  range up to now, to the second), calls answered and hard calls, break time
  earned, taken and exempt, breaks granted, waited for (total and longest),
  and wellbeing alerts.

``--lang fa`` writes Persian headers and Jalali dates (``1405/08/11``); Persian
digits in the table. Dates given as ``YYYY/MM/DD`` are read as Jalali.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from agent_stats.breaks import Allowance, BreakConfig, allowance, fairness_index
from agent_stats.jalali import PERSIAN_DIGITS, JalaliRangeError, parse_jalali, to_jalali
from agent_stats.ledger import Interval
from agent_stats.sla import SLCounts
from agent_stats.states import AgentState
from agent_stats.store import StatsStore
from shenava_base.config_table import ConfigError, ConfigLoader

EXIT_OK, EXIT_USAGE, EXIT_MISSING = 0, 2, 3
SECTIONS = ("days", "intervals", "agents")


def state_column(interval: Interval) -> str:
    if interval.state is AgentState.NOT_READY and interval.reason is not None:
        return f"not_ready:{interval.reason.value}"
    return interval.state.value


@dataclass
class DayRow:
    day: date
    queue: str
    counts: SLCounts
    fairness: float


@dataclass
class IntervalRow:
    start: float
    queue: str
    counts: SLCounts
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class AgentRow:
    agent_id: str
    name: str
    seconds: dict[str, float]
    answered: int
    hard_calls: int
    allowance: Allowance
    breaks_granted: int
    waited_total_s: float
    waited_max_s: float
    alerts: dict[str, int]


@dataclass
class Report:
    first: date
    last: date
    start: float
    end: float
    utc_offset_s: float
    days: list[DayRow]
    intervals: list[IntervalRow]
    agents: list[AgentRow]
    totals: dict[str, SLCounts]


def _split(interval: Interval, step: float, offset: float) -> list[tuple[float, float]]:
    """``(interval start, seconds)`` pieces of an interval cut at report-interval boundaries."""
    out: list[tuple[float, float]] = []
    t = interval.start
    while t < interval.end:
        slot = math.floor((t + offset) / step) * step - offset
        end = min(interval.end, slot + step)
        out.append((slot, end - t))
        t = end
    return out


async def build_report(
    store: StatsStore,
    first: date,
    last: date,
    now: float,
    *,
    breaks: BreakConfig,
    names: Mapping[str, str] | None = None,
    agent_ids: Sequence[str] | None = None,
) -> Report:
    """Read the range ``first`` .. ``last`` (local dates, inclusive) from Redis."""
    names = names or {}
    sla = store.sla
    start, _ = store.day_bounds(first)
    _, end = store.day_bounds(last)
    upto = min(end, now)
    queues = await store.queues()
    ids = list(agent_ids) if agent_ids is not None else await store.agents()

    days: list[DayRow] = []
    totals: dict[str, SLCounts] = {}
    intervals: dict[tuple[float, str], IntervalRow] = {}
    for queue in queues:
        total = SLCounts()
        for t, counts in await store.interval_counts(queue, first, last):
            total.add(counts)
            if counts.to_fields():
                intervals[(t, queue)] = IntervalRow(t, queue, counts)
        totals[queue] = total

    stored = await store.intervals_of(ids, first - timedelta(days=1), last)
    per_agent: dict[str, list[Interval]] = {}
    for agent_id, items in stored.items():
        clipped = [c for i in items if (c := i.clip(start, upto)) is not None]
        # before the first record the agent was not logged in: the span stays whole
        first_start = clipped[0].start if clipped else upto
        if first_start > start:
            clipped.insert(0, Interval(start, first_start, AgentState.LOGGED_OUT))
        per_agent[agent_id] = clipped
        for piece in clipped:
            if piece.state is AgentState.LOGGED_OUT:
                continue
            column = state_column(piece)
            for slot, part in _split(piece, sla.interval_s, sla.utc_offset_s):
                queue = queues[0] if queues else "-"
                row = intervals.get((slot, queue))
                if row is None:
                    row = intervals[(slot, queue)] = IntervalRow(slot, queue, SLCounts())
                row.seconds[column] = row.seconds.get(column, 0.0) + part

    day = first
    while day <= last:
        d0, d1 = store.day_bounds(day)
        allowances = {
            a: allowance([c for i in items if (c := i.clip(d0, min(d1, upto))) is not None], breaks)
            for a, items in per_agent.items()
        }
        fairness = fairness_index(allowances)
        for queue in queues or ["-"]:
            counts = await store.day_counts(queue, day) if queues else SLCounts()
            days.append(DayRow(day, queue, counts, fairness))
        day += timedelta(days=1)

    calls = await store.agent_days(first, last)
    grants = await store.breaks(first, last)
    alerts = await store.alerts(first, last)
    agents: list[AgentRow] = []
    for agent_id in ids:
        pieces = per_agent.get(agent_id, [])
        seconds: dict[str, float] = {}
        for piece in pieces:
            column = state_column(piece)
            seconds[column] = seconds.get(column, 0.0) + piece.duration
        mine = [g for g in grants if g.agent_id == agent_id]
        waits = [g.waited_s or 0.0 for g in mine]
        kinds: dict[str, int] = {}
        for alert in alerts:
            if alert.agent_id == agent_id:
                kinds[alert.kind] = kinds.get(alert.kind, 0) + 1
        agents.append(AgentRow(
            agent_id, names.get(agent_id, agent_id), seconds,
            calls.get(agent_id, {}).get("answered", 0), calls.get(agent_id, {}).get("hard", 0),
            allowance(pieces, breaks), len(mine), math.fsum(waits), max(waits, default=0.0), kinds,
        ))
    return Report(
        first, last, start, end, sla.utc_offset_s, days,
        [intervals[k] for k in sorted(intervals)], agents, totals,
    )


# -- rendering --------------------------------------------------------------------

_LABELS_FA = {
    "date": "تاریخ", "time": "ساعت", "queue": "صف", "offered": "عرضه‌شده",
    "answered": "پاسخ‌داده", "answered_in_sl": "پاسخ در آستانه", "abandoned": "رهاشده",
    "abandoned_short": "رهاشده کوتاه", "sl": "سطح خدمت", "sl1": "SL1 صف", "sl2": "SL2 صف",
    "fairness": "شاخص انصاف", "agent": "کارشناس", "name": "نام", "hard_calls": "تماس دشوار",
    "earned_s": "استراحت کسب‌شده", "taken_s": "استراحت گرفته‌شده", "exempt_s": "معاف",
    "breaks_granted": "استراحت‌های داده‌شده", "waited_total_s": "انتظار کل",
    "waited_max_s": "بیشترین انتظار", "alerts": "هشدارها",
    "ready": "آماده", "ringing": "زنگ", "on_call": "در تماس", "wrap_up": "پس‌کار",
    "unknown": "نامعلوم", "logged_out": "خارج", "not_ready": "ناآماده",
}
_REASONS_FA = {
    "break": "استراحت", "lunch": "ناهار", "personal": "شخصی", "training": "آموزش",
    "meeting": "جلسه", "coaching": "مربیگری", "recovery": "بازیابی", "technical": "فنی",
    "missed": "بی‌پاسخ",
}
RATIO_COLUMNS = frozenset({"sl", "sl1", "sl2"})
"""Shares of calls: printed as percentages in the table."""
INDEX_COLUMNS = frozenset({"fairness"})
"""Jain's index, 1/n .. 1: printed as it is (two decimals), not as a percentage."""
COUNT_COLUMNS = frozenset({
    "offered", "answered", "answered_in_sl", "abandoned", "abandoned_short", "hard_calls",
    "breaks_granted", "alerts",
})
LATIN_COLUMNS = frozenset({"agent", "queue", "name"})
"""Identifiers shown as typed (an agent id ``a1`` stays ``a1`` in Persian)."""
_LEGEND = {
    "en": "Durations h:mm:ss; SL, SL1, SL2 percentages of calls; fairness 0-1 "
          "(1: break time shared equally).",
    "fa": "مدت‌ها به ساعت:دقیقه:ثانیه؛ سطح خدمت و SL1 و SL2 درصد تماس‌ها؛ "
          "شاخص انصاف از ۰ تا ۱ (۱: استراحت به تساوی).",
}
_TITLES = {
    "en": {"days": "Days", "intervals": "15-minute intervals", "agents": "Agents"},
    "fa": {"days": "روزها", "intervals": "بازه‌های ۱۵ دقیقه‌ای", "agents": "کارشناسان"},
}


def _label(column: str, lang: str) -> str:
    if lang != "fa":
        return column
    if column.startswith("not_ready:"):
        reason = column.split(":", 1)[1]
        return f"{_LABELS_FA['not_ready']}:{_REASONS_FA.get(reason, reason)}"
    return _LABELS_FA.get(column, column)


def is_duration(column: str) -> bool:
    """Seconds: the time in a state (``ready``, ``not_ready:lunch``...) or a ``*_s`` figure."""
    if column.endswith("_s") or column.startswith("not_ready:"):
        return True
    return column in {state.value for state in AgentState}


def format_duration(seconds: float) -> str:
    """``h:mm:ss``; below ten seconds with a tenth (``0:00:00.5``), so a short spell shows."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if 0 < seconds < 10:
        return f"0:00:{seconds:04.1f}"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _local(t: float, offset: float) -> datetime:
    return datetime.fromtimestamp(t + offset, UTC)


def _date_text(d: date, lang: str) -> str:
    return to_jalali(d).isoformat() if lang == "fa" else d.isoformat()


def _sl_fields(c: SLCounts) -> dict[str, Any]:
    return {
        "offered": c.offered, "answered": c.answered, "answered_in_sl": c.answered_in_sl,
        "abandoned": c.abandoned, "abandoned_short": c.abandoned_short,
        "sl": _ratio(c.service_level), "sl1": _ratio(c.servicelevel_perf),
        "sl2": _ratio(c.servicelevel_perf2),
    }


def sections(report: Report, lang: str = "en") -> dict[str, list[dict[str, Any]]]:
    """Each section as rows of plain values (what CSV and JSON write)."""
    states = sorted({k for r in report.agents for k in r.seconds}
                    | {k for r in report.intervals for k in r.seconds})
    interval_states = [s for s in states if s != AgentState.LOGGED_OUT.value]
    days = [
        {"date": _date_text(r.day, lang), "queue": r.queue, **_sl_fields(r.counts),
         "fairness": round(r.fairness, 4)}
        for r in report.days
    ]
    intervals = []
    for r in report.intervals:
        local = _local(r.start, report.utc_offset_s)
        intervals.append({
            "date": _date_text(local.date(), lang), "time": local.strftime("%H:%M"),
            "queue": r.queue, **_sl_fields(r.counts),
            **{s: round(r.seconds.get(s, 0.0), 3) for s in interval_states},
        })
    agents = [
        {"agent": r.agent_id, "name": r.name,
         **{s: round(r.seconds.get(s, 0.0), 3) for s in states},
         "answered": r.answered, "hard_calls": r.hard_calls,
         "earned_s": round(r.allowance.earned_s, 1), "taken_s": round(r.allowance.taken_s, 1),
         "exempt_s": round(r.allowance.exempt_s, 1), "breaks_granted": r.breaks_granted,
         "waited_total_s": round(r.waited_total_s, 1), "waited_max_s": round(r.waited_max_s, 1),
         "alerts": sum(r.alerts.values())}
        for r in report.agents
    ]
    return {"days": days, "intervals": intervals, "agents": agents}


def render_json(report: Report, lang: str = "en") -> str:
    out: dict[str, Any] = {
        "from": report.first.isoformat(), "to": report.last.isoformat(),
        "totals": {q: _sl_fields(c) for q, c in report.totals.items()},
        **sections(report, "en"),
    }
    if lang == "fa":
        out["from_jalali"] = to_jalali(report.first).isoformat()
        out["to_jalali"] = to_jalali(report.last).isoformat()
        for row, day in zip(out["days"], report.days, strict=True):
            row["jalali"] = to_jalali(day.day).isoformat()
        for row, interval in zip(out["intervals"], report.intervals, strict=True):
            row["jalali"] = to_jalali(_local(interval.start, report.utc_offset_s).date()).isoformat()
    for row, agent in zip(out["agents"], report.agents, strict=True):
        row["alerts_by_kind"] = dict(sorted(agent.alerts.items()))
    return json.dumps(out, ensure_ascii=False, indent=1)


def render_csv(report: Report, lang: str = "en", by: str = "all") -> str:
    """One CSV per section; with ``all``, sections follow each other after a blank line."""
    buffer = io.StringIO()
    chosen = SECTIONS if by == "all" else (by,)
    parts = sections(report, lang)
    for n, name in enumerate(chosen):
        rows = parts[name]
        if n:
            buffer.write("\r\n")
        if by == "all":
            buffer.write(f"# {name}\r\n")
        columns = list(rows[0]) if rows else ["(none)"]
        writer = csv.writer(buffer)
        writer.writerow([_label(c, lang) for c in columns])
        for row in rows:
            writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return buffer.getvalue()


def _cell(value: Any, lang: str, column: str = "") -> str:
    """One table cell, by what the column holds (not by the value's size)."""
    if value is None:
        return "-"
    if column in LATIN_COLUMNS or not isinstance(value, int | float):
        text = str(value)
        # dates and times are ours to write in Persian digits; names and ids are not
        return text.translate(PERSIAN_DIGITS) if lang == "fa" and column in ("date", "time") else text
    if column in RATIO_COLUMNS:
        text = f"{value:.1%}"
    elif column in INDEX_COLUMNS:
        text = f"{value:.2f}"
    elif is_duration(column):
        text = format_duration(float(value))
    elif column in COUNT_COLUMNS or isinstance(value, int) or float(value).is_integer():
        text = str(int(value))
    else:
        text = f"{value:g}"
    return text.translate(PERSIAN_DIGITS) if lang == "fa" else text


def render_table(report: Report, lang: str = "en", by: str = "all") -> str:
    parts = sections(report, lang)
    out: list[str] = []
    title = f"{_date_text(report.first, lang)} .. {_date_text(report.last, lang)}"
    out.append(title.translate(PERSIAN_DIGITS) if lang == "fa" else title)
    out.append(_LEGEND["fa" if lang == "fa" else "en"])
    for name in SECTIONS if by == "all" else (by,):
        rows = parts[name]
        out.append("")
        out.append(_TITLES["fa" if lang == "fa" else "en"][name])
        if not rows:
            out.append("  (none)" if lang != "fa" else "  (هیچ)")
            continue
        columns = list(rows[0])
        cells = [[_label(c, lang) for c in columns]]
        cells += [[_cell(row[c], lang, c) for c in columns] for row in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
        for r in cells:
            out.append("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(out) + "\n"


# -- the command --------------------------------------------------------------------


def parse_day(text: str) -> date:
    """``2026-11-01`` (Gregorian) or ``1405/08/10`` (Jalali)."""
    if "/" in text or not text.isascii():
        return parse_jalali(text)
    return date.fromisoformat(text)


def add_report_parser(
    subparsers: Any, load_config: ConfigLoader, make_client: Callable[..., Any] | None = None
) -> argparse.ArgumentParser:
    """Add ``report`` to the ``shenava`` subcommands (``set_defaults(func=run_report)``).

    ``make_client(redis_config, **options)`` makes the Redis client (the composition root
    passes its own, which knows Sentinel and Cluster); without it, ``redis.url`` as it is."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="agent time, service level, breaks and alerts for a date range, from Redis",
    )
    parser.add_argument("-c", "--config", type=Path, required=True,
                        help="the Shenava TOML config file (its redis.url is read)")
    parser.add_argument("--from", dest="first", required=True,
                        help="first day, 2026-11-01 or Jalali 1405/08/10")
    parser.add_argument("--to", dest="last", help="last day, inclusive (default: --from)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--lang", choices=("en", "fa"), default="en",
                        help="fa: Persian headers and Jalali dates")
    parser.add_argument("--by", choices=("all", *SECTIONS), default="all",
                        help="one section only (a single clean CSV)")
    parser.add_argument("--agent", action="append", dest="agents",
                        help="only this agent (repeatable)")
    parser.set_defaults(func=run_report, load_config=load_config, make_client=make_client)
    return parser


def run_report(args: argparse.Namespace) -> int:
    """The ``report`` subcommand; exit codes as ``shenava.cli``'s."""
    try:
        config = args.load_config(args.config)
    except ConfigError as exc:
        print(f"shenava: invalid config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        first = parse_day(args.first)
        last = parse_day(args.last) if args.last else first
    except (ValueError, JalaliRangeError) as exc:
        print(f"shenava report: bad date: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if last < first:
        print("shenava report: --to is before --from", file=sys.stderr)
        return EXIT_USAGE
    if not config.redis.url:
        print("shenava report: redis.url is empty: there is no Redis to read", file=sys.stderr)
        return EXIT_USAGE
    try:
        text = asyncio.run(_report_text(config, first, last, args, time.time()))
    except OSError as exc:
        print(f"shenava report: Redis unreachable: {exc}", file=sys.stderr)
        return EXIT_MISSING
    except Exception as exc:  # redis.exceptions.ConnectionError is not an OSError
        if type(exc).__name__ in ("ConnectionError", "TimeoutError"):
            print(f"shenava report: Redis unreachable: {exc}", file=sys.stderr)
            return EXIT_MISSING
        raise
    sys.stdout.write(text)
    return EXIT_OK


async def _report_text(
    config: Any, first: date, last: date, args: argparse.Namespace, now: float
) -> str:
    from shenava_base.redis_urls import async_client_from_url

    make_client = getattr(args, "make_client", None)
    client = (make_client(config.redis, decode_responses=True) if make_client is not None
              else async_client_from_url(config.redis.url, decode_responses=True, socket_timeout=10))
    try:
        store = StatsStore(client, config.sla, prefix=config.redis.key_prefix, site=config.site.id)
        names = {a.id: a.name for a in config.agents}
        ids = args.agents or sorted(set(await store.agents()) | set(names))
        report = await build_report(
            store, first, last, now, breaks=config.breaks, names=names, agent_ids=ids
        )
    finally:
        await client.aclose()
    if args.format == "json":
        return render_json(report, args.lang) + "\n"
    if args.format == "csv":
        return render_csv(report, args.lang, args.by)
    return render_table(report, args.lang, args.by)

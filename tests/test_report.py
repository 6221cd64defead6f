"""``shenava report`` from Redis: per day, per 15-minute interval and per agent; table, CSV, JSON."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
from pathlib import Path

import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.defer import Deferred

from agent_stats.breaks import BreakConfig
from agent_stats.report import (
    add_report_parser,
    build_report,
    render_csv,
    render_json,
    render_table,
    run_report,
)
from agent_stats.states import NotReadyReason
from agent_stats.store import StatsStore
from routing.events import CallAbandoned, CallAnswered, CallQueued
from shenava.config import load_config
from shenava_base.aio import as_deferred
from tests.stats_helpers import SLA, T0, clock_at, make_service, step_to


async def a_morning(client: Redis) -> float:
    """a1 and a2 work 08:00-09:00 with calls, a break and a reason change; returns the end."""
    clock = clock_at(T0)
    roster, service = make_service(client, clock)
    await service.start()
    for agent in ("a1", "a2"):
        roster.log_in(agent, T0)
    for n, (join, wait, answered) in enumerate([(60, 10, True), (120, 30, True), (400, 2, False),
                                                (950, 40, False), (1000, 25, True)]):
        step_to(clock, T0 + join)
        service.on_routing_event(CallQueued(f"c{n}", T0 + join, T0 + join - 30, "fa", "x", "0912"))
        step_to(clock, T0 + join + wait)
        if answered:
            service.on_routing_event(CallAnswered(f"c{n}", clock.seconds(), "a1", T0 + join, n == 4))
        else:
            service.on_routing_event(CallAbandoned(f"c{n}", clock.seconds(), T0 + join, "0912", None))
    step_to(clock, T0 + 1200)
    # 5 calls in 20 minutes at 5 minutes each: 1.25 Erlangs, no headroom for 2 agents
    assert service.request_break("a2", NotReadyReason.BREAK).status == "waiting"
    step_to(clock, T0 + 1500)
    roster.set_not_ready("a2", NotReadyReason.PERSONAL, clock.seconds())  # never waits
    step_to(clock, T0 + 1800)
    roster.set_ready("a2", clock.seconds())
    step_to(clock, T0 + 2100)  # the maximum wait (900 s): granted anyway
    assert roster.get("a2").reason is NotReadyReason.BREAK
    step_to(clock, T0 + 2400)
    roster.set_ready("a2", clock.seconds())
    step_to(clock, T0 + 3600)
    roster.log_out("a1", clock.seconds())
    roster.log_out("a2", clock.seconds())
    await service.stop()
    return T0 + 3600


@pytest_twisted.ensureDeferred
async def test_report_sections_and_formats(redis_client: Redis) -> None:
    end = await a_morning(redis_client)
    store = StatsStore(redis_client, SLA)
    day = store.day_of(T0)
    report = await as_deferred(build_report(
        store, day, day, end + 60, breaks=BreakConfig(), names={"a1": "Maryam", "a2": "Reza"},
        agent_ids=["a1", "a2"],
    ))
    (totals,) = report.totals.values()
    assert (totals.offered, totals.answered, totals.answered_in_sl, totals.abandoned,
            totals.abandoned_short) == (4, 3, 1, 1, 1)
    a1, a2 = report.agents
    day_start, _ = store.day_bounds(day)
    # every second of the day up to now in exactly one state
    assert sum(a1.seconds.values()) == end + 60 - day_start
    assert a1.seconds["ready"] == 3600 and a1.answered == 3 and a1.hard_calls == 1
    assert a2.seconds["not_ready:break"] == 300 and a2.seconds["not_ready:personal"] == 300
    assert a2.breaks_granted == 1 and a2.waited_max_s == 900 and a2.allowance.taken_s == 300

    data = json.loads(render_json(report, "fa"))
    assert data["from_jalali"] == "1405/08/11" and data["days"][0]["jalali"] == "1405/08/11"
    assert data["totals"]["complaints"]["sl"] == 0.25
    assert [r["time"] for r in data["intervals"]][:4] == ["08:00", "08:15", "08:30", "08:45"]
    assert data["intervals"][0]["offered"] == 2 and data["intervals"][0]["ready"] == 1800

    rows = list(csv.DictReader(io.StringIO(render_csv(report, "en", "agents"))))
    assert [r["agent"] for r in rows] == ["a1", "a2"] and rows[1]["not_ready:break"] == "300.0"
    assert render_csv(report, "en").count("# ") == 3

    table = render_table(report, "fa")
    assert "۱۴۰۵/۰۸/۱۱" in table and "کارشناسان" in table
    assert " a1 " in table and "a۱" not in table  # agent ids as typed
    assert "ناآماده:استراحت" in table and "not_ready:break" not in table
    assert "0:05:00".translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")) in table
    english = render_table(report, "en", "agents")
    assert "1:00:00" in english  # a1's hour ready
    assert "%" not in english
    assert "2026-11-02" in render_table(report, "en", "days")


@pytest_twisted.ensureDeferred
async def test_the_report_command(redis_client: Redis, redis_url: str, tmp_path: Path) -> None:
    await a_morning(redis_client)
    config = tmp_path / "shenava.toml"
    config.write_text(
        f'[ami]\nsecret = "x"\n[redis]\nurl = "{redis_url}"\n[site]\ntimezone = "Asia/Tehran"\n'
        '[[agents]]\nid = "a1"\nname = "Maryam"\nendpoint = "PJSIP/101"\nlanguages = ["fa"]\n'
    )
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers(), load_config)
    args = parser.parse_args(["report", "-c", str(config), "--from", "1405/08/11",
                              "--to", "2026-11-02", "--format", "json", "--agent", "a1"])
    out = io.StringIO()

    def run() -> int:
        import contextlib

        with contextlib.redirect_stdout(out):
            return int(args.func(args))

    code = await Deferred.fromFuture(asyncio.ensure_future(asyncio.to_thread(run)))
    assert code == 0
    data = json.loads(out.getvalue())
    assert [a["agent"] for a in data["agents"]] == ["a1"] and data["agents"][0]["name"] == "Maryam"
    bad = parser.parse_args(["report", "-c", str(config), "--from", "2026-11-03", "--to", "2026-11-01"])
    assert run_report(bad) == 2


def test_table_cells_by_column_not_by_size() -> None:
    from agent_stats.report import _cell, _label, format_duration

    # a 0.454 s lunch is a duration, not 45.4 %; 46351.1 s is 12:52:31
    assert _cell(0.454, "en", "not_ready:lunch") == "0:00:00.5"
    assert _cell(46351.1, "en", "ready") == "12:52:31"
    assert _cell(900.0, "en", "waited_max_s") == "0:15:00"
    assert format_duration(0.0) == "0:00:00"
    # shares of calls are percentages, the fairness index stays on its 0-1 scale
    assert _cell(0.25, "en", "sl") == "25.0%" and _cell(1.0, "en", "sl") == "100.0%"
    assert _cell(0.9731, "en", "fairness") == "0.97"
    assert _cell(3, "en", "answered") == "3"
    # Persian: digits of figures and dates, reasons translated, ids as typed
    assert _cell(3, "fa", "answered") == "۳"
    assert _cell("a1", "fa", "agent") == "a1"
    assert _cell("1405/08/11", "fa", "date") == "۱۴۰۵/۰۸/۱۱"
    assert _label("not_ready:lunch", "fa") == "ناآماده:ناهار"
    assert _label("not_ready:personal", "fa") == "ناآماده:شخصی"

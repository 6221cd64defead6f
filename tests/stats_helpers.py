"""Shared set-up for the statistics tests: four agents, a Tehran day, a Clock stepped by seconds."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from twisted.internet.task import Clock

from agent_stats.breaks import BreakConfig
from agent_stats.roster import AgentProfile, AgentRoster
from agent_stats.service import StatsService
from agent_stats.sla import SLAConfig
from agent_stats.store import StatsStore
from agent_stats.wellbeing import WellbeingConfig

TEHRAN = ZoneInfo("Asia/Tehran")
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=TEHRAN).timestamp()
"""2026-11-02 08:00 in Tehran (UTC+3:30), 1405/08/11."""
SLA = SLAConfig(utc_offset_s=12600.0)
PROFILES = [
    AgentProfile(f"a{i}", name, f"PJSIP/10{i}", ("fa", "en"))
    for i, name in enumerate(("Maryam", "Reza", "Sara", "Hamid"), start=1)
]


def clock_at(t: float) -> Clock:
    clock = Clock()
    clock.advance(t)
    return clock


def step_to(clock: Clock, t: float) -> None:
    """Advance second by second, so every timer fires at its own time."""
    while clock.seconds() < t:
        clock.advance(min(1.0, t - clock.seconds()))
    clock.advance(0)


def make_service(
    client: Redis,
    clock: Clock,
    *,
    breaks: BreakConfig | None = None,
    wellbeing: WellbeingConfig | None = None,
    **kw: Any,
) -> tuple[AgentRoster, StatsService]:
    roster = AgentRoster(PROFILES, clock.seconds())
    service = StatsService(
        store=StatsStore(client, SLA),
        roster=roster,
        clock=clock,
        sla=SLA,
        breaks=breaks or BreakConfig(),
        wellbeing=wellbeing or WellbeingConfig(),
        **kw,
    )
    return roster, service

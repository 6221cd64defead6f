"""What agent_stats needs of the daemon's object graph: ``shenava.app.Shenava`` is one.

The wiring (:mod:`agent_stats.wiring`) and the metrics' install
(:mod:`agent_stats.metrics`) take a :class:`StatsHost`, so the package names
what it uses of the app without importing the composition root.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from agent_stats.breaks import BreakConfig
from agent_stats.roster import AgentRoster
from agent_stats.sla import SLAConfig
from agent_stats.wellbeing import WellbeingConfig
from ami_bridge.connection import AMIConnection
from routing.dispatch import CallDispatcher
from routing.router import Router
from shenava_base.clock import Clock
from shenava_base.journal import RecordJournal

if TYPE_CHECKING:
    from redis.asyncio import Redis


class _RedisSettings(Protocol):
    @property
    def key_prefix(self) -> str: ...


class _SiteSettings(Protocol):
    @property
    def id(self) -> str: ...


class _MetricsSettings(Protocol):
    @property
    def per_agent(self) -> bool: ...


class StatsSettings(Protocol):
    """The config sections the statistics read (``shenava.config.Config``)."""

    @property
    def redis(self) -> _RedisSettings: ...

    @property
    def sla(self) -> SLAConfig: ...

    @property
    def breaks(self) -> BreakConfig: ...

    @property
    def wellbeing(self) -> WellbeingConfig: ...

    @property
    def metrics(self) -> _MetricsSettings: ...

    @property
    def site(self) -> _SiteSettings: ...


class StatsHost(Protocol):
    """The parts of the app the statistics are wired to."""

    @property
    def config(self) -> StatsSettings: ...

    @property
    def redis(self) -> Redis | None: ...

    @property
    def reactor(self) -> Clock: ...

    @property
    def roster(self) -> AgentRoster: ...

    @property
    def dispatcher(self) -> CallDispatcher: ...

    @property
    def router(self) -> Router: ...

    @property
    def connection(self) -> AMIConnection: ...

    @property
    def journal(self) -> RecordJournal | None: ...

"""Shenava's configuration: one TOML file, validated at start-up into frozen dataclasses.

Each section is a frozen dataclass plus one small ``parse_<section>(table)``
function that knows its key path; :class:`~shenava_base.config_table.Table` does the
typing, the defaults, the key paths in errors and the refusal of unknown keys.
Cross-section checks (an agent's languages must be site languages) happen in
:meth:`Config.from_mapping`, where both sections are at hand.

Adding a section (``[sla]``, ``[ivr]``, ``[recordings]``, ``[vosk]``,
``[callbacks]``...):

1. write ``@dataclass(frozen=True) class SlaConfig`` with typed fields and
   defaults, and ``def parse_sla(t: Table) -> SlaConfig`` that reads every key
   with ``t.get_*``, in its own module ``shenava/config/sla.py`` (shared
   value checks are in ``shenava/config/checks.py``), exported here;
2. add a field ``sla: SlaConfig`` to :class:`Config` in
   ``shenava/config/file.py`` (with a default if the
   section is optional) and one line ``sla=root.section("sla", parse_sla)`` in
   :meth:`Config.from_mapping`;
3. document every key, commented, in ``etc/shenava.example.toml`` (a test
   loads it) and add a row to the table-driven error tests.

The known top-level keys are the fields of :class:`Config` (plus ``abuse``,
which lands in ``Config.complaints.abuse``), so a section nobody parses is
reported as unknown, never silently dropped.

The packages' config dataclasses are reused as they are (``SLAConfig``,
``DialPolicy``...): the getters check each value's type and range with its key
path, then :func:`_build` constructs the package's object and turns its own
validation error (``InvalidConfigError``, ``CallbackConfigError``...) into a
:class:`ConfigError` naming the full key path. Every key is documented in
``docs/configuration.md``.
"""

from __future__ import annotations

from shenava.config.agents import AgentConfig, parse_agent, parse_agents
from shenava.config.ami import AmiConfig, parse_ami
from shenava.config.breaks import parse_breaks
from shenava.config.callbacks import (
    DEFAULT_CALLING_WINDOWS,
    CallbacksConfig,
    default_calling_hours,
    parse_callbacks,
    parse_calling_hours,
)
from shenava.config.checks import LOG_LEVELS, SUPPORTED_LANGUAGES
from shenava.config.complaints import parse_abuse, parse_complaints
from shenava.config.daemon import DaemonConfig, parse_daemon
from shenava.config.file import DEMO_CONFIG_TOML, Config, default_config, load_config, parse_toml
from shenava.config.http import COOKIE_SECURE, HTTP_AUTH, HttpConfig, parse_http
from shenava.config.ivr import IvrConfig, parse_ivr
from shenava.config.log import LogConfig, parse_log
from shenava.config.metrics import MetricsConfig, parse_metrics
from shenava.config.redis import RedisConfig, parse_redis
from shenava.config.routing import (
    RoutingConfig,
    parse_hold,
    parse_routing,
    parse_scoring,
    parse_selection,
)
from shenava.config.site import SiteConfig, parse_site
from shenava.config.sla import parse_sla, utc_offset_s
from shenava.config.state import StateConfig, parse_state
from shenava.config.wellbeing import parse_wellbeing
from shenava_base.config_table import ConfigError
from shenava_base.redis_urls import (
    CLUSTER_SCHEME,
    SENTINEL_SCHEME,
    parse_cluster_url,
    parse_sentinel_url,
)

__all__ = [
    "AgentConfig",
    "AmiConfig",
    "COOKIE_SECURE",
    "CallbacksConfig",
    "Config",
    "ConfigError",
    "DEFAULT_CALLING_WINDOWS",
    "DEMO_CONFIG_TOML",
    "DaemonConfig",
    "HTTP_AUTH",
    "HttpConfig",
    "IvrConfig",
    "LOG_LEVELS",
    "LogConfig",
    "MetricsConfig",
    "RedisConfig",
    "RoutingConfig",
    "SENTINEL_SCHEME",
    "CLUSTER_SCHEME",
    "parse_cluster_url",
    "SUPPORTED_LANGUAGES",
    "SiteConfig",
    "StateConfig",
    "default_calling_hours",
    "default_config",
    "load_config",
    "parse_abuse",
    "parse_agent",
    "parse_agents",
    "parse_ami",
    "parse_breaks",
    "parse_callbacks",
    "parse_calling_hours",
    "parse_complaints",
    "parse_daemon",
    "parse_hold",
    "parse_http",
    "parse_ivr",
    "parse_log",
    "parse_metrics",
    "parse_redis",
    "parse_routing",
    "parse_scoring",
    "parse_selection",
    "parse_sentinel_url",
    "parse_site",
    "parse_sla",
    "parse_state",
    "parse_toml",
    "parse_wellbeing",
    "utc_offset_s",
]

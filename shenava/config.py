"""Shenava's configuration: one TOML file, validated at start-up into frozen dataclasses.

Each section is a frozen dataclass plus one small ``parse_<section>(table)``
function that knows its key path; :class:`~shenava.config_table.Table` does the
typing, the defaults, the key paths in errors and the refusal of unknown keys.
Cross-section checks (an agent's languages must be site languages) happen in
:meth:`Config.from_mapping`, where both sections are at hand.

Adding a section (``[sla]``, ``[ivr]``, ``[recordings]``, ``[vosk]``,
``[callbacks]``...):

1. write ``@dataclass(frozen=True) class SlaConfig`` with typed fields and
   defaults, and ``def parse_sla(t: Table) -> SlaConfig`` that reads every key
   with ``t.get_*`` (a larger section may live in ``shenava/config_sla.py``);
2. add a field ``sla: SlaConfig`` to :class:`Config` (with a default if the
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

import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent_stats.breaks import BreakConfig
from agent_stats.errors import InvalidConfigError
from agent_stats.sla import ChoiceCounting, ClockStart, SLAConfig
from agent_stats.states import NotReadyReason
from agent_stats.wellbeing import WellbeingConfig
from complaints.abuse import AbusePolicy
from complaints.errors import InvalidComplaintError
from complaints.service import RegisterPolicy
from ivr.errors import MenuFileError
from ivr.menu_schema import MenuBook, default_menu_file, load_menus
from recordings.config import RecordingsConfig, parse_recordings
from routing.callbacks import WEEKDAYS, CallbackConfigError, CallingHours, DialPolicy
from routing.calls import Urgency
from routing.dispatch import DispatchConfig
from routing.errors import InvalidScoringConfigError
from routing.hold import HoldConfig
from routing.scoring import ScoringConfig
from routing.selection import SelectionConfig
from shenava.config_table import ConfigError, Table, show
from shenava.sites import check_site_id

T = TypeVar("T")

__all__ = [
    "AgentConfig",
    "AmiConfig",
    "CallbacksConfig",
    "Config",
    "ConfigError",
    "HttpConfig",
    "IvrConfig",
    "LogConfig",
    "RedisConfig",
    "RoutingConfig",
    "SiteConfig",
    "StateConfig",
    "SUPPORTED_LANGUAGES",
    "default_config",
    "load_config",
]

SUPPORTED_LANGUAGES = ("fa", "en")
"""Languages the IVR has prompts for."""

LOG_LEVELS = ("debug", "info", "warn", "error", "critical")
"""``twisted.logger.LogLevel`` names."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")
_CONTEXT_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_ENDPOINT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/[^\s,&;()|]+$")
_HOST_RE = re.compile(r"^[A-Za-z0-9_.:%-]+$")


def _name(value: str) -> str | None:
    return None if _NAME_RE.match(value) else "expected letters, digits, '_' or '-'"


def _context(value: str) -> str | None:
    return None if _CONTEXT_RE.match(value) else "expected an Asterisk context name (letters, digits, _ . + -)"


def _host(value: str) -> str | None:
    return None if _HOST_RE.match(value) else "expected a host name or an IP address"


def _ip_address(value: str) -> str | None:
    if value == "localhost":
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "expected an IP address (or localhost)"
    return None


# -- [ami] ---------------------------------------------------------------------


@dataclass(frozen=True)
class AmiConfig:
    """How the daemon reaches Asterisk's Manager Interface."""

    secret: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "shenava"
    auth: str = "md5"
    action_timeout_s: float = 10.0
    keepalive_s: float = 20.0
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 60.0
    max_message_bytes: int = 1024 * 1024
    max_list_items: int = 100_000
    """Events an AMI event list may hold before it is given up (``EventListTooLargeError``)."""
    max_list_bytes: int = 128 * 1024 * 1024
    """Bytes an AMI event list may hold before it is given up."""
    max_channels: int = 100_000
    """Channels the call tracker keeps; past it the oldest idle ones are dropped."""
    secret_from: str = field(default="ami.secret", compare=False)
    """Where the secret came from (``ami.secret`` or ``ami.secret_file``), for messages."""


def _username(value: str) -> str | None:
    if ":" in value or value.strip() != value:
        return "expected a user name without ':' or surrounding spaces"
    return None


def parse_ami(t: Table) -> AmiConfig:
    d = AmiConfig(secret="")
    initial = t.get_float("reconnect_initial_s", d.reconnect_initial_s, positive=True)
    maximum = t.get_float("reconnect_max_s", d.reconnect_max_s, positive=True)
    if maximum < initial:
        raise t.error(
            "reconnect_max_s",
            f"must be at least {t.key_path('reconnect_initial_s')} ({initial:g}), got {maximum:g}",
        )
    return AmiConfig(
        host=t.get_str("host", d.host, check=_host),
        port=t.get_int("port", d.port, minimum=1, maximum=65535),
        username=t.get_str("username", d.username, check=_username),
        secret=t.get_secret("secret", "secret_file"),
        auth=t.get_choice("auth", ("md5", "plain"), d.auth),
        action_timeout_s=t.get_float("action_timeout_s", d.action_timeout_s, positive=True, maximum=3600),
        keepalive_s=t.get_float("keepalive_s", d.keepalive_s, positive=True, maximum=3600),
        reconnect_initial_s=initial,
        reconnect_max_s=maximum,
        max_message_bytes=t.get_int("max_message_bytes", d.max_message_bytes, minimum=1024, maximum=64 * 1024 * 1024),
        max_list_items=t.get_int("max_list_items", d.max_list_items, minimum=100, maximum=10_000_000),
        max_list_bytes=t.get_int(
            "max_list_bytes", d.max_list_bytes, minimum=64 * 1024, maximum=4 * 1024 * 1024 * 1024
        ),
        max_channels=t.get_int("max_channels", d.max_channels, minimum=100, maximum=10_000_000),
        secret_from=t.key_path("secret_file" if t.has("secret_file") else "secret"),
    )


# -- [redis] -------------------------------------------------------------------


@dataclass(frozen=True)
class RedisConfig:
    """Where state lives. An empty ``url`` means "start an embedded redis-server" (demo only).

    The client (``shenava.redis_client.make_redis_client``) has a bounded
    *blocking* pool: a caller waits up to ``pool_timeout_s`` for a free
    connection instead of failing at once, and every socket has a connect and
    a read timeout, so a slow or absent Redis turns into an error the durable
    journal catches, never into a hang.
    """

    url: str = field(default="", repr=False)  # may carry a password
    key_prefix: str = "shenava"
    sentinels: tuple[tuple[str, int], ...] = ()
    """Redis Sentinel addresses (``redis+sentinel://`` URLs fill this too)."""
    sentinel_service: str = "mymaster"
    cluster_nodes: tuple[tuple[str, int], ...] = ()
    """Redis Cluster seed nodes (``redis+cluster://`` URLs fill this too): a cluster client."""
    max_connections: int = 64
    pool_timeout_s: float = 5.0
    connect_timeout_s: float = 2.0
    socket_timeout_s: float = 5.0
    health_check_interval_s: float = 15.0
    startup_retry_max_s: float = 30.0
    """Longest pause between tries while the daemon waits for Redis at start-up."""
    wait_replicas: int = 0
    """A journal entry leaves the journal only once this many replicas have it (``WAIT``)."""

    @property
    def embedded(self) -> bool:
        return not self.url and not self.sentinels and not self.cluster_nodes

    @property
    def cluster(self) -> bool:
        return bool(self.cluster_nodes) or self.url.startswith(CLUSTER_SCHEME)


SENTINEL_SCHEME = "redis+sentinel://"
CLUSTER_SCHEME = "redis+cluster://"


def _redis_url(value: str) -> str | None:
    if value == "" or value.startswith(("redis://", "rediss://", "unix://")):
        return None
    if value.startswith(SENTINEL_SCHEME):
        try:
            parse_sentinel_url(value)
        except ValueError as exc:
            return str(exc)
        return None
    if value.startswith(CLUSTER_SCHEME):
        try:
            parse_cluster_url(value)
        except ValueError as exc:
            return str(exc)
        return None
    return (
        "expected a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL, "
        "or \"\" for an embedded server (demo only)"
    )


def parse_sentinel_url(url: str) -> tuple[tuple[tuple[str, int], ...], str, int, str | None]:
    """``redis+sentinel://[:password@]h1:p1,h2:p2/service[/db]`` -> (sentinels, service, db, password).

    Raises ``ValueError`` with a reason an operator can act on.
    """
    rest = url[len(SENTINEL_SCHEME):]
    password: str | None = None
    if "@" in rest:
        auth, _, rest = rest.rpartition("@")
        password = auth.partition(":")[2] or None
    hosts, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise ValueError("a redis+sentinel:// URL needs the service name: redis+sentinel://host:port/mymaster")
    service = parts[0]
    db = 0
    if len(parts) > 1:
        if not parts[1].isdigit():
            raise ValueError("the database after the service name must be a number")
        db = int(parts[1])
    return tuple(_host_port(h, 26379) for h in hosts.split(",")), service, db, password


def parse_cluster_url(url: str) -> tuple[tuple[tuple[str, int], ...], str | None]:
    """``redis+cluster://[:password@]h1:p1,h2:p2[/]`` -> (seed nodes, password)."""
    rest = url[len(CLUSTER_SCHEME):]
    password: str | None = None
    if "@" in rest:
        auth, _, rest = rest.rpartition("@")
        password = auth.partition(":")[2] or None
    hosts, _, path = rest.partition("/")
    if path.strip("/") not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0: redis+cluster://host:port,host:port")
    if not hosts:
        raise ValueError("a redis+cluster:// URL needs at least one node: redis+cluster://host:port")
    return tuple(_host_port(h, 6379) for h in hosts.split(",")), password


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = text.strip(), str(default_port)
    if not host or _host(host) is not None:
        raise ValueError(f"expected host:port, got {text!r}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected a port from 1 to 65535 in {text!r}")
    return host, int(port)


def _sentinel_address(value: str) -> str | None:
    try:
        _host_port(value, 26379)
    except ValueError as exc:
        return str(exc)
    return None


def _key_prefix(value: str) -> str | None:
    if _PREFIX_RE.match(value):
        return None
    return "expected letters, digits and _ . : - (no braces: the key's hash tag comes after the prefix)"


def _cluster_node(value: str) -> str | None:
    try:
        _host_port(value, 6379)
    except ValueError as exc:
        return str(exc)
    return None


def _check_cluster(
    t: Table, url: str, sentinels: tuple[tuple[str, int], ...], cluster: tuple[tuple[str, int], ...]
) -> None:
    """A cluster is named once (URL or list), and never together with Sentinel."""
    if cluster and url.startswith(CLUSTER_SCHEME):
        raise t.error("cluster_nodes", f"give the cluster nodes either here or in {t.key_path('url')}, not both")
    if (cluster or url.startswith(CLUSTER_SCHEME)) and (sentinels or url.startswith(SENTINEL_SCHEME)):
        raise t.error("cluster_nodes", "Redis Cluster and Redis Sentinel exclude each other: name one")
    if cluster and url and not url.startswith(("redis://", "rediss://")):
        raise t.error("url", "with redis.cluster_nodes, url may only carry the password (redis://:pw@/)")
    if (cluster or url.startswith(CLUSTER_SCHEME)) and t.get_int("wait_replicas", 0, minimum=0, maximum=16):
        # WAIT covers its own connection's writes; a cluster spreads the journal's over masters
        raise t.error("wait_replicas", "not available with Redis Cluster (WAIT confirms one master's writes only)")


def parse_redis(t: Table) -> RedisConfig:
    d = RedisConfig()
    url = t.get_str("url", d.url, non_empty=False, check=_redis_url)
    sentinels = tuple(
        _host_port(s, 26379) for s in t.get_str_list("sentinels", (), check=_sentinel_address)
    )
    if sentinels and url.startswith(SENTINEL_SCHEME):
        raise t.error("sentinels", f"give the sentinels either here or in {t.key_path('url')}, not both")
    service = t.get_str("sentinel_service", d.sentinel_service, check=_name)
    cluster = tuple(_host_port(s, 6379) for s in t.get_str_list("cluster_nodes", (), check=_cluster_node))
    _check_cluster(t, url, sentinels, cluster)
    if sentinels and url and not url.startswith(("redis://", "rediss://")):
        raise t.error("url", "with redis.sentinels, url may only carry the password and database (redis://:pw@/0)")
    connect = t.get_float("connect_timeout_s", d.connect_timeout_s, positive=True, maximum=300)
    return RedisConfig(
        url=url,
        key_prefix=t.get_str("key_prefix", d.key_prefix, check=_key_prefix),
        sentinels=sentinels,
        sentinel_service=service,
        cluster_nodes=cluster,
        max_connections=t.get_int("max_connections", d.max_connections, minimum=2, maximum=10_000),
        pool_timeout_s=t.get_float("pool_timeout_s", d.pool_timeout_s, positive=True, maximum=300),
        connect_timeout_s=connect,
        socket_timeout_s=t.get_float("socket_timeout_s", d.socket_timeout_s, positive=True, maximum=300),
        health_check_interval_s=t.get_float(
            "health_check_interval_s", d.health_check_interval_s, minimum=0, maximum=3600
        ),
        startup_retry_max_s=t.get_float("startup_retry_max_s", d.startup_retry_max_s, positive=True, maximum=3600),
        wait_replicas=t.get_int("wait_replicas", d.wait_replicas, minimum=0, maximum=16),
    )


# -- [state] -------------------------------------------------------------------


@dataclass(frozen=True)
class StateConfig:
    """``[state]``: the daemon's own durable folder (the journal, reserved reference blocks).

    An empty ``folder`` keeps both in memory only: fine for tests and the
    demo, refused by ``shenava run``.
    """

    folder: str = ""
    reference_secret: str = field(default="", repr=False)
    """The per-site key of the reference permutation; "" = made once and shared through Redis."""
    reference_block: int = 5000
    """References reserved from Redis at a time (two blocks are kept in hand)."""
    journal_max_bytes: int = 1024 * 1024 * 1024

    @property
    def durable(self) -> bool:
        return bool(self.folder)


def parse_state(t: Table) -> StateConfig:
    d = StateConfig()
    folder = t.get_str("folder", d.folder, non_empty=False)
    if folder and t.base_dir is not None and not Path(folder).is_absolute():
        folder = str(t.base_dir / folder)
    secret = t.get_secret("reference_secret", "reference_secret_file", required=False)
    if secret and len(secret) < 16:
        raise t.error(
            "reference_secret_file" if t.has("reference_secret_file") else "reference_secret",
            "must be at least 16 characters (it keys the reference permutation)",
        )
    return StateConfig(
        folder=folder,
        reference_secret=secret,
        reference_block=t.get_int("reference_block", d.reference_block, minimum=10, maximum=100_000),
        journal_max_bytes=t.get_int("journal_max_bytes", d.journal_max_bytes, minimum=1024 * 1024),
    )


# -- [site] --------------------------------------------------------------------


@dataclass(frozen=True)
class SiteConfig:
    """The call centre itself: its name, clock, languages and dialplan contexts."""

    name: str = "Shenava"
    id: str = ""
    """This daemon's site among several sharing one Redis ("" = the default, single site)."""
    timezone: str = "UTC"
    languages: tuple[str, ...] = ("fa", "en")
    support_context: str = "shenava-complaints"
    connect_context: str = "shenava-connect"
    callback_context: str = "shenava-callback"
    """Where a callback's agent leg is sent to dial the customer (``[shenava-callback]``)."""

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _timezone(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "expected an IANA time zone such as \"Asia/Tehran\" or \"UTC\""
    return None


def parse_site(t: Table) -> SiteConfig:
    d = SiteConfig()
    return SiteConfig(
        name=t.get_str("name", d.name),
        id=t.get_str("id", d.id, non_empty=False, check=check_site_id),
        timezone=t.get_str("timezone", d.timezone, check=_timezone),
        languages=t.get_str_list("languages", d.languages, non_empty=True, allowed=SUPPORTED_LANGUAGES),
        support_context=t.get_str("support_context", d.support_context, check=_context),
        connect_context=t.get_str("connect_context", d.connect_context, check=_context),
        callback_context=t.get_str("callback_context", d.callback_context, check=_context),
    )


# -- [http] --------------------------------------------------------------------


@dataclass(frozen=True)
class HttpConfig:
    """The wallboard, agent desk, JSON API and /metrics listener (docs/security.md)."""

    bind: str = "127.0.0.1"
    port: int = 8080
    auth: str = "sign-in"
    """``sign-in`` (the daemon's own users and sessions) or ``proxy`` (a trusted reverse
    proxy vouches for people; sign-in still works beside it)."""
    users_file: str = ""
    """The users' JSON file; empty: the Redis hash ``{key_prefix}:users``."""
    proxy_addresses: tuple[str, ...] = ()
    proxy_secret: str = field(default="", repr=False)
    cookie_secure: str = "auto"
    session_idle_s: float = 1800.0
    session_max_s: float = 43200.0
    lockout_failures: int = 5
    lockout_address_failures: int = 20
    lockout_s: float = 900.0
    metrics_token: str = field(default="", repr=False)
    metrics_supervisors: bool = True
    audit_file: str = ""
    max_body_bytes: int = 64 * 1024
    max_header_bytes: int = 16 * 1024
    max_headers: int = 64
    idle_timeout_s: float = 60.0
    request_timeout_s: float = 20.0
    max_connections: int = 512
    max_connections_per_address: int = 32
    """Connections from one address that have not shown a sign-in yet."""
    max_connections_per_session: int = 16
    """Connections let in with one sign-in (pages, their live figures, requests)."""


HTTP_AUTH = ("sign-in", "proxy")
COOKIE_SECURE = ("auto", "always", "never")


def _path_under(base: Path | None, value: str) -> str:
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path)


def parse_http(t: Table) -> HttpConfig:
    d = HttpConfig()
    auth = t.get_choice("auth", HTTP_AUTH, d.auth)
    proxies = t.get_str_list("proxy_addresses", d.proxy_addresses, check=_ip_address)
    secret = t.get_secret("proxy_secret", "proxy_secret_file", required=False)
    if auth == "proxy" and not proxies:
        raise t.error("proxy_addresses", "auth = \"proxy\" needs the proxy's addresses")
    if auth == "proxy" and len(secret) < 16:
        raise t.error("proxy_secret_file", "auth = \"proxy\" needs a shared secret of 16 characters or more")
    users_file = t.get_str("users_file", d.users_file, non_empty=False)
    audit_file = t.get_str("audit_file", d.audit_file, non_empty=False)
    return HttpConfig(
        bind=t.get_str("bind", d.bind, check=_ip_address),
        port=t.get_int("port", d.port, minimum=1, maximum=65535),
        auth=auth,
        users_file=_path_under(t.base_dir, users_file) if users_file else "",
        proxy_addresses=tuple(proxies),
        proxy_secret=secret,
        cookie_secure=t.get_choice("cookie_secure", COOKIE_SECURE, d.cookie_secure),
        session_idle_s=t.get_float("session_idle_s", d.session_idle_s, minimum=60.0),
        session_max_s=t.get_float("session_max_s", d.session_max_s, minimum=60.0),
        lockout_failures=t.get_int("lockout_failures", d.lockout_failures, minimum=1),
        lockout_address_failures=t.get_int("lockout_address_failures", d.lockout_address_failures, minimum=1),
        lockout_s=t.get_float("lockout_s", d.lockout_s, minimum=1.0),
        metrics_token=t.get_secret("metrics_token", "metrics_token_file", required=False),
        metrics_supervisors=t.get_bool("metrics_supervisors", d.metrics_supervisors),
        audit_file=_path_under(t.base_dir, audit_file) if audit_file else "",
        max_body_bytes=t.get_int("max_body_bytes", d.max_body_bytes, minimum=1024),
        max_header_bytes=t.get_int("max_header_bytes", d.max_header_bytes, minimum=1024),
        max_headers=t.get_int("max_headers", d.max_headers, minimum=8),
        idle_timeout_s=t.get_float("idle_timeout_s", d.idle_timeout_s, minimum=1.0),
        request_timeout_s=t.get_float("request_timeout_s", d.request_timeout_s, minimum=1.0),
        max_connections=t.get_int("max_connections", d.max_connections, minimum=1),
        max_connections_per_address=t.get_int(
            "max_connections_per_address", d.max_connections_per_address, minimum=1
        ),
        max_connections_per_session=t.get_int(
            "max_connections_per_session", d.max_connections_per_session, minimum=2
        ),
    )


# -- [log] ---------------------------------------------------------------------


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"


def parse_log(t: Table) -> LogConfig:
    return LogConfig(level=t.get_choice("level", LOG_LEVELS, LogConfig().level))


# -- [daemon] -------------------------------------------------------------------


@dataclass(frozen=True)
class DaemonConfig:
    """How ``shenava run`` stops, and how two daemons share one Asterisk."""

    stop_timeout_s: float = 10.0
    """SIGTERM ends the process within this bound, whatever Redis and AMI do."""
    lease_s: float = 3.0
    """The leader lease: a standby takes over at most this long after the leader dies."""
    leader_lease: bool = True
    """False: a daemon alone, always serving (no lease, so no standby may run beside it)."""


def parse_daemon(t: Table) -> DaemonConfig:
    d = DaemonConfig()
    return DaemonConfig(
        stop_timeout_s=t.get_float("stop_timeout_s", d.stop_timeout_s, minimum=1.0, maximum=300.0),
        lease_s=t.get_float("lease_s", d.lease_s, minimum=1.0, maximum=60.0),
        leader_lease=t.get_bool("leader_lease", d.leader_lease),
    )


# -- [metrics] -----------------------------------------------------------------


@dataclass(frozen=True)
class MetricsConfig:
    """``/metrics``: what Prometheus gets."""

    per_agent: bool = False
    """Series labelled by agent id (occupancy, time since a break, calls answered).
    Off by default: they name people, and each agent adds series."""


def parse_metrics(t: Table) -> MetricsConfig:
    return MetricsConfig(per_agent=t.get_bool("per_agent", MetricsConfig().per_agent))


# -- [[agents]] ----------------------------------------------------------------


@dataclass(frozen=True)
class AgentConfig:
    """An agent the daemon may route calls to."""

    id: str
    name: str
    endpoint: str
    """The Asterisk device dialled for this agent, e.g. ``PJSIP/101``."""
    languages: tuple[str, ...]
    skills: tuple[str, ...] = ()
    experienced: bool = False


def _endpoint(value: str) -> str | None:
    return None if _ENDPOINT_RE.match(value) else "expected TECH/resource, e.g. \"PJSIP/101\""


def parse_agent(t: Table) -> AgentConfig:
    return AgentConfig(
        id=t.get_str("id", check=_name),
        name=t.get_str("name"),
        endpoint=t.get_str("endpoint", check=_endpoint),
        languages=t.get_str_list("languages", non_empty=True, allowed=SUPPORTED_LANGUAGES),
        skills=t.get_str_list("skills", (), check=_name),
        experienced=t.get_bool("experienced", False),
    )


def parse_agents(root: Table, site: SiteConfig) -> tuple[AgentConfig, ...]:
    agents: list[AgentConfig] = []
    first_with: dict[tuple[str, str], str] = {}
    for table in root.get_table_list("agents"):
        agent = parse_agent(table)
        table.finish()
        for key, value in (("id", agent.id), ("endpoint", agent.endpoint)):
            other = first_with.setdefault((key, value), table.path)
            if other != table.path:
                raise table.error(key, f"duplicate {show(value)} (also {other})")
        for index, language in enumerate(agent.languages):
            if language not in site.languages:
                raise ConfigError(
                    f"{table.key_path('languages')}[{index}]",
                    f"{show(language)} is not one of site.languages ({', '.join(site.languages)})",
                )
        agents.append(agent)
    return tuple(agents)


# -- package validation, as key paths --------------------------------------------


def _build(t: Table, make: Callable[[], T]) -> T:
    """Build a package's config object, its own validation errors as :class:`ConfigError`.

    The getters have checked each value's type and range already; what remains
    are the package's rules across fields (``window_s`` at least ``slot_s``...).
    ``key`` of an agent_stats or scoring error is relative to ``t``; callback and
    complaint errors name their full path already.
    """
    try:
        return make()
    except InvalidConfigError as exc:
        raise _package_error(t.key_path(exc.key), str(exc), exc.key) from None
    except InvalidScoringConfigError as exc:
        raise ConfigError(t.key_path(exc.key), exc.problem) from None
    except CallbackConfigError as exc:
        raise ConfigError(exc.key, exc.problem) from None
    except InvalidComplaintError as exc:
        raise ConfigError(exc.field, exc.problem) from None


def _package_error(path: str, text: str, key: str) -> ConfigError:
    prefix = f"{key}: "
    return ConfigError(path, text[len(prefix):] if text.startswith(prefix) else text)


def _optional_float(
    t: Table, key: str, default: float | None, *, none_word: str, positive: bool = False
) -> float | None:
    """A number, or the string ``none_word`` for None (TOML has no null)."""
    if t.data.get(key) == none_word:
        t.get_str(key)  # marks the key as read
        return None
    if not t.has(key):
        return default
    try:
        return t.get_float(key, positive=positive)
    except ConfigError as exc:
        raise ConfigError(exc.path, exc.reason.replace("expected ", f"expected {show(none_word)} or ", 1)) from None


def _optional_int(t: Table, key: str, *, minimum: int, maximum: int) -> int | None:
    """An integer, or None when the key is absent."""
    return t.get_int(key, minimum=minimum, maximum=maximum) if t.has(key) else None


# -- [sla] ----------------------------------------------------------------------


def utc_offset_s(timezone: str, at: datetime | None = None) -> float:
    """The zone's offset from UTC in seconds, now (or ``at``): aligns SLA days to local midnight.

    A fixed offset is what :class:`~agent_stats.sla.SLAConfig` takes. In a zone
    with daylight saving time, days are aligned with the offset in force when
    the daemon started, until it restarts (15-minute intervals stay aligned:
    every zone's offset is a whole number of quarter hours).
    """
    tz = ZoneInfo(timezone)
    offset = (at.astimezone(tz) if at is not None else datetime.now(tz)).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def parse_sla(t: Table, site: SiteConfig) -> SLAConfig:
    """``[sla]``; ``utc_offset_s`` is not a key, it comes from ``site.timezone``."""
    d = SLAConfig()
    threshold = t.get_float("threshold_s", d.threshold_s, minimum=0, maximum=3600)
    servicelevel = _optional_int(t, "app_queue_servicelevel_s", minimum=0, maximum=3600)
    return _build(t, lambda: SLAConfig(
        threshold_s=threshold,
        short_abandon_s=t.get_float("short_abandon_s", d.short_abandon_s, minimum=0, maximum=3600),
        clock_start=ClockStart(t.get_choice("clock_start", [c.value for c in ClockStart], d.clock_start.value)),
        choice_counting=ChoiceCounting(
            t.get_choice("choice_counting", [c.value for c in ChoiceCounting], d.choice_counting.value)
        ),
        target=t.get_float("target", d.target, minimum=0, maximum=1),
        window_s=t.get_float("window_s", d.window_s, positive=True, maximum=86400),
        slot_s=t.get_float("slot_s", d.slot_s, positive=True, maximum=86400),
        interval_s=t.get_float("interval_s", d.interval_s, positive=True, maximum=86400),
        utc_offset_s=utc_offset_s(site.timezone),
        app_queue_servicelevel_s=None if servicelevel is None else float(servicelevel),
    ))


# -- [breaks] -------------------------------------------------------------------

_REASONS = [r.value for r in NotReadyReason]


def parse_breaks(t: Table) -> BreakConfig:
    d = BreakConfig()

    def reasons(key: str, default: frozenset[NotReadyReason]) -> frozenset[NotReadyReason]:
        names = t.get_str_list(key, sorted(r.value for r in default), allowed=_REASONS)
        return frozenset(NotReadyReason(n) for n in names)

    return _build(t, lambda: BreakConfig(
        earn_per_hour_s=t.get_float("earn_per_hour_s", d.earn_per_hour_s, minimum=0, maximum=3600),
        personal_exempt_s=t.get_float("personal_exempt_s", d.personal_exempt_s, minimum=0, maximum=86400),
        max_wait_s=t.get_float("max_wait_s", d.max_wait_s, minimum=0, maximum=86400),
        counted_reasons=reasons("counted_reasons", d.counted_reasons),
        queued_reasons=reasons("queued_reasons", d.queued_reasons),
        headroom_target=t.get_float("headroom_target", d.headroom_target, minimum=0, maximum=1),
        min_staffed=t.get_int("min_staffed", d.min_staffed, minimum=0, maximum=10000),
    ))


# -- [wellbeing] ----------------------------------------------------------------


def parse_wellbeing(t: Table) -> WellbeingConfig:
    d = WellbeingConfig()
    return _build(t, lambda: WellbeingConfig(
        max_without_break_s=t.get_float("max_without_break_s", d.max_without_break_s, minimum=0, maximum=86400),
        min_rest_s=t.get_float("min_rest_s", d.min_rest_s, minimum=0, maximum=86400),
        occupancy_window_s=t.get_float("occupancy_window_s", d.occupancy_window_s, positive=True, maximum=86400),
        occupancy_limit=t.get_float("occupancy_limit", d.occupancy_limit, minimum=0, maximum=1),
        occupancy_min_staffed_s=t.get_float(
            "occupancy_min_staffed_s", d.occupancy_min_staffed_s, minimum=0, maximum=86400
        ),
        hard_calls_limit=t.get_int("hard_calls_limit", d.hard_calls_limit, minimum=1, maximum=1000),
        hard_calls_window_s=t.get_float("hard_calls_window_s", d.hard_calls_window_s, positive=True, maximum=86400),
        long_call_s=t.get_float("long_call_s", d.long_call_s, positive=True, maximum=86400),
        consecutive_calls_limit=_optional_int(t, "consecutive_calls_limit", minimum=1, maximum=1000),
    ))


# -- [complaints] and [abuse] -----------------------------------------------------


def parse_abuse(t: Table) -> AbusePolicy:
    d = AbusePolicy()
    return _build(t, lambda: AbusePolicy(
        route_to_experienced=t.get_bool("route_to_experienced", d.route_to_experienced),
        flag_window_s=_optional_float(t, "flag_window_s", d.flag_window_s, none_word="forever", positive=True),
        recovery_s=t.get_float("recovery_s", d.recovery_s, positive=True, maximum=86400),
    ))


def parse_complaints(t: Table, abuse: AbusePolicy) -> RegisterPolicy:
    d = RegisterPolicy()
    return _build(t, lambda: RegisterPolicy(
        repeat_window_s=t.get_float("repeat_window_s", d.repeat_window_s, positive=True),
        unresolved_callback_s=t.get_float("unresolved_callback_s", d.unresolved_callback_s, positive=True),
        retention_s=t.get_float("retention_s", d.retention_s, positive=True),
        abuse=abuse,
    ))


# -- [callbacks] ----------------------------------------------------------------

DEFAULT_CALLING_WINDOWS: Mapping[str, tuple[str, ...]] = {"daily": ("08:00-21:00",)}
"""When ``callbacks.calling_hours.windows`` is not given: every day 08:00-21:00, site time."""


def default_calling_hours(timezone: str = "UTC") -> CallingHours:
    return CallingHours.from_mapping(
        {"timezone": timezone, "windows": {k: list(v) for k, v in DEFAULT_CALLING_WINDOWS.items()}}
    )


@dataclass(frozen=True)
class CallbacksConfig:
    """``[callbacks]``: how callbacks are dialled, when customers may be called, how long kept."""

    policy: DialPolicy = field(default_factory=DialPolicy)
    hours: CallingHours = field(default_factory=default_calling_hours)
    retention_s: float = RegisterPolicy().retention_s
    """A closed callback flag's transcripts are purged this long after closing."""


def parse_calling_hours(t: Table, site: SiteConfig) -> CallingHours:
    timezone = t.get_str("timezone", site.timezone, check=_timezone)
    windows: dict[str, list[str]] = {k: list(v) for k, v in DEFAULT_CALLING_WINDOWS.items()}
    if t.has("windows"):
        w = t.get_table("windows")
        for day in w.data:
            if day not in (*WEEKDAYS, "daily"):
                raise w.error(day, f"unknown day (expected {', '.join(WEEKDAYS)} or daily)")
        windows = {day: list(w.get_str_list(day)) for day in w.data}
        w.finish()
    return _build(t, lambda: CallingHours.from_mapping({"timezone": timezone, "windows": windows}, t.path))


def parse_callbacks(t: Table, site: SiteConfig, complaints: RegisterPolicy) -> CallbacksConfig:
    d = DialPolicy()
    backoff = t.get_float_list("backoff_s", d.backoff_s, non_empty=True, minimum=0, maximum=7 * 86400 - 1)
    policy = _build(t, lambda: DialPolicy(
        max_attempts=t.get_int("max_attempts", d.max_attempts, minimum=1, maximum=100),
        backoff_s=backoff,
        short_abandon_s=t.get_float("short_abandon_s", d.short_abandon_s, minimum=0, maximum=3600),
        abandon_delay_s=t.get_float("abandon_delay_s", d.abandon_delay_s, minimum=0, maximum=86400),
        min_free_agents=t.get_int("min_free_agents", d.min_free_agents, minimum=1, maximum=10000),
        max_waiting_calls=t.get_int("max_waiting_calls", d.max_waiting_calls, minimum=0, maximum=100000),
        min_service_level=t.get_float("min_service_level", d.min_service_level, minimum=0, maximum=1),
        lease_ms=t.get_int("lease_ms", d.lease_ms, minimum=1000, maximum=86400 * 1000),
    ))
    return CallbacksConfig(
        policy=policy,
        hours=t.section("calling_hours", lambda h: parse_calling_hours(h, site)),
        retention_s=t.get_float("retention_s", complaints.retention_s, positive=True),
    )


# -- [routing] ------------------------------------------------------------------

_MUSIC_CLASS_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_NO_ANSWER = {"missed": NotReadyReason.MISSED, "technical": NotReadyReason.TECHNICAL, "none": None}


@dataclass(frozen=True)
class RoutingConfig:
    """``[routing]``: connecting callers to agents, the priority score, agent selection."""

    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)


def _music_class(value: str) -> str | None:
    return None if _MUSIC_CLASS_RE.match(value) else "expected a musiconhold.conf class (letters, digits, _ or -)"


def parse_hold(t: Table) -> HoldConfig:
    d = HoldConfig()
    return HoldConfig(
        music_class=t.get_str("music_class", d.music_class, check=_music_class),
        announce_every_s=t.get_float("announce_every_s", d.announce_every_s, minimum=5, maximum=3600),
        offer_options=t.get_bool("offer_options", d.offer_options),
        announce_position=t.get_bool("announce_position", d.announce_position),
    )


def _points(t: Table, keys: Callable[[str], str | None]) -> dict[str, float]:
    points: dict[str, float] = {}
    for key in t.data:
        reason = keys(key)
        if reason is not None:
            raise t.error(key, reason)
        points[key] = t.get_float(key, minimum=-1e6, maximum=1e6)
    return points


def parse_scoring(t: Table) -> ScoringConfig:
    d = ScoringConfig()
    urgencies = [u.value for u in Urgency]

    def category(key: str) -> str | None:
        return _name(key) and "expected a category name (letters, digits, '_' or '-') as the key"

    def urgency(key: str) -> str | None:
        return None if key in urgencies else f"unknown urgency (expected {', '.join(urgencies)})"

    category_points = dict(d.category_points)
    if t.has("category_points"):
        category_points |= t.section("category_points", lambda c: _points(c, category))
    urgency_points = {u.value: p for u, p in d.urgency_points.items()}
    if t.has("urgency_points"):
        urgency_points |= t.section("urgency_points", lambda u: _points(u, urgency))

    def weight(key: str, default: float) -> float:
        return t.get_float(key, default, minimum=-1e6, maximum=1e6)

    return _build(t, lambda: ScoringConfig(
        category_points=category_points,
        unknown_category_points=weight("unknown_category_points", d.unknown_category_points),
        urgency_points={Urgency(k): v for k, v in urgency_points.items()},
        vulnerable_points=weight("vulnerable_points", d.vulnerable_points),
        open_complaint_points=weight("open_complaint_points", d.open_complaint_points),
        recent_call_points=weight("recent_call_points", d.recent_call_points),
        callback_flag_points=weight("callback_flag_points", d.callback_flag_points),
        transcript_urgency_points=weight("transcript_urgency_points", d.transcript_urgency_points),
        ageing_points_per_s=t.get_float("ageing_points_per_s", d.ageing_points_per_s, positive=True, maximum=1e6),
    ))


def parse_selection(t: Table, abuse: AbusePolicy) -> SelectionConfig:
    """``[routing.selection]``; whether abusive callers go to experienced agents is ``abuse.route_to_experienced``."""
    return SelectionConfig(
        spare_hard_in_a_row=t.get_bool("spare_hard_in_a_row", SelectionConfig().spare_hard_in_a_row),
        abusive_caller_prefers_experienced=abuse.route_to_experienced,
    )


def parse_routing(t: Table, abuse: AbusePolicy) -> RoutingConfig:
    d = DispatchConfig()
    default_no_answer = "none" if d.on_no_answer is None else d.on_no_answer.value
    dispatch = DispatchConfig(
        ring_timeout_s=t.get_float("ring_timeout_s", d.ring_timeout_s, minimum=5, maximum=300),
        wrap_up_s=t.get_float("wrap_up_s", d.wrap_up_s, minimum=0, maximum=3600),
        on_no_answer=_NO_ANSWER[t.get_choice("on_no_answer", list(_NO_ANSWER), default_no_answer)],
        caller_id=t.get_str("caller_id", d.caller_id),
        hold=t.section("hold", parse_hold),
    )
    return RoutingConfig(
        dispatch=dispatch,
        scoring=t.section("scoring", parse_scoring),
        selection=t.section("selection", lambda s: parse_selection(s, abuse)),
    )


# -- [ivr] ----------------------------------------------------------------------

_SOUND_FOLDER_RE = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


def _sound_folder(value: str) -> str | None:
    if _SOUND_FOLDER_RE.match(value):
        return None
    return "expected a folder under Asterisk's sounds/<lang>/ (letters, digits, _ - and /)"


@dataclass(frozen=True)
class IvrConfig:
    """``[ivr]``: the menu file (validated at load; ``menus`` is the result) and the prompts' folder."""

    menus_file: Path = field(default_factory=default_menu_file)
    sound_folder: str = "shenava"
    """Prompts are played as ``<sound_folder>/<prompt>`` from Asterisk's sounds/<lang>/."""
    menus: MenuBook = field(default_factory=load_menus, compare=False, repr=False)
    """The validated menus of ``menus_file``."""


def parse_ivr(t: Table) -> IvrConfig:
    key = "menus_file"
    if t.has(key):
        name = t.get_str(key)
        path = Path(name).expanduser()
        if not path.is_absolute():
            if t.base_dir is None:
                raise t.error(key, f"must be an absolute path, got {show(name)}")
            path = t.base_dir / path
    else:
        path = Path(t.get_str(key, str(default_menu_file())))
    try:
        menus = load_menus(path)
    except MenuFileError as exc:
        problems = "; ".join(exc.problems)
        raise t.error(key, f"{path}: {problems}") from None
    return IvrConfig(
        menus_file=path,
        sound_folder=t.get_str("sound_folder", "shenava", check=_sound_folder),
        menus=menus,
    )


# -- the whole file ------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """The validated configuration. Field names are the file's top-level keys."""

    ami: AmiConfig
    redis: RedisConfig = RedisConfig()
    state: StateConfig = StateConfig()
    site: SiteConfig = SiteConfig()
    http: HttpConfig = HttpConfig()
    log: LogConfig = LogConfig()
    metrics: MetricsConfig = MetricsConfig()
    agents: tuple[AgentConfig, ...] = ()
    sla: SLAConfig = field(default_factory=SLAConfig)
    breaks: BreakConfig = field(default_factory=BreakConfig)
    wellbeing: WellbeingConfig = field(default_factory=WellbeingConfig)
    recordings: RecordingsConfig = field(default_factory=RecordingsConfig)
    complaints: RegisterPolicy = field(default_factory=RegisterPolicy)
    """``[complaints]``, with ``[abuse]`` as ``complaints.abuse``."""
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    ivr: IvrConfig = field(default_factory=IvrConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    source: Path | None = field(default=None, compare=False)
    """The file this came from, if any (not a key of the file)."""

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, object], *, base_dir: Path | None = None, source: Path | None = None
    ) -> Config:
        """Validate parsed TOML. ``base_dir`` resolves relative paths (``secret_file``, ``menus_file``)."""
        root = Table(data, "", base_dir)
        ami = root.section("ami", parse_ami)
        redis = root.section("redis", parse_redis)
        site = root.section("site", parse_site)
        abuse = root.section("abuse", parse_abuse)  # [abuse] is complaints.abuse, not a field
        complaints = root.section("complaints", lambda t: parse_complaints(t, abuse))
        config = cls(
            ami=ami,
            redis=redis,
            state=root.section("state", parse_state),
            site=site,
            http=root.section("http", parse_http),
            log=root.section("log", parse_log),
            metrics=root.section("metrics", parse_metrics),
            agents=parse_agents(root, site),
            sla=root.section("sla", lambda t: parse_sla(t, site)),
            breaks=root.section("breaks", parse_breaks),
            wellbeing=root.section("wellbeing", parse_wellbeing),
            recordings=root.section("recordings", parse_recordings),
            complaints=complaints,
            callbacks=root.section("callbacks", lambda t: parse_callbacks(t, site, complaints)),
            routing=root.section("routing", lambda t: parse_routing(t, abuse)),
            ivr=root.section("ivr", parse_ivr),
            daemon=root.section("daemon", parse_daemon),
            source=source,
        )
        unparsed = {f.name for f in fields(cls)} - root.read_keys - {"source"}
        assert not unparsed, f"Config fields without a parser: {sorted(unparsed)}"
        root.finish()
        return config

    def require_external_redis(self) -> None:
        """Refuse the embedded redis-server outside the demo (``shenava run``)."""
        if self.redis.embedded:
            raise ConfigError(
                "redis.url",
                "missing: an empty URL starts an embedded redis-server, which only "
                "`shenava demo` allows; set redis.url to the operator's Redis",
            )


def parse_toml(text: str, *, source: str = "<config>") -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from None


def load_config(path: str | Path) -> Config:
    """Read and validate the config file; any problem is a :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(str(path), f"cannot read the config file: {reason}") from None
    data = parse_toml(text, source=str(path))
    return Config.from_mapping(data, base_dir=path.resolve().parent, source=path)


DEMO_CONFIG_TOML = """\
# The embedded demo configuration: the test PBX on loopback, an embedded
# redis-server (url = ""), four agents. `shenava demo` uses it unless -c is given.
[ami]
host = "127.0.0.1"
port = 5038
username = "shenava"
secret = "s3cret"

[redis]
url = ""

[site]
name = "Shenava demo"
timezone = "Asia/Tehran"
languages = ["fa", "en"]

[http]
bind = "127.0.0.1"
port = 8080

[routing]
wrap_up_s = 5.0              # short, so the demo's agents take calls again quickly

[routing.hold]
announce_every_s = 30.0

[callbacks.calling_hours]
# Demo: callbacks may be dialled at any hour, so the demo shows them whenever it runs.
windows = { daily = ["00:00-24:00"] }

[[agents]]
id = "a1"
name = "Maryam"
endpoint = "PJSIP/101"
languages = ["fa", "en"]
skills = ["billing", "service"]
experienced = true

[[agents]]
id = "a2"
name = "Reza"
endpoint = "PJSIP/102"
languages = ["fa"]
skills = ["billing"]

[[agents]]
id = "a3"
name = "Sara"
endpoint = "PJSIP/103"
languages = ["fa", "en"]
skills = ["service", "technical"]

[[agents]]
id = "a4"
name = "Hamid"
endpoint = "PJSIP/104"
languages = ["fa"]
skills = ["technical"]
experienced = true
"""


def default_config() -> Config:
    """The embedded demo configuration (a fresh object on each call)."""
    return Config.from_mapping(parse_toml(DEMO_CONFIG_TOML, source="<demo config>"))


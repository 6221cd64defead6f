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

The known top-level keys are the fields of :class:`Config`, so a section nobody
parses is reported as unknown, never silently dropped.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shenava.config_table import ConfigError, Table, show

__all__ = [
    "AgentConfig",
    "AmiConfig",
    "Config",
    "ConfigError",
    "HttpConfig",
    "LogConfig",
    "RedisConfig",
    "SiteConfig",
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
        secret_from=t.key_path("secret_file" if t.has("secret_file") else "secret"),
    )


# -- [redis] -------------------------------------------------------------------


@dataclass(frozen=True)
class RedisConfig:
    """Where state lives. An empty ``url`` means "start an embedded redis-server" (demo only)."""

    url: str = field(default="", repr=False)  # may carry a password
    key_prefix: str = "shenava"

    @property
    def embedded(self) -> bool:
        return not self.url


def _redis_url(value: str) -> str | None:
    if value == "" or value.startswith(("redis://", "rediss://", "unix://")):
        return None
    return "expected a redis://, rediss:// or unix:// URL, or \"\" for an embedded server (demo only)"


def _key_prefix(value: str) -> str | None:
    if _PREFIX_RE.match(value):
        return None
    return "expected letters, digits and _ . : - (no braces: the key's hash tag comes after the prefix)"


def parse_redis(t: Table) -> RedisConfig:
    d = RedisConfig()
    return RedisConfig(
        url=t.get_str("url", d.url, non_empty=False, check=_redis_url),
        key_prefix=t.get_str("key_prefix", d.key_prefix, check=_key_prefix),
    )


# -- [site] --------------------------------------------------------------------


@dataclass(frozen=True)
class SiteConfig:
    """The call centre itself: its name, clock, languages and dialplan contexts."""

    name: str = "Shenava"
    timezone: str = "UTC"
    languages: tuple[str, ...] = ("fa", "en")
    support_context: str = "shenava-complaints"
    connect_context: str = "shenava-connect"

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
        timezone=t.get_str("timezone", d.timezone, check=_timezone),
        languages=t.get_str_list("languages", d.languages, non_empty=True, allowed=SUPPORTED_LANGUAGES),
        support_context=t.get_str("support_context", d.support_context, check=_context),
        connect_context=t.get_str("connect_context", d.connect_context, check=_context),
    )


# -- [http] --------------------------------------------------------------------


@dataclass(frozen=True)
class HttpConfig:
    """The wallboard, agent desktop and /metrics listener."""

    bind: str = "127.0.0.1"
    port: int = 8080


def parse_http(t: Table) -> HttpConfig:
    d = HttpConfig()
    return HttpConfig(
        bind=t.get_str("bind", d.bind, check=_ip_address),
        port=t.get_int("port", d.port, minimum=1, maximum=65535),
    )


# -- [log] ---------------------------------------------------------------------


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"


def parse_log(t: Table) -> LogConfig:
    return LogConfig(level=t.get_choice("level", LOG_LEVELS, LogConfig().level))


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


# -- the whole file ------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """The validated configuration. Field names are the file's top-level keys."""

    ami: AmiConfig
    redis: RedisConfig = RedisConfig()
    site: SiteConfig = SiteConfig()
    http: HttpConfig = HttpConfig()
    log: LogConfig = LogConfig()
    agents: tuple[AgentConfig, ...] = ()
    source: Path | None = field(default=None, compare=False)
    """The file this came from, if any (not a key of the file)."""

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, object], *, base_dir: Path | None = None, source: Path | None = None
    ) -> Config:
        """Validate parsed TOML. ``base_dir`` resolves relative ``secret_file`` paths."""
        root = Table(data, "", base_dir)
        site = root.section("site", parse_site)
        config = cls(
            ami=root.section("ami", parse_ami),
            redis=root.section("redis", parse_redis),
            site=site,
            http=root.section("http", parse_http),
            log=root.section("log", parse_log),
            agents=parse_agents(root, site),
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


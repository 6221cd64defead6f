"""The whole file: :class:`Config` (one field per top-level key), reading and validating it, the demo's config."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from agent_stats.breaks import BreakConfig
from agent_stats.sla import SLAConfig
from agent_stats.wellbeing import WellbeingConfig
from complaints.service import RegisterPolicy
from recordings.config import RecordingsConfig, parse_recordings
from shenava.config.agents import AgentConfig, parse_agents
from shenava.config.ami import AmiConfig, parse_ami
from shenava.config.breaks import parse_breaks
from shenava.config.callbacks import CallbacksConfig, parse_callbacks
from shenava.config.complaints import parse_abuse, parse_complaints
from shenava.config.daemon import DaemonConfig, parse_daemon
from shenava.config.http import HttpConfig, parse_http
from shenava.config.ivr import IvrConfig, parse_ivr
from shenava.config.log import LogConfig, parse_log
from shenava.config.metrics import MetricsConfig, parse_metrics
from shenava.config.redis import RedisConfig, parse_redis
from shenava.config.routing import RoutingConfig, parse_routing
from shenava.config.site import SiteConfig, parse_site
from shenava.config.sla import parse_sla
from shenava.config.state import StateConfig, parse_state
from shenava.config.wellbeing import parse_wellbeing
from shenava_base.config_table import ConfigError, Table


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

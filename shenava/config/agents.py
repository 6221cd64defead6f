"""``[[agents]]``: the agents the daemon knows, with their endpoints, languages and skills."""

from __future__ import annotations

from dataclasses import dataclass

from shenava.config.checks import _ENDPOINT_RE, SUPPORTED_LANGUAGES, _name
from shenava.config.site import SiteConfig
from shenava_base.config_table import ConfigError, Table, show


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

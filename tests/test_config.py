"""Config loading: typed sections, key paths in every error, secrets from files."""

from __future__ import annotations

import copy
import tomllib
from dataclasses import FrozenInstanceError, fields
from pathlib import Path
from typing import Any

import pytest

from shenava.config import (
    AgentConfig,
    AmiConfig,
    Config,
    ConfigError,
    default_config,
    load_config,
)

MINIMAL: dict[str, Any] = {"ami": {"secret": "s3cret"}}

VALID: dict[str, Any] = {
    "ami": {"host": "10.0.0.5", "port": 5039, "username": "shen", "secret": "x", "auth": "plain",
            "action_timeout_s": 5, "keepalive_s": 15.5, "reconnect_initial_s": 0.5,
            "reconnect_max_s": 30, "max_message_bytes": 65536},
    "redis": {"url": "redis://127.0.0.1:6379/2", "key_prefix": "site1"},
    "site": {"name": "Call centre", "timezone": "Asia/Tehran", "languages": ["fa"],
             "support_context": "complaints", "connect_context": "connect"},
    "http": {"bind": "0.0.0.0", "port": 9000},
    "log": {"level": "debug"},
    "agents": [
        {"id": "a1", "name": "Maryam", "endpoint": "PJSIP/101", "languages": ["fa"],
         "skills": ["billing"], "experienced": True},
        {"id": "a2", "name": "Reza", "endpoint": "SIP/agent-2", "languages": ["fa"]},
    ],
}


def with_change(path: str, value: Any, base: dict[str, Any] = VALID) -> dict[str, Any]:
    """A copy of ``base`` with ``path`` (``ami.port``, ``agents.1.id``) set; ``...`` deletes."""
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is ...:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


def test_minimal_config_takes_every_default() -> None:
    config = Config.from_mapping(MINIMAL)
    assert config.ami == AmiConfig(secret="s3cret")
    assert config.ami.port == 5038 and config.ami.auth == "md5" and config.ami.username == "shenava"
    assert config.redis.url == "" and config.redis.embedded and config.redis.key_prefix == "shenava"
    assert config.site.languages == ("fa", "en")
    assert config.site.support_context == "shenava-complaints"
    assert config.site.connect_context == "shenava-connect"
    assert config.site.callback_context == "shenava-callback"
    assert config.http.port == 8080 and config.log.level == "info" and config.agents == ()


def test_full_config_is_typed_and_frozen() -> None:
    config = Config.from_mapping(VALID)
    assert config.ami.port == 5039 and config.ami.action_timeout_s == 5.0
    assert isinstance(config.ami.action_timeout_s, float)
    assert config.site.tzinfo.key == "Asia/Tehran"
    assert config.agents[0] == AgentConfig(
        id="a1", name="Maryam", endpoint="PJSIP/101", languages=("fa",), skills=("billing",), experienced=True
    )
    assert config.agents[1].skills == () and config.agents[1].experienced is False
    with pytest.raises(FrozenInstanceError):
        config.ami.port = 1  # type: ignore[misc]


def test_secrets_stay_out_of_repr() -> None:
    config = Config.from_mapping(with_change("redis.url", "redis://:pw@host:6379/0"))
    text = repr(config)
    assert "'x'" not in text and "secret='" not in text and "pw@" not in text


ERRORS = [
    # (key path to change, new value (... deletes), expected message)
    ("ami.port", "x", 'ami.port: expected an integer from 1 to 65535, got "x"'),
    ("ami.port", 0, "ami.port: expected an integer from 1 to 65535, got 0"),
    ("ami.port", 70000, "ami.port: expected an integer from 1 to 65535, got 70000"),
    ("ami.port", True, "ami.port: expected an integer from 1 to 65535, got true"),
    ("ami.port", 5038.0, "ami.port: expected an integer from 1 to 65535, got 5038.0"),
    ("ami.host", "", "ami.host: must not be empty"),
    ("ami.host", "bad host", 'ami.host: expected a host name or an IP address, got "bad host"'),
    ("ami.username", "a:b", "ami.username: expected a user name without ':'"),
    ("ami.username", "x\r\nAction: Originate", "ami.username: must not contain CR, LF or NUL"),
    ("ami.secret", ..., "ami.secret: missing (set ami.secret or ami.secret_file)"),
    ("ami.secret", 5, "ami.secret: expected a string, got an integer"),
    ("ami.secret", "", "ami.secret: the secret is empty"),
    ("ami.secret", "a\nb", "ami.secret: the secret must be one line"),
    ("ami.auth", "sha1", 'ami.auth: expected one of "md5", "plain", got "sha1"'),
    ("ami.action_timeout_s", 0, "ami.action_timeout_s: expected a number greater than 0"),
    ("ami.action_timeout_s", "10", 'ami.action_timeout_s: expected a number greater than 0 of at most 3600, got "10"'),
    ("ami.keepalive_s", float("nan"), "ami.keepalive_s: expected a number greater than 0"),
    ("ami.reconnect_max_s", 0.1, "ami.reconnect_max_s: must be at least ami.reconnect_initial_s (0.5), got 0.1"),
    ("ami.max_message_bytes", 10, "ami.max_message_bytes: expected an integer from 1024 to 67108864, got 10"),
    ("ami.prot", 5038, "ami.prot: unknown key (known keys: "),
    ("ami", "yes", 'ami: expected a table ([ami]), got "yes"'),
    ("redis.url", "http://x", "redis.url: expected a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL"),
    ("redis.url", "redis+sentinel://h:26379", "redis.url: a redis+sentinel:// URL needs the service name"),
    ("redis.url", "redis+sentinel://h:0/m", "redis.url: expected a port from 1 to 65535"),
    ("redis.sentinels", ["h:x"], 'redis.sentinels[0]: expected a port from 1 to 65535 in \'h:x\', got "h:x"'),
    ("redis.max_connections", 1, "redis.max_connections: expected an integer from 2 to 10000, got 1"),
    ("redis.pool_timeout_s", 0, "redis.pool_timeout_s: expected a number greater than 0"),
    ("redis.socket_timeout_s", "5", 'redis.socket_timeout_s: expected a number greater than 0 of at most 300, got "5"'),
    ("redis.health_check_interval_s", -1, "redis.health_check_interval_s: expected a number"),
    ("redis.pool_size", 4, "redis.pool_size: unknown key (known keys: "),
    ("state.reference_secret", "short", "state.reference_secret: must be at least 16 characters"),
    ("state.reference_block", 1, "state.reference_block: expected an integer from 10 to 100000, got 1"),
    ("redis.key_prefix", "a{b}", "redis.key_prefix: expected letters, digits and _ . : -"),
    ("redis.key_prefix", "", "redis.key_prefix: must not be empty"),
    ("site.timezone", "Tehran", 'site.timezone: expected an IANA time zone such as "Asia/Tehran" or "UTC", got "Tehran"'),
    ("site.timezone", "../../etc/passwd", "site.timezone: expected an IANA time zone"),
    ("site.languages", [], "site.languages: must not be empty"),
    ("site.languages", ["fa", "de"], 'site.languages[1]: expected one of "fa", "en", got "de"'),
    ("site.languages", ["fa", "fa"], 'site.languages[1]: duplicate "fa"'),
    ("site.languages", "fa", 'site.languages: expected an array of strings, got "fa"'),
    ("site.support_context", "my context", "site.support_context: expected an Asterisk context name"),
    ("http.bind", "example.com", 'http.bind: expected an IP address (or localhost), got "example.com"'),
    ("http.port", -1, "http.port: expected an integer from 1 to 65535, got -1"),
    ("log.level", "verbose", 'log.level: expected one of "debug", "info", "warn", "error", "critical", got "verbose"'),
    ("agents.1.endpoint", ..., "agents[1].endpoint: missing"),
    ("agents.0.id", ..., "agents[0].id: missing"),
    ("agents.0.id", "a 1", 'agents[0].id: expected letters, digits, \'_\' or \'-\', got "a 1"'),
    ("agents.1.id", "a1", 'agents[1].id: duplicate "a1" (also agents[0])'),
    ("agents.1.endpoint", "PJSIP/101", 'agents[1].endpoint: duplicate "PJSIP/101" (also agents[0])'),
    ("agents.1.endpoint", "101", 'agents[1].endpoint: expected TECH/resource, e.g. "PJSIP/101", got "101"'),
    ("agents.1.endpoint", "PJSIP/1&PJSIP/2", "agents[1].endpoint: expected TECH/resource"),
    ("agents.0.languages", ["en"], 'agents[0].languages[0]: "en" is not one of site.languages (fa)'),
    ("agents.0.languages", [], "agents[0].languages: must not be empty"),
    ("agents.0.experienced", "yes", 'agents[0].experienced: expected true or false, got "yes"'),
    ("agents.0.skills", ["ok", 3], "agents[0].skills[1]: expected a non-empty string, got 3"),
    ("agents.0.skil", ["x"], "agents[0].skil: unknown key"),
    ("agents.1", "a2", 'agents[1]: expected a table, got "a2"'),
    ("agents", {"id": "a1"}, "agents: expected an array of tables ([[agents]]), got a table"),
    ("slas", {"threshold_s": 20}, "slas: unknown key"),
]


@pytest.mark.parametrize(("path", "value", "message"), ERRORS, ids=[f"{p}={v!r}" for p, v, _ in ERRORS])
def test_errors_name_the_key_path(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_mapping(with_change(path, value))
    assert str(caught.value).startswith(message)
    assert caught.value.code == "config.invalid"
    assert caught.value.path == message.split(":", 1)[0]


def test_errors_never_echo_a_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_mapping(with_change("ami.secret", "hunter2\n"))
    assert "hunter2" not in str(caught.value)


# -- secret_file ---------------------------------------------------------------


def test_secret_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "ami.secret"
    secret.write_text("  from-a-file\n", encoding="utf-8")
    config = Config.from_mapping({"ami": {"secret_file": str(secret)}})
    assert config.ami.secret == "from-a-file"
    assert config.ami.secret_from == "ami.secret_file"


def test_relative_secret_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ami").write_text("rel\n", encoding="utf-8")
    path = tmp_path / "shenava.toml"
    path.write_text('[ami]\nsecret_file = "secrets/ami"\n', encoding="utf-8")
    assert load_config(path).ami.secret == "rel"


def test_relative_secret_file_without_a_config_file_is_refused() -> None:
    with pytest.raises(ConfigError, match='^ami.secret_file: must be an absolute path, got "secrets/ami"'):
        Config.from_mapping({"ami": {"secret_file": "secrets/ami"}})


def test_unreadable_secret_file_names_the_key_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as caught:
        Config.from_mapping({"ami": {"secret_file": str(missing)}})
    assert str(caught.value) == f"ami.secret_file: cannot read {missing}: No such file or directory"


def test_a_folder_as_secret_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^ami.secret_file: cannot read {tmp_path}"):
        Config.from_mapping({"ami": {"secret_file": str(tmp_path)}})


def test_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="^ami.secret_file: the secret is empty"):
        Config.from_mapping({"ami": {"secret_file": str(tmp_path / "s")}})


def test_secret_and_secret_file_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="^ami.secret_file: give either ami.secret or ami.secret_file, not both"):
        Config.from_mapping({"ami": {"secret": "x", "secret_file": str(tmp_path / "s")}})


# -- files ---------------------------------------------------------------------


def test_example_file_loads_and_documents_every_key(shipped_etc: Path) -> None:
    example = shipped_etc / "shenava.example.toml"
    config = load_config(example)
    assert config.source == example
    assert config.site.timezone == "Asia/Tehran" and len(config.agents) == 2
    assert not config.redis.embedded
    # every key of every section appears in the example (commented or set)
    text = example.read_text(encoding="utf-8")
    for section in (config.ami, config.redis, config.state, config.site, config.http, config.log, config.agents[0]):
        for f in fields(section):
            if f.name not in ("secret_from", "reference_secret"):
                assert f"{f.name} =" in text, f"{type(section).__name__}.{f.name} is not in the example"
    assert "secret_file =" in text


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[ami\nport = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"^{path}: not valid TOML: .*line 1"):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file: No such file"):
        load_config(tmp_path / "absent.toml")


def test_default_config_is_the_demo() -> None:
    config = default_config()
    assert config.redis.embedded
    assert {a.id for a in config.agents} == {"a1", "a2", "a3", "a4"}
    assert default_config() == config


def test_require_external_redis() -> None:
    with pytest.raises(ConfigError, match="^redis.url: missing: an empty URL starts an embedded"):
        default_config().require_external_redis()
    Config.from_mapping(VALID).require_external_redis()


def test_every_config_field_is_a_parsed_section() -> None:
    # the registry is Config's own fields: each must be read by from_mapping
    data = tomllib.loads('[ami]\nsecret = "x"\n')
    config = Config.from_mapping(data)
    assert {f.name for f in fields(config)} == {
        "ami", "redis", "state", "site", "http", "log", "metrics", "agents", "sla", "breaks", "wellbeing",
        "recordings", "complaints", "callbacks", "routing", "ivr", "daemon", "source",
    }
    with pytest.raises(ConfigError, match="^source: unknown key"):
        Config.from_mapping({**data, "source": "x"})

"""``[ami]``: its typed section and its parser."""

from __future__ import annotations

from dataclasses import dataclass, field

from shenava.config.checks import _host
from shenava_base.config_table import Table


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
    read_pace_ms: float = 0.0
    """After each read from Asterisk, reading pauses this long (0: never), so what
    arrives meanwhile is read and handled in one wake-up of the loop."""
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
        read_pace_ms=t.get_float("read_pace_ms", d.read_pace_ms, minimum=0, maximum=50),
        secret_from=t.key_path("secret_file" if t.has("secret_file") else "secret"),
    )

"""``[http]``: its typed section and its parser."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from shenava.config.checks import _ip_address
from shenava_base.config_table import Table


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
    allowed_hosts: tuple[str, ...] = ()
    """Names the pages may be reached by, besides IP addresses and ``localhost``
    (``.example.org``: that name and every name under it; ``*``: any name, no check)."""
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


_HOST_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST_RE = re.compile(rf"^\.?{_HOST_LABEL}(\.{_HOST_LABEL})*\.?$", re.IGNORECASE)


def _host(value: str) -> str | None:
    if value == "*" or (_HOST_RE.match(value) and len(value) <= 253) or _ip_address(value) is None:
        return None  # an IP address is answered anyway: listing one does no harm
    return ("expected a host name as the browser's address bar shows it (no scheme or port), "
            "\".name\" for every name under it, or \"*\" for any")


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
        allowed_hosts=t.get_str_list("allowed_hosts", d.allowed_hosts, check=_host),
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

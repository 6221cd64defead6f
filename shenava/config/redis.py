"""``[redis]``: its typed section and its parser."""

from __future__ import annotations

from dataclasses import dataclass, field

from shenava.config.checks import _PREFIX_RE, _host, _name
from shenava_base.config_table import Table


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
        return not self.url and not self.sentinels


SENTINEL_SCHEME = "redis+sentinel://"


def _redis_url(value: str) -> str | None:
    if value == "" or value.startswith(("redis://", "rediss://", "unix://")):
        return None
    if value.startswith(SENTINEL_SCHEME):
        try:
            parse_sentinel_url(value)
        except ValueError as exc:
            return str(exc)
        return None
    return (
        "expected a redis://, rediss://, unix:// or redis+sentinel:// URL, "
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


def parse_redis(t: Table) -> RedisConfig:
    d = RedisConfig()
    url = t.get_str("url", d.url, non_empty=False, check=_redis_url)
    sentinels = tuple(
        _host_port(s, 26379) for s in t.get_str_list("sentinels", (), check=_sentinel_address)
    )
    if sentinels and url.startswith(SENTINEL_SCHEME):
        raise t.error("sentinels", f"give the sentinels either here or in {t.key_path('url')}, not both")
    service = t.get_str("sentinel_service", d.sentinel_service, check=_name)
    if sentinels and url and not url.startswith(("redis://", "rediss://")):
        raise t.error("url", "with redis.sentinels, url may only carry the password and database (redis://:pw@/0)")
    connect = t.get_float("connect_timeout_s", d.connect_timeout_s, positive=True, maximum=300)
    return RedisConfig(
        url=url,
        key_prefix=t.get_str("key_prefix", d.key_prefix, check=_key_prefix),
        sentinels=sentinels,
        sentinel_service=service,
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

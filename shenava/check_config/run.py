"""The entry points: check the config, Redis and an Asterisk folder; the report and the exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from shenava.asterisk_conf import (
    AsteriskConf,
    AsteriskConfError,
    read_asterisk_conf,
)
from shenava.check_config.dialplan import check_dialplan
from shenava.check_config.findings import (
    CONFIG_INVALID,
    EXIT_CONFIG_INVALID,
    EXIT_ERRORS,
    EXIT_OK,
    Finding,
    Severity,
    _error,
    _ok,
    _warn,
)
from shenava.check_config.manager import PLACEHOLDER_SECRETS, check_manager
from shenava.check_config.sounds import check_sounds
from shenava.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from shenava.check_sites import CentreSite


def check_config(
    config_path: str | Path,
    asterisk_dir: str | Path | None = None,
    sounds_dir: str | Path | None = None,
    *,
    redis: bool = False,
) -> list[Finding]:
    """Every finding about the Shenava config and, if given, the Asterisk folder and sounds;
    with ``redis`` also the live Redis server's durability settings."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return [_error(CONFIG_INVALID, str(exc))]
    findings = [_ok("config.valid", f"{config_path}: valid ({len(config.agents)} agents)")]
    if config.redis.embedded:
        findings.append(_error(
            "config.redis_embedded",
            "redis.url is empty: only `shenava demo` starts an embedded redis-server; "
            "`shenava run` needs the operator's Redis",
        ))
    if not config.redis.embedded and not config.state.durable:
        findings.append(_warn(
            "config.state_folder",
            "state.folder is not set: records waiting for Redis (complaints, flags, voicemails, "
            "SL outcomes) would be kept in memory only and lost with the daemon; set it to a local "
            "folder owned by the daemon's user, e.g. /var/lib/shenava",
        ))
    if config.state.durable:
        from shenava.state_folder import state_folder_problem

        problem = state_folder_problem(Path(config.state.folder), create=False)
        if problem is not None:
            findings.append(_error(
                "state.folder_unusable",
                f"state.folder {config.state.folder!r} cannot hold the journal ({problem}): "
                "the daemon would not start; make it a local folder owned by the daemon's user",
            ))
    findings.extend(check_http_hosts(config))
    findings.extend(check_users(config, config_path))
    if config.ami.secret in PLACEHOLDER_SECRETS:
        findings.append(_warn("config.secret_placeholder", "ami secret is still the shipped placeholder"))
    if asterisk_dir is not None:
        findings.extend(check_asterisk_dir(config, Path(asterisk_dir)))
    if sounds_dir is not None:
        findings.extend(check_sounds(config, Path(sounds_dir)))
    from shenava.check_sites import check_sites

    findings.extend(check_sites(config, redis=redis))
    if redis and not config.redis.embedded:
        findings.extend(check_redis(config))
    return findings


def check_http_hosts(config: Config) -> list[Finding]:
    """``[http] allowed_hosts`` against how the pages are reached (docs/security.md)."""
    from shenava.http.auth import is_loopback

    http = config.http
    if "*" in http.allowed_hosts:
        return [_warn("http.any_host", "http.allowed_hosts has \"*\": any Host is answered, so a page "
                      "on another site can point its own name at this address and read the API "
                      "(DNS rebinding); list the names people use instead")]
    if http.allowed_hosts or (is_loopback(http.bind) and not http.proxy_addresses):
        return []
    via = "a proxy in front" if http.proxy_addresses else f"http.bind = {http.bind!r}"
    return [_warn("http.allowed_hosts", f"{via} and http.allowed_hosts is empty: pages opened by a "
                  "name (not an IP address or localhost) are refused (421 http.host_not_allowed); "
                  "list the names people use, e.g. allowed_hosts = [\"wallboard.example.org\"]")]


def check_users(config: Config, config_path: str | Path = "CONFIG") -> list[Finding]:
    """``[http] users_file``: whether anyone can sign in to the pages, and who may read it.
    (Users kept in Redis are not read here.)"""
    import stat

    from complaints.roles import Role
    from shenava.users import FileUserStore

    path = config.http.users_file
    if not path or config.http.auth == "proxy":
        return []
    add = f"shenava users -c {config_path} add NAME --role supervisor (docs/security.md)"
    try:
        mode = Path(path).stat().st_mode
        users = FileUserStore(Path(path)).all()
    except FileNotFoundError:
        return [_warn("http.no_users", f"http.users_file {path} does not exist yet: nobody can sign in "
                      f"to the wallboard or the desk; add people with {add}")]
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return [_warn("http.users_unreadable", f"http.users_file {path} cannot be read here ({reason}); "
                      "the daemon's user must be able to read it (root:shenava, mode 0640)")]
    found: list[Finding] = []
    if mode & stat.S_IROTH:
        found.append(_warn("http.users_file_mode", f"http.users_file {path} is readable by every local "
                           "user: its password hashes can be guessed at offline; chmod o-r (0640 or 0600)"))
    if not users:
        return [*found, _warn("http.no_users", f"http.users_file {path} has nobody in it: nobody can sign "
                              f"in to the wallboard or the desk; add people with {add}")]
    known = {a.id for a in config.agents}
    strangers = sorted(u.name for u in users if u.role is Role.AGENT and u.name not in known)
    if strangers:
        found.append(_warn("http.unknown_agents", "agent sign-ins with no [[agents]] entry (their desk "
                           f"would answer agent_stats.unknown_agent): {', '.join(strangers)}"))
    bosses = sum(1 for u in users if u.role is not Role.AGENT)
    if not bosses:
        found.append(_warn("http.no_supervisor", "nobody may sign in as a supervisor or admin: the "
                           f"wallboard and the review page are out of reach; add one with {add}"))
    found.append(_ok("http.users", f"{len(users)} people may sign in ({bosses} supervisors or admins)"))
    return found


def check_redis(config: Config) -> list[Finding]:
    """The live server's ``appendonly``, ``appendfsync`` and ``maxmemory-policy`` (see
    :mod:`shenava.redis_durability`); an unreachable server is an error."""
    from redis.exceptions import RedisError

    from shenava.redis_client import describe
    from shenava.redis_durability import durability_notes, read_settings

    where = describe(config.redis)
    try:
        settings = read_settings(config.redis)
    except (RedisError, OSError) as exc:
        return [_error("redis.unreachable", f"cannot read the server's settings: {exc}", where)]
    notes = durability_notes(settings, config.redis.wait_replicas)
    return [(_ok if n.ok else _warn)(n.code, n.message, where) for n in notes]


def check_asterisk_dir(config: Config, asterisk_dir: Path) -> list[Finding]:
    if not asterisk_dir.is_dir():
        return [_error("asterisk.dir_missing", f"{asterisk_dir} is not a folder")]
    findings: list[Finding] = []
    manager = _read(asterisk_dir / "manager.conf", findings)
    if manager is not None:
        findings.extend(check_manager(config, manager))
    dialplan_path = asterisk_dir / "extensions.conf"
    if not dialplan_path.exists() and any(
        (asterisk_dir / name).exists() for name in ("extensions.ael", "extensions.lua")
    ):
        findings.append(_warn(
            "dialplan.not_conf",
            "the dialplan is in extensions.ael/.lua, which this check cannot read: "
            "make sure it has the contexts of etc/asterisk/extensions.conf",
        ))
        return findings
    dialplan = _read(dialplan_path, findings)
    if dialplan is not None:
        findings.extend(check_dialplan(config, dialplan))
    return findings


def exit_code(findings: Iterable[Finding]) -> int:
    findings = list(findings)
    if any(f.code == CONFIG_INVALID for f in findings):
        return EXIT_CONFIG_INVALID
    if any(f.severity is Severity.ERROR for f in findings):
        return EXIT_ERRORS
    return EXIT_OK


def format_report(findings: Sequence[Finding]) -> str:
    errors = sum(f.severity is Severity.ERROR for f in findings)
    warnings = sum(f.severity is Severity.WARNING for f in findings)
    lines = [str(f) for f in findings]
    verdict = "problems found" if errors else "all good"
    lines.append(f"{verdict}: {errors} error(s), {warnings} warning(s)")
    return "\n".join(lines)


def run_check(
    config_path: Path,
    asterisk_dir: Path | None,
    out: TextIO | None = None,
    sounds_dir: Path | None = None,
    *,
    redis: bool = False,
) -> int:
    """What ``shenava check-config`` does: print the report, return the exit code."""
    findings = check_config(config_path, asterisk_dir, sounds_dir, redis=redis)
    print(format_report(findings), file=out if out is not None else sys.stdout)
    return exit_code(findings)


def _read(path: Path, findings: list[Finding]) -> AsteriskConf | None:
    if not path.exists():
        findings.append(_error("asterisk.file_missing", f"{path} does not exist"))
        return None
    try:
        conf = read_asterisk_conf(path)
    except AsteriskConfError as exc:
        findings.append(_error("asterisk.unparsable", f"cannot check {path.name}: {exc}"))
        return None
    for note in conf.notes:
        findings.append(_warn("asterisk.not_followed", note.message, note.origin))
    return conf


# -- shenava check-sites (shenava.check_sites) ------------------------------------------


def read_registered(config: Config) -> list[CentreSite]:
    """Every site the daemons registered in Redis: its ``[sla]`` and the agents it stored
    (for ``shenava check-sites --redis``)."""
    import asyncio

    from agent_stats.store import StatsStore
    from shenava.check_sites import CentreSite
    from shenava.redis_client import describe, make_redis_client
    from shenava_base.sites import registered_sites

    where = "registered in " + describe(config.redis)

    async def read() -> list[CentreSite]:
        client = make_redis_client(config.redis)
        try:
            found = await registered_sites(client, config.redis.key_prefix)
            out = []
            for site, entry in found.items():
                store = StatsStore(client, config.sla, prefix=config.redis.key_prefix, site=site)
                sla = entry.get("sla")
                out.append(CentreSite(site, where, sla if isinstance(sla, dict) else None,
                                      str(entry.get("timezone", "")), frozenset(await store.agents()),
                                      registered=True))
            return out
        finally:
            await client.aclose()

    return asyncio.run(read())


def run_check_sites(paths: Sequence[Path], *, redis: bool = False, out: TextIO | None = None) -> int:
    """What ``shenava check-sites`` does: print the report, return the exit code."""
    from redis.exceptions import RedisError

    from shenava.check_sites import check_centre

    try:
        findings = check_centre(paths, registered=read_registered if redis else None)
    except (RedisError, OSError) as exc:
        findings = [_error("redis.unreachable", f"cannot read the register of sites: {exc}")]
    print(format_report(findings), file=out if out is not None else sys.stdout)
    return exit_code(findings)

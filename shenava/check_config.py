"""``shenava check-config``: is the Shenava config valid, and does Asterisk agree with it?

Given the operator's Asterisk folder it reads ``manager.conf`` and
``extensions.conf`` (through :mod:`shenava.asterisk_conf`, i.e. pyst2) and
checks what the daemon relies on: AMI enabled on the right port and address,
the AMI user with the same secret, the read/write classes, event filters that
drop the noise but none of the events Shenava needs, and the dialplan contexts
(the support line, the callback context, and the optional connect context).
It reads them as Asterisk 22 does (main/manager.c, main/pbx.c): class lists
are compared exactly, filters are parsed like manager_add_filter(), extension
patterns matched like _extension_match_core().

Exit codes (see ``shenava.cli``): 0 nothing wrong, 1 at least one error,
2 the Shenava config file itself is invalid.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TextIO

from ami_bridge.testpbx.options import AmiRights
from ivr.menu_schema import MenuBook, StatusMenu
from shenava.asterisk_conf import (
    AsteriskConf,
    AsteriskConfError,
    ConfItem,
    ConfSection,
    Origin,
    read_asterisk_conf,
)
from shenava.config import Config, ConfigError, load_config

EXIT_OK = 0
EXIT_ERRORS = 1
EXIT_CONFIG_INVALID = 2

CONFIG_INVALID = "config.invalid"

# Asterisk's manager permission classes, in the order of main/manager.c's perms[]
# ("all" is INT_MAX: every class; "none" is 0).
ASTERISK_CLASSES = (
    "system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
    "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
    "message", "all", "none",
)
NEEDED_EVENTS = {
    # event: its class (the "Privilege:" line of the real Asterisk 22 captures;
    # Rename: CALL in Asterisk's AMI event docs). manager.c process_events()
    # sends an event only if the user's read classes include its class.
    "Newchannel": "call", "Newstate": "call", "Hangup": "call", "NewCallerid": "call",
    "Rename": "call", "DialBegin": "call", "DialEnd": "call", "BridgeEnter": "call",
    "BridgeLeave": "call", "OriginateResponse": "call", "DTMFEnd": "dtmf",
    "AsyncAGIStart": "agi", "AsyncAGIExec": "agi", "AsyncAGIEnd": "agi",
}
"""Events the daemon consumes; a filter must never drop one of them.

The answers to ``CoreShowChannels`` (``CoreShowChannel``...) and ``Status``
are not here: Asterisk writes list events straight to the session that asked
(``astman_append``), past the read classes and the event filters."""
REQUIRED_READ = {
    "call": "channel, dial, bridge, hang-up and OriginateResponse events",
    "agi": "AsyncAGIStart/Exec/End: the IVR",
    "dtmf": "DTMFEnd: digits typed ahead of a menu",
}
REQUIRED_WRITE: dict[tuple[str, ...], str] = {
    # any one of the classes grants the action (manager.c process_message():
    # writeperm & the action's classes)
    ("call",): "Bridge and Hangup",
    ("agi",): "the AGI action (AsyncAGI commands)",
    ("originate",): "Originate: the agent's leg and callbacks",
    ("reporting", "system"): "CoreShowChannels after every login",
}
SUGGESTED_WRITE = "call,agi,originate,reporting"
SUGGESTED_READ = "call,agi,dtmf,system"
NOISE_EVENTS = {
    # event: the read class that carries it (no point filtering what is not sent)
    "Newexten": "dialplan", "VarSet": "dialplan", "DeviceStateChange": "call",
    "NewConnectedLine": "call", "NewAccountCode": "call", "HangupRequest": "call",
    "SoftHangupRequest": "call", "DialState": "call", "AGIExecStart": "agi",
    "AGIExecEnd": "agi", "DTMFBegin": "dtmf", "RTCPSent": "reporting",
    "RTCPReceived": "reporting", "ChannelTalkingStart": "call", "ChannelTalkingStop": "call",
    "MusicOnHoldStart": "call", "MusicOnHoldStop": "call", "BridgeCreate": "call",
    "BridgeDestroy": "call",
}
"""Events Shenava does not use; the shipped manager.conf filters them out."""
PLACEHOLDER_SECRETS = frozenset({"change-me", "CHANGE_ME", "changeme", "secret", "password"})
_TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})


class Severity(enum.Enum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    """One result of the check; ``code`` is stable (for scripts and docs)."""

    severity: Severity
    code: str
    message: str
    where: str = ""

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.severity.value:<8}{where}{self.message} [{self.code}]"


def _ok(code: str, message: str, where: object = "") -> Finding:
    return Finding(Severity.OK, code, message, str(where))


def _warn(code: str, message: str, where: object = "") -> Finding:
    return Finding(Severity.WARNING, code, message, str(where))


def _error(code: str, message: str, where: object = "") -> Finding:
    return Finding(Severity.ERROR, code, message, str(where))


# -- entry points --------------------------------------------------------------


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


# -- manager.conf --------------------------------------------------------------


def check_manager(config: Config, manager: AsteriskConf) -> list[Finding]:
    findings: list[Finding] = []
    general = manager.section("general")
    where: Origin | str = general.origin if general else manager.path.name
    enabled = general.get("enabled") if general else None
    if enabled is None or enabled.value.lower() not in _TRUE:
        findings.append(_error(
            "manager.disabled", "AMI is not enabled: set enabled = yes in [general]",
            enabled.origin if enabled else where,
        ))
    else:
        findings.append(_ok("manager.enabled", "AMI is enabled", enabled.origin))
    findings.extend(_check_port(config, general, where))
    findings.extend(_check_bind(config, general, where))

    # Asterisk looks AMI users up by name ignoring case (get_manager_by_name_locked).
    wanted = config.ami.username.lower()
    name = next((n for n in manager.names() if n.lower() == wanted), None) if wanted != "general" else None
    user = manager.section(name) if name is not None else None
    if user is None:
        findings.append(_error(
            "manager.user_missing",
            f"no AMI user [{config.ami.username}] (ami.username); add the [shenava] block "
            "of etc/asterisk/manager.conf",
            manager.path.name,
        ))
        return findings
    findings.append(_ok("manager.user", f"AMI user [{user.name}] exists", user.origin))
    findings.extend(_check_secret(config, user))
    findings.extend(_check_read(user))
    findings.extend(_check_write(user))
    findings.extend(_check_session_options(general, user))
    findings.extend(_check_event_filters(user))
    return findings


def _check_port(config: Config, general: ConfSection | None, where: Origin | str) -> list[Finding]:
    item = general.get("port") if general else None
    port = item.value if item else "5038"
    if port != str(config.ami.port):
        return [_error(
            "manager.port_mismatch",
            f"AMI listens on port {port} but ami.port is {config.ami.port}",
            item.origin if item else where,
        )]
    return [_ok("manager.port", f"AMI port {port} matches ami.port", item.origin if item else where)]


def _check_bind(config: Config, general: ConfSection | None, where: Origin | str) -> list[Finding]:
    item = general.get("bindaddr") if general else None
    bind = item.value if item else "::"  # Asterisk's default: every address ([::])
    at = item.origin if item else where
    host = config.ami.host
    loopback = {"127.0.0.1", "::1", "localhost"}
    if bind in ("0.0.0.0", "::", "[::]") or bind == host or (host in loopback and bind in loopback):
        return [_ok("manager.bindaddr", f"AMI bound to {bind}, reachable at ami.host {host}", at)]
    if _is_ip(bind) and _is_ip(host):
        return [_error(
            "manager.bind_mismatch", f"AMI is bound to {bind} but ami.host is {host}", at,
        )]
    return [_warn(
        "manager.bind_unverified",
        f"AMI is bound to {bind} and ami.host is {host}: cannot tell whether they are the same address",
        at,
    )]


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _check_secret(config: Config, user: ConfSection) -> list[Finding]:
    item = user.get("secret")
    if item is None:
        return [_error(
            "manager.secret_missing", f"[{user.name}] has no secret (it may come from an #exec, "
            "which is not checked)", user.origin,
        )]
    if "${" in item.value:
        return [_warn("manager.secret_unverified", f"[{user.name}] secret uses a variable: not compared", item.origin)]
    if item.value != config.ami.secret:
        return [_error(
            "manager.secret_mismatch", f"the secret of [{user.name}] differs from {config.ami.secret_from}",
            item.origin,
        )]
    return [_ok("manager.secret", f"the secret of [{user.name}] matches", item.origin)]


def _ast_instring(bigstr: str, smallstr: str) -> bool:
    """main/manager.c ast_instring(bigstr, smallstr, ','), byte for byte.

    Every comma-separated token but the last matches when it is a prefix of
    ``smallstr`` (``strncmp`` over the token's length); the last must equal
    it (``strcmp``). Nothing is trimmed and case counts."""
    start = 0
    while True:
        comma = bigstr.find(",", start)
        if comma < 0:
            return bigstr[start:] == smallstr
        if smallstr.startswith(bigstr[start:comma]):
            return True
        start = comma + 1
        if start >= len(bigstr):
            return False


def parse_classes(value: str) -> set[str]:
    """The classes Asterisk grants for ``read =``/``write = value`` (manager.c get_perm()).

    ``"all"`` in the result means every class. Spaces and capitals are not
    forgiven: ``call, agi`` grants ``call`` only (the token is `` agi``)."""
    granted = {label for label in ASTERISK_CLASSES if _ast_instring(value, label)}
    granted.discard("none")
    return granted


def _class_list_hint(value: str) -> str:
    tokens = value.split(",")
    if any(t != t.strip() or t != t.lower() for t in tokens):
        return " (Asterisk reads the list as written: no spaces, lower case)"
    return ""


def _check_classes_present(item: ConfItem | None, key: str) -> tuple[set[str], list[Finding]]:
    findings: list[Finding] = []
    if item is None:
        return set(), findings
    granted = parse_classes(item.value)
    unknown = [t for t in item.value.split(",") if t and t not in ASTERISK_CLASSES]
    if unknown:
        findings.append(_warn(
            f"manager.{key}_unknown_class",
            f"{key} = {item.value}: Asterisk has no class {', '.join(repr(t) for t in unknown)}"
            + _class_list_hint(item.value), item.origin,
        ))
    return granted, findings


def _check_read(user: ConfSection) -> list[Finding]:
    item = user.get("read")
    at = item.origin if item else user.origin
    granted, findings = _check_classes_present(item, "read")
    if "all" in granted:
        return [*findings, _ok("manager.read", "read = all", at)]
    missing = [name for name in REQUIRED_READ if name not in granted]
    if missing:
        why = "; ".join(f"{name}: {REQUIRED_READ[name]}" for name in missing)
        findings.append(_error(
            "manager.read_classes",
            f"[{user.name}] read lacks {', '.join(missing)} ({why}); use read = {SUGGESTED_READ}"
            + _class_list_hint(item.value if item else ""), at,
        ))
    else:
        findings.append(_ok("manager.read", f"read includes {','.join(REQUIRED_READ)}", at))
    return findings


def _check_write(user: ConfSection) -> list[Finding]:
    item = user.get("write")
    at = item.origin if item else user.origin
    granted, findings = _check_classes_present(item, "write")
    if "all" in granted:
        return [*findings, _warn(
            "manager.write_all",
            f"write = all also grants command and config (a shell on the PBX); Shenava needs only "
            f"write = {SUGGESTED_WRITE}", at,
        )]
    missing = [alternatives for alternatives in REQUIRED_WRITE if not granted.intersection(alternatives)]
    if missing:
        why = "; ".join(f"{' or '.join(alt)}: {REQUIRED_WRITE[alt]}" for alt in missing)
        findings.append(_error(
            "manager.write_classes",
            f"[{user.name}] write lacks {', '.join(' or '.join(alt) for alt in missing)} ({why}); "
            f"use write = {SUGGESTED_WRITE}" + _class_list_hint(item.value if item else ""), at,
        ))
        return findings
    findings.append(_ok("manager.write", "write allows every action Shenava sends", at))
    if "system" in granted:
        findings.append(_warn(
            "manager.write_system",
            "write includes system, which also allows ModuleLoad, Reload and Filter; Shenava needs "
            f"only reporting for CoreShowChannels: write = {SUGGESTED_WRITE}", at,
        ))
    return findings


def _check_session_options(general: ConfSection | None, user: ConfSection) -> list[Finding]:
    findings: list[Finding] = []
    item = user.get("writetimeout")
    if item is not None and (not item.value.isdigit() or int(item.value) < 100):
        findings.append(_warn(
            "manager.writetimeout",
            f"writetimeout = {item.value}: Asterisk ignores values under 100 (ms) and keeps 100", item.origin,
        ))
    multiple = user.get("allowmultiplelogin") or (general.get("allowmultiplelogin") if general else None)
    if multiple is not None and multiple.value.lower() not in _TRUE:
        findings.append(_warn(
            "manager.single_login",
            "allowmultiplelogin = no: after a network break Shenava's new login is refused "
            "(\"Login Already In Use\") until Asterisk drops the old session", multiple.origin,
        ))
    return findings


@dataclass(frozen=True)
class EventFilter:
    """One ``eventfilter`` line as Asterisk's manager_add_filter() reads it.

    ``matches(event)`` is True when the filter certainly matches every such
    event, False when it certainly matches none, None when it depends on the
    event's other headers (a header(), a pattern on the whole text that does
    not start with ``Event:``)."""

    exclude: bool
    origin: Origin
    text: str
    regex: re.Pattern[str] | None = None
    event_name: str | None = None
    partial: bool = False
    """It also looks at other headers: it cannot drop or admit an event by name alone."""

    def matches(self, event: str) -> bool | None:
        if self.event_name is not None and self.event_name != event:
            return False  # name(): an exact, case-sensitive comparison (a hash of the name)
        if self.partial:
            return None
        if self.regex is None:
            return True  # name() alone, or no criteria at all
        if self.regex.search(f"Event: {event}\r\n") is not None:
            return True
        # The whole event text is searched; a pattern starting with "Event:" can
        # only match that line (no header of the events Shenava needs ends in "Event").
        return False if self.regex.pattern.lstrip("^").startswith("Event:") else None


_FILTER_METHODS = ("regex", "exact", "starts_with", "ends_with", "contains", "none")


def parse_event_filters(user: ConfSection) -> tuple[list[EventFilter], list[Finding]]:
    filters: list[EventFilter] = []
    findings: list[Finding] = []
    for item in user.items:
        # Asterisk takes every option whose name begins with "eventfilter" (__init_manager).
        if not item.name.startswith("eventfilter"):
            continue
        parsed = _parse_filter(item)
        if isinstance(parsed, str):
            findings.append(_warn(
                "manager.filter_ignored",
                f"{item.name} = {item.value}: {parsed}; Asterisk ignores this filter (with a warning in its log)",
                item.origin,
            ))
        else:
            filters.append(parsed)
    return filters, findings


def _parse_filter(item: ConfItem) -> EventFilter | str:
    """main/manager.c manager_add_filter(): the filter, or why Asterisk refuses it."""
    pattern = item.value
    exclude = pattern.startswith("!")
    if exclude:
        pattern = pattern[1:]
    text = f"{item.name} = {item.value}".strip()
    if "(" not in item.name:
        if not pattern:
            return "a legacy filter needs a pattern"
        try:
            legacy = re.compile(pattern)  # POSIX extended (REG_EXTENDED) there; close enough here
        except re.error as exc:
            return f"the regular expression does not compile ({exc})"
        return EventFilter(exclude, item.origin, text, regex=legacy)
    inner = item.name.split("(", 1)[1].strip()
    if not inner.endswith(")"):
        return "the filter options are not formatted correctly"
    event_name = header = None
    method = "none"
    found = False
    for option in (o for o in re.split(r"[ ,)]+", inner) if o):
        key, paren, value = option.partition("(")
        value = value.strip()
        if not paren or not value:
            return f"option {option!r} is not formatted correctly"
        if key.startswith("action"):
            if value not in ("include", "exclude"):
                return f"action {value!r} is unknown"
            exclude = value == "exclude"
        elif key.startswith("name"):
            event_name = value
        elif key.startswith("header"):
            header = value
        elif key.startswith("method"):
            if value not in _FILTER_METHODS:
                return f"method {value!r} is unknown"
            method = value
        else:
            return f"option {option!r} is unknown"
        found = True
    if not found:
        return "no action, name, header or method option"
    if not pattern and method != "none":
        return f"method {method} needs a pattern"
    if pattern and method == "none":
        return "a pattern needs a method (e.g. method(regex))"
    if event_name is None and header is None and method == "none":
        return "no name or header option and no pattern"
    regex: re.Pattern[str] | None = None
    if pattern and header is None and method == "regex":
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            return f"the regular expression does not compile ({exc})"
    partial = header is not None or (bool(pattern) and regex is None)
    return EventFilter(exclude, item.origin, text, regex=regex, event_name=event_name, partial=partial)


def event_passes(event: str, filters: Sequence[EventFilter]) -> bool | None:
    """manager.c should_send_event(): with include filters only what one of them
    matches passes; then any matching exclude filter drops it. None: cannot tell."""
    includes = [f.matches(event) for f in filters if not f.exclude]
    excludes = [f.matches(event) for f in filters if f.exclude]
    if includes and not any(includes):
        return None if None in includes else False
    if any(excludes):
        return False
    return None if None in excludes else True


def _check_event_filters(user: ConfSection) -> list[Finding]:
    filters, findings = parse_event_filters(user)
    read_item = user.get("read")
    read = parse_classes(read_item.value) if read_item else set()
    unsure: list[str] = []
    for event in NEEDED_EVENTS:
        passes = event_passes(event, filters)
        if passes is None:
            unsure.append(event)
        elif not passes:
            culprit = next((f for f in filters if f.exclude and f.matches(event)), None)
            at = culprit.origin if culprit else user.origin
            because = f"by {culprit.text!r}" if culprit else "(no include filter admits it)"
            findings.append(_error(
                "manager.filter_drops_needed", f"event {event} is filtered out {because}; Shenava needs it", at,
            ))
    if unsure:
        findings.append(_warn(
            "manager.filter_unverified",
            f"[{user.name}] has event filters that look at more than the event name: cannot tell whether "
            f"they let through {', '.join(unsure)}, which Shenava needs", user.origin,
        ))
    noisy = [
        event for event, cls in NOISE_EVENTS.items()
        if ("all" in read or cls in read) and event_passes(event, filters)
    ]
    if noisy:
        findings.append(_warn(
            "manager.filter_missing",
            f"[{user.name}] still receives events Shenava does not use: {', '.join(noisy)}; add "
            + ", ".join(f"eventfilter = !Event: {e}" for e in noisy[:3]) + (" ..." if len(noisy) > 3 else ""),
            user.origin,
        ))
    elif not any(f.severity is not Severity.OK for f in findings):
        findings.append(_ok("manager.filters", "event filters drop the noise and keep what Shenava needs", user.origin))
    return findings


# -- extensions.conf -----------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One dialplan priority: ``exten => 101,2,Dial(PJSIP/101,20,gm)``."""

    extension: str
    priority: int
    app: str
    args: str
    origin: Origin


_PRIORITY_RE = re.compile(r"^(n|\d+)(?:\+(\d+))?(?:\(([^)]*)\))?$", re.IGNORECASE)


def dialplan_steps(context: ConfSection) -> list[Step]:
    """The context's steps ordered by extension, then priority (``n`` counted on)."""
    steps: list[Step] = []
    current: str | None = None
    last_priority = 0
    for item in context.items:
        name = item.name.lower()
        if name not in ("exten", "same"):
            continue
        fields = item.value.split(",", 2) if name == "exten" else ["", *item.value.split(",", 1)]
        if len(fields) < 3:
            continue
        extension, priority_text, command = (f.strip() for f in fields)
        if name == "exten":
            if extension != current:
                last_priority = 0
            current = extension
        if current is None:
            continue
        match = _PRIORITY_RE.match(priority_text)
        if not match:  # 'hint' and other non-steps
            continue
        base = last_priority + 1 if match.group(1).lower() == "n" else int(match.group(1))
        last_priority = base + int(match.group(2) or 0)
        app, args = split_application(command)
        steps.append(Step(current, last_priority, app, args, item.origin))
    return sorted(steps, key=lambda s: (s.extension, s.priority))


def split_application(command: str) -> tuple[str, str]:
    """``Dial(PJSIP/101,20,gm)`` -> ``("dial", "PJSIP/101,20,gm")``; names lower-cased."""
    command = command.strip()
    if "(" in command:
        app, _, rest = command.partition("(")
        return app.strip().lower(), rest[:-1] if rest.endswith(")") else rest
    app, _, args = command.partition(",")
    return app.strip().lower(), args


def split_arguments(args: str) -> list[str]:
    """Split application arguments at top-level commas (not inside ${...}, $[...], (...))."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in args:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def dial_options(args: str) -> set[str]:
    """The option letters of a Dial: ``m(default)gU(sub)`` -> ``{"m", "g", "U"}``."""
    parts = split_arguments(args)
    options = parts[2] if len(parts) > 2 else ""
    letters: set[str] = set()
    depth = 0
    for char in options:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif depth == 0 and char.isalpha():
            letters.add(char)
    return letters


def _is_async_agi(step: Step) -> bool:
    return step.app == "agi" and split_arguments(step.args)[0].lower() == "agi:async"


def _context_steps(dialplan: AsteriskConf, name: str, seen: tuple[str, ...] = ()) -> list[Step] | None:
    """Steps of context ``name`` and the contexts it includes; None if it does not exist."""
    context = dialplan.section(name)
    if context is None:
        return None
    steps = dialplan_steps(context)
    for include in context.get_all("include"):
        target = include.value.split(",", 1)[0].strip()
        if target not in seen and len(seen) < 10:
            steps.extend(_context_steps(dialplan, target, (*seen, name)) or [])
    return steps


def check_dialplan(config: Config, dialplan: AsteriskConf) -> list[Finding]:
    return [
        *_check_support_context(config.site.support_context, dialplan),
        *_check_callback_context(config.site.callback_context, dialplan),
        *_check_connect_context(config.site.connect_context, dialplan),
    ]


def _check_support_context(name: str, dialplan: AsteriskConf) -> list[Finding]:
    steps = _context_steps(dialplan, name)
    if steps is None:
        return [_error(
            "dialplan.support_missing",
            f"no context [{name}] (site.support_context): add the [shenava-complaints] context "
            "of etc/asterisk/extensions.conf and send the support line's calls to it",
            dialplan.path.name,
        )]
    agi = [s for s in steps if _is_async_agi(s)]
    if not agi:
        return [_error(
            "dialplan.support_no_agi",
            f"[{name}] never runs AGI(agi:async): the calls would not reach Shenava's IVR",
            dialplan.section(name).origin,  # type: ignore[union-attr]
        )]
    findings = [_ok("dialplan.support", f"[{name}] hands calls to Shenava with AGI(agi:async)", agi[0].origin)]
    answered = any(
        s.app == "answer" and s.extension == agi[0].extension and s.priority < agi[0].priority for s in steps
    )
    if not answered:
        findings.append(_warn(
            "dialplan.support_no_answer",
            f"[{name}] runs AGI(agi:async) without Answer() first: prompts and digits need an answered channel",
            agi[0].origin,
        ))
    return findings


def extension_matches(pattern: str, number: str) -> bool:
    """Does extension ``pattern`` match ``number``? main/pbx.c _extension_match_core(), E_MATCH.

    ``_`` starts a pattern: X, Z, N, ``[...]`` (characters and ranges; ``+`` is an
    ordinary character there), ``.`` (one or more), ``!`` (zero or more);
    ``-`` is ignored on both sides; ``/`` starts a caller ID match (not checked)."""
    if not pattern.startswith("_"):
        return pattern.split("/", 1)[0].replace("-", "") == number.replace("-", "")
    p, d = pattern[1:], number.replace("-", "")
    i = j = 0
    while True:
        while i < len(p) and p[i] == "-":
            i += 1
        if j >= len(d) or i >= len(p) or p[i] == "/":
            break
        char, digit = p[i], d[j]
        if char == "[":
            end = p.find("]", i + 1)
            if end < 0:
                return False  # "Wrong usage of [] in the extension"
            members, k = p[i + 1:end], 0
            found = not members  # an empty set is skipped
            while k < len(members) and not found:
                if k + 2 < len(members) and members[k + 1] == "-":
                    found = members[k] <= digit <= members[k + 2]
                    k += 3
                else:
                    found = members[k] == digit
                    k += 1
            if not found:
                return False
            i = end
            if not members:
                i += 1
                continue
        elif char in "nN":
            if not "2" <= digit <= "9":
                return False
        elif char in "xX":
            if not "0" <= digit <= "9":
                return False
        elif char in "zZ":
            if not "1" <= digit <= "9":
                return False
        elif char in ".!":
            return True
        elif char != digit:
            return False
        i += 1
        j += 1
    if j < len(d):
        return False
    return i >= len(p) or p[i] in "/!"


CALLBACK_SAMPLE_NUMBERS = ("09121234567", "+989121234567")
"""Customer numbers as routing.callbacks.normalize_number() leaves them (``+`` and 3 to 20 digits)."""


def _check_callback_context(name: str, dialplan: AsteriskConf) -> list[Finding]:
    steps = _context_steps(dialplan, name)
    if steps is None:
        return [_error(
            "dialplan.callback_missing",
            f"no context [{name}] (site.callback_context): callbacks originate the agent's phone into it with the customer's "
            "number as the extension (Asterisk answers \"Extension does not exist.\"); add the "
            "[shenava-callback] context of etc/asterisk/extensions.conf",
            dialplan.path.name,
        )]
    origin = dialplan.section(name).origin  # type: ignore[union-attr]
    findings: list[Finding] = []
    extensions = list(dict.fromkeys(s.extension for s in steps))
    for number in CALLBACK_SAMPLE_NUMBERS:
        matching = [e for e in extensions if extension_matches(e, number)]
        if not matching:
            findings.append(_error(
                "dialplan.callback_no_match",
                f"no extension of [{name}] matches a customer number like {number} "
                "(use a pattern such as _[+0-9]X.)", origin,
            ))
            continue
        # Asterisk prefers the most specific pattern; any matching one must dial.
        if not any(s.app == "dial" for s in steps if s.extension in matching):
            findings.append(_error(
                "dialplan.callback_no_dial",
                f"[{name}] has no Dial() for {number}: the customer is never called", origin,
            ))
    if not findings:
        findings.append(_ok("dialplan.callback", f"[{name}] dials the customer's number", origin))
    return findings


def _check_connect_context(name: str, dialplan: AsteriskConf) -> list[Finding]:
    """The Redirect way of connecting (transcript 44): optional, not used by this release."""
    steps = _context_steps(dialplan, name)
    if steps is None:
        return [_ok(
            "dialplan.connect_absent",
            f"no context [{name}] (site.connect_context): fine, this release connects callers by "
            "Originate and Bridge and does not use it",
            dialplan.path.name,
        )]
    dials = [s for s in steps if s.app == "dial"]
    if not dials:
        origin = dialplan.section(name).origin  # type: ignore[union-attr]
        return [_warn("dialplan.connect_no_dial", f"[{name}] has no Dial(): it cannot ring the agent", origin)]
    findings: list[Finding] = []
    dial = dials[0]
    options = dial_options(dial.args)
    if "g" not in options:
        findings.append(_warn(
            "dialplan.connect_no_g",
            f"[{name}] Dial({dial.args}) lacks option g: when the agent hangs up the caller is "
            "hung up too and cannot come back to Shenava (goodbye, a second agent after a no-answer)",
            dial.origin,
        ))
    if "m" not in options:
        findings.append(_warn(
            "dialplan.connect_no_m",
            f"[{name}] Dial({dial.args}) lacks option m: the caller hears ringing instead of music",
            dial.origin,
        ))
    back = [s for s in steps if s.extension == dial.extension and s.priority > dial.priority and _is_async_agi(s)]
    if not back:
        findings.append(_warn(
            "dialplan.connect_no_agi",
            f"[{name}] does not run AGI(agi:async) after Dial(): the caller never returns to Shenava",
            dial.origin,
        ))
    if not findings:
        findings.append(_ok(
            "dialplan.connect", f"[{name}] dials with g and m, then returns to AGI(agi:async)", dial.origin,
        ))
    return findings


# -- the same rules for the test PBX --------------------------------------------


def ami_rights(manager_conf: Path, username: str) -> AmiRights:
    """What ``manager.conf`` lets ``username`` see and do, for the test PBX to apply.

    The tests and ``shenava testpbx --manager-conf`` serve the daemon exactly
    the events a real Asterisk would send that user (its read classes and
    event filters) and refuse the actions it may not run, so a snippet that
    would starve the daemon fails the tests instead of the first real call.
    Raises ValueError for what the test PBX does not imitate (header() and
    name() filters, methods other than a regular expression) or a missing user.
    """
    conf = read_asterisk_conf(manager_conf)
    user = next((conf.section(n) for n in conf.names() if n.lower() == username.lower()), None)
    if user is None:
        raise ValueError(f"{manager_conf}: no AMI user [{username}]")
    filters, refused = parse_event_filters(user)
    if refused:
        raise ValueError(f"{manager_conf}: {refused[0].message}")
    include: list[str] = []
    exclude: list[str] = []
    for flt in filters:
        if flt.regex is None or flt.event_name is not None or flt.partial:
            raise ValueError(f"{flt.text}: the test PBX applies only regular-expression filters")
        (exclude if flt.exclude else include).append(flt.regex.pattern)
    read, write = user.get("read"), user.get("write")
    return AmiRights.of(
        parse_classes(read.value) if read else (),
        parse_classes(write.value) if write else (),
        include=include,
        exclude=exclude,
    )


# -- sounds ---------------------------------------------------------------------------

FLOW_PROMPTS = (
    "hold-position", "hold-options", "hold-callback-booked", "leave-message", "message-saved",
    "your-reference",
)
"""Prompts played outside the menus: the hold loop (routing/hold.py) and the
hand-over after the IVR (shenava/callflow.py)."""
SHOWN_MISSING = 8


def menu_prompts(book: MenuBook) -> set[str]:
    """Every prompt name the menus play (``prompt``, ``*_prompt``, ``intro``, status prompts)."""
    names: set[str] = {book.settings.invalid_prompt, book.settings.no_input_prompt}
    for menu in book.menus.values():
        for f in fields(menu):
            value = getattr(menu, f.name)
            if (f.name == "prompt" or f.name.endswith("_prompt")) and isinstance(value, str):
                names.add(value)
            elif f.name == "intro":
                names.update(value)
        if isinstance(menu, StatusMenu):
            names.update(StatusMenu.prompt_for(status) for status in menu.statuses)
    names.discard("")
    return names


def _sound_exists(base: Path, name: str) -> bool:
    """Asterisk takes any format it can read: ``name.wav``, ``name.gsm``, ``name.ulaw``..."""
    folder = (base / name).parent
    stem = Path(name).name
    return folder.is_dir() and any(p.is_file() for p in folder.glob(f"{stem}.*"))


def check_sounds(config: Config, sounds_dir: Path) -> list[Finding]:
    """Every sound the call flow plays, in every IVR language, under Asterisk's sounds folder.

    Asterisk looks for ``<lang>/<name>``, then ``en/<name>``, then ``<name>``;
    a Persian prompt found only in English is a warning (a Persian caller
    would hear English), one found nowhere an error."""
    if not sounds_dir.is_dir():
        return [_error("sounds.dir_missing", f"{sounds_dir} is not a folder")]
    book = config.ivr.menus
    folder = config.ivr.sound_folder
    needed = [f"{folder}/{p}" for p in sorted(menu_prompts(book) | set(FLOW_PROMPTS))]
    needed += [f"digits/{d}" for d in "0123456789"]
    findings: list[Finding] = []
    for lang in config.site.languages:
        missing: list[str] = []
        fallback: list[str] = []
        for name in needed:
            if _sound_exists(sounds_dir / lang, name):
                continue
            if _sound_exists(sounds_dir / "en", name) or _sound_exists(sounds_dir, name):
                fallback.append(name)
            else:
                missing.append(name)
        if missing:
            findings.append(_error(
                "sounds.missing",
                f"{len(missing)} sounds missing for {lang}: {_some(missing)} "
                f"(shenava prompts build OUT -c CONFIG makes them)",
                sounds_dir / lang,
            ))
        if fallback and lang != "en":
            findings.append(_warn(
                "sounds.other_language",
                f"{len(fallback)} sounds for {lang} exist only in English or without a "
                f"language: {_some(fallback)}",
                sounds_dir / lang,
            ))
        if not any(
            _sound_exists(base, "beep") for base in (sounds_dir / lang, sounds_dir / "en", sounds_dir)
        ):
            findings.append(_error(
                "sounds.no_beep",
                f"no beep for {lang}: voicemail (RECORD FILE ... BEEP) needs one "
                "(shenava prompts build makes it)",
                sounds_dir,
            ))
        if not missing and not fallback:
            findings.append(_ok("sounds.complete", f"all {len(needed)} sounds for {lang} found",
                                sounds_dir / lang))
    return findings


def _some(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN_MISSING])
    return shown + (f" and {len(names) - SHOWN_MISSING} more" if len(names) > SHOWN_MISSING else "")

"""``shenava check-config``: is the Shenava config valid, and does Asterisk agree with it?

Given the operator's Asterisk folder it reads ``manager.conf`` and
``extensions.conf`` (through :mod:`shenava.asterisk_conf`, i.e. pyst2) and
checks what the daemon relies on: AMI enabled on the right port and address,
the AMI user with the same secret, the read/write classes, event filters that
drop the noise but none of the events Shenava needs, and the two dialplan
contexts (the support line and the connect context).

Exit codes (see ``shenava.cli``): 0 nothing wrong, 1 at least one error,
2 the Shenava config file itself is invalid.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

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

# Asterisk's manager permission classes (main/manager.c, perms[]).
ASTERISK_CLASSES = frozenset({
    "system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
    "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
    "message", "all", "none",
})
REQUIRED_READ = {
    "call": "channel, dial, bridge, hang-up and originate events",
    "agi": "AsyncAGIStart/Exec/End: the IVR",
    "dtmf": "DTMFEnd: digits typed ahead of a menu",
    "system": "FullyBooted, reloads and shutdowns",
    "reporting": "reporting events used for reconciliation",
}
REQUIRED_WRITE = {
    "call": "Redirect, Bridge, Hangup, Getvar/Setvar",
    "agi": "the AGI action (AsyncAGI commands)",
    "originate": "Originate: the agent's leg and callbacks",
    "system": "CoreShowChannels and Status at resync",
}
NEEDED_EVENTS = (
    "Newchannel", "Newstate", "Hangup", "NewCallerid", "DialBegin", "DialEnd",
    "BridgeEnter", "BridgeLeave", "DTMFEnd", "AsyncAGIStart", "AsyncAGIExec", "AsyncAGIEnd",
    "OriginateResponse", "FullyBooted", "CoreShowChannel", "CoreShowChannelsComplete",
    "Status", "StatusComplete",
)
"""Events the daemon consumes; a filter must never drop one of them."""
NOISE_EVENTS = {
    # event: the read class that carries it (no point filtering what is not sent)
    "Newexten": "dialplan", "VarSet": "dialplan", "DeviceStateChange": "call",
    "NewConnectedLine": "call", "NewAccountCode": "call", "HangupRequest": "call",
    "SoftHangupRequest": "call", "DialState": "call", "AGIExecStart": "agi",
    "AGIExecEnd": "agi", "DTMFBegin": "dtmf", "RTCPSent": "reporting",
    "RTCPReceived": "reporting", "ChannelTalkingStart": "call", "ChannelTalkingStop": "call",
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


def check_config(config_path: str | Path, asterisk_dir: str | Path | None = None) -> list[Finding]:
    """Every finding about the Shenava config and, if given, the Asterisk folder."""
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
    if config.ami.secret in PLACEHOLDER_SECRETS:
        findings.append(_warn("config.secret_placeholder", "ami secret is still the shipped placeholder"))
    if asterisk_dir is not None:
        findings.extend(check_asterisk_dir(config, Path(asterisk_dir)))
    return findings


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


def run_check(config_path: Path, asterisk_dir: Path | None, out: TextIO | None = None) -> int:
    """What ``shenava check-config`` does: print the report, return the exit code."""
    findings = check_config(config_path, asterisk_dir)
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

    user = manager.section(config.ami.username) if config.ami.username != "general" else None
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
    findings.extend(_check_classes(user, "read", REQUIRED_READ))
    findings.extend(_check_classes(user, "write", REQUIRED_WRITE))
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
    bind = item.value if item else "0.0.0.0"
    at = item.origin if item else where
    host = config.ami.host
    loopback = {"127.0.0.1", "::1", "localhost"}
    if bind in ("0.0.0.0", "::") or bind == host or (host in loopback and bind in loopback):
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


def parse_classes(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def _check_classes(user: ConfSection, key: str, required: dict[str, str]) -> list[Finding]:
    item = user.get(key)
    classes = parse_classes(item.value) if item else set()
    at = item.origin if item else user.origin
    findings: list[Finding] = []
    unknown = sorted(classes - ASTERISK_CLASSES)
    if unknown:
        findings.append(_warn(
            f"manager.{key}_unknown_class",
            f"{key} = {item.value if item else ''}: Asterisk has no class {', '.join(unknown)}", at,
        ))
    if "all" in classes:
        if key == "write":
            findings.append(_warn(
                "manager.write_all",
                "write = all also grants command and config (a shell on the PBX); Shenava "
                f"needs only {','.join(required)}", at,
            ))
        else:
            findings.append(_ok(f"manager.{key}", f"{key} = all", at))
        return findings
    missing = [name for name in required if name not in classes]
    if missing:
        why = "; ".join(f"{name}: {required[name]}" for name in missing)
        findings.append(_error(
            f"manager.{key}_classes",
            f"[{user.name}] {key} lacks {', '.join(missing)} ({why}); "
            f"use {key} = {','.join(required)}", at,
        ))
    else:
        findings.append(_ok(f"manager.{key}", f"{key} includes {','.join(required)}", at))
    return findings


@dataclass(frozen=True)
class EventFilter:
    """One ``eventfilter`` line, legacy (``!regex``) or advanced (``eventfilter(name(X))``)."""

    exclude: bool
    origin: Origin
    text: str
    regex: re.Pattern[str] | None = None
    event_name: str | None = None
    partial: bool = False
    """It also looks at other headers: it cannot drop or admit an event by name alone."""

    def matches(self, event: str) -> bool:
        if self.partial:
            return False
        if self.event_name is not None:
            return self.event_name.lower() == event.lower()
        return self.regex is not None and self.regex.search(f"Event: {event}\r\n") is not None


_ADVANCED_RE = re.compile(r"^eventfilter\((.*)\)$", re.IGNORECASE)
_CRITERION_RE = re.compile(r"(\w+)\(([^)]*)\)")


def parse_event_filters(user: ConfSection) -> tuple[list[EventFilter], list[Finding]]:
    filters: list[EventFilter] = []
    findings: list[Finding] = []
    for item in user.items:
        name = item.name.lower()
        if name == "eventfilter":
            exclude = item.value.startswith("!")
            pattern = item.value[1:] if exclude else item.value
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                findings.append(_warn("manager.filter_unreadable", f"eventfilter {item.value!r}: {exc}", item.origin))
                continue
            filters.append(EventFilter(exclude, item.origin, item.value, regex=regex))
            continue
        advanced = _ADVANCED_RE.match(item.name)
        if advanced:
            filters.append(_parse_advanced(item, advanced.group(1)))
    return filters, findings


def _parse_advanced(item: ConfItem, criteria: str) -> EventFilter:
    parts = {key.lower(): value.strip() for key, value in _CRITERION_RE.findall(criteria)}
    exclude = parts.get("action", "include").lower() == "exclude"
    event_name = parts.get("name") or None
    partial = "header" in parts or bool(item.value)
    regex = None
    if event_name is None and not partial:
        regex = re.compile("")  # no criteria: matches every event
    return EventFilter(exclude, item.origin, f"{item.name} = {item.value}".strip(),
                       regex=regex, event_name=event_name, partial=partial)


def event_passes(event: str, filters: Sequence[EventFilter]) -> bool:
    """Asterisk's rule: with include filters, only matches pass; excludes then drop."""
    includes = [f for f in filters if not f.exclude]
    if includes and not any(f.matches(event) or f.partial for f in includes):
        return False
    return not any(f.exclude and f.matches(event) for f in filters)


def _check_event_filters(user: ConfSection) -> list[Finding]:
    filters, findings = parse_event_filters(user)
    read_item = user.get("read")
    read = parse_classes(read_item.value) if read_item else set()
    for event in NEEDED_EVENTS:
        if not event_passes(event, filters):
            culprit = next((f for f in filters if f.exclude and f.matches(event)), None)
            at = culprit.origin if culprit else user.origin
            because = f"by {culprit.text!r}" if culprit else "(no include filter admits it)"
            findings.append(_error(
                "manager.filter_drops_needed", f"event {event} is filtered out {because}; Shenava needs it", at,
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
    elif not any(f.severity is Severity.ERROR for f in findings):
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


def _check_connect_context(name: str, dialplan: AsteriskConf) -> list[Finding]:
    steps = _context_steps(dialplan, name)
    if steps is None:
        return [_error(
            "dialplan.connect_missing",
            f"no context [{name}] (site.connect_context): routing redirects callers there to reach "
            "an agent; add the [shenava-connect] context of etc/asterisk/extensions.conf",
            dialplan.path.name,
        )]
    dials = [s for s in steps if s.app == "dial"]
    if not dials:
        origin = dialplan.section(name).origin  # type: ignore[union-attr]
        return [_error("dialplan.connect_no_dial", f"[{name}] has no Dial(): it cannot ring the agent", origin)]
    findings: list[Finding] = []
    dial = dials[0]
    options = dial_options(dial.args)
    if "g" not in options:
        findings.append(_error(
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
        findings.append(_error(
            "dialplan.connect_no_agi",
            f"[{name}] does not run AGI(agi:async) after Dial(): the caller never returns to Shenava",
            dial.origin,
        ))
    if not findings:
        findings.append(_ok(
            "dialplan.connect", f"[{name}] dials with g and m, then returns to AGI(agi:async)", dial.origin,
        ))
    return findings

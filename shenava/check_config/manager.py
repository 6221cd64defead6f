"""``manager.conf``: AMI enabled on the right port and address, the user, its secret and classes."""

from __future__ import annotations

import ipaddress

from shenava.asterisk_conf import (
    AsteriskConf,
    ConfItem,
    ConfSection,
    Origin,
)
from shenava.check_config.ami_classes import (
    ASTERISK_CLASSES,
    REQUIRED_READ,
    REQUIRED_WRITE,
    SUGGESTED_READ,
    SUGGESTED_WRITE,
    parse_classes,
)
from shenava.check_config.event_filters import _check_event_filters
from shenava.check_config.findings import Finding, _error, _ok, _warn
from shenava.config import Config

PLACEHOLDER_SECRETS = frozenset({"change-me", "CHANGE_ME", "changeme", "secret", "password"})
_TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})



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
    findings.append(_check_channelvars(general, where))

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


LANGUAGE_VARIABLE = "SHENAVA_LANG"  # ivr/menus.toml's language_variable


def _check_channelvars(general: ConfSection | None, where: Origin | str) -> Finding:
    """``channelvars`` naming SHENAVA_LANG saves the ``GET VARIABLE`` at the start of every IVR."""
    item = general.get("channelvars") if general else None
    names = [n.strip() for n in item.value.split(",")] if item else []
    if LANGUAGE_VARIABLE in names:
        return _ok(
            "manager.channelvars",
            f"channelvars names {LANGUAGE_VARIABLE}: AsyncAGIStart carries the dialplan's language",
            item.origin if item else where,
        )
    return _warn(
        "manager.channelvars",
        f"channelvars in [general] does not name {LANGUAGE_VARIABLE}: the daemon asks every "
        "caller's language with GET VARIABLE (one AGI round trip more per caller); add "
        f"channelvars = {LANGUAGE_VARIABLE} (or add it to your list)",
        item.origin if item else where,
    )


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

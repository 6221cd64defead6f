"""Value checks and helpers every section parser shares: names, hosts, the packages' own validation as key paths."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import TypeVar

from agent_stats.errors import InvalidConfigError
from complaints.errors import InvalidComplaintError
from routing.callbacks import CallbackConfigError
from routing.errors import InvalidScoringConfigError
from shenava_base.config_table import ConfigError, Table, show

T = TypeVar("T")


SUPPORTED_LANGUAGES = ("fa", "en")
"""Languages the IVR has prompts for."""

LOG_LEVELS = ("debug", "info", "warn", "error", "critical")
"""``twisted.logger.LogLevel`` names."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")
_CONTEXT_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_ENDPOINT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/[^\s,&;()|]+$")
_HOST_RE = re.compile(r"^[A-Za-z0-9_.:%-]+$")


def _name(value: str) -> str | None:
    return None if _NAME_RE.match(value) else "expected letters, digits, '_' or '-'"


def _context(value: str) -> str | None:
    return None if _CONTEXT_RE.match(value) else "expected an Asterisk context name (letters, digits, _ . + -)"


def _host(value: str) -> str | None:
    return None if _HOST_RE.match(value) else "expected a host name or an IP address"


def _ip_address(value: str) -> str | None:
    if value == "localhost":
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "expected an IP address (or localhost)"
    return None




def _build(t: Table, make: Callable[[], T]) -> T:
    """Build a package's config object, its own validation errors as :class:`ConfigError`.

    The getters have checked each value's type and range already; what remains
    are the package's rules across fields (``window_s`` at least ``slot_s``...).
    ``key`` of an agent_stats or scoring error is relative to ``t``; callback and
    complaint errors name their full path already.
    """
    try:
        return make()
    except InvalidConfigError as exc:
        raise _package_error(t.key_path(exc.key), str(exc), exc.key) from None
    except InvalidScoringConfigError as exc:
        raise ConfigError(t.key_path(exc.key), exc.problem) from None
    except CallbackConfigError as exc:
        raise ConfigError(exc.key, exc.problem) from None
    except InvalidComplaintError as exc:
        raise ConfigError(exc.field, exc.problem) from None


def _package_error(path: str, text: str, key: str) -> ConfigError:
    prefix = f"{key}: "
    return ConfigError(path, text[len(prefix):] if text.startswith(prefix) else text)


def _optional_float(
    t: Table, key: str, default: float | None, *, none_word: str, positive: bool = False
) -> float | None:
    """A number, or the string ``none_word`` for None (TOML has no null)."""
    if t.data.get(key) == none_word:
        t.get_str(key)  # marks the key as read
        return None
    if not t.has(key):
        return default
    try:
        return t.get_float(key, positive=positive)
    except ConfigError as exc:
        raise ConfigError(exc.path, exc.reason.replace("expected ", f"expected {show(none_word)} or ", 1)) from None


def _optional_int(t: Table, key: str, *, minimum: int, maximum: int) -> int | None:
    """An integer, or None when the key is absent."""
    return t.get_int(key, minimum=minimum, maximum=maximum) if t.has(key) else None

"""Reading one TOML table with key paths: the building block of every config section.

A section parser receives a :class:`Table`, asks it for typed values by key, and
calls :meth:`Table.finish` last. Every getter knows the full key path
(``ami.port``, ``agents[2].endpoint``), so every error names it, and ``finish``
turns any key nobody asked for into an error: a typo must never be silently
ignored. The parser never sees raw TOML values, so validation lives in one place.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ConfigLoader = Callable[[Path], Any]
"""Reads and validates a whole config file (``shenava.config.load_config``).

The composition root hands it to a package's command (``shenava report``,
``shenava complaints``...) so the package reads the file without importing the
top floor; it raises :class:`ConfigError`. The result is the daemon's typed
``Config``, which only the top floor names.
"""


class ConfigError(Exception):
    """The configuration is invalid; the message starts with the key path."""

    code = "config.invalid"

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()
"""Sentinel for "no default: the key is required"."""


_URL_PASSWORD = re.compile(r"(://[^/@\s:]*:)[^@/\s]+@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&\s]+", re.IGNORECASE)


def _without_passwords(text: str) -> str:
    """``redis://:pw@h`` as ``redis://:***@h``: an error message goes to a terminal and the
    journal, which more people read than the config file."""
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def show(value: object) -> str:
    """Render a TOML value for an error message, the way the operator typed it (a URL's
    password left out)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = json.dumps(_without_passwords(value), ensure_ascii=False)
        return text if len(text) <= 60 else text[:57] + '..."'
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"


def kind(value: object) -> str:
    """What a TOML value is, without showing it (for secrets)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return show(value) if isinstance(value, list | Mapping) else f"a {type(value).__name__}"


def join_path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


class Table:
    """One TOML table, read key by key; remembers which keys were read.

    ``base_dir`` is where relative file paths (``secret_file``) are resolved:
    the folder of the config file, or ``None`` (then such paths must be absolute).
    """

    def __init__(self, data: Mapping[str, object], path: str = "", base_dir: Path | None = None) -> None:
        self.data = data
        self.path = path
        self.base_dir = base_dir
        self._read: set[str] = set()

    # -- plumbing ---------------------------------------------------------

    def key_path(self, key: str) -> str:
        return join_path(self.path, key)

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.key_path(key), reason)

    @property
    def read_keys(self) -> frozenset[str]:
        """The keys some getter has asked for so far."""
        return frozenset(self._read)

    def has(self, key: str) -> bool:
        return key in self.data

    def _raw(self, key: str, default: object) -> object:
        self._read.add(key)
        if key in self.data:
            return self.data[key]
        if default is MISSING:
            raise self.error(key, "missing")
        return default

    def finish(self) -> None:
        """Refuse every key that no getter asked for (typos, removed options)."""
        unknown = sorted(k for k in self.data if k not in self._read)
        if unknown:
            known = sorted(self._read)
            hint = f" (known keys: {', '.join(known)})" if known else ""
            raise self.error(unknown[0], f"unknown key{hint}")

    # -- scalars ----------------------------------------------------------

    def get_str(
        self,
        key: str,
        default: str | _Missing = MISSING,
        *,
        non_empty: bool = True,
        check: Callable[[str], str | None] | None = None,
    ) -> str:
        """A string; ``check`` returns a reason when the value is not acceptable."""
        value = self._raw(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {show(value)}")
        if non_empty and not value.strip():
            raise self.error(key, "must not be empty")
        if any(c in value for c in "\r\n\0"):
            raise self.error(key, "must not contain CR, LF or NUL")
        if check is not None:
            reason = check(value)
            if reason is not None:
                raise self.error(key, f"{reason}, got {show(value)}")
        return value

    def get_choice(self, key: str, choices: Sequence[str], default: str | _Missing = MISSING) -> str:
        value = self._raw(key, default)
        if not isinstance(value, str) or value not in choices:
            options = ", ".join(json.dumps(c) for c in choices)
            raise self.error(key, f"expected one of {options}, got {show(value)}")
        return value

    def get_int(
        self,
        key: str,
        default: int | _Missing = MISSING,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int:
        value = self._raw(key, default)
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok:
            assert isinstance(value, int)
            ok = (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
        if not ok:
            raise self.error(key, f"expected {_describe('an integer', minimum, maximum)}, got {show(value)}")
        assert isinstance(value, int)
        return value

    def get_float(
        self,
        key: str,
        default: float | _Missing = MISSING,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
    ) -> float:
        """A number (integers accepted: ``30`` means ``30.0``); NaN and infinity refused."""
        value = self._raw(key, default)
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if not math.isfinite(number):
                number = None
        ok = number is not None
        if number is not None:
            ok = (
                (minimum is None or number >= minimum)
                and (maximum is None or number <= maximum)
                and (not positive or number > 0)
            )
        if not ok or number is None:
            what = "a number greater than 0" if positive else "a number"
            raise self.error(key, f"expected {_describe(what, minimum, maximum)}, got {show(value)}")
        return number

    def get_bool(self, key: str, default: bool | _Missing = MISSING) -> bool:
        value = self._raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {show(value)}")
        return value

    def get_str_list(
        self,
        key: str,
        default: Sequence[str] | _Missing = MISSING,
        *,
        non_empty: bool = False,
        unique: bool = True,
        allowed: Collection[str] | None = None,
        check: Callable[[str], str | None] | None = None,
    ) -> tuple[str, ...]:
        raw = self._raw(key, list(default) if isinstance(default, Sequence) else default)
        if not isinstance(raw, list):
            raise self.error(key, f"expected an array of strings, got {show(raw)}")
        if non_empty and not raw:
            raise self.error(key, "must not be empty")
        seen: set[str] = set()
        for index, item in enumerate(raw):
            item_path = f"{self.key_path(key)}[{index}]"
            if not isinstance(item, str) or not item:
                raise ConfigError(item_path, f"expected a non-empty string, got {show(item)}")
            if allowed is not None and item not in allowed:
                options = ", ".join(json.dumps(a) for a in allowed)
                raise ConfigError(item_path, f"expected one of {options}, got {show(item)}")
            if check is not None and (reason := check(item)) is not None:
                raise ConfigError(item_path, f"{reason}, got {show(item)}")
            if unique and item in seen:
                raise ConfigError(item_path, f"duplicate {show(item)}")
            seen.add(item)
        return tuple(raw)

    def get_float_list(
        self,
        key: str,
        default: Sequence[float] | _Missing = MISSING,
        *,
        non_empty: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> tuple[float, ...]:
        """An array of numbers (integers accepted), each checked like :meth:`get_float`."""
        raw = self._raw(key, list(default) if isinstance(default, Sequence) else default)
        if not isinstance(raw, list):
            raise self.error(key, f"expected an array of numbers, got {show(raw)}")
        if non_empty and not raw:
            raise self.error(key, "must not be empty")
        items = Table({str(i): v for i, v in enumerate(raw)}, "")
        values = []
        for index in range(len(raw)):
            try:
                values.append(items.get_float(str(index), minimum=minimum, maximum=maximum))
            except ConfigError as exc:
                raise ConfigError(f"{self.key_path(key)}[{index}]", exc.reason) from None
        return tuple(values)

    # -- secrets ----------------------------------------------------------

    def get_secret(self, key: str, file_key: str, *, required: bool = True) -> str:
        """A secret given inline (``key``) or read from a file (``file_key``), exactly one.

        The file is read now, at load, and stripped of surrounding whitespace,
        so a secret mounted by Docker/systemd (``/run/secrets/...``) works as is.
        Error messages never echo a secret.
        """
        inline = self.has(key)
        from_file = self.has(file_key)
        self._read.update((key, file_key))
        if inline and from_file:
            raise self.error(file_key, f"give either {self.key_path(key)} or {self.key_path(file_key)}, not both")
        if inline:
            value = self.data[key]
            if not isinstance(value, str):
                raise self.error(key, f"expected a string, got {kind(value)}")
            return _check_secret(self.key_path(key), value)
        if from_file:
            name = self.get_str(file_key)
            path = Path(name).expanduser()
            if not path.is_absolute():
                if self.base_dir is None:
                    raise self.error(file_key, f"must be an absolute path, got {show(name)}")
                path = self.base_dir / path
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise self.error(file_key, f"cannot read {path}: {reason}") from None
            return _check_secret(self.key_path(file_key), text.strip(), source=str(path))
        if required:
            raise self.error(key, f"missing (set {self.key_path(key)} or {self.key_path(file_key)})")
        return ""

    # -- nesting ----------------------------------------------------------

    def get_table(self, key: str) -> Table:
        """A sub-table; a missing one reads as empty so every default applies."""
        raw = self._raw(key, {})
        if not isinstance(raw, Mapping):
            raise self.error(key, f"expected a table ([{self.key_path(key)}]), got {show(raw)}")
        return Table(raw, self.key_path(key), self.base_dir)

    def get_table_list(self, key: str) -> list[Table]:
        """An array of tables (``[[agents]]``); items are named ``agents[0]``, ``agents[1]``..."""
        raw = self._raw(key, [])
        if not isinstance(raw, list):
            raise self.error(key, f"expected an array of tables ([[{self.key_path(key)}]]), got {show(raw)}")
        tables = []
        for index, item in enumerate(raw):
            item_path = f"{self.key_path(key)}[{index}]"
            if not isinstance(item, Mapping):
                raise ConfigError(item_path, f"expected a table, got {show(item)}")
            tables.append(Table(item, item_path, self.base_dir))
        return tables

    def section(self, key: str, parse: Callable[[Table], T]) -> T:
        """Parse sub-table ``key`` with ``parse`` and refuse its unknown keys."""
        table = self.get_table(key)
        result = parse(table)
        table.finish()
        return result


def _describe(what: str, minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{what} from {_num(minimum)} to {_num(maximum)}"
    if minimum is not None:
        return f"{what} of at least {_num(minimum)}"
    if maximum is not None:
        return f"{what} of at most {_num(maximum)}"
    return what


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _check_secret(path: str, value: str, *, source: str | None = None) -> str:
    where = f" (in {source})" if source else ""
    if not value:
        raise ConfigError(path, f"the secret is empty{where}")
    if any(c in value for c in "\r\n\0"):
        raise ConfigError(path, f"the secret must be one line without NUL{where}")
    return value

"""The operator's menu file (TOML), loaded and validated into frozen dataclasses.

Validation collects every problem before failing, and each problem starts with
its key path (``menus.main.options["7"]: goes to unknown menu "nope"``), so an
operator fixes the file in one pass. Checked: kinds and field types, unknown
keys (typos), option keys, every ``goto``/``next``/``on_*`` target, sane limits,
languages, and that every prompt a menu names has text in every language.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ivr.errors import MenuFileError
from ivr.outcome import Request as Request  # re-exported: the menu file names requests
from ivr.prompts import PromptCatalog, load_prompt_catalog

KEYS = frozenset("0123456789*#")
MIN_TIMEOUT_S = 1.0
MAX_TIMEOUT_S = 60.0
MAX_RETRIES = 10
MAX_NUMBER_LENGTH = 32
MAX_RECORDING_S = 3600.0
MAX_SILENCE_S = 60.0


END_REQUESTS = frozenset({Request.AGENT, Request.VOICEMAIL, Request.CALLBACK, Request.STATUS})


class Check(StrEnum):
    NONE = "none"
    LUHN = "luhn"


class Store(StrEnum):
    """Where a number menu keeps what was typed."""

    ACCOUNT = "account"
    REFERENCE = "reference"
    CALLBACK_NUMBER = "callback_number"


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-menu retry limits, defaulted from [settings]."""

    timeout_s: float
    max_timeouts: int
    max_invalid: int
    on_timeout: str
    on_invalid: str


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    goto: str
    label: str | None = None
    language: str | None = None
    category: str | None = None
    urgent: bool | None = None
    vulnerable: bool | None = None
    care: str | None = None


@dataclass(frozen=True, slots=True)
class ChoiceMenu:
    name: str
    prompt: str
    options: Mapping[str, Option]
    limits: Limits
    intro: tuple[str, ...] = ()
    bilingual: bool = False
    default_option: str | None = None
    say_digits: str | None = None
    if_missing: str | None = None


@dataclass(frozen=True, slots=True)
class NumberMenu:
    name: str
    prompt: str
    store: Store
    invalid_prompt: str
    min_length: int
    max_length: int
    check: Check
    confirm: bool
    readback_prompt: str | None
    confirm_prompt: str | None
    next: str
    limits: Limits
    skip_key: str | None = None
    on_skip: str | None = None
    confirm_yes: str = "1"
    confirm_no: str = "2"


@dataclass(frozen=True, slots=True)
class StatusMenu:
    name: str
    statuses: tuple[str, ...]
    unknown_prompt: str
    not_found_prompt: str
    unavailable_prompt: str
    next: str
    on_not_found: str
    on_error: str

    @staticmethod
    def prompt_for(status: str) -> str:
        return "status-" + status.replace("_", "-")


@dataclass(frozen=True, slots=True)
class RecordMenu:
    name: str
    prompt: str
    max_duration_s: float
    silence_s: float
    beep: bool
    next: str
    on_error: str
    failed_prompt: str | None = None
    folder: str = "shenava-vm"
    format: str = "wav"
    escape: str = "#"


@dataclass(frozen=True, slots=True)
class EndMenu:
    name: str
    request: Request
    prompt: str | None
    hangup: bool


Menu = ChoiceMenu | NumberMenu | StatusMenu | RecordMenu | EndMenu


@dataclass(frozen=True, slots=True)
class Settings:
    languages: tuple[str, ...]
    default_language: str
    start: str
    language_variable: str | None
    start_with_language: str
    timeout_s: float
    max_timeouts: int
    max_invalid: int
    on_timeout: str
    on_invalid: str
    max_inputs: int
    invalid_prompt: str
    no_input_prompt: str
    care_timeout_factor: float


@dataclass(frozen=True, slots=True)
class MenuBook:
    """Every menu of a site, validated."""

    settings: Settings
    menus: Mapping[str, Menu]
    source: str = "<memory>"

    def menu(self, name: str) -> Menu:
        return self.menus[name]


def default_menu_file() -> Path:
    return Path(str(resources.files("ivr") / "menus.toml"))


def load_menus(path: Path | None = None, catalog: PromptCatalog | None = None) -> MenuBook:
    """Read and validate a menu file (default: the one shipped with Shenava)."""
    path = path if path is not None else default_menu_file()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MenuFileError(str(path), [f"cannot read: {exc.strerror or exc}"]) from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MenuFileError(str(path), [f"not valid TOML: {exc}"]) from exc
    return parse_menus(data, source=str(path), catalog=catalog)


def parse_menus(
    data: Mapping[str, Any], source: str = "<memory>", catalog: PromptCatalog | None = None
) -> MenuBook:
    """Validate an already-parsed menu document."""
    catalog = catalog if catalog is not None else load_prompt_catalog()
    reader = _Reader()
    book = reader.book(data, source)
    reader.check_prompts(book, catalog)
    if reader.problems:
        raise MenuFileError(source, reader.problems)
    return book


_MISSING = object()
_WORD = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class _Reader:
    """Reads fields with their key paths, collecting problems instead of stopping."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.prompt_uses: list[tuple[str, str]] = []  # (key path, prompt)
        self.targets: list[tuple[str, str]] = []  # (key path, menu name)

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def field(self, table: Mapping[str, Any], path: str, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        value = table.get(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                self.problem(f"{path}.{key}", "missing")
            return None if default is _MISSING else default
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            self.problem(f"{path}.{key}", f"must be a number, not {value!r}")
            return None if default is _MISSING else default
        if not isinstance(value, kind):
            expected = "a string" if kind is str else "true or false" if kind is bool else "a number" if kind in (int, float, (int, float)) else "a list"
            self.problem(f"{path}.{key}", f"must be {expected}, not {value!r}")
            return None if default is _MISSING else default
        return value

    def number(self, table: Mapping[str, Any], path: str, key: str, low: float, high: float, default: Any = _MISSING, integer: bool = False) -> Any:
        value = self.field(table, path, key, int if integer else (int, float), default)
        if value is None:
            return low
        if not low <= value <= high:
            self.problem(f"{path}.{key}", f"must be between {low:g} and {high:g}, not {value!r}")
        return int(value) if integer else float(value)

    def prompt(self, table: Mapping[str, Any], path: str, key: str, optional: bool = False) -> str | None:
        value = self.field(table, path, key, str, None if optional else _MISSING)
        if value is not None:
            self.prompt_uses.append((f"{path}.{key}", value))
        return value if value is not None else (None if optional else "")

    def target(self, table: Mapping[str, Any], path: str, key: str, default: Any = _MISSING, check_default: bool = False) -> str:
        """A menu name; checked later. Inherited defaults are checked once, where they are set."""
        value = self.field(table, path, key, str, default)
        if value is not None and (key in table or check_default):
            self.targets.append((f"{path}.{key}", value))
        return value if value is not None else ""

    def unknown_keys(self, table: Mapping[str, Any], path: str, allowed: set[str]) -> None:
        for key in sorted(set(table) - allowed):
            self.problem(f"{path}.{key}", "unknown key")

    # -- the document --------------------------------------------------------

    def book(self, data: Mapping[str, Any], source: str) -> MenuBook:
        self.unknown_keys(data, "", {"settings", "menus"})
        raw_settings = data.get("settings", {})
        raw_menus = data.get("menus", {})
        if not isinstance(raw_settings, dict):
            self.problem("settings", "must be a table")
            raw_settings = {}
        if not isinstance(raw_menus, dict) or not raw_menus:
            self.problem("menus", "must be a table with at least one menu")
            raw_menus = {}
        settings = self.settings(raw_settings)
        menus: dict[str, Menu] = {}
        for name, table in raw_menus.items():
            path = f"menus.{name}"
            if not isinstance(table, dict):
                self.problem(path, "must be a table")
                continue
            menu = self.menu(name, table, path, settings)
            if menu is not None:
                menus[name] = menu
        for path, target in self.targets:
            if target and target not in raw_menus:
                self.problem(path, f'goes to unknown menu "{target}"')
        self.check_menus(menus, settings)
        return MenuBook(settings=settings, menus=MappingProxyType(menus), source=source)

    def settings(self, table: Mapping[str, Any]) -> Settings:
        path = "settings"
        self.unknown_keys(table, path, {
            "languages", "default_language", "start", "language_variable", "start_with_language",
            "timeout_s", "max_timeouts", "max_invalid", "on_timeout", "on_invalid", "max_inputs",
            "invalid_prompt", "no_input_prompt", "care_timeout_factor",
        })
        languages = self.field(table, path, "languages", list, ["fa", "en"]) or []
        if not languages or not all(isinstance(lang, str) and lang for lang in languages):
            self.problem(f"{path}.languages", "must be a non-empty list of language codes")
            languages = ["fa"]
        default_language = self.field(table, path, "default_language", str, languages[0])
        if default_language not in languages:
            self.problem(f"{path}.default_language", f'"{default_language}" is not in languages')
        return Settings(
            languages=tuple(languages),
            default_language=default_language or languages[0],
            start=self.target(table, path, "start", "language", check_default=True),
            language_variable=self.field(table, path, "language_variable", str, None),
            start_with_language=self.target(table, path, "start_with_language", "main", check_default=True),
            timeout_s=self.number(table, path, "timeout_s", MIN_TIMEOUT_S, MAX_TIMEOUT_S, 5.0),
            max_timeouts=self.number(table, path, "max_timeouts", 1, MAX_RETRIES, 3, integer=True),
            max_invalid=self.number(table, path, "max_invalid", 1, MAX_RETRIES, 3, integer=True),
            on_timeout=self.target(table, path, "on_timeout", "agent", check_default=True),
            on_invalid=self.target(table, path, "on_invalid", "agent", check_default=True),
            max_inputs=self.number(table, path, "max_inputs", 5, 1000, 40, integer=True),
            invalid_prompt=self.prompt(table, path, "invalid_prompt") or "",
            no_input_prompt=self.prompt(table, path, "no_input_prompt") or "",
            care_timeout_factor=self.number(table, path, "care_timeout_factor", 1.0, 5.0, 1.0),
        )

    def limits(self, table: Mapping[str, Any], path: str, settings: Settings) -> Limits:
        return Limits(
            timeout_s=self.number(table, path, "timeout_s", MIN_TIMEOUT_S, MAX_TIMEOUT_S, settings.timeout_s),
            max_timeouts=self.number(table, path, "max_timeouts", 1, MAX_RETRIES, settings.max_timeouts, integer=True),
            max_invalid=self.number(table, path, "max_invalid", 1, MAX_RETRIES, settings.max_invalid, integer=True),
            on_timeout=self.target(table, path, "on_timeout", settings.on_timeout),
            on_invalid=self.target(table, path, "on_invalid", settings.on_invalid),
        )

    def menu(self, name: str, table: Mapping[str, Any], path: str, settings: Settings) -> Menu | None:
        kind = table.get("kind")
        limit_keys = {"timeout_s", "max_timeouts", "max_invalid", "on_timeout", "on_invalid"}
        if kind == "choice":
            self.unknown_keys(table, path, {"kind", "prompt", "options", "intro", "bilingual", "default_option", "say_digits", "if_missing"} | limit_keys)
            return self.choice(name, table, path, settings)
        if kind == "number":
            self.unknown_keys(table, path, {
                "kind", "prompt", "store", "invalid_prompt", "min_length", "max_length", "check",
                "confirm", "readback_prompt", "confirm_prompt", "next", "skip_key", "on_skip",
            } | limit_keys)
            return self.number_menu(name, table, path, settings)
        if kind == "status":
            self.unknown_keys(table, path, {"kind", "statuses", "unknown_prompt", "not_found_prompt", "unavailable_prompt", "next", "on_not_found", "on_error"})
            return self.status(name, table, path)
        if kind == "record":
            self.unknown_keys(table, path, {"kind", "prompt", "max_duration_s", "silence_s", "beep", "next", "on_error", "failed_prompt"})
            return RecordMenu(
                name=name,
                prompt=self.prompt(table, path, "prompt") or "",
                max_duration_s=self.number(table, path, "max_duration_s", 5, MAX_RECORDING_S, 180.0),
                silence_s=self.number(table, path, "silence_s", 0, MAX_SILENCE_S, 5.0),
                beep=bool(self.field(table, path, "beep", bool, True)),
                next=self.target(table, path, "next"),
                on_error=self.target(table, path, "on_error", settings.on_invalid),
                failed_prompt=self.prompt(table, path, "failed_prompt", optional=True),
            )
        if kind == "end":
            self.unknown_keys(table, path, {"kind", "request", "prompt", "hangup"})
            raw = self.field(table, path, "request", str)
            if raw is not None and raw not in END_REQUESTS:
                self.problem(f"{path}.request", f'must be one of {", ".join(sorted(END_REQUESTS))}, not "{raw}"')
            request = Request(raw) if raw in END_REQUESTS else Request.AGENT
            return EndMenu(
                name=name,
                request=request,
                prompt=self.prompt(table, path, "prompt", optional=True),
                hangup=bool(self.field(table, path, "hangup", bool, request is not Request.AGENT)),
            )
        self.problem(f"{path}.kind", f'must be one of choice, number, status, record, end, not {kind!r}')
        return None

    def choice(self, name: str, table: Mapping[str, Any], path: str, settings: Settings) -> ChoiceMenu:
        raw_options = table.get("options")
        options: dict[str, Option] = {}
        if not isinstance(raw_options, dict) or not raw_options:
            self.problem(f"{path}.options", "a choice menu needs at least one option")
            raw_options = {}
        for key, raw in raw_options.items():
            opt_path = f'{path}.options["{key}"]'
            if key not in KEYS:
                self.problem(opt_path, 'an option key is one phone key: "0"-"9", "*" or "#"')
                continue
            if not isinstance(raw, dict):
                self.problem(opt_path, "must be a table such as { goto = \"main\" }")
                continue
            self.unknown_keys(raw, opt_path, {"goto", "label", "language", "category", "urgent", "vulnerable", "care"})
            value = raw.get("goto")
            if not isinstance(value, str):
                self.problem(opt_path, "needs goto = \"<menu>\"")
            else:
                self.targets.append((opt_path, value))
            language = self.field(raw, opt_path, "language", str, None)
            if language is not None and language not in settings.languages:
                self.problem(f"{opt_path}.language", f'"{language}" is not one of settings.languages')
            for word in ("category", "care"):
                value_of = raw.get(word)
                if isinstance(value_of, str) and not _WORD.match(value_of):
                    self.problem(f"{opt_path}.{word}", "use lower-case letters, digits and _ (it is stored and shown)")
            options[key] = Option(
                key=key,
                goto=value if isinstance(value, str) else "",
                label=self.field(raw, opt_path, "label", str, None),
                language=language,
                category=self.field(raw, opt_path, "category", str, None),
                urgent=self.field(raw, opt_path, "urgent", bool, None),
                vulnerable=self.field(raw, opt_path, "vulnerable", bool, None),
                care=self.field(raw, opt_path, "care", str, None),
            )
        intro = self.field(table, path, "intro", list, [])
        for index, item in enumerate(intro or []):
            if isinstance(item, str):
                self.prompt_uses.append((f"{path}.intro[{index}]", item))
            else:
                self.problem(f"{path}.intro[{index}]", "must be a prompt name")
        default_option = self.field(table, path, "default_option", str, None)
        if default_option is not None and default_option not in options:
            self.problem(f"{path}.default_option", f'"{default_option}" is not one of this menu\'s options')
        say_digits = self.field(table, path, "say_digits", str, None)
        if_missing = None
        if say_digits is not None:
            if say_digits != "caller_number":
                self.problem(f"{path}.say_digits", f'only "caller_number" can be read back, not "{say_digits}"')
            if_missing = self.target(table, path, "if_missing")
        return ChoiceMenu(
            name=name,
            prompt=self.prompt(table, path, "prompt") or "",
            options=MappingProxyType(options),
            limits=self.limits(table, path, settings),
            intro=tuple(item for item in intro or [] if isinstance(item, str)),
            bilingual=bool(self.field(table, path, "bilingual", bool, False)),
            default_option=default_option,
            say_digits=say_digits,
            if_missing=if_missing,
        )

    def number_menu(self, name: str, table: Mapping[str, Any], path: str, settings: Settings) -> NumberMenu:
        store_raw = self.field(table, path, "store", str)
        if store_raw is not None and store_raw not in {s.value for s in Store}:
            self.problem(f"{path}.store", f'must be one of {", ".join(s.value for s in Store)}, not "{store_raw}"')
        check_raw = self.field(table, path, "check", str, "none")
        if check_raw not in {c.value for c in Check}:
            self.problem(f"{path}.check", f'must be one of {", ".join(c.value for c in Check)}, not "{check_raw}"')
        min_length = self.number(table, path, "min_length", 1, MAX_NUMBER_LENGTH, integer=True)
        max_length = self.number(table, path, "max_length", 1, MAX_NUMBER_LENGTH, integer=True)
        if min_length > max_length:
            self.problem(f"{path}.min_length", f"is more than max_length ({min_length} > {max_length})")
        if check_raw == Check.LUHN and min_length < 2:
            self.problem(f"{path}.min_length", "a Luhn-checked number needs at least 2 digits")
        confirm = bool(self.field(table, path, "confirm", bool, True))
        readback = self.prompt(table, path, "readback_prompt", optional=not confirm)
        confirm_prompt = self.prompt(table, path, "confirm_prompt", optional=not confirm)
        skip_key = self.field(table, path, "skip_key", str, None)
        on_skip = None
        if skip_key is not None:
            if skip_key != "*":
                self.problem(f"{path}.skip_key", 'must be "*" (digits are part of the number, "#" ends it)')
            on_skip = self.target(table, path, "on_skip")
        return NumberMenu(
            name=name,
            prompt=self.prompt(table, path, "prompt") or "",
            store=Store(store_raw) if store_raw in {s.value for s in Store} else Store.ACCOUNT,
            invalid_prompt=self.prompt(table, path, "invalid_prompt") or "",
            min_length=min_length,
            max_length=max_length,
            check=Check(check_raw) if check_raw in {c.value for c in Check} else Check.NONE,
            confirm=confirm,
            readback_prompt=readback,
            confirm_prompt=confirm_prompt,
            next=self.target(table, path, "next"),
            limits=self.limits(table, path, settings),
            skip_key=skip_key,
            on_skip=on_skip,
        )

    def status(self, name: str, table: Mapping[str, Any], path: str) -> StatusMenu:
        statuses = self.field(table, path, "statuses", list) or []
        for index, status in enumerate(statuses):
            if not isinstance(status, str) or not status:
                self.problem(f"{path}.statuses[{index}]", "must be a status name")
            else:
                self.prompt_uses.append((f"{path}.statuses[{index}]", StatusMenu.prompt_for(status)))
        return StatusMenu(
            name=name,
            statuses=tuple(s for s in statuses if isinstance(s, str)),
            unknown_prompt=self.prompt(table, path, "unknown_prompt") or "",
            not_found_prompt=self.prompt(table, path, "not_found_prompt") or "",
            unavailable_prompt=self.prompt(table, path, "unavailable_prompt") or "",
            next=self.target(table, path, "next"),
            on_not_found=self.target(table, path, "on_not_found"),
            on_error=self.target(table, path, "on_error", "agent"),
        )

    def check_menus(self, menus: Mapping[str, Menu], settings: Settings) -> None:
        for menu in menus.values():
            path = f"menus.{menu.name}"
            if isinstance(menu, ChoiceMenu) and menu.bilingual and menu.say_digits:
                self.problem(path, "a bilingual menu cannot read digits back")
            if isinstance(menu, NumberMenu) and menu.confirm and menu.confirm_yes == menu.confirm_no:
                self.problem(path, "confirm keys must differ")
        start = menus.get(settings.start)
        if start is not None and not isinstance(start, ChoiceMenu | EndMenu):
            self.problem("settings.start", "the first menu must be a choice or an end menu")
        asks_reference = any(
            isinstance(menu, NumberMenu) and menu.store is Store.REFERENCE for menu in menus.values()
        )
        for name, menu in menus.items():
            if isinstance(menu, StatusMenu) and not asks_reference:
                self.problem(f"menus.{name}", 'needs a number menu with store = "reference" to ask for it')

    def check_prompts(self, book: MenuBook, catalog: PromptCatalog) -> None:
        for lang in book.settings.languages:
            if lang not in catalog.languages:
                self.problem("settings.languages", f'no prompt texts for "{lang}" (add ivr/prompt_texts/{lang}.toml)')
        for path, prompt in self.prompt_uses:
            missing = [
                lang for lang in book.settings.languages
                if lang in catalog.languages and not catalog.has(prompt, lang)
            ]
            if missing:
                self.problem(path, f'prompt "{prompt}" has no text in {", ".join(missing)}')

"""``[ivr]``: its typed section and its parser."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ivr.errors import MenuFileError
from ivr.menu_schema import MenuBook, default_menu_file, load_menus
from shenava_base.config_table import Table, show

_SOUND_FOLDER_RE = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


def _sound_folder(value: str) -> str | None:
    if _SOUND_FOLDER_RE.match(value):
        return None
    return "expected a folder under Asterisk's sounds/<lang>/ (letters, digits, _ - and /)"


@dataclass(frozen=True)
class IvrConfig:
    """``[ivr]``: the menu file (validated at load; ``menus`` is the result) and the prompts' folder."""

    menus_file: Path = field(default_factory=default_menu_file)
    sound_folder: str = "shenava"
    """Prompts are played as ``<sound_folder>/<prompt>`` from Asterisk's sounds/<lang>/."""
    menus: MenuBook = field(default_factory=load_menus, compare=False, repr=False)
    """The validated menus of ``menus_file``."""


def parse_ivr(t: Table) -> IvrConfig:
    key = "menus_file"
    if t.has(key):
        name = t.get_str(key)
        path = Path(name).expanduser()
        if not path.is_absolute():
            if t.base_dir is None:
                raise t.error(key, f"must be an absolute path, got {show(name)}")
            path = t.base_dir / path
    else:
        path = Path(t.get_str(key, str(default_menu_file())))
    try:
        menus = load_menus(path)
    except MenuFileError as exc:
        problems = "; ".join(exc.problems)
        raise t.error(key, f"{path}: {problems}") from None
    return IvrConfig(
        menus_file=path,
        sound_folder=t.get_str("sound_folder", "shenava", check=_sound_folder),
        menus=menus,
    )

"""The sounds folder: every prompt the menus and the call flow play, in every site language."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from ivr.menu_schema import MenuBook, StatusMenu
from shenava.check_config.findings import Finding, _error, _ok, _warn
from shenava.config import Config

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

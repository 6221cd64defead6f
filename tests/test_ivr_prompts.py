"""Prompt texts are complete in every language, and build to 8 kHz mono WAV."""

from __future__ import annotations

import re
import shutil
import wave
from pathlib import Path

import pytest

from ivr.errors import PromptFileError, PromptToolMissingError
from ivr.menu_schema import load_menus
from ivr.prompts import DIGITS, build_prompts, load_prompt_catalog
from shenava.cli import prompts_main as main

HAVE_TOOLS = shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def test_every_prompt_has_text_in_both_languages() -> None:
    catalog = load_prompt_catalog()
    assert sorted(catalog.languages) == ["en", "fa"]
    fa, en = catalog.languages["fa"], catalog.languages["en"]
    assert set(fa.texts) == set(en.texts)
    assert set(fa.digits) == set(en.digits) == set(DIGITS)
    assert catalog.incomplete() == []


def test_persian_texts_are_in_persian_script() -> None:
    fa = load_prompt_catalog().languages["fa"]
    for name, text in fa.texts.items():
        letters = [c for c in text if c.isalpha()]
        assert letters and all("\u0600" <= c <= "\u06ff" or c in "\u200c" for c in letters), name
    assert fa.digits["4"] == "چهار"
    assert not fa.asterisk_has_digits


def test_every_prompt_is_used_by_the_shipped_menus() -> None:
    """A prompt nothing plays is a stale translation; load_menus checks the other way round.

    Besides the menus, the hold loop (``routing/hold.py``), the complaint
    hand-over (``shenava/callflow.py``) and the take-over of callers after a
    restart (``shenava/takeover.py``) play prompts of their own.
    """
    book = load_menus()
    root = Path(__file__).resolve().parent.parent
    text = Path(book.source).read_text(encoding="utf-8") + "".join(
        (root / part).read_text(encoding="utf-8") for part in ("routing/hold.py", "shenava/callflow.py", "shenava/takeover.py")
    )
    catalog = load_prompt_catalog()
    in_menus = Path(book.source).read_text(encoding="utf-8")
    unused = [
        name
        for name in catalog.prompt_names()
        if f'"{name}"' not in in_menus
        and not re.search(rf"(shenava|{{SOUND_FOLDER}}|{{self\.sound_folder}}|{{self\._config\.sound_folder}})/{re.escape(name)}\b", text)
        and not name.startswith("status-")
    ]
    assert unused == []


def test_a_prompt_file_with_holes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fa.toml").write_text(
        'language = "fa"\n[digits]\n"0" = "صفر"\n[prompts]\nwelcome = "سلام"\n', encoding="utf-8"
    )
    (tmp_path / "en.toml").write_text(
        'language = "en"\n[digits]\n"0" = "zero"\n[prompts]\ngoodbye = "Goodbye"\n', encoding="utf-8"
    )
    with pytest.raises(PromptFileError) as caught:
        load_prompt_catalog(sorted(tmp_path.glob("*.toml")))
    assert 'prompt "goodbye" has no text in fa' in caught.value.problems
    assert 'prompt "welcome" has no text in en' in caught.value.problems
    assert 'digit "1" has no name in en' in caught.value.problems


def test_missing_tools_name_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(PromptToolMissingError, match="espeak-ng") as caught:
        build_prompts(tmp_path, ["en"], espeak="no-such-espeak-ng")
    assert caught.value.package == "espeak-ng"
    assert "apt-get install espeak-ng" in str(caught.value)
    if shutil.which("espeak-ng"):
        with pytest.raises(PromptToolMissingError, match="'sox'"):
            build_prompts(tmp_path, ["en"], sox="no-such-sox")
    assert main([str(tmp_path), "--espeak", "no-such-espeak-ng"]) == 3


@pytest.mark.skipif(not HAVE_TOOLS, reason="espeak-ng and sox (Debian packages) are not installed")
def test_build_makes_8khz_mono_wavs_in_asterisks_layout(tmp_path: Path) -> None:
    files = build_prompts(tmp_path, ["fa", "en"], prompts=["welcome", "invalid-option"])
    rel = sorted(str(path.relative_to(tmp_path)) for path in files)
    assert rel == sorted(
        ["fa/shenava/welcome.wav", "fa/shenava/invalid-option.wav",
         "en/shenava/welcome.wav", "en/shenava/invalid-option.wav"]
        # every language's digits (Asterisk may have no core sounds), and the
        # beep RECORD FILE ... BEEP plays
        + [f"{lang}/digits/{d}.wav" for lang in ("fa", "en") for d in DIGITS]
        + ["beep.wav", "fa/beep.wav", "en/beep.wav"]
    )
    for path in files:
        with wave.open(str(path), "rb") as sound:
            assert sound.getframerate() == 8000
            assert sound.getnchannels() == 1
            assert sound.getsampwidth() == 2
            assert sound.getnframes() > 8000 * 0.2, path  # some speech, not an empty file
    with wave.open(str(tmp_path / "fa/shenava/welcome.wav"), "rb") as sound:
        assert sound.getnframes() > 8000 * 1.5  # a whole sentence


@pytest.mark.skipif(not HAVE_TOOLS, reason="espeak-ng and sox (Debian packages) are not installed")
def test_build_can_leave_english_digits_and_the_beep_to_asterisk(tmp_path: Path) -> None:
    files = build_prompts(tmp_path, ["en"], prompts=["goodbye"], skip_digits=["en"], beep=False)
    assert [p.relative_to(tmp_path) for p in files] == [Path("en/shenava/goodbye.wav")]
    with pytest.raises(PromptFileError, match="no text"):
        build_prompts(tmp_path, ["en"], prompts=["no-such-prompt"])


@pytest.mark.skipif(not HAVE_TOOLS, reason="espeak-ng and sox (Debian packages) are not installed")
def test_the_command_builds_the_configs_languages(tmp_path: Path) -> None:
    config = tmp_path / "shenava.toml"
    config.write_text('[ami]\nsecret = "x"\n[site]\nlanguages = ["en"]\n')
    out = tmp_path / "sounds"
    assert main([str(out), "-c", str(config)]) == 0
    assert (out / "en" / "digits" / "0.wav").exists()
    assert (out / "beep.wav").exists()
    assert not (out / "fa").exists()

"""Prompt texts in every language, and the builder that renders them to 8 kHz WAV.

Texts live in ``ivr/prompt_texts/<lang>.toml`` (package data), so a translator
edits one file per language and the menu file only names prompts.

Audio layout. Asterisk looks for a sound ``shenava/main-menu`` first in
``sounds/<channel language>/shenava/main-menu.<ext>``, so ``build_prompts``
writes ``<out>/<lang>/shenava/<prompt>.wav`` and the operator copies ``<out>``'s
contents into the sounds directory (``/var/lib/asterisk/sounds``). The runner
sets ``CHANNEL(language)`` before playing a prompt in another language.

Digits. ``SAY DIGITS`` plays ``digits/<n>`` in the channel's language. Asterisk's
core sounds have English digits, recorded by a person, which sound better than
espeak-ng, but a minimal Asterisk install has no core sounds at all (the first
trial's did not); they have no Persian ones. So digits are built, into
``<out>/<lang>/digits/<n>.wav``, for every language built, unless
``skip_digits`` names it (keep Asterisk's recorded ones).

Beep. ``RECORD FILE ... BEEP`` plays the sound ``beep`` before recording; it
comes with Asterisk's core sounds too, so the build makes one (a 1 kHz tone of
a quarter second, sox) at ``<out>/beep.wav`` and ``<out>/<lang>/beep.wav``.

The builder runs espeak-ng and sox as subprocesses: it is a command-line tool
(``shenava prompts build``), never called on the reactor thread.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from ivr.errors import PromptBuildError, PromptFileError, PromptToolMissingError
from shenava_base.config_table import ConfigError, ConfigLoader

SOUND_FOLDER = "shenava"
"""Folder under ``sounds/<lang>/`` holding Shenava's prompts; AGI names them ``shenava/<prompt>``."""

DIGITS = "0123456789"
PROMPT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
SAMPLE_RATE_HZ = 8000
ESPEAK_WORDS_PER_MINUTE = 150  # a little slower than espeak's 175: phone lines are poor
TOOL_TIMEOUT_S = 60.0
BEEP_S = 0.25
BEEP_HZ = 1000

_PACKAGES = {"espeak-ng": "espeak-ng", "sox": "sox"}


@dataclass(frozen=True, slots=True)
class LanguagePrompts:
    """Every prompt text and digit name of one language."""

    language: str
    name: str
    espeak_voice: str
    asterisk_has_digits: bool
    digits: Mapping[str, str]
    texts: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PromptCatalog:
    """Prompt texts by language."""

    languages: Mapping[str, LanguagePrompts]

    def text(self, prompt: str, language: str) -> str:
        return self.languages[language].texts[prompt]

    def has(self, prompt: str, language: str) -> bool:
        texts = self.languages.get(language)
        return texts is not None and prompt in texts.texts

    def prompt_names(self) -> frozenset[str]:
        names: set[str] = set()
        for texts in self.languages.values():
            names.update(texts.texts)
        return frozenset(names)

    def incomplete(self) -> list[str]:
        """Prompts or digits that some language has and another lacks."""
        problems: list[str] = []
        every = self.prompt_names()
        for lang, texts in sorted(self.languages.items()):
            for prompt in sorted(every - set(texts.texts)):
                problems.append(f'prompt "{prompt}" has no text in {lang}')
            for digit in DIGITS:
                if digit not in texts.digits:
                    problems.append(f'digit "{digit}" has no name in {lang}')
        return problems


def default_prompt_files() -> list[Path]:
    folder = resources.files("ivr.prompt_texts")
    return sorted(
        Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".toml")
    )


def load_prompt_catalog(files: Iterable[Path] | None = None) -> PromptCatalog:
    """Load and check prompt files (default: the ones shipped in ``ivr/prompt_texts``)."""
    languages: dict[str, LanguagePrompts] = {}
    for path in default_prompt_files() if files is None else files:
        texts = _load_language(path)
        if texts.language in languages:
            raise PromptFileError(str(path), [f"language {texts.language!r} defined twice"])
        languages[texts.language] = texts
    catalog = PromptCatalog(MappingProxyType(languages))
    problems = catalog.incomplete()
    if problems:
        raise PromptFileError(", ".join(sorted(languages)), problems)
    return catalog


def _load_language(path: Path) -> LanguagePrompts:
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PromptFileError(source, [str(exc)]) from exc
    problems: list[str] = []
    language = data.get("language")
    if not isinstance(language, str) or not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", language):
        problems.append('language: must be a language code such as "fa" or "en"')
        language = "?"
    name = data.get("name", language)
    voice = data.get("espeak_voice", language)
    has_digits = data.get("asterisk_has_digits", False)
    if not isinstance(name, str) or not isinstance(voice, str):
        problems.append("name and espeak_voice: must be strings")
    if not isinstance(has_digits, bool):
        problems.append("asterisk_has_digits: must be true or false")
    digits = _string_table(data.get("digits"), "digits", problems)
    texts = _string_table(data.get("prompts"), "prompts", problems)
    for digit in digits:
        if digit not in DIGITS:
            problems.append(f'digits["{digit}"]: only 0-9 are read back')
    for prompt in texts:
        if not PROMPT_NAME.match(prompt):
            problems.append(f'prompts["{prompt}"]: use lower-case letters, digits and "-"')
    unknown = set(data) - {"language", "name", "espeak_voice", "asterisk_has_digits", "digits", "prompts"}
    problems.extend(f"{key}: unknown key" for key in sorted(unknown))
    if problems:
        raise PromptFileError(source, problems)
    return LanguagePrompts(
        language=str(language),
        name=str(name),
        espeak_voice=str(voice),
        asterisk_has_digits=bool(has_digits),
        digits=MappingProxyType(digits),
        texts=MappingProxyType(texts),
    )


def _string_table(value: object, key: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        problems.append(f"[{key}]: missing table")
        return {}
    table: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(text, str) or not text.strip():
            problems.append(f'{key}["{name}"]: must be a non-empty string')
        else:
            table[str(name)] = text
    return table


def build_prompts(
    out_dir: Path,
    languages: Sequence[str] | None = None,
    espeak: str = "espeak-ng",
    sox: str = "sox",
    *,
    catalog: PromptCatalog | None = None,
    prompts: Sequence[str] | None = None,
    with_digits: Sequence[str] = (),
    skip_digits: Sequence[str] = (),
    beep: bool = True,
) -> list[Path]:
    """Render prompts to 8 kHz 16-bit mono WAV under ``out_dir/<lang>/shenava/``.

    ``prompts`` limits the build to some prompt names. Digits
    (``<lang>/digits/0-9.wav``) are built for every language but those in
    ``skip_digits`` (``with_digits`` is kept for old callers: it builds them,
    as the default now does). ``beep`` adds ``beep.wav`` for ``RECORD FILE``.
    Returns the files written, in order.
    """
    catalog = catalog if catalog is not None else load_prompt_catalog()
    espeak_path = _require_tool(espeak, "espeak-ng")
    sox_path = _require_tool(sox, "sox")
    chosen = list(languages) if languages is not None else sorted(catalog.languages)
    unknown = [lang for lang in chosen if lang not in catalog.languages]
    if unknown:
        raise PromptFileError("catalog", [f"no prompt texts for language {lang!r}" for lang in unknown])
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="shenava-prompts-") as scratch:
        raw = Path(scratch) / "espeak.wav"
        for lang in chosen:
            texts = catalog.languages[lang]
            names = sorted(texts.texts) if prompts is None else list(prompts)
            jobs: list[tuple[str, str, Path]] = []
            for name in names:
                if name not in texts.texts:
                    raise PromptFileError(lang, [f'prompt "{name}" has no text in {lang}'])
                jobs.append((name, texts.texts[name], out_dir / lang / SOUND_FOLDER / f"{name}.wav"))
            if lang not in skip_digits or lang in with_digits:
                for digit in DIGITS:
                    jobs.append((f"digits/{digit}", texts.digits[digit], out_dir / lang / "digits" / f"{digit}.wav"))
            for name, text, target in jobs:
                target.parent.mkdir(parents=True, exist_ok=True)
                _run_tool(
                    [espeak_path, "-v", texts.espeak_voice, "-s", str(ESPEAK_WORDS_PER_MINUTE), "-w", str(raw), text],
                    name, lang, "espeak-ng",
                )
                _run_tool(
                    [sox_path, str(raw), "-r", str(SAMPLE_RATE_HZ), "-c", "1", "-b", "16", str(target)],
                    name, lang, "sox",
                )
                written.append(target)
    if beep:
        targets = [out_dir / "beep.wav", *(out_dir / lang / "beep.wav" for lang in chosen)]
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            _run_tool(
                [sox_path, "-n", "-r", str(SAMPLE_RATE_HZ), "-c", "1", "-b", "16", str(target),
                 "synth", str(BEEP_S), "sine", str(BEEP_HZ), "vol", "0.5"],
                "beep", "-", "sox",
            )
            written.append(target)
    return written


def _require_tool(program: str, tool: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise PromptToolMissingError(program, _PACKAGES[tool])
    return found


def _run_tool(argv: list[str], prompt: str, language: str, tool: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PromptBuildError(prompt, language, tool, str(exc)) from exc
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace") or f"exit status {done.returncode}"
        raise PromptBuildError(prompt, language, tool, detail)


def main(argv: Sequence[str] | None = None, load_config: ConfigLoader | None = None) -> int:
    """``shenava prompts build OUT``: the CLI wires its subcommand to this.

    ``load_config`` reads ``--config`` (the composition root passes it).
    """
    parser = argparse.ArgumentParser(
        prog="shenava prompts build",
        description="Render the IVR prompts to 8 kHz WAV with espeak-ng and sox. "
        "Copy the output folder's contents into Asterisk's sounds directory.",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write <lang>/shenava/*.wav into")
    parser.add_argument("--language", action="append",
                        help="only this language (repeatable; default: every language with "
                             "prompt texts, or site.languages of --config)")
    parser.add_argument("-c", "--config", type=Path, default=None,
                        help="build the languages of this config's site.languages")
    parser.add_argument(
        "--with-digits", action="append", default=[], metavar="LANG",
        help=argparse.SUPPRESS,  # digits are built for every language now
    )
    parser.add_argument(
        "--skip-digits", action="append", default=[], metavar="LANG",
        help="no digits/0-9 for this language: Asterisk's recorded ones are installed",
    )
    parser.add_argument("--no-beep", action="store_true",
                        help="no beep.wav (Asterisk's core sounds have one)")
    parser.add_argument("--espeak", default="espeak-ng", help="espeak-ng program")
    parser.add_argument("--sox", default="sox", help="sox program")
    args = parser.parse_args(argv)
    languages = args.language
    if languages is None and args.config is not None:
        if load_config is None:
            print("shenava prompts: --config is read by the shenava command", file=sys.stderr)
            return 2
        try:
            languages = list(load_config(args.config).site.languages)
        except ConfigError as exc:
            print(f"shenava prompts: invalid config: {exc}", file=sys.stderr)
            return 2
    try:
        files = build_prompts(
            args.out_dir, languages, args.espeak, args.sox, with_digits=args.with_digits,
            skip_digits=args.skip_digits, beep=not args.no_beep,
        )
    except (PromptToolMissingError, PromptBuildError, PromptFileError) as exc:
        print(f"error [{exc.code}]: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, PromptToolMissingError) else 1
    print(f"wrote {len(files)} files under {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

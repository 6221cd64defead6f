"""The ``[recordings]`` section: where voicemail lives, which Vosk model serves each language.

Parsed like every other section (``shenava_base.config_table.Table``), so an error
names its key path (``recordings.models.fa: ...``). The composition root adds
``recordings: RecordingsConfig = RecordingsConfig()`` to ``Config`` and
``recordings=root.section("recordings", parse_recordings)``.

Model folders are checked for existence when a worker starts, not here: a
config check on the daemon's host must not require the models the worker host
has (``recordings.vosk_engine.ModelMissingError`` names the path at start-up).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from shenava_base.config_table import ConfigError, Table, show

__all__ = ["RecordingsConfig", "parse_recordings", "LANGUAGE_RE"]

LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")
"""A model's language: an ISO 639 code (``fa``, ``en``; the tests use ``ko``)."""

DEFAULT_DIR = Path("/var/spool/shenava/voicemail")
DEFAULT_MODELS_DIR = Path("/var/lib/shenava/vosk-models")
MAX_WORKERS = 16


def _frozen(mapping: Mapping[str, object] | None = None) -> Mapping[str, object]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class RecordingsConfig:
    """Voicemail storage, the transcription queue and the Vosk workers."""

    dir: Path = DEFAULT_DIR
    """Where voicemail WAV files live, as this host sees the folder."""
    asterisk_dir: Path | None = None
    """The same folder as Asterisk sees it (``RECORD FILE`` path); None: same as ``dir``."""
    models_dir: Path = DEFAULT_MODELS_DIR
    """Where ``shenava models add`` unpacks models and keeps its registry."""
    models: Mapping[str, Path] = field(default_factory=_frozen)  # type: ignore[arg-type]
    """Language -> absolute model folder; overrides the registry of ``models_dir``."""
    urgent_words: Mapping[str, tuple[str, ...]] = field(default_factory=_frozen)  # type: ignore[arg-type]
    """Language -> words or phrases that make a voicemail urgent."""
    urgent_min_conf: float = 0.0
    """Recognised words less confident than this are not matched against urgent words."""
    workers: int = 1
    """Worker processes ``shenava worker`` starts (each holds every model: ~0.5 GiB apiece)."""
    max_attempts: int = 3
    """A job that failed or whose worker died this many times is parked."""
    claim_idle_s: float = 60.0
    """A job untouched this long (its worker died) is claimed by another worker."""

    @property
    def record_dir(self) -> Path:
        return self.asterisk_dir if self.asterisk_dir is not None else self.dir


def _absolute(t: Table, key: str, default: Path) -> Path:
    text = t.get_str(key, str(default))
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise t.error(key, f"must be an absolute path, got {show(text)}")
    return path


def _language_key(t: Table, key: str) -> None:
    if not LANGUAGE_RE.match(key):
        raise t.error(key, "expected a language code such as \"fa\" or \"en\" as the key")


def parse_models(t: Table) -> Mapping[str, Path]:
    models: dict[str, Path] = {}
    for lang in t.data:
        _language_key(t, lang)
        models[lang] = _absolute(t, lang, Path("/"))
    return MappingProxyType(models)


def parse_urgent_words(t: Table) -> Mapping[str, tuple[str, ...]]:
    words: dict[str, tuple[str, ...]] = {}
    for lang in t.data:
        _language_key(t, lang)
        words[lang] = t.get_str_list(lang, non_empty=True)
    return MappingProxyType(words)


def parse_recordings(t: Table) -> RecordingsConfig:
    d = RecordingsConfig()
    asterisk_dir = _absolute(t, "asterisk_dir", d.dir) if t.has("asterisk_dir") else None
    config = RecordingsConfig(
        dir=_absolute(t, "dir", d.dir),
        asterisk_dir=asterisk_dir,
        models_dir=_absolute(t, "models_dir", d.models_dir),
        models=t.section("models", parse_models),
        urgent_words=t.section("urgent_words", parse_urgent_words),
        urgent_min_conf=t.get_float("urgent_min_conf", d.urgent_min_conf, minimum=0.0, maximum=1.0),
        workers=t.get_int("workers", d.workers, minimum=1, maximum=MAX_WORKERS),
        max_attempts=t.get_int("max_attempts", d.max_attempts, minimum=1, maximum=100),
        claim_idle_s=t.get_float("claim_idle_s", d.claim_idle_s, positive=True, maximum=86400),
    )
    if config.claim_idle_s < 1.0:
        raise ConfigError(t.key_path("claim_idle_s"), f"must be at least 1 s, got {config.claim_idle_s:g}")
    return config

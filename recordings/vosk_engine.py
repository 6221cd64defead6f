"""Vosk decoding: a model loaded by absolute path, a WAV file in, a :class:`Transcript` out.

Only worker processes import this module: loading a model takes seconds and
~0.5 GiB, and decoding is CPU-bound, so neither may happen on the daemon's
reactor thread. Audio is fed at the file's own sample rate (8 kHz from
Asterisk); Vosk's feature pipeline resamples to the model's rate internally.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vosk

from recordings.audio import WavInfo, inspect_wav
from recordings.errors import ModelInvalidError, ModelMissingError
from recordings.models import check_model_folder
from recordings.transcript import Transcript, Word

__all__ = ["LoadedModel", "load_model", "transcribe_file", "CHUNK_FRAMES", "quiet_vosk"]

CHUNK_FRAMES = 4000
"""Frames fed per ``AcceptWaveform`` call (0.5 s at 8 kHz), as in Vosk's own examples."""

Progress = Callable[[float], None]
"""Called after each chunk with the seconds of audio decoded so far."""


def quiet_vosk() -> None:
    """Silence Kaldi's start-up chatter on stderr (once per process)."""
    vosk.SetLogLevel(-1)


@dataclass(frozen=True)
class LoadedModel:
    lang: str
    path: Path
    model: Any
    """The ``vosk.Model``; untyped in the vosk package."""

    @property
    def name(self) -> str:
        return self.path.name


def load_model(path: Path, lang: str) -> LoadedModel:
    """Load the model folder at absolute ``path``; never downloads (no ``Model(lang=...)``)."""
    if not path.is_absolute():
        raise ModelMissingError(path, lang, "the model path must be absolute")
    if not path.is_dir():
        raise ModelMissingError(path, lang)
    problems = check_model_folder(path)
    if problems:
        raise ModelInvalidError(f"{path} is not a Vosk model: {'; '.join(problems)}")
    try:
        model = vosk.Model(model_path=str(path))
    except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
        raise ModelInvalidError(f"Vosk could not load the model at {path}: {exc}") from exc
    return LoadedModel(lang=lang, path=path, model=model)


def transcribe_file(
    loaded: LoadedModel,
    path: Path,
    *,
    on_progress: Progress | None = None,
    info: WavInfo | None = None,
) -> Transcript:
    """Decode ``path`` (validated first: ``AudioError`` if it cannot be decoded)."""
    info = info if info is not None else inspect_wav(path)
    recognizer = vosk.KaldiRecognizer(loaded.model, float(info.sample_rate))
    recognizer.SetWords(True)
    chunk_bytes = CHUNK_FRAMES * 2
    frame_bytes = info.channels * info.bits // 8
    results: list[dict[str, Any]] = []
    with path.open("rb") as f:
        f.seek(info.data_offset)
        remaining = info.data_bytes
        done = 0
        while remaining > 0:
            data = f.read(min(chunk_bytes, remaining))
            if not data:
                break  # the file shrank since it was checked
            remaining -= len(data)
            if recognizer.AcceptWaveform(data):
                results.append(json.loads(recognizer.Result()))
            done += len(data)
            if on_progress is not None:
                on_progress(done / frame_bytes / info.sample_rate)
    results.append(json.loads(recognizer.FinalResult()))
    return _transcript(results, info, loaded)


def _transcript(results: list[dict[str, Any]], info: WavInfo, loaded: LoadedModel) -> Transcript:
    words: list[Word] = []
    texts: list[str] = []
    for result in results:
        text = result.get("text", "")
        if text:
            texts.append(text)
        for w in result.get("result", ()):
            words.append(Word.from_dict(w))
    return Transcript(
        text=" ".join(texts),
        words=tuple(words),
        duration_s=info.duration_s,
        language=loaded.lang,
        model=loaded.name,
    )

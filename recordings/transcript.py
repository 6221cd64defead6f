"""A transcript as stored and published: text, words with times and confidence.

Pure data, no Vosk: the daemon reads transcripts without loading a model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Transcript", "Word"]


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float
    """Seconds from the start of the recording."""
    end: float
    conf: float
    """Vosk's confidence, 0 to 1."""

    def to_dict(self) -> dict[str, object]:
        return {"word": self.word, "start": self.start, "end": self.end, "conf": self.conf}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Word:
        return cls(
            word=str(d["word"]),
            start=_float(d["start"]),
            end=_float(d["end"]),
            conf=_float(d.get("conf", 1.0)),
        )


def _float(value: object) -> float:
    if isinstance(value, int | float | str):
        return float(value)
    raise TypeError(f"expected a number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    words: tuple[Word, ...]
    duration_s: float
    """Audio duration, seconds."""
    language: str
    model: str = ""
    """The model folder's name, to tell transcripts of different models apart."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "text": self.text,
                "words": [w.to_dict() for w in self.words],
                "duration_s": self.duration_s,
                "language": self.language,
                "model": self.model,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Transcript:
        d = json.loads(text)
        words: Sequence[Mapping[str, object]] = d.get("words", [])
        return cls(
            text=str(d["text"]),
            words=tuple(Word.from_dict(w) for w in words),
            duration_s=float(d["duration_s"]),
            language=str(d["language"]),
            model=str(d.get("model", "")),
        )

"""Urgent words in a transcript: a pure function from recognised words to matched terms.

Terms may be phrases (``"gas leak"``, ``"قطع برق"``): a phrase matches
consecutive recognised words. Matching ignores case, punctuation, Arabic vs
Persian letter forms (``ي``/``ی``, ``ك``/``ک``), diacritics and the
zero-width non-joiner, which speakers and recognisers use inconsistently.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from recordings.transcript import Word

__all__ = ["Triage", "normalise", "triage"]

_LETTERS = str.maketrans({"ي": "ی", "ك": "ک", "ى": "ی", "ة": "ه", "ۀ": "ه", "أ": "ا", "إ": "ا", "آ": "ا"})
_ZWNJ = "\u200c"
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Triage:
    matched: tuple[str, ...]
    """Configured terms found, in configuration order, each once."""

    @property
    def urgent(self) -> bool:
        return bool(self.matched)


def normalise(text: str) -> str:
    """Fold ``text`` for matching (lower case, Persian letter forms, no marks or ZWNJ)."""
    text = unicodedata.normalize("NFKD", text.replace(_ZWNJ, ""))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = unicodedata.normalize("NFC", text).translate(_LETTERS).casefold()
    return " ".join(_PUNCT.sub(" ", text).split())


def triage(
    words: Sequence[Word],
    urgent_terms: Iterable[str],
    *,
    min_conf: float = 0.0,
) -> Triage:
    """The urgent terms said in ``words`` (words below ``min_conf`` do not count)."""
    heard = [normalise(w.word) if w.conf >= min_conf else "" for w in words]
    tokens: list[str] = []
    for h in heard:
        tokens.extend(h.split() if h else [""])  # "" keeps a doubtful word as a gap
    matched: list[str] = []
    for term in urgent_terms:
        wanted = normalise(term).split()
        if wanted and term not in matched and _contains(tokens, wanted):
            matched.append(term)
    return Triage(tuple(matched))


def triage_for(
    words: Sequence[Word], lang: str, urgent_words: Mapping[str, Sequence[str]], *, min_conf: float = 0.0
) -> Triage:
    return triage(words, urgent_words.get(lang, ()), min_conf=min_conf)


def _contains(tokens: Sequence[str], wanted: Sequence[str]) -> bool:
    n = len(wanted)
    return any(list(tokens[i : i + n]) == list(wanted) for i in range(len(tokens) - n + 1))

"""Urgent words: a pure function from recognised words to matched terms."""

from __future__ import annotations

from recordings.transcript import Transcript, Word
from recordings.triage import normalise, triage


def words(*texts: str, conf: float = 0.9) -> list[Word]:
    return [Word(t, i * 0.5, i * 0.5 + 0.4, conf) for i, t in enumerate(texts)]


def test_single_words_and_phrases_match() -> None:
    found = triage(words("there", "is", "a", "Gas", "leak", "here"), ["fire", "gas leak", "leak"])
    assert found.matched == ("gas leak", "leak") and found.urgent


def test_nothing_urgent() -> None:
    found = triage(words("my", "bill", "is", "wrong"), ["fire", "gas leak"])
    assert found.matched == () and not found.urgent


def test_a_phrase_must_be_consecutive() -> None:
    assert triage(words("gas", "bill", "leak"), ["gas leak"]).matched == ()


def test_persian_letter_forms_zwnj_and_punctuation_are_folded() -> None:
    # Arabic yeh and kaf, a ZWNJ, and punctuation, as a recogniser may produce them
    heard = words("فوري", "كمك", "می\u200cخواهم!")
    found = triage(heard, ["فوری", "کمک", "میخواهم"])
    assert found.matched == ("فوری", "کمک", "میخواهم")
    assert normalise("آتش‌سوزی") == normalise("اتشسوزی")


def test_doubtful_words_do_not_count_and_break_phrases() -> None:
    heard = [Word("gas", 0, 0.4, 0.9), Word("leak", 0.5, 0.9, 0.2)]
    assert triage(heard, ["leak", "gas leak"], min_conf=0.5).matched == ()
    assert triage(heard, ["leak", "gas leak"]).matched == ("leak", "gas leak")


def test_transcript_round_trips_through_json() -> None:
    t = Transcript("سلام دنیا", tuple(words("سلام", "دنیا")), 1.25, "fa", "vosk-model-small-fa")
    assert Transcript.from_json(t.to_json()) == t

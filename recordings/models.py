"""Vosk models: checking a folder, unpacking a zip, and the registry ``shenava models add`` keeps.

A model is registered per language in ``<models_dir>/registry.json``
(``{"fa": "/abs/path"}``). ``recordings.models`` in the config overrides the
registry language by language. Nothing here imports Vosk: ``models add`` checks
the files; the worker's load is the final word (``vosk_engine.load_model``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from recordings.config import LANGUAGE_RE, RecordingsConfig
from recordings.errors import ModelInvalidError, ModelMissingError

__all__ = [
    "REGISTRY_FILE",
    "add_model",
    "check_model_folder",
    "read_registry",
    "resolve_models",
]

REGISTRY_FILE = "registry.json"
REQUIRED_FILES = ("am/final.mdl", "conf/model.conf")
GRAPHS = (("graph/HCLG.fst",), ("graph/HCLr.fst", "graph/Gr.fst"))
"""A model decodes with a static graph (HCLG) or a lookahead pair (HCLr + Gr)."""
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def check_model_folder(path: Path) -> list[str]:
    """What is missing from ``path`` for it to be a Vosk model (empty: nothing)."""
    if not path.is_dir():
        return [f"{path} is not a folder"]
    problems = [f"missing {name}" for name in REQUIRED_FILES if not (path / name).is_file()]
    if not any(all((path / name).is_file() for name in graph) for graph in GRAPHS):
        problems.append("missing graph/HCLG.fst (or graph/HCLr.fst with graph/Gr.fst)")
    return problems


def read_registry(models_dir: Path) -> dict[str, Path]:
    path = models_dir / REGISTRY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelInvalidError(f"cannot read the model registry {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelInvalidError(f"{path}: expected a JSON object of language -> folder")
    return {str(lang): Path(str(folder)) for lang, folder in data.items()}


def _write_registry(models_dir: Path, registry: Mapping[str, Path]) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps({lang: str(p) for lang, p in sorted(registry.items())}, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=".registry-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, models_dir / REGISTRY_FILE)


def resolve_models(config: RecordingsConfig) -> dict[str, Path]:
    """Language -> model folder: the registry, overridden by ``recordings.models``."""
    models = read_registry(config.models_dir)
    models.update(config.models)
    return models


def add_model(source: Path, lang: str, models_dir: Path) -> Path:
    """Unpack (a ``.zip``) or take (a folder) a model, check it, register it for ``lang``.

    Returns the registered absolute folder. A zip is extracted under
    ``<models_dir>/<lang>/``; a folder is registered where it is.
    """
    if not LANGUAGE_RE.match(lang):
        raise ModelInvalidError(f"{lang!r} is not a language code such as 'fa' or 'en'")
    source = source.expanduser().resolve()
    if not source.exists():
        raise ModelMissingError(source, lang)
    if source.is_dir():
        folder = _model_root(source)
    elif zipfile.is_zipfile(source):
        folder = _unpack(source, models_dir.resolve() / lang)
    else:
        raise ModelInvalidError(f"{source} is neither a model folder nor a .zip file")
    problems = check_model_folder(folder)
    if problems:
        raise ModelInvalidError(f"{folder} is not a Vosk model: {'; '.join(problems)}")
    registry = read_registry(models_dir)
    registry[lang] = folder
    _write_registry(models_dir, registry)
    return folder


def _model_root(folder: Path) -> Path:
    """The folder itself, or its only sub-folder (how the Vosk zips are laid out)."""
    if (folder / "am").is_dir():
        return folder
    children = [c for c in folder.iterdir() if not c.name.startswith(".")]
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return folder


def _unpack(archive: Path, target_dir: Path) -> Path:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for member in members:
            member_path = PurePosixPath(member.filename)
            if member_path.is_absolute() or ".." in member_path.parts or "\\" in member.filename:
                raise ModelInvalidError(f"{archive}: refusing unsafe member {member.filename!r}")
        tops = {PurePosixPath(m.filename).parts[0] for m in members if m.filename.strip("/")}
        top = tops.pop() if len(tops) == 1 else archive.stem
        name = _SAFE_NAME.sub("-", top).strip(".-") or "model"
        target_dir.mkdir(parents=True, exist_ok=True)
        final = target_dir / name
        if final.exists():
            raise ModelInvalidError(f"{final} already exists: remove it first to replace the model")
        staging = Path(tempfile.mkdtemp(dir=target_dir, prefix=".unpack-"))
        try:
            zf.extractall(staging)
            root = _model_root(staging)
            problems = check_model_folder(root)
            if problems:
                raise ModelInvalidError(f"{archive} does not hold a Vosk model: {'; '.join(problems)}")
            os.replace(root, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final

"""``shenava transcribe FILE...``: decode a backlog of files in worker processes.

The files are the operator's (a backlog folder), decoded directly rather than
through the Redis queue, by a pool of ``spawn`` processes that each load the
model once. Each file gives one result: its transcript, or its error.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recordings.transcript import Transcript

__all__ = ["FileResult", "transcribe_files"]

_loaded: list[Any] = []
"""The worker process's model (set by :func:`_init`: one per pool process, not a daemon global)."""


@dataclass(frozen=True, slots=True)
class FileResult:
    path: str
    transcript: Transcript | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.transcript is not None


def _init(model_path: str, lang: str) -> None:
    from recordings.vosk_engine import load_model, quiet_vosk

    quiet_vosk()
    _loaded.append(load_model(Path(model_path), lang))


def _one(path: str) -> tuple[str, str | None, str | None]:
    from recordings.errors import RecordingsError
    from recordings.vosk_engine import transcribe_file

    try:
        return path, transcribe_file(_loaded[0], Path(path)).to_json(), None
    except RecordingsError as exc:
        return path, None, f"{exc.code}: {exc}"
    except OSError as exc:
        return path, None, f"recordings.unreadable: {path}: {exc.strerror or exc}"


def transcribe_files(
    files: Sequence[Path], model_path: Path, lang: str, *, processes: int = 1,
    on_result: Callable[[FileResult], None] | None = None,
) -> Iterator[FileResult]:
    """Results in completion order; a model that cannot load raises in the first result."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=max(1, min(processes, len(files))), mp_context=ctx,
        initializer=_init, initargs=(str(model_path), lang),
    ) as pool:
        futures = [pool.submit(_one, str(f)) for f in files]
        for future in as_completed(futures):
            path, transcript, error = future.result()
            result = FileResult(path, Transcript.from_json(transcript) if transcript else None, error)
            if on_result is not None:
                on_result(result)
            yield result

"""An unusable ``state.folder``: a clear error and exit code at start, and from check-config.

Tests run as root here, where permission bits stop nothing, so the folders are
made unusable the way root meets them too: a path under a regular file, and a
journal file that is a folder.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shenava.check_config import EXIT_ERRORS, Severity, check_config, run_check
from shenava.state_folder import StateFolderError, require_state_folder, state_folder_problem

ROOT = Path(__file__).resolve().parents[1]
START_BOUND_S = 60.0
"""A bound on the child, not a timing claim: without the check it would run on."""


def under_a_file(tmp_path: Path) -> Path:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    return blocker / "state"


def journal_is_a_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    (folder / "journal.jsonl").mkdir(parents=True)
    return folder


def config_file(tmp_path: Path, folder: Path) -> Path:
    path = tmp_path / "shenava.toml"
    path.write_text(
        '[ami]\nsecret = "not-the-placeholder"\n[redis]\nurl = "redis://127.0.0.1:1/0"\n'
        f'[state]\nfolder = "{folder}"\n', encoding="utf-8")
    return path


def test_a_usable_folder_is_made_and_passes(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    assert state_folder_problem(folder, create=False) is None
    assert not folder.exists()  # the check does not make it
    require_state_folder(folder)
    assert folder.is_dir() and not any(folder.iterdir())  # made, no probe left


@pytest.mark.parametrize("make", [under_a_file, journal_is_a_folder])
def test_an_unusable_folder_says_why(tmp_path: Path, make: object) -> None:
    folder = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(StateFolderError) as raised:
        require_state_folder(folder)
    assert raised.value.code == "state.folder_unusable"
    assert str(folder) in str(raised.value)


@pytest.mark.parametrize("make", [under_a_file, journal_is_a_folder])
def test_the_daemon_does_not_start_and_says_why(tmp_path: Path, make: object) -> None:
    folder = make(tmp_path)  # type: ignore[operator]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SHENAVA_TRACEBACK", None)
    done = subprocess.run(
        [sys.executable, "-m", "shenava.cli", "run", "--config", str(config_file(tmp_path, folder))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=START_BOUND_S,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"state.folder '{folder}' cannot hold the journal" in done.stderr
    assert done.stderr.count("\n") == 1  # one line, before any start-up noise


@pytest.mark.parametrize("make", [under_a_file, journal_is_a_folder])
def test_check_config_reports_it(tmp_path: Path, make: object) -> None:
    folder = make(tmp_path)  # type: ignore[operator]
    path = config_file(tmp_path, folder)
    found = {f.code: f for f in check_config(path)}
    assert found["state.folder_unusable"].severity is Severity.ERROR
    out = io.StringIO()
    assert run_check(path, None, out) == EXIT_ERRORS
    assert "state.folder_unusable" in out.getvalue()

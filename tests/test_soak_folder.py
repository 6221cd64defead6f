"""``benchmarks/soak.py`` removes its run's folder at the end unless ``--keep``.

Each run works in a ``shenava-soak-*`` folder under ``$TMPDIR`` (Redis's data,
the journal, the recordings); every run used to leave it behind (44 of them in
``/tmp`` on the shared machine). Here the run fails at once (no
``redis-server`` on ``PATH``), the quickest way through the whole ``run``: the
folder goes all the same, or stays, named on stderr, with ``--keep``. (A
whole run, about 35 s at the smallest sizes, is in docs/benchmarks.md.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOAK = ROOT / "benchmarks" / "soak.py"


def _soak_without_redis(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PATH": str(tmp_path / "no-bin")}
    return subprocess.run(
        [sys.executable, str(SOAK), "--rate", "1", "--duration-s", "1", "--warmup-s", "1", *extra],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )


def test_a_soak_run_removes_its_folder(tmp_path: Path) -> None:
    done = _soak_without_redis(tmp_path)
    assert done.returncode != 0 and "redis-server is not installed" in done.stderr
    assert list(tmp_path.glob("shenava-soak-*")) == []


def test_a_soak_run_with_keep_keeps_its_folder_and_says_where(tmp_path: Path) -> None:
    done = _soak_without_redis(tmp_path, "--keep")
    assert done.returncode != 0
    [kept] = tmp_path.glob("shenava-soak-*")
    assert f"the run's folder is kept: {kept}" in done.stderr
    assert (kept / "daemon.log").exists()

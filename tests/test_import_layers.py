"""The import check (scripts/check_imports.py): imports run down the floors, never in a circle."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_imports.py"


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_imports", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy_tree(tmp_path: Path) -> Path:
    """The packages' sources, copied (the check reads files; it never imports them)."""
    checker = _checker()
    for floor in checker.FLOORS:
        for entry in floor:
            package = entry.split(".")[0]
            if not (tmp_path / package).exists():
                shutil.copytree(ROOT / package, tmp_path / package,
                                ignore=shutil.ignore_patterns("__pycache__", "*.wav", "static"))
    return tmp_path


def _plant(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + f"\n\ndef _planted() -> None:\n    {line}\n",
                    encoding="utf-8")


def test_the_packages_import_down_the_floors_and_in_no_circle() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout


def test_an_upward_import_fails_the_check(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    assert _checker().check(root) == []
    _plant(root / "shenava_base" / "privacy.py", "from shenava.config import load_config")
    _plant(root / "routing" / "scoring.py", "import complaints.service")
    problems = _checker().check(root)
    assert any("upward import shenava_base.privacy -> shenava.config" in p for p in problems)
    assert any("upward import routing.scoring -> complaints.service" in p for p in problems)
    done = subprocess.run([sys.executable, str(SCRIPT), "--root", str(root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1


def test_a_sideways_import_between_neighbours_fails_the_check(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    _plant(root / "ivr" / "prompts.py", "from routing.calls import QUEUE")
    assert [p for p in _checker().check(root) if "sideways" in p] != []


def test_a_circle_fails_the_check_even_through_a_function_level_import(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    _plant(root / "ami_bridge" / "errors.py", "from ami_bridge.codec import AMIDecoder")
    problems = _checker().check(root)
    assert any(p.startswith("import circle: ami_bridge.codec -> ami_bridge.errors -> ami_bridge.codec")
               for p in problems)

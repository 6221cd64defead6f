"""One clock protocol: shenava_base.clock.Clock; no package declares its own."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ami_bridge", "ivr", "routing", "agent_stats", "recordings", "complaints", "shenava",
            "shenava_base", "testpbx")


def clock_like_classes(root: Path) -> list[str]:
    """Classes that declare ``callLater`` as a stub (``...``): a clock protocol."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ClassDef):
                    continue
                for item in node.body:
                    if (isinstance(item, ast.FunctionDef) and item.name == "callLater"
                            and isinstance(item.body[-1], ast.Expr)
                            and isinstance(item.body[-1].value, ast.Constant)
                            and item.body[-1].value.value is Ellipsis):
                        found.append(f"{path.relative_to(root)}:{node.name}")
    return found


def test_the_clock_protocol_is_declared_once() -> None:
    assert clock_like_classes(ROOT) == ["shenava_base/clock.py:Clock"]


def test_a_second_clock_protocol_is_found(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "routing" / "x.py").write_text(
        "from typing import Protocol\n\n\nclass Clock(Protocol):\n"
        "    def seconds(self) -> float: ...\n\n"
        "    def callLater(self, delay: float, f: object) -> object: ...\n"
    )
    assert clock_like_classes(tmp_path) == ["routing/x.py:Clock"]

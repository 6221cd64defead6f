"""A public clone has everything its tests and demo use: nothing reads beside it.

CI lays a ``shared/`` folder beside the repository; a user who clones the
project has none. Code that reached for it (``parents[2] / "shared"``) or for an
absolute path of this workplace passed here and failed everywhere else.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE_SUFFIXES = {".py", ".sh", ".toml", ".cfg", ".conf", ".service", ".js", ".html"}
# A path out of the repository into a sibling folder, or an absolute path of this machine.
OUTSIDE = re.compile(r'''(\.\./shared|parents\[2\]\s*/\s*["']shared|["']/work/|["']/root/)''')


def tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    return [ROOT / name for name in out.split("\0") if name]


def test_no_code_reads_outside_the_repository() -> None:
    files = [p for p in tracked_files() if p.suffix in CODE_SUFFIXES or p.parent.name in {"scripts", ".ci"}]
    assert len(files) > 100, "git ls-files found too few files to be this repository"
    offenders = []
    for path in files:
        if not path.is_file() or path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "reads outside the repository:\n" + "\n".join(offenders)


def test_the_test_data_is_in_the_repository() -> None:
    from tests.paths import SAMPLE_RECORDING, TRANSCRIPTS

    assert SAMPLE_RECORDING.is_file() and SAMPLE_RECORDING.stat().st_size > 100_000
    assert ROOT in SAMPLE_RECORDING.resolve().parents
    assert len(list(TRANSCRIPTS.glob("*.ami"))) >= 18
    assert (TRANSCRIPTS / "README.md").is_file()

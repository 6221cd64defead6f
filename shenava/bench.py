"""``shenava bench``: run the scripts in ``benchmarks/`` and collect their JSON lines.

Each benchmark is a standalone script whose last output line is one JSON
object; this command runs them one after another (never two at once, so they
do not compete for the machine's cores) and prints each last line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


def available(bench_dir: Path = BENCH_DIR) -> dict[str, Path]:
    return {
        path.stem: path
        for path in sorted(bench_dir.glob("*.py"))
        if not path.name.startswith("_")
    }


def run_benchmarks(names: Sequence[str], bench_dir: Path = BENCH_DIR) -> int:
    scripts = available(bench_dir)
    if not scripts:
        print(f"shenava bench: no benchmarks found in {bench_dir}", file=sys.stderr)
        return 3
    unknown = [n for n in names if n not in scripts]
    if unknown:
        print(
            f"shenava bench: unknown benchmark(s) {', '.join(unknown)}; "
            f"available: {', '.join(scripts)}",
            file=sys.stderr,
        )
        return 2
    status = 0
    for name in names or list(scripts):
        print(f"# {name}", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, str(scripts[name])],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = proc.stdout.strip().splitlines()
        last = lines[-1] if lines else ""
        try:
            json.loads(last)
        except ValueError:
            print(f"shenava bench: {name} failed (exit {proc.returncode})", file=sys.stderr)
            sys.stderr.write(proc.stderr[-2000:])
            status = 1
            continue
        print(last, flush=True)
    return status

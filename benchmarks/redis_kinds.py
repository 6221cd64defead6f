"""Redis commands by command and key family, from ``MONITOR``: what ``INFO commandstats`` cannot say.

``benchmarks/system.py --by-kind`` runs one ``redis-cli MONITOR`` per Redis
(every master of a cluster) into a file and, per step, counts the commands
Redis executed between two offsets of those files, by command and the family
of its first key: ``shenava:{stats}:ledger:b7`` is ``{stats}:ledger``, a named
site's ``shenava:{stats:bench:b7}:ledger`` is ``{stats:SITE:AGENT}:ledger``.
Commands a script ran are counted apart (``lua HSET {calls}:live``), as are a
transaction's ``MULTI``/``EXEC``. ``MONITOR`` costs Redis some CPU, so the
figures are for the counts, not the timings.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

_NUMKEYS = frozenset({"ZUNION", "ZINTER", "ZDIFF", "ZINTERCARD", "SINTERCARD", "LMPOP", "ZMPOP"})
"""Commands whose key count comes first (``ZUNION 2 k1 k2``): the family is the first key's."""
_LINE = re.compile(r"^\d+\.\d+ \[\d+ ([^\]]+)\] (.*)$")
_NO_KEY = frozenset({
    "MULTI", "EXEC", "DISCARD", "UNWATCH", "INFO", "PING", "SCRIPT", "CLIENT", "HELLO", "SELECT",
    "CLUSTER", "READONLY", "XREAD", "XREADGROUP", "WAIT",
})


def family(key: str) -> str:
    """The key's hash tag (site and agent generalised) and the name after it."""
    start, end = key.find("{"), key.find("}")
    if start < 0 or end < start:
        return ":".join(key.split(":")[:2])
    tag = key[start + 1 : end].split(":")
    general = tag[0] + ("", ":SITE", ":SITE:AGENT")[min(2, len(tag) - 1)]
    rest = key[end + 1 :].lstrip(":").split(":")[0]
    return "{" + general + "}" + (":" + rest if rest else "")


def kind_of(line: str) -> str | None:
    """``"[lua ]COMMAND family"`` for one ``MONITOR`` line; None for others and ``INFO``."""
    m = _LINE.match(line.strip())
    if m is None:
        return None
    try:
        args = shlex.split(m.group(2))
    except ValueError:
        args = m.group(2).split()
    if not args:
        return None
    command = args[0].upper()
    if command == "INFO":
        return None  # the harness's own
    key = ""
    if command in ("EVAL", "EVALSHA"):
        if len(args) > 3 and args[2] != "0":
            key = args[3]
    elif command in _NUMKEYS:
        if len(args) > 2 and args[1] != "0":
            key = args[2]
    elif command not in _NO_KEY and len(args) > 1:
        key = args[1]
    where = "lua " if m.group(1) == "lua" else ""
    return f"{where}{command} {family(key)}".rstrip()


class Monitors:
    """One ``redis-cli MONITOR`` per ``(host, port)``; ``mark()`` and ``since(mark)`` count."""

    def __init__(self, addresses: list[tuple[str, int]], folder: Path) -> None:
        self._files = [folder / f"monitor-{port}.txt" for _, port in addresses]
        self._procs = [
            subprocess.Popen(["redis-cli", "-h", host, "-p", str(port), "monitor"],
                             stdout=path.open("wb"), stderr=subprocess.DEVNULL)
            for (host, port), path in zip(addresses, self._files, strict=True)
        ]

    def mark(self) -> list[int]:
        return [path.stat().st_size if path.exists() else 0 for path in self._files]

    def since(self, mark: list[int]) -> Counter[str]:
        counts: Counter[str] = Counter()
        for path, offset in zip(self._files, mark, strict=True):
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read()
            for raw in data.decode("utf-8", "replace").splitlines():
                kind = kind_of(raw)
                if kind is not None:
                    counts[kind] += 1
        return counts

    def stop(self) -> None:
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def per_call(counts: Counter[str], calls: int, at_least: float = 0.2) -> dict[str, Any]:
    """Commands per call by kind, largest first (kinds under ``at_least`` left out)."""
    return {k: round(n / calls, 2) for k, n in counts.most_common() if n / calls >= at_least}

"""Test-side faults for a real ``shenava run`` process (not part of the product).

Run as ``python tests/daemon_plugins.py PLUGIN[,PLUGIN...] run -c CONFIG``: it
applies the named plugins to the daemon's classes, then runs the ordinary
``shenava`` command line with the remaining arguments. The process tests hand
it to ``benchmarks._takeover_rig`` in place of the ``shenava`` command
(:func:`command`). Plugins:

- ``hold-phases=P1+P2``: call-state records whose ``phase`` is one of these are
  never written to Redis (the write itself goes through and succeeds), as if
  each write of them were still in flight on an overloaded daemon: the window a
  test kills -9 in. The call state's own lag handling does not see it (no write
  is slow), so what the take-over then finds in Redis is the record before.
- ``slow-journal=S``: each journal append that holds a voicemail's callback
  flag reason is followed by ``S`` seconds in the journal's disk worker (a slow
  disk): the next append waits behind it, so a kill -9 during the sleep shows
  what one append kept.
- ``late-outcomes=S``: each journal append that holds an SL outcome waits ``S``
  seconds in the journal's disk worker *before* it writes (a slow disk, or a
  starved thread on a loaded host): the outcome is not on disk meanwhile,
  while the call state (a Redis write of its own) goes on.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()


def command(plugins: Sequence[str]) -> list[str]:
    """The command line (before ``run -c CONFIG``) of a daemon with these plugins."""
    return [sys.executable, str(HERE), ",".join(plugins)]


def hold_phases(phases: frozenset[str]) -> None:
    from shenava.call_state import CallStateStore

    original = CallStateStore.write

    async def write(self: Any, puts: Any, drops: Any, fence: str | None = None) -> int:
        kept = {k: v for k, v in puts.items() if v.get("phase") not in phases}
        return await original(self, kept, drops, fence)

    CallStateStore.write = write  # type: ignore[method-assign]


def _holds_voicemail_reason(lines: Sequence[bytes]) -> bool:
    return any(b'"callback.reason"' in line and b'"kind":"voicemail"' in line for line in lines)


def slow_journal(seconds: float) -> None:
    from shenava.journal import JournalFile

    for name in ("append_units", "append"):  # whichever the journal writes through
        original = getattr(JournalFile, name, None)
        if original is None:
            continue

        def slowed(self: Any, units: Any, _original: Any = original) -> None:
            _original(self, units)
            from shenava.journal import JournalEntry

            entries = [e for u in units for e in (u if isinstance(u, list) else [u])]
            if _holds_voicemail_reason([e.to_line() for e in entries if isinstance(e, JournalEntry)]):
                time.sleep(seconds)

        setattr(JournalFile, name, slowed)
        return


def late_outcomes(seconds: float) -> None:
    from shenava.journal import JournalEntry, JournalFile

    for name in ("append_units", "append"):  # whichever the journal writes through
        original = getattr(JournalFile, name, None)
        if original is None:
            continue

        def late(self: Any, units: Any, _original: Any = original) -> None:
            entries = [e for u in units for e in (u if isinstance(u, list) else [u])]
            if any(isinstance(e, JournalEntry) and e.kind == "stats.outcome" for e in entries):
                time.sleep(seconds)
            _original(self, units)

        setattr(JournalFile, name, late)
        return


def apply(spec: str) -> None:
    for item in filter(None, spec.split(",")):
        name, _, value = item.partition("=")
        if name == "hold-phases":
            hold_phases(frozenset(filter(None, value.split("+"))))
        elif name == "slow-journal":
            slow_journal(float(value))
        elif name == "late-outcomes":
            late_outcomes(float(value))
        else:
            raise SystemExit(f"daemon_plugins: unknown plugin {name!r}")
        print(f"daemon_plugins: {item} (test-only)", file=sys.stderr, flush=True)


def main(argv: Sequence[str]) -> int:
    apply(argv[0])
    from shenava.cli import main as shenava_main

    return shenava_main(list(argv[1:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

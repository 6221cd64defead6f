"""Is ``state.folder`` usable? Asked before the daemon starts and by ``check-config``.

The folder holds the journal of records not yet in Redis (``journal.jsonl``,
its cursor and ``journal.rejected``) and the reserved reference blocks. A
folder the daemon cannot write would otherwise surface as a traceback from
inside the reactor, after the AMI link is up, with every record of the run at
risk. The check creates the folder if it is missing, writes, fsyncs and
removes a probe file in it (the permission bits alone say nothing when the
daemon runs as root, or on a read-only mount), and opens the journal's own
files for appending if they exist.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["StateFolderError", "state_folder_problem", "require_state_folder"]

PROBE_NAME = ".shenava-write-probe"
FILES = ("journal.jsonl", "journal.cursor", "journal.rejected")


class StateFolderError(RuntimeError):
    """``state.folder`` cannot hold the journal: the daemon does not start."""

    code = "state.folder_unusable"


def state_folder_problem(folder: Path, *, create: bool = True) -> str | None:
    """Why ``folder`` cannot hold the journal, in words (None: it can).

    ``create=False`` (``check-config``) leaves a missing folder missing and asks
    whether the daemon could create it: the nearest folder that exists must
    take a file."""
    if not create and not os.path.lexists(folder):
        parent = folder.parent
        while not os.path.lexists(parent) and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            return f"it cannot be created: {parent} is not a folder"
        problem = _probe(parent)
        return None if problem is None else f"it cannot be created in {parent}: {problem}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create it: {exc.strerror or exc}"
    if not folder.is_dir():
        return "it is not a folder"
    problem = _probe(folder)
    if problem is not None:
        return f"cannot write in it: {problem}"
    for name in FILES:
        path = folder / name
        if not os.path.lexists(path):
            continue
        try:
            with path.open("ab"):
                pass
        except OSError as exc:
            return f"cannot write {name} in it: {exc.strerror or exc}"
    return None


def _probe(folder: Path) -> str | None:
    probe = folder / PROBE_NAME
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        return str(exc.strerror or exc)
    return None


def require_state_folder(folder: Path) -> None:
    """Raise :class:`StateFolderError` with the reason if ``folder`` is not usable."""
    problem = state_folder_problem(folder)
    if problem is not None:
        raise StateFolderError(
            f"state.folder {str(folder)!r} cannot hold the journal ({problem}); records waiting "
            "for Redis would be lost. Make it a local folder owned by the daemon's user "
            "(e.g. /var/lib/shenava)")

"""The call state Redis has not taken yet, kept on this host (``<state>/call-state.json``).

The call state (:mod:`shenava.call_state`) is written to Redis once per
reactor turn. While Redis is away those writes fail and are retried; a daemon
killed then (``kill -9``, a crash) took the callers' latest places with it,
and the next daemon resumed them from what Redis last held: a caller who had
been put in the waiting line during the outage was found in the menu before,
and their wait, its SL outcome and its callback flag were never counted
(``benchmarks/chaos.py`` found it).

So while writes fail the recorder also keeps the unwritten records here: one
JSON file, replaced atomically (written beside, fsynced, renamed, the folder
fsynced) before each retry. Every entry carries the time it was taken
(``"w"``); the take-over lays the file over what it loads from Redis, an
entry winning only over an older Redis record (a record written after the
file is newer). Once every call of the file is in Redis the file goes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twisted.logger import Logger

log = Logger()

FILE_NAME = "call-state.json"
STAMP = "w"
"""A record's field: when its form was taken (the reactor's clock, seconds)."""
DROPPED = {"dropped": True}


class CallStateSpool:
    """One file of ``call id -> record`` (or ``{"dropped": true, "w": ...}``)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE_NAME
        self.saves = 0

    def save(self, entries: Mapping[str, dict[str, Any]]) -> None:
        """Replace the file with ``entries`` (durably); an empty mapping removes it."""
        if not entries:
            self.clear()
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            self._sync_folder()
            self.saves += 1
        except OSError as exc:
            log.error("call state not kept on this host ({error}): a crash now loses "
                      "the places of {n} callers", error=exc, n=len(entries))

    def clear(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("call state file not removed: {error}", error=exc)
            return
        self._sync_folder()

    def load(self) -> dict[str, dict[str, Any]]:
        try:
            raw = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("call state file unreadable ({error}): ignored", error=exc)
            return {}
        if not isinstance(raw, dict):
            return {}
        return {str(k): v for k, v in raw.items() if isinstance(v, dict)}

    def _sync_folder(self) -> None:
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


def lay_over(
    records: dict[str, dict[str, Any]], spooled: Mapping[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``records`` (from Redis) with the newer of the spooled entries laid over them.

    Returns the records to take over and the call ids whose spooled entry won
    (to be written again, or dropped, by the new recorder)."""
    merged = dict(records)
    won: list[str] = []
    for call_id, entry in spooled.items():
        stored = merged.get(call_id)
        if stored is not None and float(stored.get(STAMP) or 0.0) >= float(entry.get(STAMP) or 0.0):
            continue  # Redis took a newer form after the file was written
        won.append(call_id)
        if entry.get("dropped"):
            merged.pop(call_id, None)
        else:
            merged[call_id] = {k: v for k, v in entry.items() if k != "dropped"}
    return merged, won


__all__ = ["CallStateSpool", "lay_over"]

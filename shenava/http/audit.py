"""The audit log: every sign-in (and its failures), sign-out, and every change made
over HTTP, plus supervisors' reads of full numbers: who, what, when, from where.

Entries go three ways: a structured log event (namespace ``shenava.audit``), an
append-only JSON-lines file when ``[http] audit_file`` names one, and the last
:data:`KEPT` in memory for ``GET /api/audit`` (admins). Paths are kept without
their query string (a query may carry a number); no password, token or
session id is ever written.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from twisted.logger import Logger

log = Logger(namespace="shenava.audit")

KEPT = 10_000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float
    who: str
    role: str
    what: str
    address: str
    status: int | None = None
    detail: str = ""


class AuditLog:
    def __init__(self, path: str = "") -> None:
        self._entries: deque[AuditEntry] = deque(maxlen=KEPT)
        self._path = Path(path) if path else None

    def record(self, entry: AuditEntry) -> None:
        self._entries.append(entry)
        log.info(
            "audit: {who} ({role}) {what} from {address}: {status} {detail}",
            who=entry.who, role=entry.role, what=entry.what, address=entry.address,
            status=entry.status, detail=entry.detail, audit=True,
        )
        if self._path is not None:
            try:
                with self._path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
            except OSError as exc:
                log.error("audit file {path} not written: {error}", path=str(self._path),
                          error=exc.strerror or str(exc))

    def recent(self, limit: int, who: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` entries (optionally of one person), newest first."""
        out: list[dict[str, Any]] = []
        for entry in reversed(self._entries):
            if who is not None and entry.who != who:
                continue
            out.append(asdict(entry))
            if len(out) >= limit:
                break
        return out

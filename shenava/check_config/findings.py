"""What a check finds (:class:`Finding`, its :class:`Severity`) and the exit codes."""

from __future__ import annotations

import enum
from dataclasses import dataclass

EXIT_OK = 0
EXIT_ERRORS = 1
EXIT_CONFIG_INVALID = 2

CONFIG_INVALID = "config.invalid"


class Severity(enum.Enum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    """One result of the check; ``code`` is stable (for scripts and docs)."""

    severity: Severity
    code: str
    message: str
    where: str = ""

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.severity.value:<8}{where}{self.message} [{self.code}]"


def _ok(code: str, message: str, where: object = "") -> Finding:
    return Finding(Severity.OK, code, message, str(where))


def _warn(code: str, message: str, where: object = "") -> Finding:
    return Finding(Severity.WARNING, code, message, str(where))


def _error(code: str, message: str, where: object = "") -> Finding:
    return Finding(Severity.ERROR, code, message, str(where))

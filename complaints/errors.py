"""Errors of the complaint register, one class each, with a stable code for logs and APIs."""

from __future__ import annotations


class ComplaintsError(Exception):
    """Base of every complaint-register error."""

    code = "complaints.error"


class InvalidReferenceError(ComplaintsError, ValueError):
    """Not a reference number: wrong length, not digits, or a wrong check digit."""

    code = "complaints.invalid_reference"


class ReferenceSpaceExhaustedError(ComplaintsError):
    """Every 7-digit serial is used; the reference format must grow."""

    code = "complaints.reference_space_exhausted"


class UnknownComplaintError(ComplaintsError, KeyError):
    """No complaint has this (valid) reference."""

    code = "complaints.unknown_complaint"

    def __init__(self, reference: str) -> None:
        self.reference = reference
        super().__init__(f"no complaint {reference}")

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidStatusChangeError(ComplaintsError, ValueError):
    """A status change the register does not allow (e.g. out of ``closed``)."""

    code = "complaints.invalid_status_change"

    def __init__(self, reference: str, old: str, new: str) -> None:
        self.reference = reference
        self.old = old
        self.new = new
        super().__init__(f"complaint {reference}: {old} -> {new} is not allowed")


class NoteRequiredError(ComplaintsError, ValueError):
    """A change that must say why (closing unresolved, a review, a redress) came without a note."""

    code = "complaints.note_required"


class InvalidComplaintError(ComplaintsError, ValueError):
    """A field of a complaint, report or query is invalid; ``field`` names it."""

    code = "complaints.invalid"

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class PermissionDeniedError(ComplaintsError, PermissionError):
    """The role may not do this."""

    code = "complaints.permission_denied"

    def __init__(self, role: str, action: str) -> None:
        self.role = role
        self.action = action
        super().__init__(f"role {role!r} may not {action}")


class UnknownReportError(ComplaintsError, KeyError):
    """No abuse report has this id."""

    code = "complaints.unknown_report"

    def __init__(self, report_id: str) -> None:
        self.report_id = report_id
        super().__init__(f"no abuse report {report_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class ReportAlreadyReviewedError(ComplaintsError):
    """A report was reviewed already; its outcome is kept, never overwritten."""

    code = "complaints.report_already_reviewed"

    def __init__(self, report_id: str, status: str) -> None:
        self.report_id = report_id
        self.status = status
        super().__init__(f"abuse report {report_id!r} was already reviewed ({status})")


class ConcurrentUpdateError(ComplaintsError):
    """A record changed under us too many times in a row; retry later."""

    code = "complaints.concurrent_update"

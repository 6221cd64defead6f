"""Errors of the HTTP API: each a stable ``code``, an HTTP status and a message.

The body of every error is ``{"error": {"code": ..., "message": ...}}`` (plus
``"field"`` when one field of the request is at fault). Domain errors of other
packages keep their own codes (``agent_stats.unknown_agent``, ...); this module
maps them to a status. Nothing here ever carries a traceback or a full number.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from agent_stats.errors import AgentStatsError, InvalidTransitionError
from agent_stats.roster import AgentBusyError, UnknownAgentError
from routing.errors import UnknownCallError


class ApiError(Exception):
    """An error the client is told about, as it is."""

    code = "http.error"
    status = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


class BadJsonError(ApiError):
    code = "http.bad_json"
    status = HTTPStatus.BAD_REQUEST


class MissingFieldError(ApiError):
    code = "http.missing_field"
    status = HTTPStatus.BAD_REQUEST

    def __init__(self, field: str, message: str | None = None) -> None:
        super().__init__(message or f"{field}: required", field=field)


class BadFieldError(ApiError):
    code = "http.bad_field"
    status = HTTPStatus.BAD_REQUEST

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)


class BodyTooLargeError(ApiError):
    code = "http.body_too_large"
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class NotSignedInError(ApiError):
    code = "http.not_signed_in"
    status = HTTPStatus.UNAUTHORIZED


class BadCredentialsError(ApiError):
    code = "http.bad_credentials"
    status = HTTPStatus.UNAUTHORIZED


class LockedOutError(ApiError):
    """Too many failed sign-ins: ``retry_after`` seconds until the next attempt counts.

    The body says it as numbers too, ``retry_after_s`` and ``retry_after_min`` (the
    minutes the English message names), so a page says it in its own language
    without reading the message."""

    code = "http.locked_out"
    status = HTTPStatus.TOO_MANY_REQUESTS

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def minutes(self) -> int:
        return lock_out_minutes(self.retry_after)

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["error"]["retry_after_s"] = int(self.retry_after) + 1
        body["error"]["retry_after_min"] = self.minutes
        return body


def lock_out_minutes(seconds: float) -> int:
    """Whole minutes of a lock-out, as people are told them (at least one)."""
    return max(1, round(seconds / 60))


class TooManyStreamsError(ApiError):
    code = "http.too_many_streams"
    status = HTTPStatus.TOO_MANY_REQUESTS


class TooManyConnectionsError(ApiError):
    """One sign-in holds ``max_connections_per_session`` connections already."""

    code = "http.too_many_connections"
    status = HTTPStatus.TOO_MANY_REQUESTS


class CsrfError(ApiError):
    code = "http.csrf"
    status = HTTPStatus.FORBIDDEN


class CrossSiteError(ApiError):
    code = "http.cross_site"
    status = HTTPStatus.FORBIDDEN


class HostNotAllowedError(ApiError):
    """The ``Host`` header names a server this is not (``[http] allowed_hosts``)."""

    code = "http.host_not_allowed"
    status = HTTPStatus.MISDIRECTED_REQUEST

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message)
        self.host = host


class UnsupportedMediaTypeError(ApiError):
    code = "http.unsupported_media_type"
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class BadRoleError(ApiError):
    code = "http.bad_role"
    status = HTTPStatus.BAD_REQUEST


class ForbiddenError(ApiError):
    code = "http.forbidden"
    status = HTTPStatus.FORBIDDEN


class NotFoundError(ApiError):
    code = "http.not_found"
    status = HTTPStatus.NOT_FOUND


class MethodNotAllowedError(ApiError):
    code = "http.method_not_allowed"
    status = HTTPStatus.METHOD_NOT_ALLOWED

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{method} is not allowed here; allowed: {', '.join(allowed)}")
        self.allowed = allowed


class UnavailableError(ApiError):
    """A part of Shenava this request needs is not running in this daemon."""

    code = "http.unavailable"
    status = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InternalError(ApiError):
    code = "http.internal"
    status = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self) -> None:
        super().__init__("internal error; the daemon's log has the details")


class DomainApiError(ApiError):
    """A domain error (it has a ``code``) shown with its own code and message."""

    def __init__(self, error: Exception, status: HTTPStatus) -> None:
        super().__init__(str(error))
        self.code = str(getattr(error, "code", "error"))
        self.status = status


_DOMAIN_STATUS: tuple[tuple[type[Exception], HTTPStatus], ...] = (
    (UnknownAgentError, HTTPStatus.NOT_FOUND),
    (AgentBusyError, HTTPStatus.CONFLICT),
    (UnknownCallError, HTTPStatus.NOT_FOUND),
    (InvalidTransitionError, HTTPStatus.BAD_REQUEST),
    (AgentStatsError, HTTPStatus.CONFLICT),
)


def api_error(error: BaseException) -> ApiError | None:
    """The client-facing form of ``error``, or None for a bug (shown as 500)."""
    if isinstance(error, ApiError):
        return error
    for kind, status in _DOMAIN_STATUS:
        if isinstance(error, kind):
            return DomainApiError(error, status)
    return None

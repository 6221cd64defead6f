"""The register's HTTP API: a ``twisted.web`` resource subtree for ``/api/complaints``.

The HTTP edge (:mod:`shenava.http.edge`) finds who is asking (a sign-in's
session, or a trusted proxy) and puts it on the request as ``request.actor``
(an :class:`~complaints.roles.Actor`); this resource reads nothing else, and no
header can name a person or a role here. Roles decide what may be done and
seen (:mod:`complaints.roles`); numbers are masked for agents; recordings are
download URLs (``GET /<reference>/recordings/<n>``, for roles that may listen),
never the server's file paths.

=======  ===================================  ==========================================
method   path (under /api/complaints)         what
=======  ===================================  ==========================================
GET      ``/``                                list/search: ``status`` (repeatable),
                                              ``category``, ``q``, ``number``,
                                              ``handled_by``, ``since``, ``until``,
                                              ``offset``, ``limit``
GET      ``/export?format=json|csv``          export (supervisor)
GET      ``/<reference>``                     one complaint
GET      ``/<reference>/recordings/<n>``      its n-th recording (WAV; supervisor)
PATCH    ``/<reference>``                     update: JSON ``status``, ``note``,
                                              ``category``, ``escalate_to``,
                                              ``escalation_reason``, ``redress``,
                                              ``redress_amount``, ``redress_currency``
POST     ``/abuse``                           an agent reports an abusive caller:
                                              ``number``, ``category``, ``note``,
                                              ``call_id``, ``complaint_ref``
GET      ``/abuse``                           reports pending review (supervisor)
POST     ``/abuse/<id>/review``               ``upheld`` (bool), ``note`` (supervisor)
GET      ``/callbacks?state=open|attention|closed[&since=T]``  callback flags
                                             (closed: those closed since T,
                                             default the last day)
POST     ``/callbacks/<id>/cancel``           ``note`` (supervisor)
POST     ``/callbacks/<id>/acknowledge``      an unreachable/wrong-number flag seen
=======  ===================================  ==========================================

Errors have the shape of every other API's (:mod:`shenava.http.errors`):
``{"error": {"code": ..., "message": ..., "field": ...}}`` (``field`` only when
one field of the request is at fault), with 400 (bad input), 401 (no role), 403
(not allowed), 404 (unknown), 409 (conflicting state), 413 (too large).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from complaints.complaint import ComplaintStatus
from complaints.errors import (
    ComplaintsError,
    InvalidStatusChangeError,
    PermissionDeniedError,
    ReportAlreadyReviewedError,
    UnknownComplaintError,
    UnknownReportError,
)
from complaints.roles import PERSON_RE, Actor, Permission, Role, may, require
from complaints.service import ComplaintRegister, ComplaintUpdate
from complaints.store import ComplaintQuery
from routing.callback_store import CallbackStore
from routing.callbacks import (
    AttemptInProgressError,
    CallbackError,
    CallbackFlag,
    FlagClosedError,
    UnknownFlagError,
    flag_to_dict,
)
from shenava_base.aio import as_deferred
from shenava_base.privacy import mask_number

log = Logger()

MAX_BODY_BYTES = 64 * 1024
MAX_RECORDING_BYTES = 64 * 1024 * 1024
MAX_LIMIT = 500


class HttpError(Exception):
    """A refusal of this resource's own (not a domain error): a status, a stable code,
    a message and, when one field of the request is at fault, its name."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field


class _Body:
    """A response other than JSON (the CSV export)."""

    def __init__(self, content: str | bytes, content_type: bytes) -> None:
        self.content = content
        self.content_type = content_type


Handler = Callable[[Actor, Request, list[str]], Awaitable[Any]]


CLOSED_DEFAULT_S = 86_400.0
"""Closed callback flags listed by default: the last day's."""


class ComplaintsResource(Resource):
    isLeaf = True

    def __init__(
        self, register: ComplaintRegister, callbacks: CallbackStore, clock: Any,
        recording_file: Callable[[str], Path | None] | None = None,
    ) -> None:
        super().__init__()
        self._register = register
        self._callbacks = callbacks
        self._clock = clock
        self._recording_file = recording_file
        """Where this daemon reads a listed recording (the recordings package's answer:
        the voicemail folder, whatever name Asterisk recorded it under)."""

    def render(self, request: Request) -> int:
        finished: list[bool] = []
        request.notifyFinish().addBoth(lambda _: finished.append(True))
        d = as_deferred(self._respond(request))

        def write(result: tuple[int, bytes, bytes]) -> None:
            if finished:
                return  # the client went away
            status, content_type, body = result
            request.setResponseCode(status)
            request.setHeader(b"Content-Type", content_type)
            request.setHeader(b"Cache-Control", b"no-store")
            request.write(body)
            request.finish()

        d.addCallback(write)
        d.addErrback(lambda f: log.failure("complaints API response failed", f))
        return NOT_DONE_YET

    async def _respond(self, request: Request) -> tuple[int, bytes, bytes]:
        try:
            actor = _actor(request)
            handler, parts = self._route(request)
            result = await handler(actor, request, parts)
        except HttpError as exc:
            return _error(exc.status, exc.code, str(exc), exc.field)
        except Exception as exc:  # domain errors become statuses; anything else is a bug
            status = _status_of(exc)
            if status == 500:
                log.failure("complaints API: {method} failed", method=_text(request.method))
                return _error(500, "internal", "internal error")
            field = getattr(exc, "field", None)
            return _error(status, getattr(exc, "code", "invalid"), str(exc),
                          field if isinstance(field, str) else None)
        if isinstance(result, _Body):
            content = result.content
            return 200, result.content_type, content.encode("utf-8") if isinstance(content, str) else content
        status = 201 if request.method == b"POST" and parts[:1] == ["abuse"] and len(parts) == 1 else 200
        return status, b"application/json; charset=utf-8", json.dumps(result, ensure_ascii=False).encode()

    # -- routing ----------------------------------------------------------------

    def _route(self, request: Request) -> tuple[Handler, list[str]]:
        parts = [_text(p) for p in (request.postpath or []) if p]
        method = _text(request.method).upper()
        head = parts[0] if parts else ""
        routes: dict[tuple[str, str, int], Handler] = {
            ("GET", "", 0): self._search,
            ("GET", "export", 1): self._export,
            ("POST", "abuse", 1): self._report_abuse,
            ("GET", "abuse", 1): self._pending_reports,
            ("POST", "abuse", 3): self._review_abuse,
            ("GET", "callbacks", 1): self._flags,
            ("POST", "callbacks", 3): self._flag_action,
        }
        if method == "GET" and len(parts) == 3 and parts[1] == "recordings":
            return self._recording, parts
        handler = routes.get((method, head, len(parts)))
        if handler is None and len(parts) == 1 and head not in ("export", "abuse", "callbacks"):
            handler = {"GET": self._get, "PATCH": self._update, "POST": self._update}.get(method)
        if handler is None:
            raise HttpError(404, "not_found", f"no {method} /api/complaints/{'/'.join(parts)}")
        return handler, parts

    # -- complaints ----------------------------------------------------------------

    async def _search(self, actor: Actor, request: Request, parts: list[str]) -> Any:
        return await self._register.search(actor, _query(request))

    async def _export(self, actor: Actor, request: Request, parts: list[str]) -> Any:
        fmt = _arg(request, "format") or "json"
        text = await self._register.export(actor, _query(request), fmt)
        content_type = b"text/csv; charset=utf-8" if fmt == "csv" else b"application/json; charset=utf-8"
        return _Body(text, content_type)

    async def _get(self, actor: Actor, request: Request, parts: list[str]) -> Any:
        return await self._register.get(actor, parts[0])

    async def _recording(self, actor: Actor, request: Request, parts: list[str]) -> Any:
        """The n-th recording of a complaint, for roles that may listen; the file's path
        comes from the register, never from the request."""
        require(actor, Permission.LISTEN_RECORDINGS)
        paths = (await self._register.store.get(parts[0])).recordings
        if not parts[2].isdigit() or int(parts[2]) >= len(paths):
            raise HttpError(404, "not_found", "no such recording of this complaint")
        listed = paths[int(parts[2])]
        found = self._recording_file(listed) if self._recording_file is not None else None
        path = found if found is not None else Path(listed)
        if path.suffix == "":
            path = path.with_suffix(".wav")
        return _Body(await self._off_reactor(_read_recording, path), b"audio/wav")

    async def _off_reactor(self, work: Callable[[Path], bytes], path: Path) -> bytes:
        """``work(path)`` in the reactor's thread pool: a file of up to 64 MiB (on a
        network share, perhaps) is never read on the thread every call waits on. A
        ``task.Clock`` (unit tests) has no threads: there it runs here."""
        reactor = self._clock
        if not hasattr(reactor, "getThreadPool"):
            return work(path)
        from twisted.internet.threads import deferToThreadPool

        return await deferToThreadPool(reactor, reactor.getThreadPool(), work, path).asFuture(
            asyncio.get_running_loop())

    async def _update(self, actor: Actor, request: Request, parts: list[str]) -> Any:
        body = _json_body(request)
        status = body.get("status")
        escalate_to = _opt_str(body, "escalate_to")
        if escalate_to is not None and not PERSON_RE.match(escalate_to):
            raise HttpError(400, "invalid", "escalate_to: a person id, 1-64 letters, digits or . _ @ -",
                            field="escalate_to")
        try:
            new_status = ComplaintStatus(status) if status is not None else None
        except ValueError:
            raise HttpError(400, "invalid", f"status: {status!r} is not one of "
                            + ", ".join(s.value for s in ComplaintStatus), field="status") from None
        try:
            change = ComplaintUpdate(
                status=new_status,
                note=_opt_str(body, "note"),
                category=_opt_str(body, "category"),
                escalate_to=_opt_str(body, "escalate_to"),
                escalation_reason=_opt_str(body, "escalation_reason") or "",
                redress=_opt_str(body, "redress"),
                redress_amount=_opt_int(body, "redress_amount"),
                redress_currency=_opt_str(body, "redress_currency"),
            )
        except ValueError as exc:
            raise HttpError(400, "invalid", str(exc)) from None
        return await self._register.update(actor, parts[0], change, self._clock.seconds())

    # -- abuse reports ---------------------------------------------------------------

    async def _report_abuse(self, actor: Actor, request: Request, parts: list[str]) -> Any:
        require(actor, Permission.REPORT_ABUSE)
        body = _json_body(request)
        report = await self._register.report_abuse(
            self._clock.seconds(),
            agent_id=actor.actor_id,
            number=_opt_str(body, "number"),
            category=_opt_str(body, "category") or "",
            note=_opt_str(body, "note") or "",
            call_id=_opt_str(body, "call_id"),
            complaint_ref=_opt_str(body, "complaint_ref"),
        )
        return {"report_id": report.report_id, "status": str(report.status)}

    async def _pending_reports(self, actor: Actor, request: Request, parts: list[str]) -> Any:
        return await self._register.pending_abuse_reports(actor)

    async def _review_abuse(self, actor: Actor, request: Request, parts: list[str]) -> Any:
        if parts[2] != "review":
            raise HttpError(404, "not_found", "expected /abuse/<id>/review")
        body = _json_body(request)
        upheld = body.get("upheld")
        if not isinstance(upheld, bool):
            raise HttpError(400, "invalid", "upheld: expected true or false", field="upheld")
        return await self._register.review_abuse(
            actor, parts[1], upheld=upheld, note=_opt_str(body, "note") or "",
            now=self._clock.seconds(),
        )

    # -- callback flags ----------------------------------------------------------------

    async def _flags(self, actor: Actor, request: Request, parts: list[str]) -> Any:
        require(actor, Permission.LIST)
        state = _arg(request, "state") or "open"
        if state == "open":
            flags = await self._callbacks.open_flags()
        elif state == "attention":
            flags = await self._callbacks.needing_attention()
        elif state == "closed":
            now = self._clock.seconds()
            raw_since = _arg(request, "since")
            try:
                since = float(raw_since) if raw_since else now - CLOSED_DEFAULT_S
            except ValueError:
                raise HttpError(400, "invalid", "since: expected POSIX seconds", field="since") from None
            flags = await self._callbacks.closed_between(since, now)
        else:
            raise HttpError(400, "invalid", "state: expected open, attention or closed", field="state")
        return [flag_view(f, actor.role) for f in flags]

    async def _flag_action(self, actor: Actor, request: Request, parts: list[str]) -> Any:
        require(actor, Permission.MANAGE_CALLBACKS)
        flag_id, action = parts[1], parts[2]
        now = self._clock.seconds()
        if action == "cancel":
            note = _opt_str(_json_body(request), "note") or ""
            flag = await self._callbacks.cancel(flag_id, now, by=actor.actor_id, note=note)
        elif action == "acknowledge":
            flag = await self._callbacks.acknowledge(flag_id, now, by=actor.actor_id)
        else:
            raise HttpError(404, "not_found", "expected cancel or acknowledge")
        return flag_view(flag, actor.role)


def flag_view(flag: CallbackFlag, role: Role) -> dict[str, Any]:
    """A callback flag as ``role`` may see it (JSON-ready); a voicemail's source is its
    recording's name, not the server's path of it."""
    view = flag_to_dict(flag)
    for reason in view["reasons"]:
        if reason.get("kind") == "voicemail" and isinstance(reason.get("source"), str):
            reason["source"] = os.path.basename(reason["source"])
    if not may(role, Permission.SEE_FULL_NUMBERS):
        view["number"] = mask_number(flag.number)
    if not may(role, Permission.SEE_TRANSCRIPTS):
        for reason in view["reasons"]:
            reason["transcript"] = None if reason["transcript"] is None else "(hidden)"
    return view


# -- helpers ---------------------------------------------------------------------------


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _actor(request: Request) -> Actor:
    """Who is asking, as the HTTP edge found it (never from a header)."""
    actor = getattr(request, "actor", None)
    if not isinstance(actor, Actor) or not PERSON_RE.match(actor.actor_id):
        raise HttpError(401, "unauthenticated", "sign in first (POST /api/session)")
    return actor


def _arg(request: Request, name: str) -> str | None:
    args: dict[bytes, list[bytes]] = request.args or {}
    values = args.get(name.encode())
    return _text(values[0]) if values else None


def _float_arg(request: Request, name: str) -> float | None:
    value = _arg(request, name)
    try:
        return None if value is None or value == "" else float(value)
    except ValueError:
        raise HttpError(400, "invalid", f"{name}: expected a number", field=name) from None


def _query(request: Request) -> ComplaintQuery:
    args: dict[bytes, list[bytes]] = request.args or {}
    try:
        statuses = frozenset(ComplaintStatus(_text(s)) for s in args.get(b"status", []))
    except ValueError as exc:
        raise HttpError(400, "invalid", f"status: {exc}", field="status") from None
    offset = _float_arg(request, "offset") or 0
    limit = _float_arg(request, "limit") or 100
    if offset < 0 or not 1 <= limit <= MAX_LIMIT:
        raise HttpError(400, "invalid", f"offset >= 0 and limit 1..{MAX_LIMIT}")
    return ComplaintQuery(
        statuses=statuses,
        category=_arg(request, "category") or None,
        number=_arg(request, "number") or None,
        text=_arg(request, "q") or None,
        handled_by=_arg(request, "handled_by") or None,
        since=_float_arg(request, "since"),
        until=_float_arg(request, "until"),
        offset=int(offset),
        limit=int(limit),
    )


def _json_body(request: Request) -> dict[str, Any]:
    content = request.content
    raw = content.read(MAX_BODY_BYTES + 1) if content is not None else b""
    if len(raw) > MAX_BODY_BYTES:
        raise HttpError(413, "too_large", "request body too large")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[..."
        raise HttpError(400, "invalid_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HttpError(400, "invalid_json", "expected a JSON object")
    return body


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise HttpError(400, "invalid", f"{key}: expected a string", field=key)


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise HttpError(400, "invalid", f"{key}: expected an integer", field=key)


def _read_recording(path: Path) -> bytes:
    """A recording's bytes (in a worker thread); refusals as the API's errors."""
    try:
        if path.stat().st_size > MAX_RECORDING_BYTES:
            raise HttpError(413, "too_large", "the recording is too large to serve")
        return path.read_bytes()
    except OSError:
        raise HttpError(404, "not_found", "the recording is no longer kept") from None


def _status_of(exc: Exception) -> int:
    if isinstance(exc, PermissionDeniedError):
        return 403
    if isinstance(exc, (UnknownComplaintError, UnknownReportError, UnknownFlagError)):
        return 404
    if isinstance(
        exc, (InvalidStatusChangeError, ReportAlreadyReviewedError, FlagClosedError, AttemptInProgressError)
    ):
        return 409
    if isinstance(exc, (ComplaintsError, CallbackError)):
        return 400
    return 500


def _error(status: int, code: str, message: str, field: str | None = None) -> tuple[int, bytes, bytes]:
    """The body every API of the daemon answers an error with (``shenava.http.errors.ApiError``)."""
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    body = json.dumps({"error": error}, ensure_ascii=False).encode()
    return status, b"application/json; charset=utf-8", body

"""A small JSON router on twisted.web: paths with ``{param}`` segments, async handlers.

Each route is ``(method, "/agents/{agent_id}/login", handler)``; the handler
gets the request, the :class:`~complaints.roles.Actor` and the path
parameters, and returns a JSON-ready value, a Deferred of one, or is an
``async def`` in Twisted style (awaiting Deferreds; asyncio coroutines of other
packages go through :func:`resolve`).
Errors become ``{"error": {"code", "message"}}`` with the error's status; an
unexpected exception is logged with its traceback here and shown to the client
only as ``http.internal``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from complaints.roles import Actor
from shenava.http.auth import actor_of
from shenava.http.errors import (
    ApiError,
    BadJsonError,
    BodyTooLargeError,
    InternalError,
    LockedOutError,
    MethodNotAllowedError,
    NotFoundError,
    UnavailableError,
    api_error,
)
from shenava_base.aio import as_deferred

log = Logger()

MAX_BODY_BYTES = 64 * 1024
Handler = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    segments: tuple[str, ...]
    handler: Handler
    needs_actor: bool = True

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for pattern, part in zip(self.segments, parts, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                if not part:
                    return None
                params[pattern[1:-1]] = part
            elif pattern != part:
                return None
        return params


def route(method: str, path: str, handler: Handler, *, needs_actor: bool = True) -> Route:
    return Route(method, tuple(p for p in path.split("/") if p), handler, needs_actor)


def write_json(request: Request, status: int, body: object) -> None:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    try:
        phrase: bytes | None = HTTPStatus(int(status)).phrase.encode("ascii")
    except ValueError:
        phrase = None
    request.setResponseCode(int(status), phrase)  # Twisted has no phrase for 421
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    # Screen pops and agent lists carry personal data: never kept by caches.
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"content-length", str(len(data)).encode("ascii"))
    if request.method != b"HEAD":
        request.write(data)
    request.finish()


@dataclass(frozen=True, slots=True)
class Redirect:
    """A handler's answer that sends the browser elsewhere (303) instead of JSON."""

    location: str


def write_answer(request: Request, body: object) -> None:
    if isinstance(body, Redirect):
        request.setResponseCode(HTTPStatus.SEE_OTHER)
        request.setHeader(b"location", body.location.encode("utf-8"))
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"content-length", b"0")
        request.finish()
        return
    write_json(request, HTTPStatus.OK, body)


def write_error(request: Request, error: ApiError) -> None:
    if isinstance(error, MethodNotAllowedError):
        request.setHeader(b"allow", ", ".join(error.allowed).encode("ascii"))
    if isinstance(error, LockedOutError):
        request.setHeader(b"retry-after", str(int(error.retry_after) + 1).encode("ascii"))
    write_json(request, error.status, error.body())


def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object body; an empty body is ``{}``."""
    content = request.content
    raw = content.read(MAX_BODY_BYTES + 1) if content is not None else b""
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadJsonError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # "[[[[...": nested deeper than the parser goes
        raise BadJsonError("the body's JSON is nested too deeply") from None
    except ValueError:  # a number of more than 4,300 digits (CPython's int limit)
        raise BadJsonError("the body's JSON has a number too long to read") from None
    if not isinstance(body, dict):
        raise BadJsonError(f"the body must be a JSON object, not {type(body).__name__}")
    return body


async def resolve(value: Any) -> Any:
    """What another package's service returned, resolved: a plain value, a Deferred,
    or an asyncio awaitable (a ``redis.asyncio`` storage coroutine, run as an asyncio
    task through :func:`shenava_base.aio.as_deferred`, as the project's convention is)."""
    if isinstance(value, Deferred):
        return await value
    if inspect.isawaitable(value):
        return await as_deferred(value)
    return value


class JsonRouter(Resource):
    """A leaf resource that serves every path below its mount point from ``routes``."""

    isLeaf = True

    def __init__(self, routes: Sequence[Route]) -> None:
        super().__init__()
        self._routes = tuple(routes)

    def render(self, request: Request) -> int:
        parts = [p.decode("utf-8", "replace") for p in request.postpath or ()]
        while parts and parts[-1] == "":
            parts.pop()
        method = request.method.decode("ascii", "replace")
        matched = [(r, p) for r in self._routes if (p := r.match(parts)) is not None]
        chosen = next(((r, p) for r, p in matched if r.method == method), None)
        if chosen is None and method == "HEAD":
            chosen = next(((r, p) for r, p in matched if r.method == "GET"), None)
        if chosen is None:
            if matched:
                allowed = tuple(sorted({r.method for r, _ in matched}))
                write_error(request, MethodNotAllowedError(method, allowed))
            else:
                write_error(request, NotFoundError(f"no such endpoint: {method} {_path(request)}"))
            return NOT_DONE_YET
        found, params = chosen
        finished: list[bool] = []
        request.notifyFinish().addBoth(lambda _: finished.append(True))
        d = ensureDeferred(self._call(request, found, params))
        d.addCallback(lambda body: None if finished else write_answer(request, body))
        d.addErrback(self._failed, request, found, finished)
        return NOT_DONE_YET

    async def _call(self, request: Request, found: Route, params: dict[str, str]) -> Any:
        if found.needs_actor:
            actor: Actor = actor_of(request)
            result = found.handler(request, actor, **params)
        else:
            result = found.handler(request, **params)
        if inspect.iscoroutine(result):
            # Handlers are Twisted-style coroutines (they await Deferreds): run them
            # here, in this coroutine, not as asyncio tasks as ``resolve`` would.
            return await result
        return await resolve(result)

    def _failed(self, failure: Failure, request: Request, found: Route, finished: list[bool]) -> None:
        error = api_error(failure.value)
        if error is None:
            log.failure(
                "HTTP {method} {route} failed", failure,
                method=found.method, route="/".join(found.segments),
            )
            error = InternalError()
        if not finished:
            write_error(request, error)


class JsonNotFound(Resource):
    """A JSON 404 for any path (twisted.web's own is an HTML page)."""

    isLeaf = True

    def render(self, request: Request) -> int:
        write_error(request, NotFoundError(f"no such endpoint: {_path(request)}"))
        return NOT_DONE_YET


class JsonUnavailable(Resource):
    """A 503 for a part of Shenava that is not running in this daemon."""

    isLeaf = True

    def __init__(self, code: str, message: str) -> None:
        super().__init__()
        self._code = code
        self._message = message

    def render(self, request: Request) -> int:
        write_error(request, UnavailableError(self._message, code=self._code))
        return NOT_DONE_YET


def _path(request: Request) -> str:
    """The path without its query string (a query may carry a number)."""
    return request.path.decode("utf-8", "replace")

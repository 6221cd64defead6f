"""``/api/session``: sign in, who is signed in (with the CSRF token), sign out; ``/api/audit``.

- ``POST /api/session`` ``{"name", "password"}`` (an agent: their agent id and
  password or PIN): a new session (a new id, whatever cookie came with the
  request), the cookie ``shenava_session`` (``HttpOnly; SameSite=Strict``, and
  ``Secure`` behind TLS), and the same answer as ``GET``.
- ``GET /api/session``: ``{"now", "person", "role", "csrf", "via", "expires_at"}``, or
  401 ``http.not_signed_in``.
- ``DELETE /api/session``: sign out (the session is forgotten, the cookie cleared).
- ``GET /api/audit?limit=&who=``: the audit log, newest first (admins).

Passwords are checked off the reactor (argon2id is slow on purpose), at most
:data:`CHECKS_AT_ONCE` at a time, so a flood of sign-ins cannot eat the memory.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web.server import Request

from complaints.roles import Actor
from shenava.http.auth import actor_of, require_admin
from shenava.http.edge import EdgeRequest, Gate
from shenava.http.errors import (
    BadCredentialsError,
    BadFieldError,
    LockedOutError,
    MissingFieldError,
    UnavailableError,
    lock_out_minutes,
)
from shenava.http.jsonapi import Redirect, Route, read_json, route
from shenava.http.sessions import Session
from shenava.users import MAX_PASSWORD, PERSON_RE, UserStore, verify

log = Logger()

CHECKS_AT_ONCE = 2
RECHECK_S = 30.0
"""How often (in use) a session is compared with its user's record."""
MAX_AUDIT = 1000


class SessionApi:
    def __init__(self, gate: Gate, users: UserStore | None) -> None:
        self._gate = gate
        self._users = users
        self._checks = DeferredSemaphore(CHECKS_AT_ONCE)
        gate.on_session_use = self._recheck

    def _recheck(self, session: Session) -> None:
        """Every :data:`RECHECK_S` of use, compare the session with the user's record: a
        removed user, or a changed password or role, ends it (``shenava users`` runs in
        another process, so this is how the daemon hears of it)."""
        gate = self._gate
        if self._users is None or not gate.sessions.due_for_check(session, gate.now(), RECHECK_S):
            return
        users = self._users

        def look() -> Deferred[Any]:
            reactor = gate.reactor
            if not hasattr(reactor, "getThreadPool"):
                return maybeDeferred(users.get, session.actor.actor_id)
            return deferToThreadPool(reactor, reactor.getThreadPool(), users.get, session.actor.actor_id)

        def compare(user: Any) -> None:
            if (user is None or user.changed_at != session.user_changed_at
                    or user.role is not session.actor.role):
                gate.sessions.close(session.session_id)
                log.info("session of {person} ended: the user was changed or removed",
                         person=session.actor.actor_id)

        def failed(failure: Any) -> None:  # the store is away: keep the session, look again later
            log.warn("user store unavailable for a session check: {error}",
                     error=failure.getErrorMessage())

        look().addCallbacks(compare, failed)

    def routes(self) -> list[Route]:
        return [
            route("GET", "/session", self.who, needs_actor=False),
            route("POST", "/session", self.sign_in, needs_actor=False),
            route("DELETE", "/session", self.sign_out, needs_actor=False),
            route("GET", "/session/link/{token}", self.use_link, needs_actor=False),
            route("GET", "/audit", self.audit_log),
        ]

    def _answer(self, request: EdgeRequest, actor: Actor) -> dict[str, Any]:
        session = request.session
        return {
            "now": self._gate.now(),
            "person": actor.actor_id,
            "role": actor.role.value,
            "csrf": request.csrf,
            "via": "session" if session is not None else "proxy",
            "expires_at": None if session is None else session.expires_at(
                self._gate.sessions.idle_s, self._gate.sessions.max_s),
        }

    def who(self, request: Request) -> dict[str, Any]:
        assert isinstance(request, EdgeRequest)
        return self._answer(request, actor_of(request))

    async def sign_in(self, request: Request) -> dict[str, Any]:
        assert isinstance(request, EdgeRequest)
        gate = self._gate
        body = read_json(request)
        name, password = body.get("name"), body.get("password")
        if not isinstance(name, str) or not name:
            raise MissingFieldError("name", "name: your user name (an agent: the agent id)")
        if not isinstance(password, str) or not password:
            raise MissingFieldError("password", "password: your password (an agent: or PIN)")
        if not PERSON_RE.match(name):
            raise BadFieldError("name", "1-64 letters, digits or . _ @ -")
        if len(password) > MAX_PASSWORD:
            raise BadFieldError("password", f"at most {MAX_PASSWORD} characters")
        locked = gate.lockout.retry_after(name, request.address, gate.now())
        if locked is not None:
            which, seconds = locked
            gate.record_refusal(request, "sign-in refused: locked out", 429, who=name, detail=which)
            whom = "this name" if which == "name" else "your address"
            raise LockedOutError(
                f"too many failed sign-ins for {whom}; try again in {_minutes(seconds)}", seconds
            )
        if self._users is None:
            raise UnavailableError(
                "no users are configured (set [http] users_file or [redis] url, then "
                "shenava users add)", code="http.no_users",
            )
        gate.lockout.begin(name, request.address)
        try:
            user, good = await self._checks.run(self._off_reactor, name, password)
        finally:
            gate.lockout.end(name, request.address)
        now = gate.now()
        if not good or user is None:
            gate.lockout.failed(name, request.address, now)
            gate.record(request, "sign-in failed", 401, who=name, role="-")
            raise BadCredentialsError("wrong name or password")
        gate.lockout.succeeded(name)
        if request.session is not None:
            gate.sessions.close(request.session.session_id)
        actor = Actor(user.name, user.role)
        session = gate.sessions.open(actor, now, user.changed_at)
        request.session, request.actor, request.csrf = session, actor, session.csrf
        gate.set_cookie(request, session)
        gate.record(request, "signed in", 200)
        return self._answer(request, actor)

    def _off_reactor(self, name: str, password: str) -> Deferred[tuple[Any, bool]]:
        reactor = self._gate.reactor
        if not hasattr(reactor, "getThreadPool"):  # a task.Clock (tests): no threads
            return maybeDeferred(self._check, name, password)
        return deferToThreadPool(reactor, reactor.getThreadPool(), self._check, name, password)

    def _check(self, name: str, password: str) -> tuple[Any, bool]:
        """In a worker thread: read the user and verify the password."""
        assert self._users is not None
        try:
            user = self._users.get(name)
        except (OSError, ValueError) as exc:  # unreadable (its owner or mode), or not JSON
            reason = getattr(exc, "strerror", None) or str(exc)
            log.error("sign-in: the users store cannot be read: {reason}", reason=reason)
            raise UnavailableError(
                f"the users store cannot be read ({reason}): the daemon's user must be able to "
                "read [http] users_file (e.g. root:shenava, mode 0640; docs/security.md)",
                code="http.users_unreadable") from None
        return user, verify(user, password)

    def use_link(self, request: Request, token: str) -> Redirect:
        """A one-use sign-in link (printed by ``shenava demo``): a session, then the page;
        a used, unknown or expired one: the sign-in page, saying so."""
        assert isinstance(request, EdgeRequest)
        gate = self._gate
        found = gate.use_link(token)
        if found is None:
            # A browser (the demo's link opened twice): the sign-in page, which says why
            # and goes straight on if this browser is signed in already.
            gate.record_refusal(request, "sign-in link refused", 303)
            return Redirect("../../../sign-in?link=used")
        actor, page = found
        if request.session is not None:
            gate.sessions.close(request.session.session_id)
        session = gate.sessions.open(actor, gate.now())
        request.session, request.actor, request.csrf = session, actor, session.csrf
        gate.set_cookie(request, session)
        gate.record(request, "signed in with a link", 303)
        return Redirect("../../../" + page)

    def sign_out(self, request: Request) -> dict[str, Any]:
        assert isinstance(request, EdgeRequest)
        actor_of(request)
        if request.session is not None:
            self._gate.sessions.close(request.session.session_id)
            self._gate.set_cookie(request, None)
            self._gate.record(request, "signed out", 200)
        return {"now": self._gate.now(), "signed_in": False}

    def audit_log(self, request: Request, actor: Actor) -> dict[str, Any]:
        require_admin(actor, "the audit log")
        args: dict[bytes, list[bytes]] = request.args or {}
        raw_limit = (args.get(b"limit") or [b"100"])[0]
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_AUDIT:
            raise BadFieldError("limit", f"a whole number 1..{MAX_AUDIT}")
        who = args.get(b"who")
        entries = self._gate.audit.recent(int(raw_limit), who[0].decode("utf-8", "replace") if who else None)
        return {"now": self._gate.now(), "entries": entries}


def _minutes(seconds: float) -> str:
    minutes = lock_out_minutes(seconds)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"

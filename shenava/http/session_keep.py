"""Sign-in sessions kept in Redis, so that a daemon restart (or a standby taking over)
does not sign everyone out.

Each session is one Redis string, ``{prefix}:session:{hash}`` (``{prefix}:session:
{site}:{hash}`` at a named site), where ``hash`` is :func:`~shenava.http.sessions.
kept_name` of the cookie's value: the cookie itself is never stored, and neither is
the CSRF token (derived from the cookie). The value is the person, the role, the
sign-in time, the last use and the user's record as of the sign-in; the key expires
when the session would (``session_idle_s`` after the last use told, at most
``session_max_s`` after the sign-in), so Redis forgets what nobody signs out of.

Writes leave the reactor's path at once: they are queued, and one writer sends
what is queued in one pipeline, in order (a sign-out after a sign-in is never
overtaken by it). When Redis is away the daemon's sessions still work (from
memory) and a warning says they will not outlive a restart; a sign-out is kept
to be retried, and until its ``DEL`` is done the session is refused even if
Redis still holds it. A request whose cookie the daemon does not hold asks
Redis (:meth:`RedisSessionKeeper.load`); Redis away then answers 503
``http.sessions_unavailable`` (the pages wait and retry), not "sign in again".
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from complaints.roles import Actor, Role
from shenava.http.sessions import Session, csrf_of, kept_name
from shenava_base.aio import as_deferred

log = Logger()

RETRY_S = 5.0
"""After a failed write, the writer tries again this much later (sign-outs are kept)."""
FORGOTTEN_KEPT_S = 600.0
"""A sign-out is remembered this long after its ``DEL`` was done (a load that began
before it cannot bring the session back)."""
MAX_FORGOTTEN = 50_000


class SessionsUnavailableError(RuntimeError):
    """Redis could not be asked whether a cookie is a live session."""

    code = "http.sessions_unavailable"


class RedisSessionKeeper:
    """Sessions in Redis behind :class:`~shenava.http.sessions.SessionStore` (its keeper)."""

    def __init__(self, client: Any, prefix: str, *, site: str = "", clock: Any) -> None:
        self._client = client
        self._base = f"{prefix}:session:" + (f"{site}:" if site else "")
        self._clock = clock
        self._queue: list[tuple[str, str, str, int]] = []
        """("set"|"del", kept name, value, ttl ms), in the order they were asked for."""
        self._writing = False
        self._retry: Any = None
        self._failing = False
        self._forgotten: OrderedDict[str, bool] = OrderedDict()
        """Names of sessions that ended here -> whether their ``DEL`` is done yet."""
        self._forgotten_at: dict[str, float] = {}

    def key(self, session_id: str) -> str:
        return self._base + kept_name(session_id)

    # -- the store's keeper -------------------------------------------------------------

    def keep(self, session: Session, expires_at: float) -> None:
        name = kept_name(session.session_id)
        ttl_ms = int((expires_at - self._clock.seconds()) * 1000)
        if ttl_ms <= 0:
            return
        value = json.dumps({
            "person": session.actor.actor_id, "role": session.actor.role.value,
            "created_at": session.created_at, "last_seen": session.last_seen,
            "user_changed_at": session.user_changed_at,
        }, separators=(",", ":"))
        self._queue.append(("set", name, value, ttl_ms))
        self._write_soon()

    def forget(self, session_id: str) -> None:
        name = kept_name(session_id)
        self._forgotten[name] = False
        self._forgotten.move_to_end(name)
        self._forgotten_at[name] = self._clock.seconds()
        self._prune_forgotten()
        self._queue.append(("del", name, "", 0))
        self._write_soon()

    # -- reading back -------------------------------------------------------------------

    def load(self, session_id: str) -> Deferred[Session | None]:
        """The session Redis keeps for this cookie (None: none, or it ended here).

        Fails with :class:`SessionsUnavailableError` when Redis cannot be asked."""
        name = kept_name(session_id)
        if name in self._forgotten:
            return succeed(None)
        asked_at = self._clock.seconds()
        d: Deferred[Any] = as_deferred(self._client.get(self._base + name))

        def read(raw: Any) -> Session | None:
            forgotten = self._forgotten_at.get(name)
            if raw is None or (forgotten is not None and forgotten >= asked_at):
                return None
            return _session(session_id, raw)

        def unavailable(failure: Any) -> None:
            log.warn("a session could not be read from Redis: {error}", error=failure.getErrorMessage())
            raise SessionsUnavailableError(failure.getErrorMessage())

        d.addCallbacks(read, unavailable)
        return d

    # -- the writer ---------------------------------------------------------------------

    def _write_soon(self) -> None:
        if self._writing or (self._retry is not None and self._retry.active()):
            return
        self._writing = True
        batch, self._queue = self._queue, []
        d = as_deferred(self._send(batch))
        d.addCallbacks(self._written, self._not_written, callbackArgs=(batch,), errbackArgs=(batch,))

    async def _send(self, batch: list[tuple[str, str, str, int]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for op, name, value, ttl_ms in batch:
            if op == "set":
                pipe.set(self._base + name, value, px=ttl_ms)
            else:
                pipe.delete(self._base + name)
        await pipe.execute()

    def _written(self, _: object, batch: list[tuple[str, str, str, int]]) -> None:
        self._writing = False
        for op, name, _value, _ttl in batch:
            if op == "del" and name in self._forgotten:
                self._forgotten[name] = True
        if self._failing:
            self._failing = False
            log.info("sign-in sessions are kept in Redis again")
        if self._queue:
            self._write_soon()

    def _not_written(self, failure: Any, batch: list[tuple[str, str, str, int]]) -> None:
        self._writing = False
        if not self._failing:
            self._failing = True
            log.warn(
                "sign-in sessions cannot be kept in Redis ({error}): they work, but a restart "
                "now would sign their people out; sign-outs are retried",
                error=failure.getErrorMessage(),
            )
        # Sign-outs are kept to be retried (in order, before anything newer); a session's
        # newer deadline is sent again at its next use.
        self._queue = [op for op in batch if op[0] == "del"] + self._queue
        self._retry = self._clock.callLater(RETRY_S, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        if self._queue:
            self._write_soon()

    def _prune_forgotten(self) -> None:
        now = self._clock.seconds()
        while self._forgotten:
            name, done = next(iter(self._forgotten.items()))
            old = now - self._forgotten_at.get(name, now) > FORGOTTEN_KEPT_S
            if not ((done and old) or len(self._forgotten) > MAX_FORGOTTEN):
                break
            self._forgotten.popitem(last=False)
            self._forgotten_at.pop(name, None)

    def stop(self) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None


def _session(session_id: str, raw: Any) -> Session | None:
    try:
        data = json.loads(raw)
        actor = Actor(str(data["person"]), Role(data["role"]))
        changed = data.get("user_changed_at")
        return Session(
            session_id, actor, csrf_of(session_id), float(data["created_at"]),
            float(data["last_seen"]), None if changed is None else float(changed),
            checked_at=0.0,  # the user's record is looked at again at the first use
            kept_at=float(data["last_seen"]),
        )
    except (ValueError, KeyError, TypeError):
        log.warn("a kept session could not be read (not Shenava's format): ignored")
        return None

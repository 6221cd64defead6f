"""Sessions after a sign-in, and the lock-out after repeated failures: pure, given ``now``.

A session is a random id (the cookie) with the person, the role, a CSRF token
(sent back by the pages in ``X-CSRF-Token``, derived from the id so that it need
not be stored), and two deadlines: idle (each use moves it) and absolute (from
the sign-in). The daemon keeps its sessions in memory and, through a *keeper*
(:mod:`shenava.http.session_keep`: Redis, keyed by a hash of the id, with the
deadline as the key's expiry), beyond a restart: the store tells the keeper of
each new session, each use that moved the idle deadline by
:data:`TOUCH_EVERY_S` or more, and each session that ended.

The lock-out counts failed sign-ins per name and per address in a sliding
window; past the limit, further attempts are refused without checking the
password until the window has passed (``retry_after``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, replace
from typing import Protocol

from complaints.roles import Actor

MAX_SESSIONS = 20_000
"""Sessions kept at most (the least recently used is dropped first): memory stays bounded."""
MAX_SESSIONS_PER_PERSON = 64
"""Sessions one person holds at most (their oldest is dropped first): without it, one
person signing in again and again would push everyone else's sessions out of the store."""
MAX_TRACKED = 50_000
"""Names and addresses whose failures are remembered at most."""
PENDING_RETRY_S = 5.0
"""Retry-After when the count is full of attempts still being checked (not failures)."""
TOUCH_EVERY_S = 60.0
"""A session's moved idle deadline is told to the keeper at most this often (at most a
quarter of ``session_idle_s``): after a restart a session may end this much early."""


def csrf_of(session_id: str) -> str:
    """The session's CSRF token: a hash of its id under another label than the keeper's
    (so what is kept in Redis gives neither the cookie nor the token)."""
    return hashlib.sha256(b"shenava-csrf|" + session_id.encode()).hexdigest()


def kept_name(session_id: str) -> str:
    """The name a keeper stores a session under: a hash of its id, never the id itself."""
    return hashlib.sha256(b"shenava-session|" + session_id.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    actor: Actor
    csrf: str
    created_at: float
    last_seen: float
    user_changed_at: float | None = None
    """The user's record as of the sign-in (None: a sign-in link, no record to follow)."""
    checked_at: float = 0.0
    """When the user's record was last compared with the store."""
    kept_at: float = 0.0
    """When the keeper was last told of it (its idle deadline as of then)."""

    def expires_at(self, idle_s: float, max_s: float) -> float:
        return min(self.last_seen + idle_s, self.created_at + max_s)


class SessionKeeper(Protocol):
    """Where sessions outlive the daemon (:mod:`shenava.http.session_keep`)."""

    def keep(self, session: Session, expires_at: float) -> None: ...

    def forget(self, session_id: str) -> None: ...


class SessionStore:
    def __init__(self, idle_s: float, max_s: float, *, max_sessions: int = MAX_SESSIONS,
                 per_person: int = MAX_SESSIONS_PER_PERSON, keeper: SessionKeeper | None = None) -> None:
        self.idle_s = idle_s
        self.max_s = max_s
        self.max_sessions = max_sessions
        self.per_person = per_person
        self.keeper = keeper
        self.touch_every_s = min(TOUCH_EVERY_S, idle_s / 4)
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._by_person: dict[str, OrderedDict[str, None]] = {}
        """Each person's session ids, oldest sign-in first."""

    def open(self, actor: Actor, now: float, user_changed_at: float | None = None) -> Session:
        """A new session with a new id (never one the browser brought: no fixation)."""
        session_id = secrets.token_urlsafe(32)
        session = Session(session_id, actor, csrf_of(session_id), now, now, user_changed_at, now, now)
        self._add(session)
        if self.keeper is not None:
            self.keeper.keep(session, session.expires_at(self.idle_s, self.max_s))
        return session

    def adopt(self, session: Session, now: float) -> Session | None:
        """A session the keeper had (after a restart): kept in memory again if still live;
        the one already in memory if another request brought it back first."""
        present = self._sessions.get(session.session_id)
        if present is not None:
            return present
        if now >= session.expires_at(self.idle_s, self.max_s):
            return None
        self._add(session)
        return session

    def _add(self, session: Session) -> None:
        self._sessions[session.session_id] = session
        mine = self._by_person.setdefault(session.actor.actor_id, OrderedDict())
        mine[session.session_id] = None
        while len(mine) > self.per_person:
            self._drop(next(iter(mine)))
        while len(self._sessions) > self.max_sessions:
            self._drop(next(iter(self._sessions)))

    def _drop(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        person = session.actor.actor_id
        mine = self._by_person.get(person)
        if mine is not None:
            mine.pop(session_id, None)
            if not mine:
                del self._by_person[person]
        if self.keeper is not None:
            self.keeper.forget(session_id)
        return True

    def find(self, session_id: str, now: float) -> Session | None:
        """The live session with this id, its idle deadline moved; None if unknown or expired."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if now >= session.expires_at(self.idle_s, self.max_s):
            self._drop(session_id)
            return None
        session = replace(session, last_seen=now)
        if self.keeper is not None and now - session.kept_at >= self.touch_every_s:
            session = replace(session, kept_at=now)
            self.keeper.keep(session, session.expires_at(self.idle_s, self.max_s))
        self._sessions[session_id] = session
        self._sessions.move_to_end(session_id)
        return session

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def peek(self, session_id: str) -> Session | None:
        """The session with this id if it was not closed (its idle deadline not moved)."""
        return self._sessions.get(session_id)

    def due_for_check(self, session: Session, now: float, every_s: float) -> bool:
        """Whether the user's record should be looked at again; marks it as being looked at."""
        if session.user_changed_at is None or now - session.checked_at < every_s:
            return False
        if session.session_id in self._sessions:
            self._sessions[session.session_id] = replace(session, checked_at=now)
        return True

    def close(self, session_id: str) -> bool:
        return self._drop(session_id)

    def close_person(self, person: str) -> int:
        """Sign a person out everywhere (their password changed or they were removed)."""
        ids = list(self._by_person.get(person, ()))
        for sid in ids:
            self._drop(sid)
        return len(ids)

    def __len__(self) -> int:
        return len(self._sessions)


def address_group(address: str) -> str:
    """The unit one client is counted by: an IPv4 address, or an IPv6 address's /64 (one
    home or host is given a whole /64: one address each would let it try without end)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def same_token(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class LockOut:
    """Failed sign-ins per key (a name, or ``addr:`` an address: an IPv6 address's /64)
    in a sliding window."""

    def __init__(self, per_name: int, per_address: int, window_s: float) -> None:
        self.per_name = per_name
        self.per_address = per_address
        self.window_s = window_s
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._pending: Counter[str] = Counter()
        """Attempts being checked now, per key: they count as failures until they end,
        so sign-ins sent all at once cannot all pass the check before one has failed."""

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def _retry(self, key: str, limit: int, now: float) -> float | None:
        times = self._recent(key, now)
        if len(times) + self._pending[key] < limit:
            return None
        if len(times) < limit:  # attempts in flight fill the count: they end in seconds
            return PENDING_RETRY_S
        return times[-limit] + self.window_s - now

    def begin(self, name: str, address: str) -> None:
        """An attempt's password is being checked (end it with :meth:`end`)."""
        self._pending.update(("name:" + name, "addr:" + address_group(address)))

    def end(self, name: str, address: str) -> None:
        for key in ("name:" + name, "addr:" + address_group(address)):
            self._pending[key] -= 1
            if self._pending[key] <= 0:
                del self._pending[key]

    def retry_after(self, name: str, address: str, now: float) -> tuple[str, float] | None:
        """``("name"|"address", seconds)`` when attempts are refused now, else None."""
        by_address = self._retry("addr:" + address_group(address), self.per_address, now)
        if by_address is not None:
            return "address", by_address
        by_name = self._retry("name:" + name, self.per_name, now)
        if by_name is not None:
            return "name", by_name
        return None

    def failed(self, name: str, address: str, now: float) -> None:
        for key in ("name:" + name, "addr:" + address_group(address)):
            times = self._failures.setdefault(key, deque())
            times.append(now)
            self._failures.move_to_end(key)
            limit = max(self.per_name, self.per_address)
            while len(times) > limit:
                times.popleft()
        while len(self._failures) > MAX_TRACKED:
            self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        """A good password clears the name's count (not the address's: one good account
        must not reset the count of an address trying many names)."""
        self._failures.pop("name:" + name, None)

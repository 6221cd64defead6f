"""The people who may sign in: supervisors and admins by name, agents by agent id.

Passwords (or an agent's PIN) are kept only as argon2id hashes (argon2-cffi's
``PasswordHasher``, whose default type is argon2id; the parameters travel in
the hash, so a hash made with other parameters still verifies). Users live in
one of two places, chosen by ``[http] users_file``:

- a JSON file the config names (written atomically, mode 0600), or
- a Redis hash ``{key_prefix}:users`` (name -> the record's JSON).

``shenava users add|passwd|remove|list`` (:mod:`shenava.users_cli`) writes
them; the daemon only reads them, at each sign-in, so a change needs no restart.

A person id (user name, agent id, the name a proxy vouches for) is the same
everywhere: :data:`PERSON_RE`, checked by :func:`check_person`.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from complaints.roles import PERSON_RE, Role

MIN_PASSWORD = 10
"""Supervisors and admins: at least this many characters."""
PIN_RE = re.compile(r"^[0-9]{4,12}$")
"""Agents may have a PIN instead of a password: 4-12 digits (the lock-out makes guessing slow)."""
MAX_PASSWORD = 1024
USERS_KEY = "users"
REDIS_TIMEOUT_S = 5.0
"""A sign-in waits at most this for Redis (in a worker thread), then fails with 500."""

HASHER = PasswordHasher(type=Type.ID)
"""argon2id with the library's defaults (RFC 9106's low-memory choice)."""


class UserError(ValueError):
    code = "users.invalid"


class UnknownUserError(UserError):
    code = "users.unknown"


def check_person(person: str) -> str:
    """``person`` if it is a valid person id; else :class:`UserError`."""
    if not PERSON_RE.match(person):
        raise UserError("a person id must be 1-64 letters, digits or . _ @ -")
    return person


def check_password(role: Role, password: str) -> None:
    """Too short a password is refused; an agent may use a PIN of 4-12 digits."""
    if len(password) > MAX_PASSWORD:
        raise UserError(f"a password may have at most {MAX_PASSWORD} characters")
    if role is Role.AGENT and PIN_RE.match(password):
        return
    if len(password) < MIN_PASSWORD:
        extra = " (or, for an agent, a PIN of 4-12 digits)" if role is Role.AGENT else ""
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters{extra}")


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    password_hash: str
    changed_at: float

    def to_json(self) -> str:
        data = asdict(self)
        data["role"] = self.role.value
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> User:
        return cls(
            name=str(data["name"]), role=Role(str(data["role"])),
            password_hash=str(data["password_hash"]), changed_at=float(data["changed_at"]),
        )


def hash_password(password: str, hasher: PasswordHasher = HASHER) -> str:
    return hasher.hash(password)


def make_user(
    name: str, role: Role, password: str, now: float, hasher: PasswordHasher = HASHER
) -> User:
    check_person(name)
    check_password(role, password)
    return User(name, role, hash_password(password, hasher), now)


_DUMMY_HASH = HASHER.hash("not a password of anyone")


def verify(user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s. An unknown user costs the same work, so
    the time taken does not tell which names exist. CPU-heavy: call it off the reactor."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        HASHER.verify(user.password_hash if user is not None else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return user is not None


class UserStore(Protocol):
    """Where users are kept; synchronous (the CLI and the daemon's worker thread use it)."""

    def get(self, name: str) -> User | None: ...

    def put(self, user: User) -> None: ...

    def remove(self, name: str) -> bool: ...

    def all(self) -> list[User]: ...


def _keep_owner_and_mode(fd: int, path: Path) -> None:
    """The rewritten file keeps the old one's owner, group and mode (root running ``shenava
    users`` on a ``root:shenava 0640`` file must leave it readable by the daemon); a new
    file is 0600, its writer's."""
    try:
        old = os.stat(path)
    except FileNotFoundError:
        os.fchmod(fd, 0o600)
        return
    os.fchmod(fd, stat.S_IMODE(old.st_mode) & 0o660)  # never readable by others
    try:
        os.fchown(fd, old.st_uid, old.st_gid)
    except PermissionError:
        pass  # not root: the file becomes its writer's, with the old mode


class FileUserStore:
    """Users in one JSON file ``{"users": {name: record}}``; rewritten whole, atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, User]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        if not text.strip():
            return {}  # made empty by the operator (install ... /dev/null), owner and mode set
        raw = json.loads(text)
        return {name: User.from_mapping(data) for name, data in raw.get("users", {}).items()}

    def _save(self, users: Mapping[str, User]) -> None:
        data = {"users": {n: json.loads(u.to_json()) for n, u in sorted(users.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".users-", dir=self.path.parent)
        try:
            _keep_owner_and_mode(fd, self.path)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, name: str) -> User | None:
        return self._load().get(name)

    def put(self, user: User) -> None:
        users = self._load()
        users[user.name] = user
        self._save(users)

    def remove(self, name: str) -> bool:
        users = self._load()
        if users.pop(name, None) is None:
            return False
        self._save(users)
        return True

    def all(self) -> list[User]:
        return sorted(self._load().values(), key=lambda u: u.name)


class RedisUserStore:
    """Users in the Redis hash ``{prefix}:users``, through a synchronous redis-py client."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self.key = f"{prefix}:{USERS_KEY}"

    def get(self, name: str) -> User | None:
        raw = self._client.hget(self.key, name)
        if raw is None:
            return None
        return User.from_mapping(json.loads(raw))

    def put(self, user: User) -> None:
        self._client.hset(self.key, user.name, user.to_json())

    def remove(self, name: str) -> bool:
        return bool(self._client.hdel(self.key, name))

    def all(self) -> list[User]:
        raw: dict[Any, Any] = self._client.hgetall(self.key)
        return sorted((User.from_mapping(json.loads(v)) for v in raw.values()), key=lambda u: u.name)


def store_for(config: Any) -> UserStore | None:
    """The store ``[http] users_file`` (or else ``[redis]``) names; None when there is none
    (no file and an embedded Redis: nobody can sign in)."""
    users_file = config.http.users_file
    if users_file:
        return FileUserStore(Path(users_file))
    if not config.redis.embedded:
        from shenava.redis_urls import LazyClient

        client = LazyClient(config.redis, decode_responses=True,
                            socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
        return RedisUserStore(client, config.redis.key_prefix)
    return None

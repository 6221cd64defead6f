"""The demo's people: a supervisor and each configured agent as users, and one-use links.

``shenava demo`` has nobody to sign in, so it makes them: a users file in its
own temporary folder (``[http] users_file``) with the supervisor ``supervisor``
(a random password) and each ``[[agents]]`` id (a random 6-digit PIN), and one
sign-in link per person (``/api/session/link/{token}``: one use, one hour) that
opens the wallboard or the agent's desk signed in. The credentials are printed
too, for the sign-in page. Nothing here changes the daemon's checks: the demo
signs in exactly as people do.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from complaints.roles import Actor, Role
from shenava.users import FileUserStore, make_user

SUPERVISOR = "supervisor"
DEMO_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
"""Cheaper than the default: the demo makes a few users at each start and they die with it."""


@dataclass(frozen=True, slots=True)
class DemoPerson:
    name: str
    role: Role
    secret: str
    page: str


def make_demo_users(users_file: Path, agents: list[str], now: float) -> list[DemoPerson]:
    """Write the demo's users (fresh random secrets each run); the supervisor first."""
    store = FileUserStore(users_file)
    people = [DemoPerson(SUPERVISOR, Role.SUPERVISOR, secrets.token_urlsafe(12), "wallboard")]
    people += [
        DemoPerson(agent_id, Role.AGENT, f"{secrets.randbelow(10**6):06d}", f"desk?agent={agent_id}")
        for agent_id in agents
    ]
    for person in people:
        store.put(make_user(person.name, person.role, person.secret, now, DEMO_HASHER))
    return people


def sign_in_links(app: Any, people: list[DemoPerson]) -> dict[str, str]:
    """A one-use link per person, relative to the listener's root."""
    gate = app.http.gate
    return {
        p.name: "api/session/link/" + gate.sign_in_link(Actor(p.name, p.role), p.page)
        for p in people
    }

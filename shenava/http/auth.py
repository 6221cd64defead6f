"""Who is asking: the person and role the HTTP edge found for this request.

The edge (:mod:`shenava.http.edge`) sets ``request.actor`` from the session
cookie of a sign-in or, in proxy mode only, from a listed proxy that sent the
shared secret; it removes every ``X-Shenava-*`` header either way, so nothing a
browser sends can name a role. Roles are those of the complaint register
(:mod:`complaints.roles`), so numbers are masked the same way everywhere.
"""

from __future__ import annotations

import ipaddress

from twisted.web.server import Request

from complaints.roles import Actor, Permission, Role, may
from shenava.http.errors import ForbiddenError, NotSignedInError


def actor_of(request: Request) -> Actor:
    """The signed-in person; 401 ``http.not_signed_in`` when there is none."""
    actor = getattr(request, "actor", None)
    if not isinstance(actor, Actor):
        raise NotSignedInError("sign in first (POST api/session with your name and password)")
    return actor


def require_self_or_supervisor(actor: Actor, agent_id: str) -> None:
    """Agents act on and see their own desk only; supervisors and admins on anyone's."""
    if actor.role is Role.AGENT and actor.actor_id != agent_id:
        raise ForbiddenError(f"agent {actor.actor_id} may not act for agent {agent_id}")


def require_supervisor(actor: Actor, what: str) -> None:
    if actor.role is Role.AGENT:
        raise ForbiddenError(f"{what} needs the supervisor or admin role")


def require_admin(actor: Actor, what: str) -> None:
    if actor.role is not Role.ADMIN:
        raise ForbiddenError(f"{what} needs the admin role")


def sees_full_numbers(actor: Actor) -> bool:
    return may(actor.role, Permission.SEE_FULL_NUMBERS)


def sees_transcripts(actor: Actor) -> bool:
    return may(actor.role, Permission.SEE_TRANSCRIPTS)


def is_loopback(bind: str) -> bool:
    """Whether a bind address keeps the listener to this host."""
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return bind == "localhost"

"""Who is asking: the role and person a trusted reverse proxy vouches for.

A first-release scheme, deliberately simple (docs/api.md says what it does not
protect against). The operator's reverse proxy authenticates people (SSO,
basic auth, client certificates...), removes any ``X-Shenava-*`` header the
browser sent, and sets:

- ``X-Shenava-Role``: ``agent``, ``supervisor`` or ``admin``;
- ``X-Shenava-Agent``: the person's id (for an agent, their agent id from the
  config; for others, any name, recorded in complaint history).

The daemon believes these headers from anyone who can reach its listener,
which is why it binds to ``127.0.0.1`` by default: only processes on the same
host (the proxy) can connect. Roles are those of the complaint register
(:mod:`complaints.roles`), so numbers are masked the same way everywhere.
"""

from __future__ import annotations

import ipaddress
import re

from twisted.web.server import Request

from complaints.roles import Actor, Permission, Role, may
from shenava.http.errors import BadRoleError, ForbiddenError, NoRoleError

ROLE_HEADER = "x-shenava-role"
AGENT_HEADER = "x-shenava-agent"
ACTOR_HEADER = "x-shenava-actor"
"""complaints.http's name for the person; accepted here too when Agent is absent."""
_PERSON_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def actor_of(request: Request) -> Actor:
    """The actor named by the request's headers; 401/400 when they are missing or bad."""
    raw_role = request.getHeader(ROLE_HEADER)
    if not raw_role:
        raise NoRoleError(
            "no X-Shenava-Role header: requests must come through the reverse proxy, "
            "which sets it (agent, supervisor or admin)"
        )
    try:
        role = Role(raw_role.strip().lower())
    except ValueError:
        raise BadRoleError(
            f"X-Shenava-Role must be one of {', '.join(r.value for r in Role)}",
            field="X-Shenava-Role",
        ) from None
    person = (request.getHeader(AGENT_HEADER) or request.getHeader(ACTOR_HEADER) or "").strip()
    if person and not _PERSON_RE.match(person):
        raise BadRoleError(
            "X-Shenava-Agent must be 1-64 letters, digits or . _ @ -", field="X-Shenava-Agent"
        )
    if role is Role.AGENT and not person:
        raise BadRoleError(
            "an agent request needs X-Shenava-Agent with the agent's id", field="X-Shenava-Agent"
        )
    return Actor(person or role.value, role)


def require_self_or_supervisor(actor: Actor, agent_id: str) -> None:
    """Agents act on and see their own desk only; supervisors and admins on anyone's."""
    if actor.role is Role.AGENT and actor.actor_id != agent_id:
        raise ForbiddenError(f"agent {actor.actor_id} may not act for agent {agent_id}")


def require_supervisor(actor: Actor, what: str) -> None:
    if actor.role is Role.AGENT:
        raise ForbiddenError(f"{what} needs the supervisor or admin role")


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

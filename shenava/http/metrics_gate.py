"""``/metrics`` only for Prometheus (a bearer token) or a signed-in supervisor or admin.

The figures name agents and show each one's occupancy and time since a break:
personal data. ``[http] metrics_token_file`` holds the token Prometheus sends
(``authorization: {type: Bearer, credentials_file: ...}`` in its scrape config);
``metrics_supervisors = false`` keeps supervisors' sessions out too.
"""

from __future__ import annotations

import hmac

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from complaints.roles import Actor, Role
from shenava.http.errors import ForbiddenError, NotSignedInError
from shenava.http.jsonapi import write_error


def bearer_ok(request: Request, token: str | bytes) -> bool:
    """Whether the request sends ``Authorization: Bearer {token}`` (never, without a token)."""
    expected = token.encode() if isinstance(token, str) else token
    given = request.getHeader("authorization") or ""
    scheme, _, value = given.partition(" ")
    return (bool(expected) and scheme.lower() == "bearer"
            and hmac.compare_digest(value.strip().encode(), expected))


class MetricsGate(Resource):
    isLeaf = True

    def __init__(self, inner: Resource, token: str, *, supervisors: bool) -> None:
        super().__init__()
        self._inner = inner
        self._token = token.encode()
        self._supervisors = supervisors

    def render(self, request: Request) -> bytes | int:
        if bearer_ok(request, self._token):
            return self._inner.render(request)
        actor = getattr(request, "actor", None)
        if isinstance(actor, Actor) and self._supervisors:
            if actor.role is Role.AGENT:
                write_error(request, ForbiddenError("/metrics is for supervisors, admins and Prometheus"))
                return NOT_DONE_YET
            return self._inner.render(request)
        request.setHeader(b"www-authenticate", b'Bearer realm="shenava"')
        write_error(request, NotSignedInError(
            "/metrics needs the bearer token of [http] metrics_token_file"
            + (" or a supervisor's sign-in" if self._supervisors else "")
        ))
        return NOT_DONE_YET

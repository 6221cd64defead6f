"""The demo's stand-in for the operator's reverse proxy, so a person can open the pages.

In production the operator's proxy authenticates people and sets
``X-Shenava-Role`` / ``X-Shenava-Agent`` (docs/api.md); a browser opened
straight on the daemon's listener has no role and the pages say so. ``shenava
demo`` has no proxy and no people, so it opens a second listener, on
``127.0.0.1`` only, that plays the proxy's part: the start of the path says who
is asking, and the rest goes to the daemon's own resource tree::

    /                        links to the pages below
    /supervisor/...          as a supervisor (named "supervisor")
    /agent/{id}/...          as agent {id}

Like a real proxy it first removes any ``X-Shenava-*`` header the browser sent.
Only the demo starts it; the daemon's own listener and its checks are the same
as in production. Anyone on this host can already claim any role on a loopback
listener (docs/api.md, "Limits"), so this adds no new way in.
"""

from __future__ import annotations

import html
import re
from typing import Any, cast

from twisted.internet.interfaces import IListeningPort
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from shenava.http.auth import AGENT_HEADER, ROLE_HEADER
from shenava.http.jsonapi import JsonNotFound
from shenava.http.pages import SECURITY_HEADERS
from shenava.http.server import ShenavaSite, build_site

SUPERVISOR = "supervisor"
_AGENT_ID = re.compile(rb"^[A-Za-z0-9_.@-]{1,64}$")


def _as(request: Request, role: str, person: str) -> None:
    """What the proxy does: drop the browser's own X-Shenava-* headers, set ours."""
    headers = request.requestHeaders
    for name, _ in list(headers.getAllRawHeaders()):
        if name.lower().startswith(b"x-shenava-"):
            headers.removeHeader(name)
    headers.setRawHeaders(ROLE_HEADER, [role])
    headers.setRawHeaders(AGENT_HEADER, [person])


class _AgentDoor(Resource):
    def __init__(self, daemon: Resource) -> None:
        super().__init__()
        self._daemon = daemon

    def getChild(self, path: bytes, request: Request) -> Resource:
        if not _AGENT_ID.match(path):
            return JsonNotFound()
        _as(request, "agent", path.decode("ascii"))
        return self._daemon


class DemoDoor(Resource):
    """The stand-in proxy's root: ``/supervisor/...``, ``/agent/{id}/...`` and an index."""

    def __init__(self, daemon: Resource, agents: list[tuple[str, str]], site_name: str) -> None:
        super().__init__()
        self._daemon = daemon
        self._agents = agents
        self._site_name = site_name
        self.putChild(b"agent", _AgentDoor(daemon))

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == SUPERVISOR.encode():
            _as(request, SUPERVISOR, SUPERVISOR)
            return self._daemon
        if path == b"":
            return self
        return JsonNotFound()

    def render_GET(self, request: Request) -> bytes:
        links = [("supervisor/wallboard", "Wallboard (supervisor)"),
                 ("supervisor/wallboard?lang=en", "Wallboard, English")]
        links += [(f"agent/{agent_id}/desk", f"Agent desk: {name} ({agent_id})")
                  for agent_id, name in self._agents]
        items = "".join(
            f'<li><a href="{html.escape(href)}">{html.escape(text)}</a></li>' for href, text in links
        )
        body = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self._site_name)}</title></head><body>"
            f"<h1>{html.escape(self._site_name)}</h1>"
            "<p>The demo's stand-in for the reverse proxy: each link opens a page as that "
            "person.</p>"
            f"<ul>{items}</ul></body></html>"
        ).encode()
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        return body


def listen_demo_door(app: Any, *, port: int = 0) -> IListeningPort:
    """The stand-in proxy on ``127.0.0.1:port`` (0: any free port), in front of ``app``."""
    daemon = build_site(app).resource
    agents = [(s.profile.agent_id, s.profile.name) for s in app.roster]
    door = DemoDoor(daemon, agents, app.config.site.name)
    site = ShenavaSite(cast(IResource, door), reactor=app.reactor)
    return cast(IListeningPort, app.reactor.listenTCP(port, site, interface="127.0.0.1"))

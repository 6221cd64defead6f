"""The HTTP API: agents, calls and the screen pop; /metrics and /api/complaints mounted;
sign-in, sessions, CSRF and request limits at the edge.

See docs/api.md and docs/security.md. ``install(app)`` at construction,
``start_http(app)`` at start.
"""

from shenava.http.server import HttpApi, build_site, install, start_http

__all__ = ["HttpApi", "build_site", "install", "start_http"]

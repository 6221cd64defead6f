"""docs/api.md against the routes the daemon serves: none undocumented, none imagined."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from twisted.internet.task import Clock

from shenava.http.signin import SessionApi
from tests.http_helpers import make_app

DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SEGMENT = re.compile(r"`([^`]+)`")
MENTION = re.compile(rf"^(?:({'|'.join(METHODS)})\s+)?(/[^\s?`]*)")
RESOURCES = {("GET", "/api/events"), ("GET", "/api/report")}
"""Served by their own twisted.web resources beside the JSON router (shenava.http.server)."""


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/"))


def documented_routes(text: str) -> set[tuple[str, str]]:
    """``METHOD /api/...`` mentions; ``· `/logout``` after a full path is its sibling."""
    found: set[tuple[str, str]] = set()
    for line in text.splitlines():
        method: str | None = None
        last: str | None = None
        for segment in SEGMENT.findall(line):
            match = MENTION.match(segment.strip())
            if match is None:
                method = last = None
                continue
            method = match.group(1) or method
            path = match.group(2)
            if not path.startswith("/api"):
                if last is None:
                    continue
                path = last.rsplit("/", 1)[0] + path
            last = path
            if method is not None:
                found.add((method, _shape(path)))
    return found


def served_routes() -> set[tuple[str, str]]:
    app = make_app(Clock())
    api = app.http
    assert api is not None
    gate = SimpleNamespace(on_session_use=None)
    sessions = SessionApi(gate, None)  # type: ignore[arg-type]  # routes only
    return {(r.method, _shape("/api/" + "/".join(r.segments))) for r in api.router(sessions)._routes}


def test_every_route_served_is_documented_and_every_one_documented_is_served() -> None:
    served = served_routes() | RESOURCES
    documented = documented_routes(DOCS.read_text(encoding="utf-8"))
    assert sorted(served - documented) == []
    assert sorted(documented - served) == []


def test_a_heading_with_siblings_documents_each_of_them() -> None:
    heading = "### `POST /api/agents/{id}/login` · `/logout` · `/ready`"
    assert documented_routes(heading) == {
        ("POST", "/api/agents/{}/login"), ("POST", "/api/agents/{}/logout"),
        ("POST", "/api/agents/{}/ready"),
    }

"""What the listener tells someone who has not signed in, and what a malformed body gets:
a second cold review of the HTTP edge, over real loopback HTTP against the daemon's
real object graph.

``GET /api/health`` is polled by load balancers and liveness checks, which need to know
that the daemon is up and which role it has, not how many people are on the line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted

from shenava.http.health import LIVENESS
from tests.http_helpers import Running, config_with_users, running_app

TOKEN = "prometheus-token-0123456789"
FIGURES = {"journal", "references_in_hand", "calls_in_progress", "voicemails_parked"}


@pytest_twisted.async_yield_fixture()
async def api() -> AsyncIterator[Running]:
    from twisted.internet import reactor

    async for running in running_app(reactor, config_with_users(metrics_token=TOKEN)):
        yield running


async def _health(api: Running, **kw: Any) -> dict[str, Any]:
    code, body, _ = await api.call("GET", "/api/health", **kw)
    assert code == 200, body
    return body


@pytest_twisted.ensureDeferred
async def test_health_without_sign_in_is_liveness_only(api: Running) -> None:
    body = await _health(api, role=None)
    assert set(body) == set(LIVENESS) == {"status", "role", "ami", "redis"}
    assert (body["status"], body["role"]) == ("ok", "leader")
    # a wrong token, or an agent's sign-in, gets no more than a stranger
    assert set(await _health(api, role=None, headers={"authorization": "Bearer nope"})) == set(LIVENESS)
    assert set(await _health(api, role=None, headers={"authorization": f"Basic {TOKEN}"})) == set(LIVENESS)
    assert set(await _health(api, role="agent", person="a1")) == set(LIVENESS)


@pytest_twisted.ensureDeferred
async def test_health_shows_the_figures_to_supervisors_and_the_metrics_token(api: Running) -> None:
    for kw in ({"role": "supervisor"}, {"role": "admin"},
               {"role": None, "headers": {"authorization": f"Bearer {TOKEN}"}}):
        body = await _health(api, **kw)
        assert FIGURES <= set(body), (kw, body)
        assert body["calls_in_progress"] == 0 and body["status"] == "ok"


@pytest_twisted.ensureDeferred
async def test_health_figures_need_a_token_to_be_configured() -> None:
    """Without ``metrics_token`` an empty bearer proves nothing."""
    from twisted.internet import reactor

    async for api in running_app(reactor, config_with_users()):
        body = await _health(api, role=None, headers={"authorization": "Bearer "})
        assert set(body) == set(LIVENESS)


@pytest_twisted.ensureDeferred
async def test_a_number_too_long_for_python_is_a_bad_body_not_an_internal_error(api: Running) -> None:
    """``int("1" * 5000)`` raises ValueError (CPython's 4,300-digit limit), which is not a
    JSONDecodeError: the body is refused 400 ``http.bad_json``, never answered 500."""
    for raw in (b'{"name": 1' + b"0" * 5000 + b"}", b'{"name": "sara", "password": -' + b"9" * 4400 + b"}"):
        code, body, _ = await api.call("POST", "/api/session", role=None, raw=raw)
        assert (code, body["error"]["code"]) == (400, "http.bad_json"), body
    code, body, _ = await api.call("POST", "/api/agents/a1/not-ready", raw=b'{"reason": ' + b"7" * 4301 + b"}")
    assert (code, body["error"]["code"]) == (400, "http.bad_json"), body


COMPLAINT_CHANGES = [("PATCH", "/api/complaints/12345678"), ("POST", "/api/complaints/abuse"),
                     ("POST", "/api/complaints/abuse/r-1/review"),
                     ("POST", "/api/complaints/callbacks/cb-1/cancel"),
                     ("POST", "/api/complaints/callbacks/cb-1/acknowledge")]
"""The register's changes (its own resource, complaints.http), beside the router's."""


@pytest_twisted.ensureDeferred
async def test_every_change_the_daemon_serves_needs_json_and_the_csrf_token(api: Running) -> None:
    """Each state-changing route, from the router's own table and the register's: a
    signed-in admin's cookie without the token is refused 403 ``http.csrf``, a form post
    415, and nothing reaches the handler (the audit log's refusals say so)."""
    from tests.test_api_docs import served_routes

    changes = sorted({(m, p.replace("{}", "x")) for m, p in served_routes() if m != "GET"}
                     - {("POST", "/api/session")}) + COMPLAINT_CHANGES
    assert len(changes) >= 14 and ("DELETE", "/api/session") in changes
    cookie, _ = await api.sign_in("admin", "root")
    for method, path in changes:
        code, body, _ = await api.call(method, path, role=None, cookie=cookie, body={})
        assert (code, body["error"]["code"]) == (403, "http.csrf"), (method, path, body)
        code, body, _ = await api.call(method, path, role=None, cookie=cookie, raw=b"a=1",
                                       headers={"content-type": "application/x-www-form-urlencoded"})
        assert (code, body["error"]["code"]) == (415, "http.unsupported_media_type"), (method, path)
    who = await api.call("GET", "/api/session", role=None, cookie=cookie)
    assert who[0] == 200  # DELETE /api/session without the token signed nobody out

"""Helpers for the HTTP API tests: a real app on a loopback port, and a small client.

The client signs in as people do: ``call(role=..., person=...)`` makes that user
(a cheap argon2id hash) in the app's users file, signs in once through
``POST /api/session``, and sends the session cookie, and on changes the
``X-CSRF-Token`` and ``Content-Type: application/json``, with each request.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import AsyncIterator
from dataclasses import replace
from io import BytesIO
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from ami_bridge.codec import Message
from complaints.roles import Role
from ivr.machine import EndReason, Outcome
from ivr.menu_schema import Request
from shenava.app import Shenava
from shenava.config import Config, default_config
from shenava.http import start_http
from shenava.http.demo_door import DEMO_HASHER
from shenava.http.edge import Gate
from shenava.http.server import HttpApi
from shenava.users import FileUserStore, make_user

CALLER = "09121234567"
CALLER_MASKED = "0912***4567"
PASSWORD = "test-password-1"
SAFE = ("GET", "HEAD", "OPTIONS")


class Running:
    def __init__(self, reactor: Any, app: Shenava, port: Any) -> None:
        self.reactor = reactor
        self.app = app
        self.port = port
        self.base = f"http://127.0.0.1:{port.getHost().port}"
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.agent = Agent(reactor, pool=self.pool)
        self.signed_in: dict[tuple[str, str], tuple[str, str]] = {}

    @property
    def http(self) -> HttpApi:
        """The app's HTTP handle (there always is one in these tests)."""
        assert self.app.http is not None
        return self.app.http

    @property
    def gate(self) -> Gate:
        """The HTTP edge's gate (sessions, lock-out, audit), set once the site is built."""
        assert self.http.gate is not None
        return self.http.gate

    def add_user(self, name: str, role: str, password: str = PASSWORD, changed_at: float = 0.0) -> None:
        store = FileUserStore(Path(self.app.config.http.users_file))
        store.put(make_user(name, Role(role), password, changed_at, DEMO_HASHER))

    async def sign_in(self, role: str, person: str | None) -> tuple[str, str]:
        """(cookie, csrf) of a session of ``person`` (default: named as the role)."""
        name = person or role
        key = (role, name)
        if key not in self.signed_in:
            self.add_user(name, role)
            code, body, headers = await self.call(
                "POST", "/api/session", role=None, body={"name": name, "password": PASSWORD}
            )
            assert code == 200, body
            self.signed_in[key] = (session_cookie(headers), body["csrf"])
        return self.signed_in[key]

    async def call(
        self,
        method: str,
        path: str,
        *,
        role: str | None = "supervisor",
        person: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        csrf: bool = True,
        cookie: str | None = None,
    ) -> tuple[int, Any, Any]:
        sent = Headers({b"accept": [b"application/json"]})
        if method not in SAFE:
            sent.setRawHeaders(b"content-type", [b"application/json"])
        if role is not None:
            cookie_value, token = await self.sign_in(role, person)
            cookie = cookie or cookie_value
            if csrf and method not in SAFE:
                sent.setRawHeaders(b"x-csrf-token", [token.encode()])
        if cookie is not None:
            sent.setRawHeaders(b"cookie", [b"shenava_session=" + cookie.encode()])
        for name, value in (headers or {}).items():
            sent.setRawHeaders(name.lower().encode(), [value.encode()])
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        producer: Any = None
        if data is not None:
            producer = FileBodyProducer(BytesIO(data))
        response = await self.agent.request(
            method.encode(), (self.base + path).encode(), sent, producer
        )
        with warnings.catch_warnings():
            # the asyncio reactor's transports lack abortConnection; harmless here
            warnings.simplefilter("ignore", DeprecationWarning)
            body_read = readBody(response)
        content = await body_read
        try:
            parsed = json.loads(content) if content else {}
        except ValueError:
            parsed = {"raw": content.decode("utf-8", "replace")}
        return response.code, parsed, response.headers


def session_cookie(headers: Headers) -> str:
    for line in headers.getRawHeaders(b"set-cookie") or []:
        name, _, rest = line.decode().partition("=")
        if name == "shenava_session":
            return rest.split(";")[0]
    raise AssertionError("no session cookie was set")


def config_with_users(**http: Any) -> Config:
    """The demo config with a users file of its own (a new folder each time)."""
    config = default_config()
    folder = Path(tempfile.mkdtemp(prefix="shenava-users-"))
    return replace(config, http=replace(config.http, users_file=str(folder / "users.json"), **http))


def make_app(reactor: Any, config: Config | None = None) -> Shenava:
    """The real object graph, never connected: AMI actions just stay pending."""
    app = Shenava(config or config_with_users(), reactor=reactor, redis=None)
    app.connection.agi = lambda *a, **k: Deferred()  # type: ignore[method-assign]
    app.connection.send_action = lambda *a, **k: Deferred()  # type: ignore[method-assign]
    return app


async def running_app(reactor: Any, config: Config | None = None) -> AsyncIterator[Running]:
    app = make_app(reactor, config)
    port: Any = start_http(app, port=0, interface="127.0.0.1")
    running = Running(reactor, app, port)
    try:
        yield running
    finally:
        await running.pool.closeCachedConnections()
        await port.stopListening()


def outcome(call_id: str, *, category: str = "billing", language: str = "fa", **kw: Any) -> Outcome:
    now = 1000.0
    fields: dict[str, Any] = {
        "caller_number": CALLER, "account": "44556677", "urgent": True, "vulnerable": True,
        "care": "elderly", "path": ("language", "category", "urgency"),
    }
    fields.update(kw)
    return Outcome(
        call_id=call_id, language=language, requested=Request.AGENT,
        ended=EndReason.COMPLETED, started_at=now, ended_at=now + 30, category=category, **fields,
    )


def hang_up(app: Shenava, call_id: str) -> None:
    """The caller's channel appears to the tracker and hangs up (AMI events)."""
    channel = f"PJSIP/caller-{call_id}"
    app.tracker.handle(
        Message.of(
            ("Event", "Newchannel"), ("Channel", channel), ("Uniqueid", call_id),
            ("Linkedid", call_id), ("Context", "complaints"), ("Exten", "s"),
        ),
        app.reactor.seconds(),
    )
    app.tracker.handle(
        Message.of(
            ("Event", "Hangup"), ("Channel", f"PJSIP/caller-{call_id}"), ("Uniqueid", call_id),
            ("Linkedid", call_id), ("Cause", "16"), ("Cause-txt", "Normal Clearing"),
        ),
        app.reactor.seconds(),
    )

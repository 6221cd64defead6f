"""Helpers for the HTTP API tests: a real app on a loopback port, and a small client."""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator
from io import BytesIO
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from ami_bridge.codec import Message
from ivr.machine import EndReason, Outcome
from ivr.menu_schema import Request
from shenava.app import Shenava
from shenava.config import default_config
from shenava.http import start_http

CALLER = "09121234567"
CALLER_MASKED = "0912***4567"


class Running:
    def __init__(self, reactor: Any, app: Shenava, port: Any) -> None:
        self.reactor = reactor
        self.app = app
        self.port = port
        self.base = f"http://127.0.0.1:{port.getHost().port}"
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.agent = Agent(reactor, pool=self.pool)

    async def call(
        self,
        method: str,
        path: str,
        *,
        role: str | None = "supervisor",
        person: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, Any], Any]:
        headers = Headers({b"accept": [b"application/json"]})
        if role is not None:
            headers.addRawHeader(b"x-shenava-role", role.encode())
        if person is not None:
            headers.addRawHeader(b"x-shenava-agent", person.encode())
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        producer: Any = None
        if data is not None:
            producer = FileBodyProducer(BytesIO(data))
        response = await self.agent.request(
            method.encode(), (self.base + path).encode(), headers, producer
        )
        with warnings.catch_warnings():
            # the asyncio reactor's transports lack abortConnection; harmless here
            warnings.simplefilter("ignore", DeprecationWarning)
            body_read = readBody(response)
        content = await body_read
        parsed = json.loads(content) if content else {}
        return response.code, parsed, response.headers


def make_app(reactor: Any) -> Shenava:
    """The real object graph, never connected: AMI actions just stay pending."""
    app = Shenava(default_config(), reactor=reactor, redis=None)
    app.connection.agi = lambda *a, **k: Deferred()  # type: ignore[method-assign]
    app.connection.send_action = lambda *a, **k: Deferred()  # type: ignore[method-assign]
    return app


async def running_app(reactor: Any) -> AsyncIterator[Running]:
    app = make_app(reactor)
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

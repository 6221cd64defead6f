"""The /api/complaints resource through twisted.web's DummyRequest, on a real Redis."""

from __future__ import annotations

import json
import os
import threading
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from complaints.complaint import Channel
from complaints.http import ComplaintsResource
from complaints.roles import Actor, Role
from complaints.service import ComplaintRegister
from complaints.store import ComplaintStore
from routing.callback_store import CallbackStore
from routing.callbacks import DialPolicy, abandon_reason
from shenava_base.aio import as_deferred

T0 = 1_900_000_000.0
NUMBER = "09121234567"


class Api:
    def __init__(self, client: Redis) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.register = ComplaintRegister(ComplaintStore(client, "t"))
        self.callbacks = CallbackStore(client, "t", DialPolicy())
        self.resource = ComplaintsResource(self.register, self.callbacks, self.clock)

    async def call(
        self, method: str, path: str, *, role: str | None = "supervisor", actor: str = "sup1",
        body: Any = None, args: dict[str, list[str]] | None = None,
    ) -> tuple[int, Any]:
        request = DummyRequest([p.encode() for p in path.strip("/").split("/") if p])
        request.method = method.encode()
        if role is not None:  # what the HTTP edge sets after a sign-in
            request.actor = Actor(actor, Role(role))  # type: ignore[attr-defined]
        request.args = {k.encode(): [v.encode() for v in vs] for k, vs in (args or {}).items()}
        request.content = BytesIO(  # type: ignore[attr-defined]
            json.dumps(body).encode() if body is not None else b"")
        finished = request.notifyFinish()
        self.resource.render(request)  # type: ignore[arg-type]
        await finished
        raw = b"".join(request.written)
        kind = (request.responseHeaders.getRawHeaders(b"content-type") or [b""])[0]
        code = request.responseCode or 200
        return code, json.loads(raw) if kind.startswith(b"application/json") else raw.decode()


@pytest_twisted.ensureDeferred
async def test_list_get_update_with_roles(redis_client: Redis) -> None:
    api = Api(redis_client)
    c = await as_deferred(api.register.open_complaint(T0, category="billing", channel=Channel.IVR, number=NUMBER))

    status, listed = await api.call("GET", "/", role="agent", actor="a1")
    assert status == 200 and [x["reference"] for x in listed] == [c.reference]
    assert listed[0]["number"] != NUMBER  # masked for agents
    status, one = await api.call("GET", c.reference)
    assert status == 200 and one["number"] == NUMBER

    status, updated = await api.call("PATCH", c.reference, role="agent", actor="a1",
                                     body={"status": "in_progress", "note": "called the bank"})
    assert status == 200 and updated["status"] == "in_progress"
    status, err = await api.call("PATCH", c.reference, role="agent", actor="a1",
                                 body={"status": "closed", "note": "x"})
    assert status == 403 and "error" in err
    status, err = await api.call("GET", "/", role=None)
    assert status == 401
    status, err = await api.call("GET", "12345678")
    assert status in (400, 404)
    status, err = await api.call("PATCH", c.reference, body={"status": "nonsense"})
    assert status == 400


@pytest_twisted.ensureDeferred
async def test_export_csv_for_supervisors_only(redis_client: Redis) -> None:
    api = Api(redis_client)
    await as_deferred(api.register.open_complaint(T0, category="=cmd", channel=Channel.IVR, number=NUMBER))
    status, text = await api.call("GET", "export", args={"format": ["csv"]})
    assert status == 200 and "'=cmd" in text
    status, _ = await api.call("GET", "export", role="agent", actor="a1")
    assert status == 403


@pytest_twisted.ensureDeferred
async def test_abuse_report_and_review(redis_client: Redis) -> None:
    api = Api(redis_client)
    status, made = await api.call("POST", "abuse", role="agent", actor="a1",
                                  body={"number": NUMBER, "category": "threat", "note": "shouted"})
    assert status == 201
    status, pending = await api.call("GET", "abuse")
    assert [r["report_id"] for r in pending] == [made["report_id"]]
    status, _ = await api.call("POST", f"abuse/{made['report_id']}/review", role="agent", actor="a1",
                               body={"upheld": True, "note": "ok"})
    assert status == 403
    status, reviewed = await api.call("POST", f"abuse/{made['report_id']}/review",
                                      body={"upheld": True, "note": "warning letter sent"})
    assert status == 200 and reviewed["status"] == "upheld"
    status, _ = await api.call("POST", f"abuse/{made['report_id']}/review",
                               body={"upheld": False, "note": "again"})
    assert status == 409
    status, _ = await api.call("POST", "abuse", role="agent", actor="a1", body={"category": "nope"})
    assert status == 400


@pytest_twisted.ensureDeferred
async def test_callback_flags_list_cancel(redis_client: Redis) -> None:
    api = Api(redis_client)
    reason = abandon_reason("c-1", T0, 30.0, DialPolicy())
    assert reason is not None
    flag = await as_deferred(api.callbacks.raise_reason(NUMBER, reason, T0))
    assert flag is not None
    status, flags = await api.call("GET", "callbacks", role="agent", actor="a1")
    assert status == 200 and flags[0]["flag_id"] == flag.flag_id and flags[0]["number"] != NUMBER
    status, _ = await api.call("POST", f"callbacks/{flag.flag_id}/cancel", role="agent", actor="a1",
                               body={"note": "served"})
    assert status == 403
    status, _ = await api.call("POST", f"callbacks/{flag.flag_id}/cancel", body={})
    assert status == 400  # a note is required
    status, done = await api.call("POST", f"callbacks/{flag.flag_id}/cancel", body={"note": "served inbound"})
    assert status == 200 and done["resolution"] == "cancelled"
    status, _ = await api.call("POST", "callbacks/cb-9999/acknowledge")
    assert status == 404


@pytest_twisted.ensureDeferred
async def test_closed_callback_flags_are_listed_since_a_time(redis_client: Redis) -> None:
    api = Api(redis_client)
    reason = abandon_reason("c-1", T0, 30.0, DialPolicy())
    assert reason is not None
    flag = await as_deferred(api.callbacks.raise_reason(NUMBER, reason, T0))
    assert flag is not None
    status, closed = await api.call("GET", "callbacks", args={"state": ["closed"]})
    assert status == 200 and closed == []
    await api.call("POST", f"callbacks/{flag.flag_id}/cancel", body={"note": "served inbound"})
    status, closed = await api.call("GET", "callbacks", args={"state": ["closed"]})
    assert status == 200 and [f["flag_id"] for f in closed] == [flag.flag_id]
    status, later = await api.call(
        "GET", "callbacks", args={"state": ["closed"], "since": [str(T0 + 1)]}
    )
    assert status == 200 and later == []
    status, _ = await api.call("GET", "callbacks", args={"state": ["closed"], "since": ["x"]})
    assert status == 400


@pytest_twisted.ensureDeferred
async def test_errors_have_the_shape_of_every_other_api(redis_client: Redis) -> None:
    """``{"error": {"code", "message"[, "field"]}}`` as ``shenava.http.errors.ApiError`` answers
    (the register answered ``{"error": code, "message": ...}``); the codes themselves stay."""
    api = Api(redis_client)
    c = await as_deferred(api.register.open_complaint(T0, category="billing", channel=Channel.IVR, number=NUMBER))

    def shape(body: Any) -> tuple[str, str | None]:
        assert set(body) == {"error"}, body
        error = body["error"]
        assert isinstance(error, dict) and set(error) <= {"code", "message", "field"}, body
        assert isinstance(error["message"], str) and error["message"], body
        return error["code"], error.get("field")

    status, err = await api.call("GET", "/", role=None)
    assert (status, shape(err)) == (401, ("unauthenticated", None))
    status, err = await api.call("PATCH", c.reference, body={"status": "nonsense"})
    assert (status, shape(err)) == (400, ("invalid", "status"))
    status, err = await api.call("PATCH", c.reference, body={"note": 5})
    assert (status, shape(err)) == (400, ("invalid", "note"))
    status, err = await api.call("PATCH", c.reference, role="agent", actor="a1",
                                 body={"status": "closed", "note": "x"})
    assert (status, shape(err)) == (403, ("complaints.permission_denied", None))
    status, err = await api.call("GET", "1234567")
    assert status in (400, 404) and shape(err)[0].startswith("complaints.")
    status, err = await api.call("POST", "abuse", role="agent", actor="a1", body={"category": "nope"})
    assert status == 400 and shape(err)[0] == "complaints.invalid" and shape(err)[1] is not None
    status, err = await api.call("DELETE", c.reference)
    assert (status, shape(err)) == (404, ("not_found", None))


@pytest_twisted.ensureDeferred
async def test_a_recording_is_read_off_the_reactor_thread(redis_client: Redis, tmp_path: Path) -> None:
    """A recording (up to 64 MiB, perhaps on a share) was read on the reactor thread,
    which every call waits on. Here the file is a FIFO whose only writer is the reactor
    itself, once the read has begun: read on the reactor thread, it never gets its bytes
    (a watchdog then writes others, so the test ends and fails)."""
    from twisted.internet import reactor

    fifo = tmp_path / "vm-1.wav"
    os.mkfifo(fifo)
    api = Api(redis_client)
    api.resource = ComplaintsResource(api.register, api.callbacks, reactor, recording_file=lambda _: fifo)
    c = await as_deferred(api.register.open_complaint(
        T0, category="billing", channel=Channel.VOICEMAIL, number=NUMBER, recordings=("vm-1",)))
    wav = "RIFF....WAVE written by the reactor"
    done = threading.Event()
    written = threading.Lock()  # one writer only: the reactor, or else the watchdog

    def write_and_close(fd: int, data: str) -> None:
        if written.acquire(blocking=False):
            os.write(fd, data.encode())
            os.close(fd)

    def once_reading() -> None:
        """Waits for the reader (a writer's non-blocking open fails until one is there),
        then has the reactor write; if the reactor never does, writes itself."""
        deadline = time.monotonic() + 60  # a bound only: the watchdog's
        while True:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
        reactor.callFromThread(write_and_close, fd, wav)  # type: ignore[attr-defined]
        if not done.wait(30):
            write_and_close(fd, "WATCHDOG")

    threading.Thread(target=once_reading, daemon=True).start()
    try:
        status, body = await api.call("GET", f"{c.reference}/recordings/0")
    finally:
        done.set()
    assert (status, body) == (200, wav)

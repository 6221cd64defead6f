"""The HTTP API over real loopback HTTP, against the daemon's real object graph."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest_twisted
from twisted.internet.defer import ensureDeferred
from twisted.logger import formatEvent, globalLogPublisher

from agent_stats.breaks import BreakGrant
from agent_stats.states import NotReadyReason
from tests.http_helpers import (
    CALLER,
    CALLER_MASKED,
    Running,
    hang_up,
    outcome,
    running_app,
)


@pytest_twisted.async_yield_fixture()
async def api() -> AsyncIterator[Running]:
    from twisted.internet import reactor  # pytest-twisted's running reactor

    async for running in running_app(reactor):
        yield running


async def deliver(api: Running, call_id: str, **kw: Any) -> None:
    await ensureDeferred(api.app.callflow.deliver(outcome(call_id, **kw), f"PJSIP/caller-{call_id}"))


# -- agents -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_agents_list_and_state_changes(api: Running) -> None:
    code, body, headers = await api.call("GET", "/api/agents", role="agent", person="a1")
    assert code == 200
    assert headers.getRawHeaders(b"content-type") == [b"application/json; charset=utf-8"]
    assert headers.getRawHeaders(b"cache-control") == [b"no-store"]
    a1 = next(a for a in body["agents"] if a["id"] == "a1")
    assert a1["state"] == "logged_out" and a1["reason"] is None
    assert a1["languages"] == ["fa", "en"] and a1["skills"] == ["billing", "service"]
    assert {"since", "idle_since", "name"} <= a1.keys()

    code, body, _ = await api.call("POST", "/api/agents/a1/login", role="agent", person="a1")
    assert (code, body["changed"], body["agent"]["state"]) == (200, True, "ready")
    code, body, _ = await api.call("POST", "/api/agents/a1/login", role="agent", person="a1")
    assert (code, body["changed"]) == (200, False)

    code, body, _ = await api.call(
        "POST", "/api/agents/a1/not-ready", role="agent", person="a1", body={"reason": "personal"}
    )
    assert code == 200
    assert (body["agent"]["state"], body["agent"]["reason"]) == ("not_ready", "personal")

    code, body, _ = await api.call("POST", "/api/agents/a1/ready", role="agent", person="a1")
    assert body["agent"]["state"] == "ready"
    code, body, _ = await api.call("GET", "/api/agents/a1")
    assert body["agent"]["state"] == "ready"
    code, body, _ = await api.call("POST", "/api/agents/a1/logout", role="supervisor", person="sup1")
    assert (code, body["agent"]["state"]) == (200, "logged_out")


@pytest_twisted.ensureDeferred
async def test_not_ready_bad_input_names_the_field(api: Running) -> None:
    await api.call("POST", "/api/agents/a2/login")
    code, body, _ = await api.call("POST", "/api/agents/a2/not-ready", body={})
    assert code == 400
    assert body["error"]["code"] == "http.missing_field" and body["error"]["field"] == "reason"
    code, body, _ = await api.call("POST", "/api/agents/a2/not-ready", body={"reason": "nap"})
    assert (code, body["error"]["code"], body["error"]["field"]) == (400, "http.bad_field", "reason")
    assert "personal" in body["error"]["message"] and "nap" in body["error"]["message"]
    code, body, _ = await api.call("POST", "/api/agents/a2/not-ready", body={"reason": "missed"})
    assert (code, body["error"]["code"]) == (400, "http.bad_field")
    code, body, _ = await api.call("POST", "/api/agents/a2/not-ready", raw=b"{reason")
    assert (code, body["error"]["code"]) == (400, "http.bad_json")
    code, body, _ = await api.call("POST", "/api/agents/a2/not-ready", body=["personal"])
    assert (code, body["error"]["code"]) == (400, "http.bad_json")


@pytest_twisted.ensureDeferred
async def test_unknown_agent_404_and_busy_409(api: Running) -> None:
    code, body, _ = await api.call("POST", "/api/agents/nobody/login")
    assert (code, body["error"]["code"]) == (404, "agent_stats.unknown_agent")
    code, body, _ = await api.call("POST", "/api/agents/nobody/not-ready", body={"reason": "x"})
    assert code == 404
    code, body, _ = await api.call("POST", "/api/agents/a1/ready")
    assert (code, body["error"]["code"]) == (409, "agent_stats.agent_busy")
    assert "log in first" in body["error"]["message"]

    # on a call (ringing): state changes by hand are refused
    await api.call("POST", "/api/agents/a1/login")
    await deliver(api, "c-busy")
    assert api.app.roster.get("a1").state.value == "ringing"
    code, body, _ = await api.call("POST", "/api/agents/a1/not-ready", body={"reason": "lunch"})
    assert (code, body["error"]["code"]) == (409, "agent_stats.agent_busy")
    code, body, _ = await api.call("POST", "/api/agents/a1/logout")
    assert code == 409


@pytest_twisted.ensureDeferred
async def test_roles(api: Running) -> None:
    code, body, _ = await api.call("GET", "/api/agents", role=None)
    assert (code, body["error"]["code"]) == (401, "http.not_signed_in")
    code, body, _ = await api.call("POST", "/api/agents/a2/login", role="agent", person="a1")
    assert (code, body["error"]["code"]) == (403, "http.forbidden")
    assert api.app.roster.get("a2").state.value == "logged_out"
    await api.call("POST", "/api/agents/a1/login", role="agent", person="a1")
    code, body, _ = await api.call(
        "POST", "/api/agents/a1/not-ready", role="agent", person="a1", body={"reason": "recovery"}
    )
    assert (code, body["error"]["code"]) == (403, "http.forbidden")
    code, body, _ = await api.call(
        "POST", "/api/agents/a1/not-ready", role="supervisor", person="s", body={"reason": "recovery"}
    )
    assert (code, body["agent"]["reason"]) == (200, "recovery")


@pytest_twisted.ensureDeferred
async def test_unknown_paths_and_methods_are_json(api: Running) -> None:
    code, body, _ = await api.call("GET", "/api/nothing")
    assert (code, body["error"]["code"]) == (404, "http.not_found")
    code, body, _ = await api.call("GET", "/nowhere")
    assert (code, body["error"]["code"]) == (404, "http.not_found")
    code, body, headers = await api.call("GET", "/api/agents/a1/login")
    assert (code, body["error"]["code"]) == (405, "http.method_not_allowed")
    assert headers.getRawHeaders(b"allow") == [b"POST"]


# -- breaks, /metrics, /api/complaints ----------------------------------------------


class FakeStats:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.asked: list[tuple[str, NotReadyReason, float]] = []

    def request_break(self, agent_id: str, reason: NotReadyReason, now: float) -> Any:
        self.asked.append((agent_id, reason, now))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest_twisted.ensureDeferred
async def test_break_without_stats_service_is_503(api: Running) -> None:
    code, body, _ = await api.call("POST", "/api/agents/a1/break", role="agent", person="a1")
    assert (code, body["error"]["code"]) == (503, "http.breaks_unavailable")
    assert "not-ready" in body["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_break_delegates_to_stats_service(api: Running) -> None:
    stats = FakeStats(None)
    api.app.agent_stats = stats
    code, body, _ = await api.call("POST", "/api/agents/a1/break", role="agent", person="a1")
    assert (code, body["break"]) == (200, {"status": "waiting"})
    assert stats.asked[0][:2] == ("a1", NotReadyReason.BREAK)

    stats.answer = BreakGrant("a1", NotReadyReason.LUNCH, 5.0, 6.0)
    code, body, _ = await api.call(
        "POST", "/api/agents/a1/break", role="agent", person="a1", body={"reason": "lunch"}
    )
    assert body["break"]["status"] == "granted" and body["break"]["reason"] == "lunch"
    code, body, _ = await api.call("POST", "/api/agents/a1/break", body={"reason": "personal"})
    assert (code, body["error"]["field"]) == (400, "reason")


@pytest_twisted.ensureDeferred
async def test_unexpected_error_is_500_without_traceback(api: Running) -> None:
    api.app.agent_stats = FakeStats(RuntimeError("secret internals 09121234567"))
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(cast(Any, events.append))
    try:
        code, body, _ = await api.call("POST", "/api/agents/a1/break")
    finally:
        globalLogPublisher.removeObserver(cast(Any, events.append))
    assert (code, body["error"]["code"]) == (500, "http.internal")
    assert "secret" not in str(body) and "Traceback" not in str(body)
    assert any(e.get("log_failure") is not None for e in events)  # the daemon's log has it


@pytest_twisted.ensureDeferred
async def test_metrics_and_complaints_absent_are_503(api: Running) -> None:
    code, body, _ = await api.call("GET", "/metrics")
    assert (code, body["error"]["code"]) == (503, "http.metrics_unavailable")
    code, body, _ = await api.call("GET", "/api/complaints")
    assert (code, body["error"]["code"]) == (503, "http.complaints_unavailable")


# -- calls and the screen pop ---------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_waiting_calls_with_positions_scores_and_explain(api: Running) -> None:
    await deliver(api, "c1", urgent=False, vulnerable=False)
    await deliver(api, "c2", urgent=True, vulnerable=True)
    await deliver(api, "c3", language="en", category="service")
    code, body, _ = await api.call("GET", "/api/calls", role="agent", person="a1")
    assert code == 200 and body["waiting"] == 3
    calls = {c["call_id"]: c for c in body["calls"]}
    assert [c["call_id"] for c in body["calls"]][0] == "c2"  # urgent and vulnerable first
    assert (calls["c2"]["position"], calls["c1"]["position"], calls["c1"]["of"]) == (1, 2, 2)
    assert calls["c3"]["position"] == 1 and calls["c1"]["overall"] == 3
    assert calls["c2"]["score"] > calls["c1"]["score"]
    assert any(p["factor"] for p in calls["c2"]["score_parts"])
    assert "caller_number" not in calls["c1"]

    code, body, _ = await api.call("GET", "/api/calls/c1/explain")
    assert code == 200 and "c1" in body["explanation"] and "behind c2" in body["explanation"]
    code, body, _ = await api.call("GET", "/api/calls/nope/explain")
    assert (code, body["error"]["code"]) == (404, "routing.unknown_call")


@pytest_twisted.ensureDeferred
async def test_screen_pop_masks_number_for_agents(api: Running) -> None:
    code, body, _ = await api.call("GET", "/api/agents/a1/call", role="agent", person="a1")
    assert (code, body["call"]) == (200, None)

    await api.call("POST", "/api/agents/a1/login", role="agent", person="a1")
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(cast(Any, events.append))
    try:
        await deliver(api, "c7")
        code, body, _ = await api.call("GET", "/api/agents/a1/call", role="agent", person="a1")
    finally:
        globalLogPublisher.removeObserver(cast(Any, events.append))
    assert code == 200 and body["agent"]["state"] == "ringing"
    call = body["call"]
    assert call["call_id"] == "c7"
    assert (call["language"], call["category"], call["account"]) == ("fa", "billing", "44556677")
    assert call["urgent"] is True and call["urgency"] == "high"
    assert call["vulnerable"] is True and call["care"] == "elderly"
    assert call["caller_number"] == CALLER_MASKED and call["number_masked"] is True
    assert CALLER not in str(body)
    assert call["complaints"] == "not running" and call["transcript"] is None
    assert all(CALLER not in formatEvent(e) for e in events)

    code, body, _ = await api.call("GET", "/api/agents/a1/call", role="supervisor", person="s")
    assert body["call"]["caller_number"] == CALLER and body["call"]["number_masked"] is False
    code, body, _ = await api.call("GET", "/api/agents/a1/call", role="agent", person="a2")
    assert code == 403
    code, body, _ = await api.call("GET", "/api/calls/c7", role="supervisor", person="s")
    assert (code, body["agent_id"], body["call"]["caller_number"]) == (200, "a1", CALLER)
    code, body, _ = await api.call("GET", "/api/calls/c7", role="agent", person="a1")
    assert code == 403

    assert "c7" in api.app.http.memory
    hang_up(api.app, "c7")
    assert "c7" not in api.app.http.memory
    code, body, _ = await api.call("GET", "/api/agents/a1/call", role="agent", person="a1")
    assert body["call"] is None
    code, body, _ = await api.call("GET", "/api/calls/c7")
    assert code == 404


@pytest_twisted.ensureDeferred
async def test_screen_pop_with_the_complaint_register(api: Running, redis_client: Any) -> None:
    from complaints.complaint import Channel
    from complaints.service import ComplaintRegister
    from complaints.store import ComplaintStore
    from shenava_base.aio import as_deferred

    register = ComplaintRegister(ComplaintStore(redis_client, "t"))
    now = api.reactor.seconds()
    older = await as_deferred(register.open_complaint(
        now - 86400, category="billing", channel=Channel.VOICEMAIL, number=CALLER,
        transcript="my bill doubled",
    ))
    await as_deferred(register.open_complaint(
        now - 60, category="service", channel=Channel.IVR, number="09350000000",
    ))
    current = await as_deferred(register.open_complaint(
        now, category="billing", channel=Channel.IVR, number=CALLER, call_id="c9",
    ))
    api.app.complaints = register

    await api.call("POST", "/api/agents/a1/login", role="agent", person="a1")
    await deliver(api, "c9", reference=older.reference)
    code, body, _ = await api.call("GET", "/api/agents/a1/call", role="agent", person="a1")
    assert code == 200
    call = body["call"]
    assert call["complaints"] == "ok" and call["open_complaint"] is True
    assert call["complaint"]["reference"] == current.reference
    assert [c["reference"] for c in call["earlier_complaints"]] == [older.reference]
    assert call["earlier_complaints"][0]["has_transcript"] is True
    assert call["transcript"] == "my bill doubled"
    assert CALLER not in str(body)  # summaries carry no number; the call's is masked


@pytest_twisted.ensureDeferred
async def test_screen_pop_survives_a_failing_register(api: Running) -> None:
    class Broken:
        async def caller_context(self, number: str, now: float) -> Any:
            raise ConnectionError("redis down")

    api.app.complaints = Broken()
    await api.call("POST", "/api/agents/a1/login")
    await deliver(api, "c10")
    code, body, _ = await api.call("GET", "/api/agents/a1/call")
    assert (code, body["call"]["complaints"], body["call"]["category"]) == (200, "unavailable", "billing")


@pytest_twisted.ensureDeferred
async def test_complaints_api_is_mounted_with_the_same_headers(redis_client: Any) -> None:
    from types import SimpleNamespace

    from twisted.internet import reactor

    from complaints.complaint import Channel
    from complaints.service import ComplaintRegister
    from complaints.store import ComplaintStore
    from routing.callback_store import CallbackStore
    from shenava_base.aio import as_deferred
    from tests.http_helpers import make_app

    app = make_app(reactor)
    register = ComplaintRegister(ComplaintStore(redis_client, "t"))
    app.complaints = SimpleNamespace(
        register=register, callbacks=CallbackStore(redis_client, "t")
    )
    c = await as_deferred(register.open_complaint(
        reactor.seconds(), category="billing", channel=Channel.IVR, number=CALLER,
    ))
    from shenava.http import start_http

    port: Any = start_http(app, port=0, interface="127.0.0.1")
    running = Running(reactor, app, port)
    try:
        code, body, _ = await running.call(
            "GET", f"/api/complaints/{c.reference}", role="agent", person="a1"
        )
        assert code == 200, body
        assert CALLER not in str(body) and CALLER_MASKED in str(body)
        code, body, _ = await running.call(
            "GET", f"/api/complaints/{c.reference}", role="supervisor", person="sara"
        )
        assert code == 200 and CALLER in str(body)
    finally:
        await running.pool.closeCachedConnections()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_health_says_the_role_without_sign_in(api: Running) -> None:
    code, body, _ = await api.call("GET", "/api/health")
    assert code == 200
    assert body["status"] == "ok" and body["role"] == "leader"
    assert body["ami"] == "disconnected"  # no Asterisk in this test
    api.app.role = lambda: "standby"
    code, body, _ = await api.call("GET", "/api/health")
    assert body["role"] == "standby"

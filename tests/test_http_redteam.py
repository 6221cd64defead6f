"""A red team's findings against the HTTP edge and the pages, each refused by a running
daemon's listener (real sockets): sign-ins sent at once past the lock-out, an agent's
actions on another's call, event streams outliving their session, a proxy in front of
sign-in locking everyone out, an unaudited read of full numbers, nested JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from twisted.internet.defer import gatherResults
from twisted.internet.task import Clock

from tests import test_wallboard
from tests.http_helpers import PASSWORD, Running, outcome, running_app

board = test_wallboard.board
"""The real object graph with Redis on a ``Clock`` (test_wallboard's fixture)."""


@pytest_twisted.async_yield_fixture()
async def api() -> AsyncIterator[Running]:
    from twisted.internet import reactor

    async for running in running_app(reactor):
        yield running


@pytest_twisted.ensureDeferred
async def test_sign_ins_sent_at_once_do_not_get_past_the_lock_out(api: Running) -> None:
    """The lock-out was checked before the (slow, queued) password check and the failure
    counted after it: thirty guesses sent together were all checked."""
    from twisted.internet.defer import ensureDeferred

    api.add_user("sara", "supervisor")
    limit = api.app.config.http.lockout_failures
    guesses = [ensureDeferred(api.call("POST", "/api/session", role=None,
                                       body={"name": "sara", "password": f"guess-{n}"}))
               for n in range(30)]
    answers: list[Any] = await gatherResults(guesses)
    checked = [body for code, body, _ in answers if code == 401]
    locked = [body for code, body, _ in answers if code == 429]
    assert len(checked) == limit, [c for c, _, _ in answers]
    assert len(locked) == 30 - limit
    # refused while the first were being checked: a short wait (they end in seconds)
    waits = {int(h.getRawHeaders(b"retry-after")[0]) for code, _, h in answers if code == 429}
    assert waits == {6}
    code, _, _ = await api.call("POST", "/api/session", role=None,
                                body={"name": "sara", "password": PASSWORD})
    assert code == 429


@pytest_twisted.ensureDeferred
async def test_an_agent_cannot_report_or_flag_another_agents_call(
    board: tuple[Running, Clock],
) -> None:
    """The desk's call actions took any call the daemon remembered (waiting in the line,
    or talking to someone else): an agent could file an abuse report, and be granted
    its recovery, or flag a follow-up on a caller they never spoke to."""
    api, clock = board
    app = api.app
    now = clock.seconds()
    api.http.memory.on_outcome(outcome("c1"))
    app.roster.log_in("a1", now)
    app.roster.set_ready("a1", now)
    app.roster.ringing("a1", "c1", now)
    app.roster.log_in("a2", now)
    for action, body in [("abuse", {"category": "threat"}), ("follow-up", {"due_at": now + 60})]:
        code, answer, _ = await api.call("POST", f"/api/agents/a2/calls/c1/{action}",
                                         role="agent", person="a2", body=body)
        assert (code, answer["error"]["code"]) == (403, "http.forbidden"), (action, answer)
    code, pending, _ = await api.call("GET", "/api/complaints/abuse", person="sara")
    assert code == 200 and pending == []
    # the agent whose call it is may; so may a supervisor, for any agent
    code, answer, _ = await api.call("POST", "/api/agents/a1/calls/c1/abuse", role="agent",
                                     person="a1", body={"category": "threat"})
    assert code == 200, answer
    code, answer, _ = await api.call("POST", "/api/agents/a2/calls/c1/follow-up",
                                     person="sara", body={"due_at": now + 60})
    assert code == 200, answer


async def _open_stream(api: Running, cookie: str) -> Any:
    """A raw ``GET /api/events`` with the session's cookie, once the hub has it."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    from tests.test_http_security import raw

    hub = api.http.push
    before = hub.viewers
    stream = raw(api, b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Cookie: shenava_session=" + cookie.encode() + b"\r\n\r\n")
    for _ in range(500):
        if hub.viewers > before:
            break
        await deferLater(reactor, 0.01, lambda: None)
    assert hub.viewers == before + 1
    return stream


@pytest_twisted.ensureDeferred
async def test_an_open_event_stream_ends_with_its_session(board: tuple[Running, Clock]) -> None:
    """``/api/events`` checked the session once, when the stream opened: after a sign-out,
    ``shenava users remove`` or a new role, the wallboard's figures kept coming."""
    from twisted.internet import reactor

    api, clock = board
    hub = api.http.push
    # signed out: the stream ends at the next second
    cookie, csrf = await api.sign_in("supervisor", "sara")
    stream = await _open_stream(api, cookie)
    code, _, _ = await api.call("DELETE", "/api/session", role=None, cookie=cookie,
                                headers={"x-csrf-token": csrf})
    assert code == 200
    clock.advance(1.0)
    received = await stream.done.addTimeout(10, reactor)
    assert b"event: board" in received
    assert hub.viewers == 0
    # a supervisor made an agent: the stream ends once the record is looked at again
    cookie, _ = await api.sign_in("supervisor", "omid")
    stream = await _open_stream(api, cookie)
    api.add_user("omid", "agent", changed_at=1.0)
    for _ in range(40):
        clock.advance(1.0)
    await stream.done.addTimeout(10, reactor)
    assert hub.viewers == 0


@pytest_twisted.ensureDeferred
async def test_behind_a_listed_proxy_in_sign_in_mode_one_address_cannot_lock_out_all() -> None:
    """Behind a TLS proxy with built-in sign-in every browser came from the proxy's
    address: twenty failed sign-ins from anyone on the internet locked everybody out
    (and the audit log showed only the proxy). A listed proxy's ``X-Forwarded-For``
    now names the client; an unlisted peer's is still ignored."""
    from twisted.internet import reactor

    from tests.http_helpers import config_with_users

    config = config_with_users(proxy_addresses=("127.0.0.1",))
    assert config.http.auth != "proxy"
    async for api in running_app(reactor, config):
        api.add_user("sara", "supervisor")
        for n in range(api.app.config.http.lockout_address_failures):
            code, _, _ = await api.call("POST", "/api/session", role=None,
                                        headers={"x-forwarded-for": "203.0.113.9"},
                                        body={"name": f"guess{n}", "password": "not-a-password"})
            assert code == 401
        code, body, _ = await api.call("POST", "/api/session", role=None,
                                       headers={"x-forwarded-for": "198.51.100.7"},
                                       body={"name": "sara", "password": PASSWORD})
        assert code == 200, body
        entries = api.gate.audit.recent(2)
        assert [e["address"] for e in entries] == ["198.51.100.7", "203.0.113.9"]
        # the attacker's own address stays locked out
        code, body, _ = await api.call("POST", "/api/session", role=None,
                                       headers={"x-forwarded-for": "203.0.113.9"},
                                       body={"name": "sara", "password": PASSWORD})
        assert code == 429 and "your address" in body["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_an_unlisted_peers_forwarded_for_is_ignored(api: Running) -> None:
    api.add_user("sara", "supervisor")
    code, _, _ = await api.call("POST", "/api/session", role=None,
                                headers={"x-forwarded-for": "198.51.100.7"},
                                body={"name": "sara", "password": PASSWORD})
    assert code == 200
    entries = api.gate.audit.recent(1)
    assert entries[0]["address"] == "127.0.0.1"


@pytest_twisted.ensureDeferred
async def test_a_supervisors_read_of_a_screen_pop_is_audited(api: Running) -> None:
    """``GET /api/agents/{id}/call`` shows a supervisor the caller's full number, as
    ``/api/calls/{id}`` does, but it was not in the audit log."""
    from tests.http_helpers import CALLER

    app = api.app
    api.http.memory.on_outcome(outcome("c1"))
    now = float(api.reactor.seconds())
    app.roster.log_in("a1", now)
    app.roster.set_ready("a1", now)
    app.roster.ringing("a1", "c1", now)
    code, body, _ = await api.call("GET", "/api/agents/a1/call", person="sara")
    assert code == 200 and CALLER in str(body)
    entries = api.gate.audit.recent(5, "sara")
    assert [e["what"] for e in entries][:1] == ["GET /api/agents/a1/call"]
    # an agent's own (masked) screen pop is not a read of a full number
    code, body, _ = await api.call("GET", "/api/agents/a1/call", role="agent", person="a1")
    assert code == 200 and CALLER not in str(body)
    assert [e["what"] for e in api.gate.audit.recent(5, "a1")] == ["signed in"]


@pytest_twisted.ensureDeferred
async def test_deeply_nested_json_is_a_bad_body_not_an_internal_error(api: Running) -> None:
    """Sixty thousand ``[`` (under the body limit) made json.loads raise RecursionError:
    a 500 and a logged traceback for every such sign-in, from anyone."""
    deep = b"[" * 60_000 + b"]" * 60_000
    code, body, _ = await api.call("POST", "/api/session", role=None, raw=b'{"a":' + deep[:60_000] + b"}")
    assert (code, body["error"]["code"]) == (400, "http.bad_json"), body


@pytest_twisted.ensureDeferred
async def test_deeply_nested_json_to_the_register_is_a_bad_body(board: tuple[Running, Clock]) -> None:
    api, _ = board
    deep = b'{"note":' + b"[" * 60_000 + b"}"
    code, body, _ = await api.call("PATCH", "/api/complaints/C-1", raw=deep)
    assert (code, body["error"]["code"]) == (400, "invalid_json"), body


@pytest_twisted.ensureDeferred
async def test_anonymous_refusals_cannot_flood_the_audit_log(api: Running) -> None:
    """Every anonymous refused request (a form post, a sign-in while locked out) was an
    audit entry, written to the audit file on the reactor: anyone could grow the file
    at the rate they could send requests. One entry a minute per address and kind now,
    with the number left out."""
    gate = api.gate
    for n in range(30):
        code, _, _ = await api.call("POST", f"/api/complaints/x{n}", role=None,
                                    headers={"content-type": "text/plain"}, raw=b"{}")
        assert code == 415
    refusals = [e for e in gate.audit.recent(1000) if e["status"] == 415]
    assert len(refusals) == 1
    api.add_user("sara", "supervisor")
    for _ in range(api.app.config.http.lockout_failures):
        await api.call("POST", "/api/session", role=None,
                       body={"name": "sara", "password": "not-her-password"})
    for _ in range(30):
        code, _, _ = await api.call("POST", "/api/session", role=None,
                                    body={"name": "sara", "password": "not-her-password"})
        assert code == 429
    locked = [e for e in gate.audit.recent(1000) if e["status"] == 429]
    assert len(locked) == 1
    # a signed-in person's refused change is always written
    for _ in range(3):
        code, _, _ = await api.call("POST", "/api/agents/a1/ready", person="omid", csrf=False)
        assert code == 403
    assert len([e for e in gate.audit.recent(1000) if e["who"] == "omid" and e["status"] == 403]) == 3


@pytest_twisted.ensureDeferred
async def test_a_stream_that_is_not_read_is_dropped(board: tuple[Running, Clock]) -> None:
    """An event stream whose reader stopped reading was written to every second for
    ever (twisted.web lifts the idle timeout while a request is answered): the daemon
    kept every unsent second in memory. Once the socket's buffers are full (the
    transport pauses the channel) for ``SLOW_READER_S``, the stream is dropped."""
    from twisted.internet import reactor

    from shenava.http.push import SLOW_READER_S

    api, clock = board
    hub = api.http.push
    cookie, _ = await api.sign_in("supervisor", "sara")
    stream = await _open_stream(api, cookie)
    channel = hub.supervisors[0].request.channel
    channel.pauseProducing()  # what the transport does when the reader stops reading
    for _ in range(int(SLOW_READER_S) - 2):
        clock.advance(1.0)
    assert hub.viewers == 1  # a slow link is given time
    channel.resumeProducing()
    for _ in range(int(SLOW_READER_S) + 2):
        clock.advance(1.0)
    assert hub.viewers == 1  # it caught up: the count starts again
    channel.pauseProducing()
    for _ in range(int(SLOW_READER_S) + 2):
        clock.advance(1.0)
    assert hub.viewers == 0
    await stream.done.addTimeout(10, reactor)


@pytest_twisted.ensureDeferred
async def test_one_sign_in_cannot_hold_every_connection_with_event_streams(
    board: tuple[Running, Clock],
) -> None:
    """Streams are long requests: one agent's session could open them until the
    connection caps (behind a listed proxy, ``max_connections`` for everyone)."""
    from shenava.http.push import MAX_STREAMS_PER_SESSION

    api, _ = board
    hub = api.http.push
    cookie, _ = await api.sign_in("agent", "a1")
    for _ in range(MAX_STREAMS_PER_SESSION):
        await _open_stream(api, cookie)
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    asked = ensureDeferred(api.call("GET", "/api/events", role=None, cookie=cookie))
    code, body, _ = await asked.addTimeout(10, reactor)  # a stream let in never ends
    assert (code, body["error"]["code"]) == (429, "http.too_many_streams"), body
    assert hub.viewers == MAX_STREAMS_PER_SESSION
    # another person's sign-in is not counted with it
    other, _ = await api.sign_in("agent", "a2")
    await _open_stream(api, other)
    assert hub.viewers == MAX_STREAMS_PER_SESSION + 1

"""A cold review of the HTTP edge, each finding refused by a running daemon's listener
(real sockets): a page on another site whose name points at the daemon (DNS rebinding),
control characters from a request's path in the log and the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from shenava.check_config import check_config
from shenava.config import ConfigError, load_config
from shenava.http.edge import host_allowed, host_name, host_names
from tests import test_wallboard
from tests.http_helpers import Running, config_with_users, running_app
from tests.test_http_security import body_of, raw, status_of


@pytest_twisted.async_yield_fixture()
async def api() -> AsyncIterator[Running]:
    from twisted.internet import reactor

    async for running in running_app(reactor):
        yield running


def _running(**http: Any) -> Any:
    from twisted.internet import reactor

    return running_app(reactor, config_with_users(**http))


# -- the name asked for: DNS rebinding ----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_page_on_another_name_pointed_here_reads_nothing(api: Running) -> None:
    """evil.example resolves to 127.0.0.1: the browser takes the daemon for evil.example's
    own server (same origin: the page reads the answers; its ``Origin`` equals its ``Host``).
    Every request then names evil.example in ``Host``: refused, signed in or not."""
    port = api.port.getHost().port
    evil = {"host": f"evil.example:{port}", "origin": f"http://evil.example:{port}"}
    for method, path, role in [("GET", "/api/health", None), ("GET", "/api/wallboard", "supervisor"),
                               ("GET", "/wallboard", None), ("GET", "/api/events", "supervisor")]:
        code, body, _ = await api.call(method, path, role=role, headers=evil)
        assert (code, body["error"]["code"]) == (421, "http.host_not_allowed"), (path, body)
        assert "allowed_hosts" in body["error"]["message"]
    # a sign-in through the rebound name (the password phished on the evil page)
    api.add_user("sara", "supervisor")
    code, body, headers = await api.call("POST", "/api/session", role=None, headers=evil,
                                         body={"name": "sara", "password": "test-password-1"})
    assert (code, body["error"]["code"]) == (421, "http.host_not_allowed")
    assert headers.getRawHeaders(b"set-cookie") is None
    # a change with the session's cookie and token, were the page to have them
    code, body, _ = await api.call("POST", "/api/agents/a1/login", headers=evil)
    assert code == 421
    refused = [e for e in api.app.http.gate.audit.recent(50) if e["status"] == 421]
    assert refused and "evil.example" in refused[0]["detail"]


@pytest_twisted.ensureDeferred
async def test_addresses_and_localhost_are_answered(api: Running) -> None:
    port = api.port.getHost().port
    for host in [f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST.", f"[::1]:{port}",
                 f"10.1.2.3:{port}"]:
        code, body, _ = await api.call("GET", "/api/wallboard", headers={"host": host})
        assert code == 200, (host, body)
    # an HTTP/1.0 tool that sends no Host at all (no browser does)
    answer = await raw(api, b"GET /api/health HTTP/1.0\r\n\r\n").done
    assert status_of(answer.replace(b"HTTP/1.0", b"HTTP/1.1", 1)) in (200, 503), answer[:200]


@pytest_twisted.ensureDeferred
async def test_listed_names_are_answered_and_others_refused() -> None:
    async for api in _running(allowed_hosts=("wallboard.example.org", ".centre.example")):
        for host, code in [("wallboard.example.org", 200), ("Wallboard.Example.Org.:8080", 200),
                           ("centre.example", 200), ("tv.floor2.centre.example", 200),
                           ("evil.example.org", 421), ("badcentre.example", 421),
                           ("wallboard.example.org.evil.example", 421)]:
            got, body, _ = await api.call("GET", "/api/wallboard", headers={"host": host})
            assert got == code, (host, body)


@pytest_twisted.ensureDeferred
async def test_a_star_turns_the_check_off() -> None:
    async for api in _running(allowed_hosts=("*",)):
        code, body, _ = await api.call("GET", "/api/wallboard", headers={"host": "anything.example"})
        assert code == 200, body


@pytest_twisted.ensureDeferred
async def test_a_listed_proxys_forwarded_host_is_checked_too() -> None:
    """A TLS proxy in front passes the browser's name in ``X-Forwarded-Host``: a rebound
    name reaching the daemon through the proxy is refused as well."""
    async for api in _running(proxy_addresses=("127.0.0.1",), allowed_hosts=("desk.example.org",)):
        code, _, _ = await api.call("GET", "/api/wallboard", headers={
            "host": "127.0.0.1", "x-forwarded-host": "desk.example.org"})
        assert code == 200
        code, body, _ = await api.call("GET", "/api/wallboard", headers={
            "host": "127.0.0.1", "x-forwarded-host": "evil.example"})
        assert (code, body["error"]["code"]) == (421, "http.host_not_allowed")
    async for api in _running():  # from anyone else, the header is nobody's word
        code, _, _ = await api.call("GET", "/api/wallboard", headers={
            "host": "127.0.0.1", "x-forwarded-host": "evil.example"})
        assert code == 200


def test_host_names_are_read_as_browsers_send_them() -> None:
    assert host_name("Example.ORG.:8443") == "example.org"
    assert host_name("[::1]:80") == "::1"
    assert host_name("::1") == "::1"
    names = host_names(("desk.example.org",))
    assert host_allowed("localhost:1", names) and host_allowed("192.0.2.7", names)
    assert not host_allowed("desk.example.org.evil", names)
    assert host_allowed("whatever", host_names(("x", "*")))


def _config(tmp_path: Path, http: str) -> Path:
    path = tmp_path / "shenava.toml"
    path.write_text('[redis]\nurl = "redis://127.0.0.1:1/0"\n[ami]\nsecret = "x-secret-1"\n'
                    f"[http]\n{http}\n", encoding="utf-8")
    return path


def test_allowed_hosts_are_checked_in_the_config(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, 'allowed_hosts = ["desk.example.org", ".example.net", "::1"]'))
    assert config.http.allowed_hosts == ("desk.example.org", ".example.net", "::1")
    for bad in ["http://desk.example.org", "desk.example.org:8080", "desk example", ""]:
        with pytest.raises(ConfigError, match=r"http\.allowed_hosts"):
            load_config(_config(tmp_path, f"allowed_hosts = [{bad!r}]".replace("'", '"')))


def test_check_config_says_when_names_will_be_refused(tmp_path: Path) -> None:
    def codes(http: str) -> set[str]:
        return {f.code for f in check_config(_config(tmp_path, http))}

    assert "http.allowed_hosts" not in codes('bind = "127.0.0.1"')
    assert "http.allowed_hosts" in codes('bind = "0.0.0.0"')
    assert "http.allowed_hosts" in codes('proxy_addresses = ["127.0.0.1"]')
    assert "http.allowed_hosts" not in codes('bind = "0.0.0.0"\nallowed_hosts = ["desk.example.org"]')
    assert "http.any_host" in codes('allowed_hosts = ["*"]')


# -- the log: what a stranger puts in a path ----------------------------------------------


@pytest_twisted.ensureDeferred
async def test_control_characters_in_a_path_do_not_reach_the_audit_log(api: Running) -> None:
    """A refused post's path went into the audit log (and the daemon's log) as sent.
    Twisted refuses most control characters in the request line (400), not DEL."""
    answer = await raw(api, b"POST /api/x\x7f\x7f\x7fsigned-in HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                       b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}").done
    assert status_of(answer) == 415, answer[:200]
    assert body_of(answer)["error"]["code"] == "http.unsupported_media_type"
    entry = api.app.http.gate.audit.recent(1)[0]
    assert entry["status"] == 415
    assert "\x7f" not in entry["what"], entry
    assert entry["what"] == "POST /api/x???signed-in"


# -- sessions: one person cannot push everyone else out -----------------------------------


def test_one_persons_sign_ins_do_not_push_out_anyone_elses_sessions() -> None:
    """The store dropped its oldest session when full, whoever's it was: one person
    signing in again and again (an agent's script) signed everyone else out."""
    from complaints.roles import Actor, Role
    from shenava.http.sessions import SessionStore

    store = SessionStore(100.0, 1000.0, max_sessions=10, per_person=3)
    others = [store.open(Actor(f"a{n}", Role.AGENT), 1.0) for n in range(7)]
    mine = [store.open(Actor("mallory", Role.AGENT), 2.0 + n) for n in range(50)]
    assert all(store.find(s.session_id, 3.0) is not None for s in others)
    assert [store.find(s.session_id, 60.0) is not None for s in mine[-4:]] == [False, True, True, True]
    assert len(store) == 10
    assert store.close_person("mallory") == 3 and len(store) == 7


@pytest_twisted.ensureDeferred
async def test_a_persons_oldest_session_ends_past_their_cap(api: Running) -> None:
    from shenava.http.sessions import MAX_SESSIONS_PER_PERSON
    from tests.http_helpers import PASSWORD, session_cookie

    api.add_user("sara", "supervisor")
    _, _, other = await api.call("POST", "/api/session", role=None,
                                 body={"name": "sara", "password": PASSWORD})
    api.add_user("omid", "supervisor")
    _, _, omid = await api.call("POST", "/api/session", role=None,
                                body={"name": "omid", "password": PASSWORD})
    cookies = [session_cookie(other)]
    for _ in range(MAX_SESSIONS_PER_PERSON):
        code, _, headers = await api.call("POST", "/api/session", role=None,
                                          body={"name": "sara", "password": PASSWORD})
        assert code == 200
        cookies.append(session_cookie(headers))
    code, _, _ = await api.call("GET", "/api/session", role=None, cookie=cookies[0])
    assert code == 401
    for cookie in (cookies[1], cookies[-1], session_cookie(omid)):
        code, _, _ = await api.call("GET", "/api/session", role=None, cookie=cookie)
        assert code == 200


# -- a stream whose reader stopped reading ------------------------------------------------


board = test_wallboard.board
"""The real object graph with Redis on a ``Clock`` (test_wallboard's fixture)."""


@pytest_twisted.ensureDeferred
async def test_a_stream_nobody_reads_is_cut_not_left_open(board: tuple[Running, Any]) -> None:
    """A page whose reader stopped reading (a frozen TV, a peer with a zero TCP window):
    its stream was dropped after ``SLOW_READER_S`` with a graceful close, which waits for
    the unsent bytes to go out: they never do, so the connection, its buffers and its
    place in the caps stayed for ever. It is aborted now."""
    import socket

    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    from shenava.http.push import SLOW_READER_S

    api, clock = board
    hub = api.app.http.push
    site = api.port.factory
    cookie, _ = await api.sign_in("supervisor", "sara")
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    reader.connect(("127.0.0.1", api.port.getHost().port))
    try:
        reader.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Cookie: shenava_session=" + cookie.encode() + b"\r\n\r\n")
        for _ in range(500):
            if hub.viewers:
                break
            await deferLater(reactor, 0.01, lambda: None)
        assert hub.viewers == 1
        conn = hub.supervisors[0]
        conn.request.channel.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2048)
        open_before = site.open_total
        ticks = 0
        while hub.viewers and ticks < 5000:  # each second's frame, until the buffers are full
            clock.advance(1.0)
            clock.advance(0)
            ticks += 1
            await deferLater(reactor, 0, lambda: None)
        assert hub.viewers == 0 and conn.paused_at is not None
        assert ticks >= SLOW_READER_S
        for _ in range(200):
            if site.open_total < open_before:
                break
            await deferLater(reactor, 0.01, lambda: None)
        assert site.open_total == open_before - 1  # the connection is gone, not waiting
    finally:
        reader.close()


@pytest_twisted.ensureDeferred
async def test_an_unreadable_users_file_is_said_so_not_an_internal_error(tmp_path: Path) -> None:
    """A users file the daemon's user cannot read answered every sign-in 500
    ``http.internal`` (the operator saw nothing to go on); the lock-out counted it too."""
    from dataclasses import replace

    from twisted.internet import reactor

    users = tmp_path / "users.json"
    users.mkdir()  # unreadable as a file, even for root
    config = config_with_users()
    config = replace(config, http=replace(config.http, users_file=str(users)))
    async for api in running_app(reactor, config):
        for _ in range(api.app.config.http.lockout_failures + 1):
            code, body, _ = await api.call("POST", "/api/session", role=None,
                                           body={"name": "sara", "password": "a long password"})
            assert (code, body["error"]["code"]) == (503, "http.users_unreadable"), body
        assert "users_file" in body["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_a_proxys_forwarded_address_reaches_the_audit_log_without_control_characters() -> None:
    """Only a listed proxy's ``X-Forwarded-For`` counts, but whatever it passes on (a
    client's own header appended to) went into the audit log and the lock-out as sent."""
    async for api in _running(proxy_addresses=("127.0.0.1",)):
        code, _, _ = await api.call("POST", "/api/session", role=None,
                                    headers={"x-forwarded-for": "10.0.0.1, 10.9.9.9\x1b[2J\x7f"},
                                    body={"name": "sara", "password": "a long password"})
        assert code == 401
        entry = api.app.http.gate.audit.recent(1)[0]
        assert entry["what"] == "sign-in failed" and entry["address"] == "10.9.9.9?[2J?"


@pytest_twisted.ensureDeferred
async def test_the_server_header_names_no_library_version(api: Running) -> None:
    for path in ("/api/health", "/wallboard", "/nowhere"):
        _, _, headers = await api.call("GET", path, role=None)
        assert headers.getRawHeaders(b"server") == [b"Shenava"], path
    answer = await raw(api, b"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                       b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}").done
    assert b"Twisted" not in answer


# -- secrets in messages ------------------------------------------------------------------


def test_a_malformed_redis_url_is_shown_without_its_password(tmp_path: Path) -> None:
    """check-config's and the daemon's start-up error quoted the whole ``redis.url``: a
    typo in the scheme put the Redis password on the terminal and in the journal."""
    for url in ["redsi://:hunter2-secret@h:6379/0", "redis+sentinel://u:hunter2-secret@h1:1,h2:x/s",
                "redis+cluster://:hunter2-secret@h:99999"]:
        path = tmp_path / "shenava.toml"
        path.write_text(f'[ami]\nsecret = "x-secret-1"\n[redis]\nurl = "{url}"\n', encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert "hunter2" not in str(caught.value) and ":***@" in str(caught.value)
        findings = "\n".join(str(f) for f in check_config(path))
        assert "hunter2" not in findings and "redis.url" in findings


# -- the lock-out: one IPv6 client has a whole /64 ----------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_ipv6_client_cannot_step_round_the_address_lock_out() -> None:
    """Failed sign-ins were counted per address: a client given an IPv6 /64 (every home
    and cloud host) tried names without end, one address each. They count per /64 now.
    (The client's address comes from a listed proxy here: loopback has one IPv6 address.)"""
    async for api in _running(proxy_addresses=("127.0.0.1",), lockout_address_failures=3,
                              lockout_failures=10):
        async def attempt(address: str, name: str, api: Running = api) -> int:
            code, _, _ = await api.call("POST", "/api/session", role=None,
                                        headers={"x-forwarded-for": address},
                                        body={"name": name, "password": "a long password"})
            return code

        for n in range(3):
            assert await attempt(f"2001:db8:1:2::{n + 1}", f"user{n}") == 401
        assert await attempt("2001:db8:1:2:ffff::9", "user9") == 429  # the same /64
        assert await attempt("2001:db8:1:3::1", "user9") == 401       # another /64
        assert await attempt("192.0.2.1", "user9") == 401


def test_address_groups() -> None:
    from shenava.http.sessions import address_group

    assert address_group("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_group("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_group("192.0.2.7") == "192.0.2.7"
    assert address_group("-") == "-"

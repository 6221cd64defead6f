"""The proxy configuration of docs/security.md, run by Debian's nginx (``nginx-light``)
in front of a daemon in proxy mode, with a stand-in single sign-on.

The nginx block is read from the doc between its markers, so what is documented
is what is tested. Without nginx the test is skipped (``apt-get install
nginx-light``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from tests.http_helpers import PASSWORD, Running, config_with_users, running_app

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
SECRET = "the-proxy-secret-0123456789abcdef"
if NGINX is None and os.environ.get("CI") == "true":
    raise RuntimeError("the nginx proxy test cannot run under CI: nginx-light is not installed")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")


def documented_block() -> str:
    doc = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- nginx-proxy-begin -->\n```nginx\n(.*?)```\n<!-- nginx-proxy-end -->", doc, re.S)
    assert found, "docs/security.md lost its nginx block"
    return found.group(1)


class SingleSignOn(Resource):
    """Stands in for the operator's SSO: a bearer token per person."""

    isLeaf = True
    PEOPLE = {"alice-token": ("supervisor", "alice"), "bob-token": ("agent", "a1")}

    def render_GET(self, request: Request) -> bytes:
        given = (request.getHeader("authorization") or "").removeprefix("Bearer ")
        if given not in self.PEOPLE:
            request.setResponseCode(401)
            return b""
        role, person = self.PEOPLE[given]
        request.setHeader("x-role", role)
        request.setHeader("x-user", person)
        return b""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_twisted.async_yield_fixture()
async def proxied(tmp_path: Path) -> AsyncIterator[tuple[Running, Running]]:
    """(through nginx, straight to the daemon)."""
    from twisted.internet import reactor

    sso: Any = cast(Any, reactor).listenTCP(0, Site(SingleSignOn()), interface="127.0.0.1")
    config = config_with_users(auth="proxy", proxy_addresses=("127.0.0.1",), proxy_secret=SECRET)
    async for api in running_app(reactor, config):
        nginx_port = _free_port()
        block = (documented_block()
                 .replace("http://127.0.0.1:9000/", f"http://127.0.0.1:{sso.getHost().port}/")
                 .replace("http://127.0.0.1:8080/", f"http://127.0.0.1:{api.port.getHost().port}/")
                 .replace("CONTENTS-OF-PROXY-SECRET-FILE", SECRET))
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (tmp_path / name).mkdir()
        (tmp_path / "nginx.conf").write_text(f"""
daemon off;
user root;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    server {{
        listen 127.0.0.1:{nginx_port};
{block}
    }}
}}
""")
        assert NGINX is not None
        process = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                                   stderr=subprocess.PIPE)
        try:
            through = Running(reactor, api.app, api.port)
            through.base = f"http://127.0.0.1:{nginx_port}/shenava"
            for _ in range(200):
                try:
                    await through.call("GET", "/api/session", role=None)
                    break
                except Exception:
                    assert process.poll() is None, process.stderr.read() if process.stderr else ""
                    await deferLater(cast(Any, reactor), 0.05, lambda: None)
            yield through, api
        finally:
            process.send_signal(signal.SIGQUIT)
            process.wait(timeout=15)
            await through.pool.closeCachedConnections()
            await sso.stopListening()


@pytest_twisted.ensureDeferred
async def test_documented_nginx_config_vouches_only_for_the_sso(proxied: tuple[Running, Running]) -> None:
    through, direct = proxied
    forged = {"X-Shenava-Role": "admin", "X-Shenava-Person": "root", "X-Shenava-Agent": "a2",
              "X-Shenava-Actor": "a2", "X-Shenava-Proxy-Secret": "guess", "X-Forwarded-For": "6.6.6.6"}
    # nobody signed in at the SSO: nginx refuses before the daemon
    code, _, _ = await through.call("GET", "/api/wallboard", role=None, headers=forged)
    assert code == 401
    # the SSO's person, whatever the browser claimed
    alice = {**forged, "Authorization": "Bearer alice-token"}
    code, me, _ = await through.call("GET", "/api/session", role=None, headers=alice)
    assert code == 200 and (me["person"], me["role"], me["via"]) == ("alice", "supervisor", "proxy")
    bob = {**forged, "Authorization": "Bearer bob-token"}
    code, board, _ = await through.call("GET", "/api/wallboard", role=None, headers=bob)
    assert code == 200 and board["you"] == {"id": "a1", "role": "agent"}
    code, body, _ = await through.call("POST", "/api/agents/a2/login", role=None, headers=bob)
    assert (code, body["error"]["code"]) == (403, "http.csrf")
    code, mine, _ = await through.call("GET", "/api/session", role=None, headers=bob)
    code, body, _ = await through.call("POST", "/api/agents/a2/login", role=None,
                                       headers={**bob, "X-CSRF-Token": mine["csrf"]})
    assert (code, body["error"]["code"]) == (403, "http.forbidden")  # a1 is not a2
    code, body, _ = await through.call("POST", "/api/agents/a1/login", role=None,
                                       headers={**bob, "X-CSRF-Token": mine["csrf"]})
    assert code == 200 and body["changed"] is True
    # the client's address is nginx's $remote_addr, not the browser's X-Forwarded-For
    code, log, _ = await direct.call("GET", "/api/audit", role="admin", person="omid")
    changes = [e for e in log["entries"] if e["what"] == "POST /api/agents/a1/login"]
    assert [(e["who"], e["address"], e["status"]) for e in changes] == [("a1", "127.0.0.1", 200)]
    # straight to the daemon, the same headers without the secret name nobody
    code, _, _ = await direct.call("GET", "/api/session", role=None,
                                   headers={"X-Shenava-Role": "admin", "X-Shenava-Person": "root"})
    assert code == 401


@pytest_twisted.ensureDeferred
async def test_the_documented_config_keeps_the_session_cookie_to_its_prefix(
    proxied: tuple[Running, Running]
) -> None:
    """A sign-in beside the proxy (the daemon says ``Path=/``: it cannot know its prefix):
    nginx narrows the cookie to ``/shenava/``, so other applications on the host never get it."""
    through, direct = proxied
    direct.add_user("sara", "supervisor")
    code, _, headers = await through.call(
        "POST", "/api/session", role=None, headers={"Authorization": "Bearer alice-token"},
        body={"name": "sara", "password": PASSWORD})
    assert code == 200
    cookie = (headers.getRawHeaders(b"set-cookie") or [b""])[0].decode()
    assert cookie.startswith("shenava_session=") and "Path=/shenava/;" in cookie + ";", cookie

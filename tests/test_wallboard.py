"""The browser pages and ``GET /api/wallboard`` over real loopback HTTP (twisted.web level).

The pages in a real browser are in ``test_browser_pages.py``.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.web.client import readBody
from twisted.web.http_headers import Headers

from agent_stats.service import StatsService
from agent_stats.sla import day_start
from agent_stats.states import AgentState, NotReadyReason
from routing.callbacks import ivr_request_reason
from routing.events import CallAnswered, CallQueued
from shenava.app import Shenava
from shenava.config import default_config
from shenava.http import build_site
from shenava.http.pages import (
    ASSETS,
    LANGUAGES,
    VENDOR,
    default_language,
    load_strings,
    read_static,
    render_page,
)
from shenava_base.aio import as_deferred
from tests.http_helpers import Running, config_with_users, outcome, running_app
from tests.stats_helpers import T0, step_to

# -- helpers ---------------------------------------------------------------------------


async def fetch(
    api: Running, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Headers, bytes]:
    raw = Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()})
    response = await api.agent.request(method.encode(), (api.base + path).encode(), raw, None)
    with warnings.catch_warnings():
        # the asyncio reactor's transports lack abortConnection; harmless here
        warnings.simplefilter("ignore", DeprecationWarning)
        reading = readBody(response)
    body = await reading
    return response.code, response.headers, body


def header(headers: Headers, name: str) -> str | None:
    values = headers.getRawHeaders(name.encode())
    return values[0].decode() if values else None


def page_strings(html: str) -> dict[str, str]:
    found = re.search(r'<script type="application/json" id="strings">(.*?)</script>', html, re.S)
    assert found is not None
    parsed: dict[str, str] = json.loads(found.group(1))
    return parsed


@pytest_twisted.async_yield_fixture()
async def api() -> AsyncIterator[Running]:
    """The daemon's listener without Redis: no statistics service, no register."""
    from twisted.internet import reactor

    async for running in running_app(reactor):
        yield running


class _NoEndpoint:
    def connect(self, factory: Any) -> Any:
        raise AssertionError("not connected in this test")


@pytest_twisted.async_yield_fixture()
async def board(redis_client: Redis) -> AsyncIterator[tuple[Running, Clock]]:
    """The real object graph with Redis (statistics, register, callback flags) on a
    ``Clock``; its site served on a real loopback port."""
    from twisted.internet import reactor

    clock = Clock()
    clock.advance(T0)
    app = Shenava(config_with_users(), reactor=clock, redis=redis_client, endpoint=_NoEndpoint())
    app.connection.agi = lambda *a, **k: Deferred()  # type: ignore[method-assign]
    app.connection.send_action = lambda *a, **k: Deferred()  # type: ignore[method-assign]
    service = app.agent_stats
    await service.started
    port: Any = cast(Any, reactor).listenTCP(0, build_site(app), interface="127.0.0.1")
    running = Running(reactor, app, port)
    try:
        yield running, clock
    finally:
        await running.pool.closeCachedConnections()
        await port.stopListening()
        await service.stop()
        app.complaints.stop()
        app.recordings.stop()


# -- the pages ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_wallboard_page_is_persian_by_default_and_references_its_assets(api: Running) -> None:
    code, headers, body = await fetch(api, "GET", "/wallboard")
    html = body.decode("utf-8")
    assert code == 200
    assert header(headers, "content-type") == "text/html; charset=utf-8"
    assert '<html lang="fa" dir="rtl">' in html
    assert "<title>تابلوی سرپرست شنوا</title>" in html
    assert 'src="static/shenava.js"' in html and 'href="static/shenava.css"' in html
    assert 'data-page="wallboard"' in html
    # the script gets the same texts, and nothing is left unfilled
    assert page_strings(html) == load_strings()["fa"]
    assert "{{" not in html
    # nothing inline may run, nothing from elsewhere may load
    policy = header(headers, "content-security-policy") or ""
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert header(headers, "x-content-type-options") == "nosniff"
    # the page itself carries no data: no role needed (its fetches need one)
    assert "Maryam" not in html


@pytest_twisted.ensureDeferred
async def test_english_switch_and_the_link_back(api: Running) -> None:
    code, _, body = await fetch(api, "GET", "/desk?agent=a1&lang=en")
    html = body.decode("utf-8")
    assert code == 200
    assert '<html lang="en" dir="ltr">' in html
    assert "<title>Shenava agent desk</title>" in html
    assert 'data-page="desk"' in html and 'src="static/shenava.js"' in html
    assert page_strings(html)["btn_not_ready"] == "Not ready"
    # the switch keeps the agent and offers the other language
    assert 'href="?agent=a1&amp;lang=fa"' in html and ">فارسی</a>" in html

    _, _, body = await fetch(api, "GET", "/wallboard?lang=de")
    assert '<html lang="fa" dir="rtl">' in body.decode("utf-8")
    _, _, body = await fetch(api, "GET", "/wallboard?lang=fa")
    assert 'href="?lang=en"' in body.decode("utf-8")


def test_default_language_follows_the_site_languages() -> None:
    config = default_config()
    assert default_language(config) == "fa"
    english_first = replace(config, site=replace(config.site, languages=("en", "fa")))
    assert default_language(english_first) == "en"
    assert default_language(object()) == "fa"


def test_every_language_has_every_text() -> None:
    strings = load_strings()
    assert set(strings) == set(LANGUAGES)
    assert strings["fa"].keys() == strings["en"].keys()
    for page in ("wallboard.html", "desk.html", "review.html", "signin.html"):
        used = set(re.findall(r"\{\{([a-z0-9_]+)\}\}", read_static(page).decode()))
        computed = {"lang", "dir", "other_lang", "other_dir", "other_lang_href", "other_lang_name",
                    "strings_json"}
        assert used - computed <= strings["fa"].keys(), page
    # every key the scripts name, and every code they translate, has a text
    for name in ("shenava.js", "charts.js", "desk-actions.js", "supervisor.js"):
        script = read_static(name).decode()
        for key in re.findall(r'\bT\.([a-z_]+)|\bt\("([a-z_]+)"[,)]', script):
            assert (key[0] or key[1]) in strings["en"], (name, key)
    from complaints.abuse import AbuseCategory, ReportStatus
    from complaints.complaint import Channel, ComplaintStatus
    from complaints.roles import Role
    from routing.callbacks import FlagStatus, ReasonKind, Resolution
    from routing.scoring import DEFAULT_CATEGORY_POINTS

    codes: dict[str, list[str]] = {
        "state_": [s.value for s in AgentState], "reason_": [r.value for r in NotReadyReason],
        "status_": [s.value for s in ComplaintStatus], "abuse_": [a.value for a in AbuseCategory],
        "report_status_": [r.value for r in ReportStatus], "channel_": [c.value for c in Channel],
        "callback_reason_": [k.value for k in ReasonKind], "resolution_": [r.value for r in Resolution],
        "flag_state_": [f.value for f in FlagStatus],
        "role_": [r.value for r in Role],  # the header's "signed in as"
        "history_": ["opened", "status", "note", "category", "redress", "escalated", "transcript",
                     "callback_raised", "repeated", "purged"],
        "category_": list(DEFAULT_CATEGORY_POINTS),  # the default menus' and the usual others
    }
    missing = [p + c for p, values in codes.items() for c in values if p + c not in strings["en"]]
    assert not missing, missing
    # the register's history actions are those above (a new one needs its text)
    import complaints.complaint as complaint_module

    source = Path(complaint_module.__file__ or "").read_text()
    actions = set(re.findall(r'_changed\([^)]*?"([a-z_]+)"', source)) | {"opened"}
    assert actions <= set(codes["history_"]), actions


def test_the_language_switch_names_its_language_by_code() -> None:
    """``hreflang`` takes a language code ("en"), not its name ("English"); the link's own
    text is in the other language, so it says so (``lang``, ``dir``) for screen readers."""
    strings = load_strings()
    for page in ("wallboard.html", "desk.html", "review.html", "signin.html"):
        template = read_static(page).decode()
        for lang, other, direction in (("fa", "en", "ltr"), ("en", "fa", "rtl")):
            html = render_page(template, strings[lang], lang, {})
            switch = re.search(r'<a [^>]*id="lang-switch"[^>]*>([^<]*)</a>', html)
            assert switch is not None, page
            tag = switch.group(0)
            assert f'hreflang="{other}"' in tag and f'lang="{other}"' in tag, (page, tag)
            assert f'dir="{direction}"' in tag and switch.group(1) == strings[lang]["other_language"]


@pytest_twisted.ensureDeferred
async def test_assets_are_served_with_their_types(api: Running) -> None:
    referenced = set()
    for page in ("/wallboard", "/desk", "/review", "/sign-in"):
        _, _, body = await fetch(api, "GET", page)
        referenced |= set(re.findall(r'(?:src|href)="(static/[^"]+)"', body.decode()))
    assert sorted(referenced) == sorted(f"static/{name}" for name in {**ASSETS, **VENDOR})
    for path in sorted(referenced):
        code, headers, content = await fetch(api, "GET", "/" + path)
        name = path.removeprefix("static/")
        assert code == 200, path
        assert header(headers, "content-type") == {**ASSETS, **VENDOR}[name].decode()
        assert content == read_static(name)
    code, headers, content = await fetch(api, "HEAD", "/static/shenava.css")
    assert (code, content) == (200, b"")
    assert header(headers, "content-length") == str(len(read_static("shenava.css")))


@pytest.mark.parametrize(
    "path",
    [
        "/static/missing.js",
        "/static/",
        "/static/i18n.json/x",
        "/static/../pages.py",
        "/static/%2e%2e/pages.py",
        "/wallboard/extra",
        "/desk/a1",
        "/nothing",
    ],
)
@pytest_twisted.ensureDeferred
async def test_unknown_paths_are_json_404s(api: Running, path: str) -> None:
    code, headers, body = await fetch(api, "GET", path)
    assert code == 404
    assert header(headers, "content-type") == "application/json; charset=utf-8"
    assert json.loads(body)["error"]["code"] == "http.not_found"


@pytest_twisted.ensureDeferred
async def test_pages_allow_only_get_and_redirect_a_trailing_slash(api: Running) -> None:
    code, answer, headers = await api.call("POST", "/wallboard")
    assert code == 405 and headers.getRawHeaders(b"allow") == [b"GET, HEAD"]
    assert answer["error"]["code"] == "http.method_not_allowed"
    code, _, _ = await api.call("DELETE", "/static/shenava.js")
    assert code == 405
    code, headers, _ = await fetch(api, "GET", "/wallboard/")
    assert (code, header(headers, "location")) == (302, "../wallboard")
    code, _, body = await fetch(api, "HEAD", "/desk")
    assert (code, body) == (200, b"")


@pytest_twisted.ensureDeferred
async def test_the_bare_address_leads_to_the_sign_in_page(api: Running) -> None:
    """``http://wallboard.example.org/`` is what people type: not a JSON 404, the sign-in
    page (which sends someone signed in on to their page), relative for a proxy's prefix."""
    for path, where in (("/", "sign-in"), ("/?lang=en", "sign-in?lang=en"), ("/?lang=xx", "sign-in")):
        code, headers, body = await fetch(api, "GET", path)
        assert (code, header(headers, "location"), body) == (303, where, b""), path
    code, headers, _ = await fetch(api, "HEAD", "/")
    assert (code, header(headers, "location")) == (303, "sign-in")
    code, _, _ = await fetch(api, "GET", "/nowhere")
    assert code == 404
    code, answer, _ = await api.call("POST", "/")
    assert (code, answer["error"]["code"]) == (405, "http.method_not_allowed")


# -- GET /api/wallboard --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_wallboard_snapshot_needs_a_sign_in(api: Running) -> None:
    code, body, _ = await api.call("GET", "/api/wallboard", role=None)
    assert (code, body["error"]["code"]) == (401, "http.not_signed_in")
    code, body, _ = await api.call("GET", "/api/wallboard", role=None,
                                   headers={"X-Shenava-Role": "admin", "X-Shenava-Agent": "x"})
    assert (code, body["error"]["code"]) == (401, "http.not_signed_in")
    code, body, _ = await api.call("POST", "/api/wallboard")
    assert code == 405


@pytest_twisted.ensureDeferred
async def test_wallboard_snapshot_without_statistics_says_so(api: Running) -> None:
    await ensureDeferred(api.app.callflow.deliver(outcome("c1"), "PJSIP/caller-c1"))
    code, body, headers = await api.call("GET", "/api/wallboard", person="sara")
    assert code == 200
    assert headers.getRawHeaders(b"cache-control") == [b"no-store"]
    assert body["statistics"] == "not running" and body["sla"] is None and body["queues"] == {}
    assert body["you"] == {"id": "sara", "role": "supervisor"}
    assert body["waiting"]["calls"] == 1 and body["waiting"]["longest_wait_s"] >= 0
    assert body["callbacks"]["status"] == "not running"
    assert [a["id"] for a in body["agents"]] == ["a1", "a2", "a3", "a4"]
    assert body["site"]["timezone"] == "Asia/Tehran"
    assert re.fullmatch(r"1[34]\d\d/\d\d/\d\d", body["site"]["today_jalali"])


@pytest_twisted.ensureDeferred
async def test_wallboard_snapshot_gathers_the_daemons_own_figures(
    board: tuple[Running, Clock], redis_client: Redis
) -> None:
    api, clock = board
    app = api.app
    service = app.agent_stats
    assert isinstance(service, StatsService)
    service._headroom = lambda staffed, now: 0  # no headroom: break requests wait in line
    for agent in ("a1", "a2", "a3"):
        app.roster.log_in(agent, clock.seconds())
    emit = app.dispatcher._emit  # routing's own fan-out, as connected calls drive it
    emit(CallQueued("c1", T0 + 1, T0, "fa", "billing", "09120000000"))
    step_to(clock, T0 + 9)
    emit(CallAnswered("c1", T0 + 9, "a3", T0 + 1, False))
    step_to(clock, T0 + 60)
    app.roster.set_not_ready("a2", NotReadyReason.TRAINING, clock.seconds())
    step_to(clock, T0 + 300)
    assert service.request_break("a1", NotReadyReason.BREAK).status == "waiting"
    step_to(clock, T0 + 330)
    flags = app.complaints.callbacks
    await as_deferred(flags.raise_reason("09121112222", ivr_request_reason("c9", T0, T0), T0))

    code, body, _ = await api.call("GET", "/api/wallboard", role="supervisor", person="sara")
    assert code == 200 and body["statistics"] == "ok"
    now = body["now"]
    assert now == clock.seconds()
    snap = service.snapshot(now)
    queue = body["queue"]
    assert body["queues"][queue] == json.loads(json.dumps(snap["queues"][queue]))
    assert body["queues"][queue]["day"]["answered"] == 1
    assert body["queues"][queue]["rolling"]["sl"] == snap["queues"][queue]["rolling"]["sl"] == 1.0
    assert body["sla"] == {"threshold_s": service.sla.threshold_s, "target": service.sla.target,
                           "window_s": service.sla.window_s}
    rows = {a["id"]: a for a in body["agents"]}
    allowances = service.allowances(now)
    for agent_id, row in rows.items():
        expected = allowances[agent_id]
        assert row["allowance"] == {"earned_s": expected.earned_s, "taken_s": expected.taken_s,
                                    "exempt_s": expected.exempt_s, "left_s": expected.unused_s}
    a2 = rows["a2"]
    assert (a2["state"], a2["reason"]) == ("not_ready", "training")
    ledger = app.roster.get("a2").ledger
    assert a2["not_ready_today_s"] == ledger.totals(day_start(now, service.sla), now, now).state(
        AgentState.NOT_READY) == pytest.approx(270.0)
    assert a2["not_ready_today_by_reason"] == {"training": pytest.approx(270.0)}
    assert rows["a4"]["state"] == "logged_out" and rows["a4"]["not_ready_today_s"] == 0
    assert rows["a1"]["break_position"] == 1
    assert body["break_line"] == [
        {"agent_id": "a1", "name": "Maryam", "reason": "break", "requested_at": T0 + 300,
         "waited_s": 30.0, "position": 1,
         "latest_at": T0 + 300 + service.break_config.max_wait_s}
    ]
    assert body["callbacks"] == {"status": "ok", "open": 1, "due": 1, "needing_attention": 0}
    assert body["waiting"] == {"calls": 0, "longest_wait_s": None}

    # an agent sees the queue's figures and their own row only
    code, mine, _ = await api.call("GET", "/api/wallboard", role="agent", person="a2")
    assert code == 200 and mine["you"] == {"id": "a2", "role": "agent"}
    assert [a["id"] for a in mine["agents"]] == ["a2"]
    assert mine["break_line"] == [] and mine["queues"] == body["queues"]
    code, mine, _ = await api.call("GET", "/api/wallboard", role="agent", person="a1")
    assert [r["agent_id"] for r in mine["break_line"]] == ["a1"]


# -- the demo's people ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_demo_users_and_one_use_links_sign_in(api: Running) -> None:
    from pathlib import Path

    from shenava.http.demo_door import make_demo_users, sign_in_links
    from tests.http_helpers import session_cookie

    people = make_demo_users(Path(api.app.config.http.users_file), ["a1"], 0.0)
    assert [(p.name, p.role.value) for p in people] == [("supervisor", "supervisor"), ("a1", "agent")]
    assert people[1].secret.isdigit() and len(people[1].secret) == 6
    links = sign_in_links(api.app, people)
    code, headers, _ = await fetch(api, "GET", "/" + links["a1"])
    assert code == 303 and header(headers, "location") == "../../../desk?agent=a1"
    cookie = session_cookie(headers)
    code, body, _ = await api.call("GET", "/api/wallboard", role=None, cookie=cookie)
    assert code == 200 and body["you"] == {"id": "a1", "role": "agent"}
    code, headers, _ = await fetch(api, "GET", "/" + links["a1"])
    # one use: again, it is the sign-in page (which says why), no session
    assert code == 303 and header(headers, "location") == "../../../sign-in?link=used"
    assert not any(h.startswith(b"shenava_session=") for h in headers.getRawHeaders(b"set-cookie") or [])
    code, body, _ = await api.call(
        "POST", "/api/session", role=None, body={"name": "supervisor", "password": people[0].secret})
    assert code == 200 and body["role"] == "supervisor"


# -- the desk's call actions, alerts, the report ------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_desk_call_actions_find_the_callers_number_themselves(
    board: tuple[Running, Clock], redis_client: Redis
) -> None:
    from agent_stats.wellbeing import Alert, AlertKind
    from tests.http_helpers import CALLER

    api, clock = board
    app = api.app
    # the screen-pop memory hears the IVR's outcome (as the call flow tells it)
    app.http.memory.on_outcome(outcome("c1"))
    now = clock.seconds()
    app.roster.log_in("a1", now)  # the call rings at a1's desk (their own call only)
    app.roster.set_ready("a1", now)
    app.roster.ringing("a1", "c1", now)
    path = "/api/agents/a1/calls/c1"
    # a follow-up an hour ahead: a follow_up reason on the caller's own flag
    code, body, _ = await api.call("POST", path + "/follow-up", role="agent", person="a1",
                                   body={"due_at": now + 3600, "note": "the refund"})
    assert code == 200, body
    assert body["reasons"] == ["follow_up"] and body["due_at"] == now + 3600
    flags = app.complaints.callbacks
    flag = await as_deferred(flags.open_flag_for(CALLER))
    assert flag is not None and flag.flag_id == body["flag_id"]
    assert flag.reasons[0].note == "the refund"
    # an abusive caller: the register's report carries the number the agent never saw
    code, body, _ = await api.call("POST", path + "/abuse", role="agent", person="a1",
                                   body={"category": "threat", "note": "threats"})
    assert code == 200, body
    code, pending, _ = await api.call("GET", "/api/complaints/abuse", person="sara")
    assert [(r["report_id"], r["number"], r["call_id"]) for r in pending] == [
        (body["report_id"], CALLER, "c1")]
    # what is refused
    for who, where, sent, status in [
        ("a2", path + "/follow-up", {"due_at": now + 60}, 403),  # another agent's desk
        ("a1", path + "/follow-up", {"due_at": now - 3600}, 400),  # in the past
        ("a1", path + "/follow-up", {"due_at": "soon"}, 400),
        ("a1", "/api/agents/a1/calls/nope/follow-up", {"due_at": now + 60}, 403),  # not theirs
        ("a1", path + "/abuse", {"note": "no category"}, 400),
    ]:
        code, body, _ = await api.call("POST", where, role="agent", person=who, body=sent)
        assert code == status, (where, sent, body)
    # a wellbeing alert seen by a supervisor stays, marked, until it clears
    service = app.agent_stats
    app.roster.log_in("a3", now)
    service.active_alerts["a3"] = {AlertKind.NO_BREAK: Alert("a3", AlertKind.NO_BREAK, 9000, 7200)}
    ack = {"agent_id": "a3", "kind": "no_break"}
    code, _, _ = await api.call("POST", "/api/wallboard/alerts/acknowledge", role="agent",
                                person="a3", body=ack)
    assert code == 403
    code, body, _ = await api.call("POST", "/api/wallboard/alerts/acknowledge", person="sara",
                                   body=ack)
    assert code == 200 and body["acknowledged"] == {"by": "sara", "at": now}
    code, board_now, _ = await api.call("GET", "/api/wallboard", person="sara")
    assert board_now["alerts"][0]["acknowledged"] == {"by": "sara", "at": now}
    code, _, _ = await api.call("POST", "/api/wallboard/alerts/acknowledge", person="sara",
                                body={"agent_id": "a3", "kind": "long_call"})
    assert code == 400


@pytest_twisted.ensureDeferred
async def test_the_report_in_the_browser_is_shenava_reports(board: tuple[Running, Clock]) -> None:
    from agent_stats.report import build_report, render_csv
    from agent_stats.sla import CallRecord, Outcome

    api, clock = board
    app = api.app
    service = app.agent_stats
    step_to(clock, T0 + 120)
    service.record_outcome(CallRecord("complaints", T0 + 10, T0 + 10, Outcome.ANSWERED, T0 + 15, "c1"))
    await service.flushed()
    day = board_day = datetime_day(app, clock.seconds())
    code, body, _ = await api.call("GET", f"/api/report?from={day}", person="sara")
    assert code == 200, body
    busy = [r for r in body["intervals"] if r["offered"]]
    assert [(r["answered"], r["sl"]) for r in busy] == [(1, 1.0)]
    code, headers, content = await fetch(
        api, "GET", f"/api/report?from={board_day}&format=csv&by=intervals",
        {"Cookie": "shenava_session=" + (await api.sign_in("supervisor", "sara"))[0]})
    assert code == 200 and header(headers, "content-type") == "text/csv; charset=utf-8"
    assert "attachment" in (header(headers, "content-disposition") or "")
    names = {s.profile.agent_id: s.profile.name for s in app.roster}
    ids = sorted(set(await as_deferred(service.store.agents())) | set(names))
    first = __import__("datetime").date.fromisoformat(day)
    report = await as_deferred(build_report(service.store, first, first, clock.seconds(),
                                            breaks=service.break_config, names=names,
                                            agent_ids=ids))
    assert content.decode() == render_csv(report, "en", "intervals")
    for who, query, status in [("a1", f"from={day}", 403), ("sara", "from=yesterday", 400),
                               ("sara", f"from={day}&format=xml", 400)]:
        role = "agent" if who == "a1" else "supervisor"
        code, _, _ = await api.call("GET", f"/api/report?{query}", role=role, person=who)
        assert code == status, query


def datetime_day(app: Shenava, now: float) -> str:
    from datetime import datetime as _datetime

    return _datetime.fromtimestamp(now, app.config.site.tzinfo).date().isoformat()


@pytest_twisted.ensureDeferred
async def test_a_callback_at_the_desk_names_its_customer_and_takes_an_abuse_report(
    board: tuple[Running, Clock], redis_client: Redis
) -> None:
    from routing.callbacks import abandon_reason
    from tests.http_helpers import CALLER, CALLER_MASKED

    api, clock = board
    app = api.app
    now = clock.seconds()
    flags = app.complaints.callbacks
    reason = abandon_reason("c7", now, 40.0, flags.policy)
    assert reason is not None
    flag = await as_deferred(flags.raise_reason(CALLER, reason, now))
    app.roster.log_in("a1", now)
    app.roster.set_ready("a1", now)
    call_id = f"callback:{flag.flag_id}"  # the agent's current call while the dialler rings them
    app.roster.ringing("a1", call_id, now)
    code, body, _ = await api.call("GET", "/api/agents/a1/call", role="agent", person="a1")
    assert code == 200, body
    assert (body["call"]["kind"], body["call"]["caller_number"]) == ("callback", CALLER_MASKED)
    assert body["call"]["callback"]["reasons"] == ["abandoned"]
    code, body, _ = await api.call("GET", "/api/agents/a1/call", person="sara")
    assert body["call"]["caller_number"] == CALLER
    # the desk sends the id as encodeURIComponent makes it
    path = "/api/agents/a1/calls/callback%3A" + flag.flag_id
    code, body, _ = await api.call("POST", path + "/abuse", role="agent", person="a1",
                                   body={"category": "threat", "note": "threats"})
    assert code == 200, body
    code, pending, _ = await api.call("GET", "/api/complaints/abuse", person="sara")
    assert [(r["number"], r["call_id"]) for r in pending] == [(CALLER, call_id)]

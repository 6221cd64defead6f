"""The wallboard and the agent desk in a real browser, against ``shenava demo`` in a subprocess.

Debian's chromium (``/usr/bin/chromium``, installed by ``scripts/bootstrap``)
driven by Playwright's sync API. The daemon runs as ``shenava demo`` in its own
process (its own session, so stopping it stops its redis-server too); people
sign in through the sign-in page with the credentials the demo prints (or its
one-use links), as they would on a real site.

Playwright's sync API refuses to run in a thread where an asyncio loop is
running, and pytest-twisted's asyncio reactor is one: every browser call goes
to one worker thread (:class:`BrowserThread`).

Without chromium or Playwright these tests are skipped, except under ``CI=true``,
where they fail: CI runs ``scripts/bootstrap``, which installs both.
Set ``SHENAVA_SCREENSHOTS=/some/folder`` to keep a screenshot of each page.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the skip below says why
    sync_playwright = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]
DEMO_LIMIT_S = 300
"""The demo's --duration: only a bound, the tests stop it long before."""
START_LIMIT_S = 60.0
WAIT_MS = 20_000
SL_LIMIT_S = 60.0
"""How long the demo may take to have a call offered (about 12 s with seed 1)."""
PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
SUPERVISOR = "supervisor"
SCREENSHOTS = os.environ.get("SHENAVA_SCREENSHOTS")
T = TypeVar("T")


def _missing() -> str | None:
    if sync_playwright is None:
        return "the playwright package is not installed (scripts/bootstrap installs it)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (scripts/bootstrap installs Debian's chromium)"
    return None


MISSING = _missing()
if MISSING and os.environ.get("CI") == "true":
    raise RuntimeError(f"browser tests cannot run under CI: {MISSING}")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]


def persian(text: str) -> str:
    return "".join(PERSIAN_DIGITS[int(c)] if c.isdigit() else c for c in text)


def js_number(value: float) -> str:
    """How ``JSON.stringify`` writes a number (both languages print the shortest repr)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# -- the daemon in a subprocess ----------------------------------------------------------


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    api: str
    links: dict[str, str]
    secrets: dict[str, str]
    log: Path
    _cookie: str = ""

    def get(self, path: str) -> dict[str, Any]:
        """The API as the demo's supervisor (signed in once, by urllib)."""
        if not self._cookie:
            body = json.dumps({"name": SUPERVISOR, "password": self.secrets[SUPERVISOR]}).encode()
            request = urllib.request.Request(
                self.api + "/api/session", data=body, method="POST",
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as response:
                cookie = response.headers["set-cookie"]
            self._cookie = cookie.split(";")[0]
        request = urllib.request.Request(self.api + path, headers={"Cookie": self._cookie})
        with urllib.request.urlopen(request, timeout=5) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    def stop(self) -> None:
        """SIGTERM to the demo's session (the demo and its redis-server), then wait."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # anything left of its session
        except ProcessLookupError:
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _read_urls(process: subprocess.Popen[bytes], log: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The sign-in links and credentials the demo prints at start; fails with its log otherwise."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + START_LIMIT_S
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.5):
                continue
            chunk = os.read(fd, 65536)
            seen += chunk
            text = seen.decode("utf-8", "replace")
            found = re.search(r"Sign-in page: \S+ +\(supervisor / (\S+); (.*)\)\n", text)
            if found:
                links = dict(re.findall(r"(Wallboard|Agent desk): (http://\S+)", text))
                secrets = {SUPERVISOR: found.group(1)}
                secrets.update(re.findall(r"(\w+) PIN (\d+)", found.group(2)))
                return links, secrets
            if not chunk:
                break
    raise AssertionError(f"the demo did not start: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    folder = tmp_path_factory.mktemp("browser-demo")
    shenava = Path(sys.executable).with_name("shenava")
    command = [str(shenava)] if shenava.exists() else [sys.executable, "-m", "shenava.cli"]
    port = _free_port()
    log = folder / "demo.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [*command, "demo", "--duration", str(DEMO_LIMIT_S), "--quiet", "--seed", "1",
             "--http-port", str(port)],
            cwd=ROOT, env={**os.environ, "TMPDIR": str(folder)}, stdout=subprocess.PIPE,
            stderr=err, start_new_session=True,
        )
    running = Demo(process, f"http://127.0.0.1:{port}", {}, {}, log)
    try:
        running.links, running.secrets = _read_urls(process, log)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        yield running
    finally:
        running.stop()


# -- the browser in its own thread ----------------------------------------------------------


class BrowserThread:
    """One worker thread that owns Playwright and the browser."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="browser")
        self._playwright: Any = None
        self.browser: Browser | None = None

    def run(self, work: Callable[..., T], *args: Any) -> T:
        return self._pool.submit(work, *args).result(timeout=180)

    def start(self) -> None:
        def launch() -> None:
            assert sync_playwright is not None
            expect.set_options(timeout=WAIT_MS)  # its default is 5 s, whatever the context says
            self._playwright = sync_playwright().start()
            self.browser = self._playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
            )

        self.run(launch)

    def close(self) -> None:
        def shut() -> None:
            if self.browser is not None:
                self.browser.close()
            if self._playwright is not None:
                self._playwright.stop()

        try:
            self.run(shut)
        finally:
            self._pool.shutdown(wait=True)

    def page(self) -> Page:
        """A fresh context (no cookies) and page (to be used inside :meth:`run`)."""
        assert self.browser is not None
        context = self.browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(WAIT_MS)
        return context.new_page()

    def signed_in(self, demo: Demo, name: str, where: str) -> Page:
        """A fresh page, signed in as ``name`` through the sign-in page, then at ``where``."""
        page = self.page()
        page.goto(demo.api + "/" + where)  # not signed in: the page sends us to sign in
        page.wait_for_url(re.compile(r"/sign-in\?"))
        page.fill("#signin-name", name)
        page.fill("#signin-password", demo.secrets[name])
        page.click("#signin-button")
        page.wait_for_url(re.compile("/" + where.split("?")[0].replace("?", "\\?")))
        return page


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserThread]:
    thread = BrowserThread()
    thread.start()
    try:
        yield thread
    finally:
        thread.close()


def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / f"shenava-{name}.png"), full_page=True)


def wait_live(page: Page) -> None:
    expect(page.locator("#status")).to_have_attribute("data-state", "live")


# -- the tests ------------------------------------------------------------------------------


def test_desk_buttons_change_the_agents_state(demo: Demo, browser: BrowserThread) -> None:
    # The demo's agents take calls; while one rings or talks the daemon refuses to
    # make it not ready (409). Take the desk of one that is free now.
    agents = [a for a in demo.get("/api/agents")["agents"] if a["id"] != LOCKED_OUT]
    free = [a for a in agents if a["state"] in ("ready", "not_ready", "wrap_up")]
    me = (free or agents)[0]
    agent_id = me["id"]

    def work() -> None:
        page = browser.signed_in(demo, agent_id, "desk")  # the agent's own desk, by the session
        expect(page.locator("html")).to_have_attribute("dir", "rtl")
        expect(page.locator("#agent-name")).to_have_text(f"{me['name']} ({agent_id})")
        wait_live(page)
        state = page.locator("#my-state")
        error = page.locator("#action-error")
        # Not ready, training. Should a call reach the agent first, the desk must say
        # the daemon refused, and the agent tries again.
        page.select_option("#not-ready-reason", "training")
        deadline = time.monotonic() + SL_LIMIT_S
        while True:
            assert time.monotonic() < deadline, f"{agent_id} never free to go not ready"
            expect(page.locator("#btn-not-ready")).to_be_enabled()
            with page.expect_response(lambda r: r.url.endswith("/not-ready")) as r:
                page.click("#btn-not-ready")
            if r.value.status == 200:
                break
            assert r.value.json()["error"]["code"] == "agent_stats.agent_busy"
            expect(error).to_be_visible()
            expect(error).to_have_attribute("data-code", "agent_stats.agent_busy")
            page.wait_for_timeout(1000)
        expect(error).to_be_hidden()
        expect(state).to_have_attribute("data-state", "not_ready")
        expect(state).to_have_attribute("data-reason", "training")
        expect(state).to_have_text("آماده نیست (آموزش)")
        api = demo.get(f"/api/agents/{agent_id}")["agent"]
        assert (api["state"], api["reason"]) == ("not_ready", "training")

        # the supervisor's wallboard shows it too
        board = browser.signed_in(demo, SUPERVISOR, "wallboard")
        cell = board.locator(f'#agents tr[data-agent="{agent_id}"] td.state')
        expect(cell).to_have_attribute("data-state", "not_ready")
        expect(cell).to_have_attribute("data-reason", "training")
        expect(cell).to_have_text("آماده نیست (آموزش)")

        # log out and in again through the desk's buttons
        page.click("#btn-logout")
        expect(state).to_have_attribute("data-state", "logged_out")
        expect(page.locator("#btn-login")).to_be_enabled()
        expect(page.locator("#btn-not-ready")).to_be_disabled()
        expect(cell).to_have_attribute("data-state", "logged_out")
        assert demo.get(f"/api/agents/{agent_id}")["agent"]["state"] == "logged_out"
        page.click("#btn-login")
        expect(state).not_to_have_attribute("data-state", "logged_out")
        assert demo.get(f"/api/agents/{agent_id}")["agent"]["state"] != "logged_out"
        board.context.close()

        # a break through the fair line: the desk shows the daemon's answer
        with page.expect_response(lambda r: r.url.endswith("/break")) as r:
            page.click("#btn-break")
        assert r.value.status == 200
        asked = r.value.json()["break"]
        answer = page.locator("#break-answer")
        expect(answer).not_to_have_attribute("data-status", "")
        status = answer.get_attribute("data-status")
        assert status in (asked["status"], "granted")  # a waiting request may be granted soon
        texts = {"granted": "استراحت تأیید شد: اکنون آماده نیستید.",
                 "after_call": "استراحت تأیید شد: پس از پایان این تماس آغاز می‌شود."}
        if status == "waiting":
            expect(answer).to_contain_text("در صف منصفانهٔ استراحت هستید")
        else:
            expect(answer).to_have_text(texts[str(status)])
        screenshot(page, "desk-fa")
        page.context.close()

    browser.run(work)


def test_persian_wallboard_shows_the_apis_service_level(demo: Demo, browser: BrowserThread) -> None:
    def work() -> None:
        page = browser.signed_in(demo, SUPERVISOR, "wallboard")
        html = page.locator("html")
        expect(html).to_have_attribute("dir", "rtl")
        expect(html).to_have_attribute("lang", "fa")
        wait_live(page)
        # The page's own answers: wait for one where a call has been offered today,
        # then the page must show exactly that answer's service level.
        deadline = time.monotonic() + SL_LIMIT_S
        shown: dict[str, Any] | None = None
        while shown is None:
            assert time.monotonic() < deadline, "no call offered in the demo in time"
            with page.expect_response(lambda r: r.url.endswith("/api/wallboard")) as answer:
                pass
            data = answer.value.json()
            day = data["queues"][data["queue"]]["day"]
            if day["sl"] is None:
                continue
            try:
                expect(page.locator("#sl-day")).to_have_attribute(
                    "data-value", js_number(day["sl"]), timeout=3000)
                expect(page.locator("#answered")).to_have_attribute(
                    "data-value", str(day["answered"]), timeout=1)
            except AssertionError:
                continue  # the figures moved on between two polls: take the next answer
            shown = data
        day = shown["queues"][shown["queue"]]["day"]
        text = page.locator("#sl-day").inner_text()
        assert text == persian(str(round(day["sl"] * 100))) + "٪"
        assert page.locator("#answered").inner_text() == persian(str(day["answered"]))
        # Persian digits everywhere in the figures, the Jalali date in the header
        figures = page.locator(".tiles").inner_text() + " ".join(
            page.locator("#agents td.num").all_inner_texts())  # not the ids: "Maryam (a1)"
        assert re.search("[0-9]", figures) is None, figures
        assert re.search(f"[{PERSIAN_DIGITS}]", figures)
        year = shown["site"]["today_jalali"][:4]
        assert persian(year) in page.locator("#today").inner_text()
        assert "سطح خدمت امروز" in page.locator("#tile-sl-day").inner_text()
        # every agent of the answer has a row with its state
        for agent in shown["agents"]:
            row = page.locator(f'#agents tr[data-agent="{agent["id"]}"]')
            expect(row).to_have_count(1)
        screenshot(page, "wallboard-fa")
        page.context.close()

    browser.run(work)


def test_english_pages_the_demos_link_the_cookie_and_sign_out(demo: Demo, browser: BrowserThread) -> None:
    def work() -> None:
        # what a person running the demo opens: the printed one-use link signs them in
        page = browser.page()
        page.goto(demo.links["Wallboard"])
        page.wait_for_url(re.compile(r"/wallboard$"))
        wait_live(page)
        expect(page.locator("#who")).to_contain_text("supervisor")
        cookies = page.context.cookies()
        assert [(c["name"], c["httpOnly"], c["sameSite"], c["secure"], c["path"]) for c in cookies] == [
            ("shenava_session", True, "Strict", False, "/")]  # no TLS here: not Secure
        assert page.evaluate("document.cookie") == ""  # HttpOnly: the page's script cannot read it
        page.goto(demo.api + "/wallboard?lang=en")
        html = page.locator("html")
        expect(html).to_have_attribute("dir", "ltr")
        expect(html).to_have_attribute("lang", "en")
        expect(page).to_have_title("Shenava wallboard")
        wait_live(page)
        expect(page.locator("#status")).to_contain_text("Live, updated")
        assert page.locator("h2").first.inner_text() == "Agents"
        expect(page.locator("#agents tr")).to_have_count(4)
        assert re.search(f"[{PERSIAN_DIGITS}]", page.locator(".tiles").inner_text()) is None
        screenshot(page, "wallboard-en")
        page.click("#lang-switch")
        expect(html).to_have_attribute("dir", "rtl")
        expect(page.locator("h2").first).to_have_text("کارشناسان")
        # sign out: the sign-in page, and the wallboard is closed to this browser
        page.click("#sign-out")
        page.wait_for_url(re.compile(r"/sign-in\?"))
        expect(page.locator("html")).to_have_attribute("dir", "rtl")
        expect(page.locator("#signin-button")).to_have_text("ورود")
        page.goto(demo.api + "/wallboard?lang=en")
        page.wait_for_url(re.compile(r"/sign-in\?"))
        expect(page.locator("html")).to_have_attribute("dir", "ltr")
        expect(page.locator("label[for=signin-name]")).to_have_text("Name (agents: your agent id)")
        screenshot(page, "sign-in-en")
        # the link was for one use only
        page.goto(demo.links["Wallboard"])
        assert "http.bad_credentials" in page.content()
        page.context.close()

        # an agent signs in (English) and lands on their own desk
        page = browser.page()
        page.goto(demo.api + "/desk?lang=en")
        page.wait_for_url(re.compile(r"/sign-in\?"))
        page.fill("#signin-name", "a2")
        page.fill("#signin-password", demo.secrets["a2"])
        page.click("#signin-button")
        page.wait_for_url(re.compile(r"/desk\?lang=en"))
        wait_live(page)
        expect(page.locator("#agent-name")).to_have_text("Reza (a2)")
        screenshot(page, "desk-en")
        page.context.close()

    browser.run(work)


LOCKED_OUT = "a4"


def test_lock_out_after_repeated_failures_in_the_page(demo: Demo, browser: BrowserThread) -> None:
    def work() -> None:
        page = browser.page()
        page.goto(demo.api + "/sign-in?lang=en")
        error = page.locator("#signin-error")
        for _ in range(5):
            page.fill("#signin-name", LOCKED_OUT)
            page.fill("#signin-password", "not-the-pin")
            with page.expect_response(lambda r: r.url.endswith("/api/session")) as r:
                page.click("#signin-button")
            assert r.value.status == 401
            expect(page.locator("#signin-button")).to_be_enabled()  # the page has shown the answer
            expect(error).to_have_attribute("data-code", "http.bad_credentials")
            expect(error).to_have_text("Wrong name or password.")
        # now even the right PIN is refused, with a clear message
        expect(page.locator("#signin-password")).to_have_value("")
        page.fill("#signin-name", LOCKED_OUT)
        page.fill("#signin-password", demo.secrets[LOCKED_OUT])
        with page.expect_response(lambda r: r.url.endswith("/api/session")) as r:
            page.click("#signin-button")
        assert r.value.status == 429 and int(r.value.headers["retry-after"]) > 800
        expect(error).to_have_attribute("data-code", "http.locked_out")
        expect(error).to_have_text("Too many failed sign-ins. Try again in 15 minutes.")
        assert "/sign-in" in page.url
        screenshot(page, "sign-in-locked")
        page.context.close()

    browser.run(work)


def test_connection_lost_is_shown_when_the_daemon_stops(demo: Demo, browser: BrowserThread) -> None:
    def open_board() -> Page:
        page = browser.signed_in(demo, SUPERVISOR, "wallboard")
        wait_live(page)
        return page

    page = browser.run(open_board)
    demo.stop()

    def lost() -> None:
        status = page.locator("#status")
        expect(status).to_have_attribute("data-state", "lost")
        expect(status).to_contain_text("ارتباط قطع است")
        expect(page.locator("body")).to_have_class(re.compile(r"\bstale\b"))
        screenshot(page, "wallboard-lost")
        page.context.close()

    browser.run(lost)

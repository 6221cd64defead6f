"""The wallboard's wellbeing alerts in a real browser: one raised deterministically by
the demo's configuration (no rest for 5 s is too long; nothing shorter than an hour is a
rest, so it stays), acknowledged from the page, checked in the API and in Redis.

A demo of its own (module-scoped), as :mod:`tests.test_browser_pages` runs one, with the
short wellbeing limits appended to the embedded configuration.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.test_browser_pages import (
    CALL_LIMIT_S,
    PERSIAN_DIGITS,
    SUPERVISOR,
    BrowserThread,
    Demo,
    browser,
    expect,
    pytestmark,
    running_demo,
    screenshot,
    wait_live,
)

__all__ = ["browser", "pytestmark"]  # the module-scoped browser, and the skip without chromium

WELLBEING = """
[wellbeing]
max_without_break_s = 5
min_rest_s = 3600

[callbacks]
# no callback is dialled: an agent made ready gets the next caller, whose
# number the desk shows (a voicemail's flag is raised before "message saved"
# now, so a callback could otherwise come first)
min_free_agents = 10000
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("browser-alerts"), WELLBEING) as running:
        yield running


def no_break_alert(demo: Demo) -> dict[str, object]:
    """The first agent's no-break alert, once the daemon raises it."""
    deadline = time.monotonic() + CALL_LIMIT_S
    while True:
        alerts = [a for a in demo.get("/api/wallboard")["alerts"] if a["kind"] == "no_break"]
        if alerts:
            return dict(sorted(alerts, key=lambda a: str(a["agent_id"]))[0])
        assert time.monotonic() < deadline, "no wellbeing alert raised"
        time.sleep(0.5)


def test_supervisor_acknowledges_a_wellbeing_alert_from_the_wallboard(
    demo: Demo, browser: BrowserThread, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(demo.redis_url)
    alert = no_break_alert(demo)
    agent_id = str(alert["agent_id"])
    assert alert["acknowledged"] is None

    def work() -> None:
        page = browser.signed_in(demo, SUPERVISOR, "wallboard")  # Persian
        wait_live(page)
        row = page.locator(f'#alerts tr[data-agent="{agent_id}"][data-kind="no_break"]')
        expect(row).to_be_visible()
        assert any(d in row.inner_text() for d in PERSIAN_DIGITS), row.inner_text()
        button = row.locator("button.ack")
        button.focus()  # by keyboard
        page.wait_for_timeout(2500)  # a few pushes: the figures move, the focus stays
        assert page.evaluate("document.activeElement.classList.contains('ack')")
        with page.expect_response(lambda r: r.url.endswith("/api/wallboard/alerts/acknowledge")) as r:
            page.keyboard.press("Enter")
        assert r.value.status == 200, r.value.text()
        assert r.value.json()["acknowledged"]["by"] == SUPERVISOR
        # the pushed board marks it seen by the supervisor (the alert stays until it clears)
        expect(row).to_have_class("seen")
        expect(row).to_contain_text(SUPERVISOR)
        screenshot(page, "wallboard-fa-alert-seen", tmp_path)
        page.context.close()

    try:
        browser.run(work)
        seen = [a for a in demo.get("/api/wallboard")["alerts"]
                if (a["agent_id"], a["kind"]) == (agent_id, "no_break")]
        assert seen and seen[0]["acknowledged"]["by"] == SUPERVISOR, seen
        # the alert as raised is kept in Redis (the day's alert log); the acknowledgement
        # is the daemon's (in memory, until the alert clears: docs/wallboard.md)
        raised = [json.loads(raw) for key in client.scan_iter(match="shenava:*:alerts:*")
                  for raw in client.lrange(key, 0, -1)]
        assert any(r.get("agent_id") == agent_id and r.get("kind") == "no_break" for r in raised), raised
    finally:
        client.close()


EARLIER_TRANSCRIPT = "بسته‌ام هنوز نرسیده و کسی هم تماس نمی‌گیرد"
"""The transcript of the caller's earlier voicemail (Persian, as Vosk's Persian model writes)."""


def earlier_voicemail(demo: Demo, number: str) -> str:
    """A complaint the caller left by voicemail yesterday, transcribed, made as the daemon
    makes one (the register on the demo's Redis, a reference block of its own). Returns
    its reference."""
    import asyncio

    import redis.asyncio as aioredis

    from complaints.complaint import Channel
    from complaints.reference_blocks import ReferenceBlocks
    from complaints.service import ComplaintRegister
    from complaints.store import ComplaintStore

    async def make() -> str:
        client = aioredis.Redis.from_url(demo.redis_url)
        try:
            refs = ReferenceBlocks(client, "shenava", folder=None)
            refs.load()
            register = ComplaintRegister(ComplaintStore(client, "shenava", refs))
            now = time.time()
            c = await register.open_complaint(now - 86400, category="delivery",
                                              channel=Channel.VOICEMAIL, number=number,
                                              language="fa")
            await register.attach_transcript(c.reference, EARLIER_TRANSCRIPT, now - 86000)
            return c.reference
        finally:
            await client.aclose()

    with ThreadPoolExecutor(max_workers=1) as pool:  # the test thread's loop is the reactor's
        return pool.submit(asyncio.run, make()).result(timeout=30)


def test_the_desk_shows_a_callers_earlier_complaint_and_voicemail_in_persian(
    demo: Demo, browser: BrowserThread, tmp_path: Path
) -> None:
    agent_id = "a3"

    def work() -> None:
        page = browser.signed_in(demo, agent_id, "desk")  # Persian
        wait_live(page)
        try:
            demo.post(f"/api/agents/{agent_id}/ready", {}, name=agent_id)
        except urllib.error.HTTPError as exc:  # 409: on a call already
            assert exc.code == 409, exc
        expect(page.locator("#call-actions")).to_be_visible(timeout=CALL_LIMIT_S * 1000)
        # the caller (the supervisor sees the full number) left a voicemail yesterday
        call = demo.get(f"/api/agents/{agent_id}/call")["call"]
        number = call["caller_number"]
        assert number, call
        reference = earlier_voicemail(demo, number)
        # the screen pop is read when the call comes; the desk opened again reads it now
        page.reload()
        wait_live(page)
        earlier = page.locator('#call-facts dd[data-field="call_earlier"]')
        expect(earlier).to_contain_text(reference)
        expect(earlier).to_contain_text(f"{reference} (تحویل، باز)")  # category and status, translated
        expect(page.locator("#call-transcript")).to_have_text(EARLIER_TRANSCRIPT)
        expect(page.locator("#call-flags")).to_contain_text("شکایت باز")
        facts = page.locator("#call-facts").inner_text()
        assert not re.search("[A-Za-z]{3,}", facts), facts  # every code translated
        assert number not in facts  # the agent sees the number masked
        screenshot(page, "desk-fa-earlier", tmp_path)
        page.context.close()

    browser.run(work)


def test_the_desk_names_the_customer_being_called_back_masked_in_both_languages(
    demo: Demo, browser: BrowserThread, tmp_path: Path
) -> None:
    """The screen pop of a callback (its JSON as GET /api/agents/{id}/call gives it,
    tests/test_e2e_callbacks.py) drawn by the desk: whom, why, which attempt."""
    agent_id = "a4"
    pop = {"call_id": "callback:cb-0007", "kind": "callback", "caller_number": "0912***2233",
           "caller_id_number": None, "number_masked": True, "known_to_ivr": False,
           "callback": {"flag_id": "cb-0007", "attempt": 2, "reasons": ["abandoned", "voicemail"],
                        "opened_at": time.time() - 600},
           "urgent_words": [], "ivr_path": [], "earlier_complaints": [], "abuse_reports": [],
           "complaints": "ok", "transcript": None, "complaint": None}

    def work() -> None:
        for lang, expected in (("fa", "0912***2233 (در انتظار قطع کرد، پیام صوتی، تلاش ۲)"),
                               ("en", "0912***2233 (hung up waiting, voicemail, attempt 2)")):
            page = browser.signed_in(demo, agent_id, f"desk?lang={lang}")

            def answer(route: object) -> None:
                body = {"now": time.time(), "agent": {"id": agent_id, "state": "on_call"}, "call": pop}
                route.fulfill(status=200, content_type="application/json",  # type: ignore[attr-defined]
                              body=json.dumps(body))

            page.route(f"**/api/agents/{agent_id}/call", answer)
            page.reload()
            wait_live(page)
            shown = page.locator('#call-facts dd[data-field="call_callback"]')
            expect(shown).to_have_text(expected, timeout=CALL_LIMIT_S * 1000)
            number = shown.locator("bdi").first
            assert number.get_attribute("dir") == "ltr" and number.inner_text() == "0912***2233"
            assert page.locator('#call-facts dd[data-field="call_caller"]').count() == 0
            screenshot(page, f"desk-{lang}-callback", tmp_path)
            page.context.close()

    browser.run(work)


LEFT_TO_RIGHT_JS = """(el) => {
  // the element's characters in the order they are drawn, from the left
  const node = el.firstChild, range = document.createRange(), seen = [];
  for (let i = 0; i < node.length; i++) {
    range.setStart(node, i);
    range.setEnd(node, i + 1);
    const box = range.getBoundingClientRect();
    seen.push([node.data[i], box.left + box.width / 2]);
  }
  seen.sort((a, b) => a[1] - b[1]);
  return {text: node.data, drawn: seen.map(([ch]) => ch).join(""), dir: el.getAttribute("dir"),
          rtl_page: getComputedStyle(document.body).direction === "rtl"};
}"""
"""A number's characters by where they are drawn: a phone number reads left to right."""

FULL = "+989121234567"
MASKED = "0912***4567"


NUMBER_CELL = 'td[data-label="شماره"] bdi'
"""A table's phone number: the text in its "number" column (the Persian page's name for it)."""


def numbers_read_left_to_right(page: Any, where: str, wanted: set[str]) -> None:
    """Every phone number ``where`` finds is drawn in its own order, in a right-to-left
    page, and says so itself (``dir="ltr"``, not ``<bdi>``'s fallback for text with no
    letter, whatwg/html#10097)."""
    shown = page.locator(where)
    expect(shown.first).to_be_visible()
    got = [shown.nth(i).evaluate(LEFT_TO_RIGHT_JS) for i in range(shown.count())]
    assert wanted <= {g["text"] for g in got}, (where, got)
    for g in got:
        assert g["rtl_page"] and g["drawn"] == g["text"], (where, g)
        assert g["dir"] == "ltr", (where, g)


def test_phone_numbers_read_left_to_right_in_persian_tables(
    demo: Demo, browser: BrowserThread, tmp_path: Path
) -> None:
    """The wallboard's callback backlog (the daemon's own flags, masked), the review page's
    register, a complaint's detail and its callback list (answers given by the test: a full
    number with its +, a masked one), and the number search field, all in Persian."""
    now = time.time()
    complaint = {"reference": "12345678", "status": "open", "category": "billing", "number": FULL,
                 "channel": "ivr", "language": "fa", "account": "4455667788", "opened_at": now,
                 "redress": None, "notes": [], "history": [], "transcript": None, "recordings": []}
    masked = dict(complaint, reference="87654321", number=MASKED)
    flags = [{"flag_id": f"cb-900{i}", "number": number, "reasons": [{"kind": "voicemail"}],
              "due_at": now, "attempts": [], "status": "open", "resolution": None,
              "acknowledged_by": None} for i, number in enumerate((FULL, MASKED))]

    def answer(route: Any) -> None:
        path = route.request.url.split("/api/complaints", 1)[1]
        if path.startswith("/?"):
            body: Any = [complaint, masked]
        elif path.startswith("/callbacks"):
            body = flags
        elif path == "/12345678":
            body = complaint
        else:
            route.continue_()
            return
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    def work() -> None:
        page = browser.signed_in(demo, SUPERVISOR, "wallboard")  # Persian
        wait_live(page)
        expect(page.locator(f"#callback-list {NUMBER_CELL}").first).to_be_visible(
            timeout=CALL_LIMIT_S * 1000)  # the demo's voicemails and abandons raise flags
        numbers_read_left_to_right(page, f"#callback-list {NUMBER_CELL}", set())
        review = page.context.new_page()
        review.route(re.compile(r"/api/complaints/"), answer)
        review.goto(f"{demo.api}/review")
        wait_live(review)
        numbers_read_left_to_right(review, f"#register-list {NUMBER_CELL}", {FULL, MASKED})
        numbers_read_left_to_right(review, f"#callbacks-list {NUMBER_CELL}", {FULL, MASKED})
        review.locator('#register-list tr[data-reference="12345678"] button').click()
        expect(review.locator("#detail-ref")).to_have_text("12345678")
        numbers_read_left_to_right(review, f'#detail-facts dd bdi:text-is("{FULL}")', {FULL})
        # the number typed into the search reads as typed, its + on the left
        search = review.locator("#search-number")
        search.fill(FULL)
        assert search.evaluate("(el) => getComputedStyle(el).direction") == "ltr"
        # free text takes the direction of what is typed: English left to right, Persian right to left
        for field in ("#search-q", "#callbacks-list .callback-note"):
            box = review.locator(field).first
            for text, direction in (("no answer, called twice", "ltr"), ("پاسخ نداد", "rtl")):
                box.fill(text)
                assert box.evaluate("(el) => getComputedStyle(el).direction") == direction, (field, text)
            box.fill("")
        screenshot(review, "review-fa-numbers", tmp_path)
        page.context.close()

    browser.run(work)

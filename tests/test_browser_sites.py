"""The wallboard's rows of sites in a real browser: the whole centre, then one row per site,
each row's numbers what that site stored in Redis.

Two sites on one real Redis: ``shenava demo`` as site "north" (its daemon publishes its
own figures of the moment, as every site's does), and site "south", whose statistics and
figures of the moment this test stores through the same stores and functions south's
daemon would use (``StatsStore``, ``register_site``, ``publish_site_now``). The Persian
page must show south's numbers exactly as stored, north's as north's daemon last stored
them, and the centre's as their sums; a site that stops publishing is shown as not
reporting, in words; the rows are updated in place, not made again every second.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from tests.test_browser_pages import (
    AXE,
    OVERFLOW_JS,
    PERSIAN_DIGITS,
    SUPERVISOR,
    BrowserThread,
    Demo,
    browser,
    expect,
    persian,
    pytestmark,
    running_demo,
    screenshot,
    wait_live,
)

__all__ = ["browser", "pytestmark"]

T = TypeVar("T")
PREFIX = "shenava"
SOUTH_NOW = {"waiting": 3, "longest_wait_s": 95.0, "ready": 4, "busy": 7, "not_ready": 2, "callbacks_due": 5}
"""South's figures of the moment, as its daemon would publish them."""
SOUTH_WAITS = (5.0, 12.0, 40.0)
"""South's answered calls today, by wait: two within 20 s, one not (SL 2/3, below 80 %)."""
FIELDS = ("waiting", "longest_wait_s", "ready", "busy", "not_ready", "callbacks_due")
LIMIT_S = 40.0


def _north(text: str) -> str:
    assert '[site]\nname = "Shenava demo"' in text
    return text.replace('[site]\nname = "Shenava demo"', '[site]\nid = "north"\nname = "North"', 1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("browser-sites"), edit=_north) as running:
        yield running


def _async(make: Callable[[], Any]) -> Any:
    """A coroutine run on a loop of its own (the test thread's loop is the reactor's)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result(timeout=30)


def store_south(demo: Demo, at: float, *, outcomes: bool) -> None:
    """What south's daemon stores: its register entry, its calls' outcomes, its figures."""
    from agent_stats.centre import sla_settings
    from agent_stats.sla import CallRecord, Outcome
    from agent_stats.store import OutcomeWrite, StatsStore
    from shenava.config import RedisConfig, default_config
    from shenava.redis_client import make_redis_client
    from shenava_base.sites import publish_site_now, register_site

    sla = default_config().sla

    async def write() -> None:
        client = make_redis_client(RedisConfig(url=demo.redis_url))
        try:
            await register_site(client, PREFIX, "south", name="South", timezone="Asia/Tehran",
                                sla=sla_settings(sla))
            if outcomes:
                now = time.time()
                writes = [OutcomeWrite(CallRecord("complaints", now - 60, now - 60, Outcome.ANSWERED,
                                                  now - 60 + wait, f"south-{i}"), agent_id=f"s{i}")
                          for i, wait in enumerate(SOUTH_WAITS)]
                await StatsStore(client, sla, prefix=PREFIX, site="south").apply(writes)
            await publish_site_now(client, PREFIX, "south", {"at": at, **SOUTH_NOW})
        finally:
            await client.aclose()

    _async(write)


def stored_now(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """Every site's figures of the moment as stored (``{sites}:now``)."""
    raw: dict[bytes, bytes] = client.hgetall(f"{PREFIX}:{{sites}}:now")  # type: ignore[assignment]
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def stored_day_sl(demo: Demo, site: str) -> float | None:
    """A site's service level today, from its counters in Redis (every queue)."""
    from agent_stats.sla import SLCounts
    from agent_stats.store import StatsStore
    from shenava.config import RedisConfig, default_config
    from shenava.redis_client import make_redis_client

    async def read() -> float | None:
        client = make_redis_client(RedisConfig(url=demo.redis_url))
        try:
            store = StatsStore(client, default_config().sla, prefix=PREFIX, site=site)
            total = SLCounts()
            now = time.time()
            for queue in await store.queues():
                total.add(await store.day_counts(queue, store.day_of(now)))
            return total.service_level
        finally:
            await client.aclose()

    result: float | None = _async(read)
    return result


ROW_JS = """(site) => {
  const row = document.querySelector(`#sites tr[data-site="${site}"]`);
  if (!row) return null;
  const out = {className: row.className, head: row.querySelector("th").innerText, cells: {}};
  for (const td of row.querySelectorAll("td[data-field]")) {
    out.cells[td.dataset.field] = {value: JSON.parse(td.dataset.value), text: td.innerText};
  }
  return out;
}"""


def until(check: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + LIMIT_S
    while True:
        found = check()
        if found is not None:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def test_the_wallboard_shows_the_centre_and_each_sites_stored_figures(
    demo: Demo, browser: BrowserThread, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(demo.redis_url)
    store_south(demo, time.time(), outcomes=True)

    def work() -> None:
        page = browser.signed_in(demo, SUPERVISOR, "wallboard", size=(1920, 1080), bypass_csp=True)  # Persian
        wait_live(page)
        section = page.locator("#sites-section")
        expect(section).to_be_visible()
        expect(page.locator("#sites tr")).to_have_count(3)  # the centre, north, south
        # headers for every column and every row (a screen reader names each cell)
        assert page.locator(".sites thead th[scope=col]").count() == 9
        assert page.locator("#sites tr > th[scope=row]").count() == 3
        assert page.locator("#sites tr").first.get_attribute("data-site") == "*"  # the centre first

        # south: exactly what was stored
        store_south(demo, time.time(), outcomes=False)
        south = until(lambda: (r := page.evaluate(ROW_JS, "south")) and r["cells"] and r, "no south row")
        assert "South" in south["head"] and south["className"] == "site"
        for field in FIELDS:
            assert south["cells"][field]["value"] == SOUTH_NOW[field], (field, south)
        for field in ("waiting", "ready", "busy", "not_ready", "callbacks_due"):
            assert south["cells"][field]["text"] == persian(str(SOUTH_NOW[field])), (field, south)
        assert persian("35") in south["cells"]["longest_wait_s"]["text"]  # 1 min 35 s
        # over the 20 s threshold, and a service level of 2/3 below the 80 % target: said in words
        assert "بیش از" in south["cells"]["longest_wait_s"]["text"]
        day = south["cells"]["sl_day"]
        assert day["value"] == pytest.approx(2 / 3) and persian("67") in day["text"]
        assert "زیر هدف" in day["text"]
        assert south["cells"]["sl_rolling"]["value"] == pytest.approx(2 / 3)

        # north (the demo's daemon) and the centre: what north stored, and the sums
        def agreed() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
            store_south(demo, time.time(), outcomes=False)  # south's daemon goes on publishing
            stored = stored_now(client)
            north_row, centre_row = page.evaluate(ROW_JS, "north"), page.evaluate(ROW_JS, "*")
            if north_row is None or "north" not in stored:
                return None
            if any(north_row["cells"][f]["value"] != stored["north"][f] for f in FIELDS):
                return None
            sums = {f: stored["north"][f] + SOUTH_NOW[f] for f in FIELDS if f != "longest_wait_s"}
            if any(centre_row["cells"][f]["value"] != n for f, n in sums.items()):
                return None
            return stored["north"], north_row, centre_row

        north_now, north_row, centre_row = until(agreed, "north's row or the centre's never matched Redis")
        assert "North" in north_row["head"] and "همین سایت" in north_row["head"]  # this daemon's site
        assert north_now["ready"] + north_now["busy"] + north_now["not_ready"] == 4  # the demo's agents
        longest = [w for w in (north_now["longest_wait_s"], SOUTH_NOW["longest_wait_s"]) if w is not None]
        assert centre_row["cells"]["longest_wait_s"]["value"] == max(longest)
        assert "کل مرکز" in centre_row["head"] and persian("2") in centre_row["head"]  # 2 of 2 reporting
        north_sl = stored_day_sl(demo, "north")
        until(lambda: page.evaluate(ROW_JS, "north")["cells"]["sl_day"]["value"] == stored_day_sl(demo, "north")
              or None, f"north's SL today on the page is not the stored {north_sl}")
        assert any(d in page.locator("#sites").inner_text() for d in PERSIAN_DIGITS)
        screenshot(page, "wallboard-fa-sites", tmp_path)
        if AXE.exists():
            page.add_script_tag(path=str(AXE))
            result = page.evaluate(
                "async () => (await axe.run('#sites-section', {resultTypes: ['violations']}))"
                ".violations.map(v => ({id: v.id, impact: v.impact, target: v.nodes[0].target}))")
            assert not [v for v in result if v["impact"] in ("serious", "critical")], result
        # on a phone the rows are cards, each cell labelled with its column; nothing wider
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()  # the charts are sized when the page is drawn
        wait_live(page)
        expect(page.locator("#sites tr")).to_have_count(3)
        layout = page.evaluate(OVERFLOW_JS)
        assert layout["scroll"] <= layout["width"] and not layout["wide"], layout
        page.set_viewport_size({"width": 1920, "height": 1080})
        page.reload()
        wait_live(page)
        expect(page.locator("#sites tr")).to_have_count(3)

        # the rows are updated in place: no row is made again while the figures are pushed
        # (the agents' rows too: the demo's agents change state, their rows stay)
        expect(page.locator("#agents tr")).to_have_count(4)
        page.evaluate("""() => {
          window.siteRowsMade = 0;
          window.agentRowsMade = 0;
          new MutationObserver((changes) => { window.siteRowsMade += changes.length; })
            .observe(document.getElementById("sites"), {childList: true});
          new MutationObserver((changes) => { window.agentRowsMade += changes.length; })
            .observe(document.getElementById("agents"), {childList: true});
          window.southHead = document.querySelector('#sites tr[data-site="south"] th');
        }""")
        page.wait_for_timeout(3500)  # three pushes at least
        assert page.evaluate("window.siteRowsMade") == 0
        assert page.evaluate("window.agentRowsMade") == 0
        assert page.evaluate("""() => window.southHead
          === document.querySelector('#sites tr[data-site="south"] th')""")

        # south's daemon stops publishing: not reporting, in words; out of the centre's sums
        store_south(demo, time.time() - 120, outcomes=False)
        row = page.locator('#sites tr[data-site="south"]')
        expect(row).to_have_class("site not-reporting", timeout=20_000)
        expect(row.locator("th")).to_contain_text("بدون گزارش")
        expect(row.locator('td[data-field="waiting"]')).to_have_attribute("data-value", "null")
        expect(page.locator('#sites tr[data-site="*"] th')).to_contain_text(persian("1"))  # 1 of 2

        # the English page
        page.goto(demo.api + "/wallboard?lang=en")
        wait_live(page)
        expect(page.locator("#sites-title")).to_have_text("Sites and the whole centre")
        expect(page.locator('#sites tr[data-site="*"] th')).to_contain_text("Whole centre")
        expect(page.locator('#sites tr[data-site="south"] th')).to_contain_text("not reporting since")
        page.context.close()

    try:
        browser.run(work)
    finally:
        client.close()

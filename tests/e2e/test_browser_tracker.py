"""The browser tracker (producers/js dist/t.js) in real headless Chromium, against a full
stack: a page on another origin embeds the one tag, navigates as an SPA, clicks an outbound
link, converts and leaves; then the rows are read from ClickHouse."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from clickstream.stack import Stack
from tests.conftest import store_of
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
TRACKER = ROOT / "producers" / "js" / "dist" / "t.js"
PAGE = Path(__file__).with_name("pages") / "app.html"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
UTM = "?utm_source=newsletter&utm_medium=email&utm_campaign=launch"

if not CHROMIUM.exists():
    pytest.skip("needs Debian chromium at /usr/bin/chromium (apt-get install chromium)",
                allow_module_level=True)
if not TRACKER.exists():
    pytest.skip("needs the built tracker producers/js/dist/t.js (cd producers/js && npm ci)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="needs the Python package playwright (pip install "
                               "playwright; no browser download, the system chromium is used)")


class SiteServer:
    """The customer's site: /app/* answers the SPA page (any path, like a router's fallback),
    /bye is the page the outbound link leads to. Runs on its own port: another origin."""

    def __init__(self, collector_url: str) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                if self.path.startswith("/app/"):
                    body = outer.page.encode()
                elif self.path.startswith("/bye"):
                    body = b"<!doctype html><title>Partner</title><p>partner site</p>"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        # "localhost" is another host than "127.0.0.1" for the tracker: an outbound link
        self.outbound_url = f"http://localhost:{port}/bye?from=e2e"
        self.page = (PAGE.read_text().replace("{collector_url}", collector_url)
                     .replace("{outbound_url}", self.outbound_url))
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_one_tag_embed_tracks_an_spa_visit_end_to_end(
        stack_factory: Callable[..., Stack], tmp_path: Path) -> None:
    # the stack first: Playwright's sync API keeps an event loop running in this thread,
    # where the stack's own asyncio.run() calls would fail
    stack = stack_factory()
    site = SiteServer(stack.collector_url)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                         headless=True)
            ua = visit(browser, site, tmp_path)
            browser.close()
    finally:
        site.close()
    assert "/bye?from=e2e" in site.paths  # the outbound click really navigated

    store = store_of(stack)
    db = stack.settings.database
    landing = f"{site.url}/app/{UTM}"
    urls = {"landing": landing, "pricing": f"{site.url}/app/pricing",
            "checkout": f"{site.url}/app/checkout"}

    seen: list[tuple[str, str, str]] = []

    def fetch() -> list[dict[str, Any]] | None:
        names, rows = store.query_rows(
            f"SELECT * FROM {db}.events FINAL WHERE site_id = 'e2e-site' ORDER BY ts")
        found = [dict(zip(names, r, strict=True)) for r in rows]
        seen[:] = [(r["type"], r["name"], r["url"]) for r in found]
        engaged = {r["url"] for r in found if r["name"] == "engagement"}
        return found if len(found) >= 9 and set(urls.values()) <= engaged else None

    try:  # generous: on a loaded CI machine the stack can be slow to take the first events
        rows = wait_until(fetch, timeout=120, what="9 browser events incl. the unload "
                          "engagement")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; rows so far (type, name, url): {seen}; "
                             f"pages the site served: {site.paths}") from None

    pageviews = [r for r in rows if r["type"] == "pageview"]
    assert [r["url"] for r in pageviews] == list(urls.values())
    first = pageviews[0]
    assert (first["utm_source"], first["utm_medium"], first["utm_campaign"]) == (
        "newsletter", "email", "launch")
    assert first["channel"] == "Email"
    assert first["path"] == "/app/" and first["title"] == "E2E shop"
    assert pageviews[1]["referrer"] == landing  # SPA pageviews carry the previous page
    assert pageviews[2]["referrer"] == urls["pricing"]

    by_name = {r["name"]: r for r in rows if r["type"] in ("event", "conversion")}
    assert by_name["queued_before_load"]["props"] == {"from": "snippet"}
    assert by_name["outbound"]["props"] == {"url": site.outbound_url}
    assert by_name["outbound"]["url"] == urls["checkout"]
    conversion = by_name["purchase"]
    assert (conversion["type"], conversion["revenue"], conversion["currency"]) == (
        "conversion", 42.5, "EUR")
    engagements = [r for r in rows if r["name"] == "engagement"]
    assert sorted(r["url"] for r in engagements) == sorted(urls.values())
    for r in engagements:
        assert set(r["props"]) == {"engaged_ms", "scroll_pct"}
        assert int(r["props"]["engaged_ms"]) >= 0
    assert max(int(r["props"]["scroll_pct"]) for r in engagements) == 100
    assert len(rows) == 9, [(r["type"], r["name"], r["url"]) for r in rows]

    visitors = {r["visitor_id"] for r in rows}
    assert len(visitors) == 1 and len(visitors.pop()) == 36  # the tracker's stored uuid
    for r in rows:
        # the user agent was parsed (headless Chromium is flagged as a bot), never stored raw
        assert "Chrom" in r["browser"] and r["os"] == "Linux" and r["is_bot"] == 1
        assert not any(isinstance(v, str) and ua in v for v in r.values())
        assert (r["screen"], r["lang"]) == ("1280x720", "en-US")


def visit(browser: Any, site: SiteServer, shots: Path) -> str:
    """One visit; returns the browser's user agent."""
    context = browser.new_context(viewport={"width": 1280, "height": 720},
                                  screen={"width": 1280, "height": 720}, locale="en-US")
    page = context.new_page()
    page.goto(f"{site.url}/app/{UTM}")
    page.wait_for_function("window.clickstream && window.clickstream.l === 1")
    ua = str(page.evaluate("navigator.userAgent"))
    page.screenshot(path=str(shots / "landing.png"))  # for debugging; not kept
    page.click("#to-pricing")  # SPA navigation through a router-like pushState
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_timeout(100)
    page.evaluate("history.pushState({}, '', '/app/checkout')")
    page.evaluate("clickstream('conversion', 'purchase', {revenue: 42.5, currency: 'EUR'})")
    with page.expect_navigation(url="**/bye*"):
        page.click("#outbound")  # outbound link: leaves the page (pagehide beacon)
    page.close()  # close the page before the context, or unload beacons are dropped
    context.close()
    return ua

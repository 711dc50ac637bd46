"""Python tracker through the real pipeline: Kafka transport straight to <prefix>.raw, HTTP
transport through the collector; the rows are then read back from ClickHouse field by field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from clickstream.stack import Stack
from producers.tracker import HttpTransport, KafkaTransport, Tracker
from tests.conftest import store_of
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

CHROME_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/131.0.0.0 Safari/537.36")
IP = "198.51.100.23"


def rows_by_id(stack: Stack, expect: int) -> dict[str, dict[str, Any]]:
    store = store_of(stack)
    db = stack.settings.database

    def fetch() -> dict[str, dict[str, Any]] | None:
        names, rows = store.query_rows(f"SELECT * FROM {db}.events FINAL")
        found = {str(r[names.index("event_id")]): dict(zip(names, r, strict=True))
                 for r in rows}
        return found if len(found) >= expect else None

    return wait_until(fetch, timeout=60, what=f"{expect} rows in events")


def test_both_transports_land_in_clickhouse_field_by_field(
        stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    past = datetime.now(UTC).replace(microsecond=321_000) - timedelta(seconds=120)

    kafka = KafkaTransport(stack.bootstrap, stack.settings.topic("raw"), ip=IP,
                           user_agent=CHROME_UA, linger_ms=5)
    backend = Tracker("shop", transport=kafka, anonymous_id="v-kafka")
    k_view = backend.pageview(
        "https://shop.example/pricing?utm_source=Newsletter&utm_medium=email&utm_campaign=Spring",
        referrer="https://news.example/issue-7", title="Pricing", ts=past,
        props={"plan": "pro", "seats": 5, "trial": False}, screen="1920x1080", lang="en-US")
    k_conv = backend.conversion("purchase", revenue=42.5, currency="eur", props={"order": "A1"},
                                url="https://shop.example/checkout", user_id="u-1")
    k_ident = backend.identify("u-1")
    assert backend.flush(20)
    assert kafka.stats.sent == 3 and kafka.stats.failed == 0, kafka.stats

    http = HttpTransport(stack.collector_url, flush_interval=0.2)
    web = Tracker("shop", transport=http)
    h_view = web.pageview("https://shop.example/docs", anonymous_id="v-http", title="Docs")
    h_event = web.event("signup", {"plan": "team"}, anonymous_id="v-http")
    h_conv = web.conversion("upgrade", revenue=Decimal("19.99"), currency="USD",
                            anonymous_id="v-http", user_id="u-2")
    h_ident = web.identify("u-2", anonymous_id="v-http")
    assert web.flush(20)
    assert http.stats.sent == 4 and http.stats.failed == 0, http.stats

    rows = rows_by_id(stack, 7)
    assert set(rows) == {k_view, k_conv, k_ident, h_view, h_event, h_conv, h_ident}

    view = rows[k_view]
    assert (view["site_id"], view["type"], view["visitor_id"]) == ("shop", "pageview", "v-kafka")
    assert view["ts"] == past.strftime("%Y-%m-%d %H:%M:%S.321")
    assert view["host"] == "shop.example" and view["path"] == "/pricing"
    assert (view["utm_source"], view["utm_medium"], view["utm_campaign"]) == (
        "newsletter", "email", "spring")
    assert view["referrer"] == "https://news.example/issue-7"
    assert view["referrer_host"] == "news.example"
    assert (view["title"], view["screen"], view["lang"]) == ("Pricing", "1920x1080", "en-US")
    assert view["props"] == {"plan": "pro", "seats": "5", "trial": "false"}
    # the envelope's user agent was parsed; neither it nor the IP is stored raw
    assert (view["browser"], view["os"]) == ("Chrome", "Windows")
    assert view["is_bot"] == 0
    for row in rows.values():
        assert not any(IP in str(v) or str(v) == CHROME_UA for v in row.values()), row

    conv = rows[k_conv]
    assert (conv["type"], conv["name"], conv["revenue"], conv["currency"]) == (
        "conversion", "purchase", 42.5, "EUR")
    assert (conv["visitor_id"], conv["user_id"], conv["props"]) == ("v-kafka", "u-1",
                                                                    {"order": "A1"})
    assert conv["path"] == "/checkout"
    ident = rows[k_ident]
    assert (ident["type"], ident["user_id"], ident["visitor_id"]) == ("identify", "u-1",
                                                                      "v-kafka")

    assert (rows[h_view]["type"], rows[h_view]["title"], rows[h_view]["path"]) == (
        "pageview", "Docs", "/docs")
    event = rows[h_event]
    assert (event["type"], event["name"], event["props"]) == ("event", "signup",
                                                              {"plan": "team"})
    hconv = rows[h_conv]
    assert (hconv["name"], hconv["revenue"], hconv["currency"], hconv["user_id"]) == (
        "upgrade", 19.99, "USD", "u-2")
    assert (rows[h_ident]["type"], rows[h_ident]["user_id"]) == ("identify", "u-2")
    assert {rows[i]["visitor_id"] for i in (h_view, h_event, h_conv, h_ident)} == {"v-http"}

    backend.close()
    web.close()

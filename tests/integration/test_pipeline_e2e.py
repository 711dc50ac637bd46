"""HTTP -> collector -> Kafka -> Faust worker -> sink -> chDB, through the real parts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from clickstream.stack import Stack
from tests.conftest import store_of
from tests.helpers import make_event, post_events, wait_until

pytestmark = pytest.mark.integration


def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 20) -> list[dict]:
    async def run() -> list[dict]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest")
        await consumer.start()
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        try:
            while len(out) < expect and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for msgs in batch.values():
                    out += [orjson.loads(m.value) for m in msgs]
        finally:
            await consumer.stop()
        return out
    return asyncio.run(run())


def test_events_arrive_field_by_field_and_bad_ones_are_dead_lettered(
        stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    past = datetime.now(UTC).replace(microsecond=250_000) - timedelta(seconds=90)
    ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
    good = make_event(
        "shop", anonymous_id="v-42", user_id="u-7", title="Pricing", screen="1440x900",
        lang="en-GB", ts=past.isoformat().replace("+00:00", "Z"),
        url="https://shop.example/pricing?utm_source=Newsletter&utm_medium=email"
            "&utm_campaign=Black-Friday&utm_term=shoes&utm_content=hero",
        referrer="https://mail.google.com/mail/u/0/", props={"plan": "pro", "n": 3, "ok": True},
    )
    conv = make_event("shop", type="conversion", name="purchase", anonymous_id="v-42",
                      revenue={"amount": 49.9, "currency": "EUR"})
    bad = make_event("shop", type="event")  # an event without a name
    not_object = 17
    resp = post_events(stack.collector_url, [good, bad, conv, not_object], **{"User-Agent": ua})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [e["index"] for e in body["errors"]] == [1, 3]

    store = store_of(stack)
    db = stack.settings.database
    wait_until(lambda: store.query_rows(f"SELECT count() FROM {db}.events")[1][0][0] == 2,
               what="2 rows in events")
    names, rows = store.query_rows(
        f"SELECT * FROM {db}.events WHERE event_id = '{good['event_id']}'")
    row = dict(zip(names, rows[0], strict=True))
    assert row["site_id"] == "shop" and row["type"] == "pageview"
    assert row["visitor_id"] == "v-42" and row["user_id"] == "u-7"
    assert row["ts"] == past.strftime("%Y-%m-%d %H:%M:%S.250")
    assert row["host"] == "shop.example" and row["path"] == "/pricing"
    assert (row["utm_source"], row["utm_medium"], row["utm_campaign"], row["utm_term"],
            row["utm_content"]) == ("newsletter", "email", "black-friday", "shoes", "hero")
    assert row["referrer_host"] == "mail.google.com"
    assert (row["referrer_medium"], row["referrer_source"]) == ("email", "Gmail")
    assert (row["source"], row["medium"], row["channel"]) == ("newsletter", "email", "Email")
    assert (row["browser"], row["os"], row["device_type"], row["is_bot"]) == (
        "Chrome", "Linux", "desktop", 0)
    assert row["country"] == ""  # loopback address: no geo
    assert row["title"] == "Pricing" and row["screen"] == "1440x900" and row["lang"] == "en-GB"
    assert row["props"] == {"plan": "pro", "n": "3", "ok": "true"}
    _, conv_rows = store.query_rows(
        f"SELECT name, revenue, currency FROM {db}.events WHERE type = 'conversion'")
    assert conv_rows == [["purchase", 49.9, "EUR"]]

    dead = read_topic(stack.bootstrap, stack.settings.topic("invalid"), expect=2)
    reasons = sorted(d["reason"] for d in dead)
    assert len(dead) == 2
    assert "needs name" in reasons[0] or "needs name" in reasons[1]
    assert any("must be a JSON object" in r for r in reasons)
    assert all(d["processor"] == "collector" and d["step"] == "validate" for d in dead)
    wait_until(lambda: store.query_rows(
        f"SELECT count() FROM {db}.invalid_events")[1][0][0] == 2, what="dead letters stored")
    # no IP anywhere in ClickHouse
    _, ip_hits = store.query_rows(
        f"SELECT count() FROM {db}.invalid_events WHERE payload LIKE '%127.0.0.1%'")
    assert ip_hits == [[0]]


def test_cookieless_visitors_get_a_daily_salted_id(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    a1 = make_event("blog", anonymous_id=...)
    a1.pop("anonymous_id")
    a2 = {**a1, "event_id": make_event()["event_id"]}
    b = {**a1, "event_id": make_event()["event_id"]}
    post_events(stack.collector_url, [a1, a2], **{"User-Agent": "UA-one"})
    post_events(stack.collector_url, [b], **{"User-Agent": "UA-two"})
    store = store_of(stack)
    db = stack.settings.database
    rows = wait_until(lambda: (r := store.query_rows(
        f"SELECT visitor_id, count() FROM {db}.events GROUP BY visitor_id ORDER BY 2")[1])
        and sum(c for _, c in r) == 3 and r, what="3 cookieless rows")
    assert [c for _, c in rows] == [1, 2]
    assert all(len(v) == 16 and "127.0.0.1" not in v for v, _ in rows)
    salts = orjson.loads((stack.home / "salts.json").read_bytes())
    assert len(salts) == 1 and len(next(iter(salts.values()))) == 64


def test_enrichment_of_envelopes_geo_bots_channels(stack_factory: Callable[..., Stack]) -> None:
    """Envelopes as the collector writes them, with public IPs and various agents."""
    stack = stack_factory()
    iphone = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
    cases = [  # (ip, ua, url, referrer) -> expected (country, device_type, is_bot, channel)
        ("81.2.69.142", iphone, "https://s.example/?gclid=abc123", None,
         ("GB", "mobile", 0, "Paid Search")),
        ("8.8.8.8", "curl/8.5.0", "https://s.example/", None, ("US", "bot", 1, "Direct")),
        ("2001:4860:4860::8888", iphone, "https://s.example/a",
         "https://www.google.de/", (None, "mobile", 0, "Organic Search")),
        ("10.0.0.1", iphone, "https://s.example/b?utm_source=poster&utm_medium=qr",
         None, ("", "mobile", 0, "QR Code")),
        ("81.2.69.142", iphone, "https://s.example/c", "https://chatgpt.com/",
         ("GB", "mobile", 0, "AI Assistants")),
    ]
    now = int(time.time() * 1000)

    async def produce() -> list[str]:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        ids = []
        for i, (ip, ua, url, ref, _) in enumerate(cases):
            ev = make_event("s", anonymous_id=f"v{i}", url=url, ts=now - 1000)
            if ref:
                ev["referrer"] = ref
            ids.append(ev["event_id"])
            envelope = {"v": 1, "received_at": now, "ip": ip, "ua": ua, "event": ev}
            await producer.send_and_wait(stack.settings.topic("raw"), orjson.dumps(envelope),
                                         key=f"s|v{i}".encode())
        await producer.stop()
        return ids

    ids = asyncio.run(produce())
    store = store_of(stack)
    db = stack.settings.database
    wait_until(lambda: store.query_rows(f"SELECT count() FROM {db}.events")[1][0][0] == 5,
               what="5 enriched rows")
    for event_id, case in zip(ids, cases, strict=True):
        _, rows = store.query_rows(
            f"SELECT country, device_type, is_bot, channel, url FROM {db}.events "
            f"WHERE event_id = '{event_id}'")
        country, device, bot, channel, url = rows[0]
        want_country, want_device, want_bot, want_channel = case[4]
        if want_country is not None:
            assert country == want_country, case
        else:
            assert len(country) == 2, case
        assert (device, bot, channel) == (want_device, want_bot, want_channel), case
        assert "gclid" not in url  # click ids read, then stripped from the stored URL
    # no IP stored in any column of any table
    _, tables = store.query_rows(
        f"SELECT name FROM system.tables WHERE database = '{db}' AND engine LIKE '%MergeTree'")
    for (table,) in tables:
        _, hits = store.query_rows(
            f"SELECT count() FROM {db}.{table} WHERE "
            f"positionCaseInsensitive(toString(tuple(*)), '81.2.69.142') > 0 OR "
            f"positionCaseInsensitive(toString(tuple(*)), '2001:4860:4860::8888') > 0")
        assert hits == [[0]], table

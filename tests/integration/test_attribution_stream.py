"""Attribution through the real broker and chDB, with a worker restart mid-stream: the
four-touch path of docs/attribution.md, a direct-only path and a touch outside the window."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from clickstream.stack import Stack
from schemas.timefmt import now_ms
from tests.conftest import store_of
from tests.helpers import wait_until

pytestmark = pytest.mark.integration
DAY = 86_400_000


def raw(visitor: str, ts: int, url: str, referrer: str = "", **extra: Any) -> tuple[bytes, bytes]:
    event = {"event_id": str(uuid.uuid4()), "type": "pageview", "site_id": "attr",
             "anonymous_id": visitor, "ts": ts, "url": url, **extra}
    if referrer:
        event["referrer"] = referrer
    # received_at = event time: these visits happened days ago
    body = {"v": 1, "received_at": ts, "ip": "", "ua": "Mozilla/5.0 (X11; Linux x86_64) "
            "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36", "event": event}
    return f"attr|{visitor}".encode(), orjson.dumps(body)


def produce(stack: Stack, records: list[tuple[bytes, bytes]]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        for key, value in records:
            await producer.send_and_wait(stack.settings.topic("raw"), value, key=key)
        await producer.stop()
    asyncio.run(run())


def test_conversions_are_attributed_under_every_model(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    t = now_ms() - 60_000
    purchase = {"type": "conversion", "name": "purchase",
                "revenue": {"amount": 100, "currency": "EUR"}, "props": {"order_id": "o-1"}}
    produce(stack, [
        raw("a", t - 20 * DAY, "https://attr.example/", "https://www.google.com/"),
        raw("a", t - 10 * DAY, "https://attr.example/?utm_source=facebook&utm_medium=cpc"),
        raw("old", t - 40 * DAY, "https://attr.example/?utm_source=newsletter&utm_medium=email"),
    ])
    store, db = store_of(stack), stack.settings.database
    wait_until(lambda: store.query_rows(f"SELECT count() FROM {db}.sessions FINAL")[1][0][0]
               == 3, what="first sessions")
    stack.restart("worker")  # touchpoints must survive in the visitor state
    produce(stack, [
        raw("a", t - 3 * DAY, "https://attr.example/n?utm_source=newsletter&utm_medium=email"),
        raw("a", t, "https://attr.example/buy"),
        raw("a", t + 60_000, "https://attr.example/buy", **purchase),
        raw("a", t + 90_000, "https://attr.example/buy", **{**purchase, "event_id":
                                                           str(uuid.uuid4())}),  # same order
        raw("d", t, "https://attr.example/"),
        raw("d", t + 1000, "https://attr.example/", type="conversion", name="signup"),
        raw("old", t, "https://attr.example/", type="conversion", name="signup"),
    ])
    def conversions() -> list[Any]:
        return store.query_rows(f"SELECT visitor_id, name FROM {db}.conversions FINAL")[1]

    try:
        wait_until(lambda: len(conversions()) == 3, timeout=120,
                   what="3 conversions (the repeated order is not one)")
    except AssertionError:
        _, ev = store.query_rows(f"SELECT visitor_id, type, name, ts, session_id FROM {db}.events")
        raise AssertionError(f"conversions {conversions()}; events {ev}") from None

    _, conv = store.query_rows(
        f"SELECT visitor_id, name, path_length, time_to_convert_ms, first_channel, "
        f"last_channel, path, revenue FROM {db}.conversions FINAL ORDER BY visitor_id")
    assert conv[0] == ["a", "purchase", 4, 20 * DAY + 60_000, "Organic Search", "Direct",
                       ["Organic Search", "Paid Social", "Email", "Direct"], 100]
    assert conv[1][:3] == ["d", "signup", 1] and conv[1][6] == ["Direct"]
    # the only touch of "old" is 40 days back, outside the 30-day window
    assert conv[2][:3] == ["old", "signup", 1] and conv[2][6] == ["Direct"]

    def credits(model: str) -> list[list[Any]]:
        return store.query_rows(
            f"SELECT channel, credit, revenue_credit FROM {db}.attribution FINAL "
            f"WHERE model = '{model}' AND conversion_id = (SELECT conversion_id FROM "
            f"{db}.conversions FINAL WHERE visitor_id = 'a') ORDER BY touch_index")[1]

    wait_until(lambda: len(credits("linear")) == 4, what="attribution rows")
    assert credits("first_touch") == [["Organic Search", 1.0, 100]]
    assert credits("last_touch") == [["Direct", 1.0, 100]]
    assert credits("last_non_direct") == [["Email", 1.0, 100]]
    assert [r[1] for r in credits("linear")] == [0.25] * 4
    assert [r[2] for r in credits("position_based")] == [40, 10, 10, 40]
    weights = [2 ** (-(20 * DAY + 60_000) / (7 * DAY)), 2 ** (-(10 * DAY + 60_000) / (7 * DAY)),
               2 ** (-(3 * DAY + 60_000) / (7 * DAY)), 2 ** (-60_000 / (7 * DAY))]
    decay = credits("time_decay")
    assert [r[1] for r in decay] == pytest.approx([w / sum(weights) for w in weights], abs=1e-9)
    assert sum(r[2] for r in decay) == pytest.approx(100, abs=1e-9)
    _, sums = store.query_rows(
        f"SELECT model, round(sum(credit), 9), sum(revenue_credit) FROM {db}.attribution FINAL "
        "GROUP BY conversion_id, model")
    assert all(credit == 1 for _, credit, _ in sums)


def test_identify_stitches_devices_for_attribution(stack_factory: Callable[..., Stack]) -> None:
    """Laptop: arrives from a newsletter, logs in. Phone: logs in, buys. The purchase is
    credited to the newsletter touch made on the laptop."""
    stack = stack_factory()
    t = now_ms() - 60_000
    produce(stack, [
        raw("laptop", t - 5 * DAY, "https://attr.example/?utm_source=newsletter&utm_medium=email"
            "&utm_campaign=winter"),
        raw("laptop", t - 5 * DAY + 60_000, "https://attr.example/account", type="identify",
            user_id="u-42"),
        raw("phone", t - 60_000, "https://attr.example/", "https://www.instagram.com/"),
        raw("phone", t, "https://attr.example/login", type="identify", user_id="u-42"),
        raw("phone", t + 30_000, "https://attr.example/buy", type="conversion",
            name="purchase", revenue={"amount": 80, "currency": "EUR"}),
        raw("stranger", t, "https://attr.example/buy", type="conversion", name="purchase",
            revenue={"amount": 5, "currency": "EUR"}),
    ])
    store, db = store_of(stack), stack.settings.database
    rows = wait_until(lambda: (r := store.query_rows(
        f"SELECT visitor_id, path, first_channel, last_channel FROM {db}.conversions FINAL "
        "ORDER BY visitor_id")[1]) and len(r) == 2 and r, timeout=120,
        what="2 conversions, one through the user-keyed agent")
    phone, stranger = rows
    assert phone == ["phone", ["Email", "Organic Social"], "Email", "Organic Social"]
    assert stranger == ["stranger", ["Direct"], "Direct", "Direct"]
    # attribution rows are another table's insert: they may land a flush after the conversion
    first = wait_until(lambda: store.query_rows(
        f"SELECT campaign, revenue_credit FROM {db}.attribution FINAL WHERE model = "
        "'first_touch' AND conversion_id = (SELECT conversion_id FROM "
        f"{db}.conversions FINAL WHERE visitor_id = 'phone')")[1], what="attribution rows")
    assert first == [["winter", 80]]

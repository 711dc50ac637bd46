"""Sessions through the real broker and chDB: two workers, a graceful restart and a kill -9
in the middle, and a replayed duplicate. Session state must survive all of it."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import requests
from aiokafka import AIOKafkaProducer

from clickstream.stack import Stack
from tests.conftest import store_of
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

VISITORS = 40
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"


def envelope(visitor: int, ts: int, url: str, **extra: Any) -> tuple[bytes, bytes]:
    event = {"event_id": str(uuid.uuid4()), "type": "pageview", "site_id": "sess",
             "anonymous_id": f"v{visitor}", "ts": ts, "url": url, **extra}
    body = {"v": 1, "received_at": int(time.time() * 1000), "ip": "198.51.100.7", "ua": UA,
            "event": event}
    return f"sess|v{visitor}".encode(), orjson.dumps(body)


def produce(stack: Stack, records: list[tuple[bytes, bytes]],
            partitions: list[int | None] | None = None) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=10)
        await producer.start()
        where = partitions or [None] * len(records)
        futures = [await producer.send(stack.settings.topic("raw"), v, key=k, partition=p)
                   for (k, v), p in zip(records, where, strict=True)]
        await asyncio.gather(*futures)
        await producer.stop()
    asyncio.run(run())


def events_in(stack: Stack, name: str) -> float:
    text = requests.get(stack.services[name].url + "/metrics", timeout=10).text
    m = re.search(r"^clickstream_worker_events_in_total (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def settle(stack: Stack, workers: tuple[str, ...]) -> None:
    """Pageviews of another site to every partition until each of these workers takes
    events: the consumer group has settled. A worker killed seconds after a rebalance can
    leave a partition assigned but idle on Tansu (the broker risk in the design brief);
    the restarts below test session state, so each starts from a settled group."""
    before = {name: events_in(stack, name) for name in workers}
    deadline = time.monotonic() + 90
    n = 0
    while not all(events_in(stack, name) > before[name] for name in workers):
        assert time.monotonic() < deadline, f"{workers} took no events"
        parts = list(range(stack.settings.topic_partitions))
        warm = [(f"warm|w{n}-{p}".encode(), orjson.dumps({
            "v": 1, "received_at": int(time.time() * 1000), "ip": "198.51.100.8", "ua": UA,
            "event": {"event_id": str(uuid.uuid4()), "type": "pageview", "site_id": "warm",
                      "anonymous_id": f"w{n}-{p}", "ts": int(time.time() * 1000),
                      "url": "https://warm.example/"}})) for p in parts]
        produce(stack, warm, parts)
        n += 1
        time.sleep(0.5)


def test_sessions_survive_restarts_and_rebalances(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    stack.add_worker()
    settle(stack, ("worker", "worker2"))
    store, db = store_of(stack), stack.settings.database
    now = int(time.time() * 1000)
    landing = [envelope(v, now - 20 * 60_000,
                        "https://s.example/landing?utm_source=newsletter&utm_medium=email"
                        "&utm_campaign=nov") for v in range(VISITORS)]
    produce(stack, [*landing, landing[0]])  # visitor 0's landing is delivered twice

    def count() -> int:
        return int(store.query_rows(
            f"SELECT count() FROM {db}.events FINAL WHERE site_id = 'sess'")[1][0][0])

    wait_until(lambda: count() == VISITORS, timeout=90, what="landing pageviews")
    stack.restart("worker")   # graceful
    settle(stack, ("worker", "worker2"))
    stack.kill("worker2")     # and a crash
    stack.restart("worker2")
    second = [envelope(v, now - 10 * 60_000, "https://s.example/second",
                       referrer="https://s.example/landing") for v in range(VISITORS)]
    convert = [envelope(v, now - 9 * 60_000, "https://s.example/second", type="conversion",
                        name="purchase", revenue={"amount": 10.5, "currency": "EUR"})
               for v in range(VISITORS)]
    produce(stack, second + convert)
    wait_until(lambda: count() == 3 * VISITORS, timeout=120, what="all 120 events")

    _, per_visitor = store.query_rows(
        f"SELECT visitor_id, uniqExact(session_id), groupArray(session_seq) FROM {db}.events "
        "FINAL WHERE site_id = 'sess' GROUP BY visitor_id")
    assert len(per_visitor) == VISITORS
    for visitor, sessions, seqs in per_visitor:
        assert sessions == 1, visitor          # one session across restarts
        assert sorted(seqs) == [1, 2, 3], visitor

    def sessions_done() -> list[list[Any]]:
        return store.query_rows(
            f"SELECT count(), sum(pageviews), sum(conversions), sum(events), sum(revenue), "
            f"groupUniqArray(channel), groupUniqArray(entry_path), groupUniqArray(exit_path), "
            f"sum(is_engaged) FROM {db}.sessions FINAL WHERE site_id = 'sess'")[1]

    rows = wait_until(lambda: (r := sessions_done()) and r[0][3] == 3 * VISITORS and r,
                      timeout=60, what="session rows complete")
    count_, pv, conv, events, revenue, channels, entries, exits, engaged = rows[0]
    assert (count_, pv, conv, events) == (VISITORS, 2 * VISITORS, VISITORS, 3 * VISITORS)
    assert revenue == pytest.approx(10.5 * VISITORS)
    assert channels == ["Email"] and entries == ["/landing"] and exits == ["/second"]
    assert engaged == VISITORS

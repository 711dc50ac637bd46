"""Add a second worker, stop a worker and the sink mid-stream (gracefully, then with kill -9)
and start them again: every accepted event is in ClickHouse exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from clickstream.stack import Stack
from tests.conftest import store_of
from tests.helpers import make_event, post_events, wait_until

pytestmark = pytest.mark.integration


class Sender(threading.Thread):
    """Posts batches of 20 events until stopped; remembers what got a 202."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.accepted: set[str] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            batch = [make_event(f"site-{i % 3}", anonymous_id=f"v{(n + i) % 200}")
                     for i in range(20)]
            n += 20
            resp = post_events(self.url, batch)
            if resp.status_code == 202:
                assert resp.json()["rejected"] == 0
                self.accepted.update(e["event_id"] for e in batch)
            time.sleep(0.01)


def test_worker_and_sink_restarts_lose_and_double_nothing(
        stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    sender = Sender(stack.collector_url)
    sender.start()
    try:
        time.sleep(3)
        # a second worker joins seconds after the first: records the first had fetched are
        # dropped at the rebalance and must be read again, also where nothing was committed
        stack.add_worker()
        time.sleep(3)
        for name in ("worker", "sink"):          # graceful stop, a pause, start again
            stack.services[name].stop()
        time.sleep(1.5)
        for name in ("sink", "worker"):
            stack.restart(name)
        time.sleep(3)
        for name in ("worker", "sink"):          # kill -9 mid-stream
            stack.kill(name)
        time.sleep(1.5)
        for name in ("sink", "worker"):
            stack.restart(name)
        time.sleep(3)
    finally:
        sender.halt.set()
        sender.join(30)
    expected = sender.accepted
    assert len(expected) > 1000
    store = store_of(stack)
    db = stack.settings.database
    wait_until(lambda: store.query_rows(
        f"SELECT uniqExact(event_id) FROM {db}.events")[1][0][0] == len(expected),
        timeout=120, what=f"{len(expected)} distinct events")
    _, rows = store.query_rows(f"SELECT count() FROM {db}.events FINAL")
    assert rows[0][0] == len(expected)
    _, ids = store.query_rows(f"SELECT toString(event_id) FROM {db}.events FINAL")
    assert {r[0] for r in ids} == expected

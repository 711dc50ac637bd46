"""The live endpoint reuses an answer until the traffic tables may have changed (a traffic
flush or a statement through /v1/query) or the minute turns; without a version it always
asks the store. Real chDB, the sink's web routes, a real HTTP client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from schemas.timefmt import ms_to_text
from sinks.batches import JsonBatch
from sinks.live import add_live_routes
from sinks.migrate import migrate
from sinks.store import ChdbStore

DB = "clickstream"
SITE = "live.example"


class Counting(ChdbStore):
    """The real store, counting the queries it answers (each `delay` seconds slower)."""

    queries = 0
    delay = 0.0

    def query_rows(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        self.queries += 1
        time.sleep(self.delay)
        return super().query_rows(sql)


def traffic_row(pageviews: int, version: int) -> bytes:
    now = int(time.time() * 1000)
    return orjson.dumps({"site_id": SITE, "window_start": ms_to_text(now - now % 60_000),
                         "kafka_partition": 0, "dimension": "", "value": "",
                         "pageviews": pageviews, "events": pageviews, "sessions": 1,
                         "bounces": 0, "conversions": 0, "revenue": 0,
                         "visitors": [7, 8], "version": version, "hashes_only": 0})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Counting]:
    s = Counting(tmp_path / "chdb")
    migrate(s, DB)
    yield s
    s.close()


def live_app(store: Counting, version: list[int] | None) -> web.Application:
    app = web.Application()
    add_live_routes(app, store, DB, (lambda: version[0]) if version is not None else None)
    return app


async def pageviews(client: TestClient) -> int:
    resp = await client.get(f"/v1/stats/{SITE}/live")
    assert resp.status == 200
    return sum(m["pageviews"] for m in (await resp.json())["pageviews_per_minute"])


def test_answers_are_reused_until_the_version_changes(store: Counting) -> None:
    version = [0]

    async def go() -> None:
        async with TestClient(TestServer(live_app(store, version))) as client, \
                TestClient(TestServer(live_app(store, None))) as uncached:
            JsonBatch([traffic_row(3, 1)]).insert(store, f"{DB}.traffic_in", None)
            assert await pageviews(client) == 3
            asked = store.queries
            for _ in range(5):  # nothing changed: no query
                assert await pageviews(client) == 3
            assert store.queries == asked
            JsonBatch([traffic_row(5, 2)]).insert(store, f"{DB}.traffic_in", None)
            assert await pageviews(client) == 3  # the version says nothing changed yet
            version[0] += 1  # a flush: the next answer is computed again
            assert await pageviews(client) == 5
            assert store.queries > asked
            asked = store.queries
            assert await pageviews(uncached) == 5 and store.queries > asked  # no version

    asyncio.run(go())


def test_polls_meanwhile_share_the_computation(store: Counting) -> None:
    """Five dashboards poll while an answer is being computed: the store answers one set of
    queries, and every poll gets the new numbers."""
    version = [0]

    async def go() -> None:
        async with TestClient(TestServer(live_app(store, version))) as client:
            JsonBatch([traffic_row(4, 1)]).insert(store, f"{DB}.traffic_in", None)
            before = store.queries
            assert await pageviews(client) == 4
            one = store.queries - before  # the queries of one answer
            JsonBatch([traffic_row(9, 2)]).insert(store, f"{DB}.traffic_in", None)
            version[0] += 1
            store.delay = 0.1
            assert await asyncio.gather(*(pageviews(client) for _ in range(5))) == [9] * 5
            assert store.queries == before + 2 * one
            version[0] += 1  # done computations are not kept: a new version asks again
            store.delay = 0.0
            assert await pageviews(client) == 9 and store.queries == before + 3 * one

    asyncio.run(go())

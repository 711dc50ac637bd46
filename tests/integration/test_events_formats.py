"""The events topic in either format (CLICKSTREAM_WORKER_EVENTS_FORMAT) stores the same rows:
the same worker contexts go through the worker's NDJSON and Arrow encoders, the sink's decode
and BatchWriter into real chDB (migrations applied), and every column of every row is
compared. A bad row in an Arrow batch is bisected out and dead-lettered as JSON."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.common import loadgen_records
from clickstream.settings import WorkerSettings
from sinks.batches import decode
from sinks.migrate import migrate
from sinks.store import ChdbStore
from sinks.writer import BatchWriter
from streams import events_out
from streams.enrichment import Enricher
from streams.pipeline import Ctx, Pipeline
from streams.steps import default_steps, expand
from streams.visitor import SaltStore

NOW = int(time.time() * 1000)
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    s = ChdbStore(tmp_path_factory.mktemp("formats") / "chdb")
    for db in ("via_ndjson", "via_arrow"):
        migrate(s, db)
    yield s
    s.close()


def envelope(event: dict[str, Any], ua: str = CHROME, ip: str = "81.2.69.142") -> bytes:
    return orjson.dumps({"v": 1, "received_at": NOW, "ip": ip, "ua": ua, "event": event})


def event(**over: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "pageview", "site_id": "shop",
            "ts": NOW - 2000, "url": "https://shop.example/", **over}


def edge_cases() -> list[bytes]:
    """Raw records with what the schema allows at its edges, and some it rejects."""
    conv = {"type": "conversion", "name": "purchase"}
    return [
        envelope(event()),  # every optional field missing
        envelope(event(anonymous_id="a1", user_id="", title="", referrer="", lang="de-AT",
                       screen="1920x1080")),
        envelope(event(anonymous_id="a1", title="Grüße – 東京 🚀 \u202eRTL",
                       url="https://shop.example/ß/路径?utm_source=nëws&utm_campaign=🎉&x=1",
                       referrer="https://www.google.co.jp/search?q=日本")),
        envelope(event(anonymous_id="a2", props={"plan": "pro", "seats": 3, "trial": True,
                                                 "ratio": 0.25, "empty": "", "ü": "ö"})),
        envelope(event(anonymous_id="a2", **conv, revenue={"amount": 12.3456,
                                                           "currency": "EUR"})),
        envelope(event(anonymous_id="a2", **conv, revenue={"amount": 1.123456,
                                                           "currency": "USD"})),
        envelope(event(anonymous_id="a3", **conv, revenue={"amount": -999999999.99995,
                                                           "currency": "JPY"})),
        envelope(event(anonymous_id="a3", **conv, revenue={"amount": 1000000000,
                                                           "currency": "EUR"})),
        envelope(event(anonymous_id="a3", type="event", name="x" * 128, user_id="u" * 256)),
        envelope(event(anonymous_id="a4", ts=NOW - 40 * 86_400_000)),  # too old: receive time
        envelope(event(anonymous_id="a5", url="https://shop.example/?gclid=abc&fbclid=d")),
        envelope(event(), ua=BOT),  # a bot: stored, without a session
        envelope(event(), ip=""),
        envelope(event(type="nonsense")),  # invalid: never an events row
        b"{not json",
        envelope({"event_id": "not-a-uuid", "type": "pageview"}),
    ]


def worker_contexts(tmp_path: Path, raws: list[bytes]) -> list[Ctx]:
    """The records through the worker's steps; sessions filled as the session step does
    (bots get none). Every context, accepted or not, as the worker's emit sees them."""
    settings = WorkerSettings(home=tmp_path)
    steps = default_steps(settings, SaltStore(tmp_path / "salts.json"), Enricher.load())
    ctxs = [c for i, raw in enumerate(raws) for c in expand(raw, b"k", i % 4, i)]
    Pipeline(steps).run(ctxs)
    for i, c in enumerate(c for c in ctxs if c.ok):
        c.row["session_id"], c.row["session_seq"] = (
            ("", 0) if c.row["is_bot"] else (f"s{i // 7}", 4_000_000_000 - i))
    return ctxs


def write(store: ChdbStore, db: str, ctxs: list[Ctx], events_format: str) -> int:
    """What emit() sends per partition, then what the sink does with the messages."""
    by_partition: dict[int, list[Ctx]] = {}
    for c in ctxs:
        if c.ok:
            by_partition.setdefault(c.partition, []).append(c)
    encode = events_out.encoder(events_format)
    values = [v for group in by_partition.values() for v in encode(group)]
    marker = b"\xff\xff\xff\xff"
    assert all(v.startswith(marker) == (events_format == "arrow") for v in values)
    rows, tables = decode(values)
    writer = BatchWriter(store, max_rows=100_000, dead_letter_table=f"{db}.invalid_events")
    writer.write(f"{db}.events", rows, f"events/0/0-{len(values)}", tables)
    return asyncio.run(writer.flush())


def stored(store: ChdbStore, db: str) -> tuple[list[str], list[list[Any]]]:
    return store.query_rows(f"SELECT * FROM {db}.events ORDER BY event_id")


def compare(store: ChdbStore, tmp_path: Path, raws: list[bytes]) -> list[list[Any]]:
    ctxs = worker_contexts(tmp_path, raws)
    accepted = sum(c.ok for c in ctxs)
    for db in ("via_ndjson", "via_arrow"):
        store.execute(f"TRUNCATE TABLE {db}.events")
    assert write(store, "via_ndjson", copy.deepcopy(ctxs), "ndjson") == accepted
    assert write(store, "via_arrow", ctxs, "arrow") == accepted
    names, via_json = stored(store, "via_ndjson")
    names_arrow, via_arrow = stored(store, "via_arrow")
    assert names == names_arrow and len(names) == 43
    assert len(via_json) == accepted
    for a, b in zip(via_json, via_arrow, strict=True):
        assert dict(zip(names, a, strict=True)) == dict(zip(names, b, strict=True))
    return [dict(zip(names, r, strict=True)) for r in via_arrow]


def test_edge_cases_store_identical_rows(store: ChdbStore, tmp_path: Path) -> None:
    rows = compare(store, tmp_path, edge_cases())
    assert len(rows) == 13  # the invalid three are dead letters, not rows
    revenue = sorted(float(r["revenue"]) for r in rows if r["type"] == "conversion")
    assert revenue == [-999999999.9999, 1.1234, 12.3456, 1000000000.0]
    assert any(r["title"] == "Grüße – 東京 🚀 \u202eRTL" for r in rows)
    assert any(r["props"] == {"plan": "pro", "seats": "3", "trial": "true", "ratio": "0.25",
                              "empty": "", "ü": "ö"} for r in rows)
    bots = [r for r in rows if r["is_bot"]]
    assert len(bots) == 1 and bots[0]["session_id"] == "" and bots[0]["session_seq"] == 0
    assert max(r["session_seq"] for r in rows) > 2**31


def test_loadgen_traffic_stores_identical_rows(store: ChdbStore, tmp_path: Path) -> None:
    raws = [value for _, value in loadgen_records(6000, seed=5)]  # 2 messages a partition
    rows = compare(store, tmp_path, raws)
    assert len(rows) > 5000 and any(r["props"] for r in rows)
    assert len({r["channel"] for r in rows}) > 5


def test_a_bad_row_in_an_arrow_batch_is_dead_lettered(store: ChdbStore, tmp_path: Path
                                                      ) -> None:
    ctxs = [c for c in worker_contexts(tmp_path, edge_cases()) if c.ok]
    ctxs[5].row["event_id"] = "not-a-uuid"  # what ClickHouse refuses in a UUID column
    for table in ("events", "invalid_events"):
        store.execute(f"TRUNCATE TABLE via_arrow.{table}")
    assert write(store, "via_arrow", ctxs, "arrow") == len(ctxs) - 1
    _, dead = store.query_rows("SELECT step, reason, payload FROM via_arrow.invalid_events")
    assert len(dead) == 1 and dead[0][0] == "insert:via_arrow.events" and "UUID" in dead[0][1]
    payload = orjson.loads(dead[0][2])
    assert payload["event_id"] == "not-a-uuid" and isinstance(payload["props"], dict)
    assert payload["received_at"] == ctxs[5].row["received_at"]

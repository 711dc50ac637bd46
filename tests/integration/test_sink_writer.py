"""The batch writer against real chDB: flush rules, bad rows isolated into invalid_events."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import pytest

from schemas.timefmt import ms_to_text, now_ms
from sinks.migrate import migrate
from sinks.store import ChdbStore
from sinks.writer import Backpressure, BatchWriter

DB = "clickstream"


@pytest.fixture
def store(tmp_path: Path) -> ChdbStore:
    s = ChdbStore(tmp_path / "chdb")
    migrate(s, DB)
    yield s
    s.close()


def row(event_id: str | None = None, **over: object) -> bytes:
    now = ms_to_text(now_ms())
    return orjson.dumps({"event_id": event_id or str(uuid.uuid4()), "site_id": "w",
                         "type": "pageview", "ts": now, "received_at": now, "visitor_id": "v",
                         **over})


def test_a_bad_row_is_dead_lettered_and_its_batch_neighbours_written(store: ChdbStore) -> None:
    writer = BatchWriter(store, max_rows=1000, dead_letter_table=f"{DB}.invalid_events")
    good = [row() for _ in range(99)]
    bad = row("not-a-uuid")
    writer.write(f"{DB}.events", [*good[:50], bad, *good[50:]], origin="t/0/0-99")
    written = asyncio.run(writer.flush())
    assert written == 99
    _, n = store.query_rows(f"SELECT count() FROM {DB}.events")
    assert n == [[99]]
    _, dead = store.query_rows(f"SELECT processor, step, reason, payload FROM {DB}.invalid_events")
    assert len(dead) == 1
    processor, step, reason, payload = dead[0]
    assert (processor, step) == ("sink", f"insert:{DB}.events")
    assert reason.startswith("clickhouse_rejected:") and "UUID" in reason
    assert "not-a-uuid" in payload


def test_flush_is_due_on_size_and_on_time(store: ChdbStore) -> None:
    writer = BatchWriter(store, max_rows=10, flush_seconds=0.2)
    assert not writer.due()
    writer.write(f"{DB}.events", [row() for _ in range(3)])
    assert not writer.due() and writer.seconds_until_due() > 0
    asyncio.run(asyncio.sleep(0.25))
    assert writer.due()
    writer.write(f"{DB}.events", [row() for _ in range(7)])
    assert writer.due() and writer.buffered == 10
    with pytest.raises(Backpressure) as info:
        writer.write(f"{DB}.events", [row() for _ in range(11)])  # over twice the batch size
        writer.write(f"{DB}.events", [row()])
    assert info.value.retry_after > 0
    asyncio.run(writer.flush())
    assert writer.buffered == 0 and not writer.due()


def test_same_insert_token_is_not_written_twice(store: ChdbStore) -> None:
    rows = [row() for _ in range(20)]
    for _ in range(2):  # a retry of the same Kafka offset range after a lost reply
        writer = BatchWriter(store, max_rows=100)
        writer.write(f"{DB}.events", rows, origin="t/3/100-119")
        asyncio.run(writer.flush())
    _, n = store.query_rows(f"SELECT count() FROM {DB}.events")
    assert n == [[20]]

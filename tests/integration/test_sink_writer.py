"""The batch writer against real chDB: flush rules, bad rows isolated into invalid_events,
NDJSON and Arrow messages, column defaults."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from schemas.timefmt import ms_to_text, now_ms
from sinks.batches import ARROW_STREAM_MARKER, decode
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


def test_a_table_with_its_own_interval_flushes_alone(store: ChdbStore) -> None:
    """The live view's table flushes on its shorter interval; the others keep theirs and
    stay buffered (so their offsets are not committed yet)."""
    live = f"{DB}.invalid_events"
    writer = BatchWriter(store, max_rows=1000, flush_seconds=60,
                         table_flush_seconds={live: 0.1})
    writer.write(f"{DB}.events", [row() for _ in range(5)], origin="e/0/0-4")
    assert writer.seconds_until_due() > 1
    now = ms_to_text(now_ms())
    writer.write(live, [orjson.dumps({"processor": "t", "reason": "r", "payload": "p",
                                      "received_at": now, "failed_at": now})],
                 origin="i/0/0-0")
    assert 0 < writer.seconds_until_due() <= 0.1
    asyncio.run(asyncio.sleep(0.15))
    assert writer.due_tables() == [live]
    assert asyncio.run(writer.flush(writer.due_tables())) == 1
    assert writer.holds(f"{DB}.events") and not writer.holds(live)
    assert writer.buffered == 5 and not writer.due()
    _, n = store.query_rows(f"SELECT (SELECT count() FROM {DB}.events), "
                            f"(SELECT count() FROM {DB}.invalid_events)")
    assert n == [[0, 1]]


def test_same_insert_token_is_not_written_twice(store: ChdbStore) -> None:
    rows = [row() for _ in range(20)]
    for _ in range(2):  # a retry of the same Kafka offset range after a lost reply
        writer = BatchWriter(store, max_rows=100)
        writer.write(f"{DB}.events", rows, origin="t/3/100-119")
        asyncio.run(writer.flush())
    _, n = store.query_rows(f"SELECT count() FROM {DB}.events")
    assert n == [[20]]


def arrow_rows(rows: list[dict[str, object]]) -> pa.Table:
    """Rows as a producer sending columns would: strings dictionary-encoded for the
    LowCardinality columns, times and ids as text, props as a map."""
    cols = {k: [r.get(k) for r in rows] for k in rows[0]}
    arrays = {}
    for name, values in cols.items():
        if name == "props":
            arrays[name] = pa.array([list(v.items()) for v in values],
                                    pa.map_(pa.string(), pa.string()))
        elif name in ("site_id", "type", "channel"):
            arrays[name] = pa.array(values, pa.string()).dictionary_encode()
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)


def message(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def event(**over: object) -> dict[str, object]:
    now = ms_to_text(now_ms())
    return {"event_id": str(uuid.uuid4()), "site_id": "w", "type": "pageview", "ts": now,
            "received_at": now, "visitor_id": "v", "channel": "Email",
            "props": {"plan": "pro"}, **over}


def test_arrow_messages_are_written_like_json_rows(store: ChdbStore) -> None:
    evs = [event() for _ in range(30)]
    rows, tables = decode([message(arrow_rows(evs[:20])), row(), message(arrow_rows(evs[20:]))])
    assert len(rows) == 1 and [t.num_rows for t in tables] == [20, 10]
    for _ in range(2):  # the same offsets twice: the token keeps it once
        writer = BatchWriter(store, max_rows=1000)
        writer.write(f"{DB}.events", rows, origin="t/1/0-2", arrow=tables)
        assert writer.buffered == 31
        assert asyncio.run(writer.flush()) == 31
    _, got = store.query_rows(
        f"SELECT count(), uniqExact(event_id), countIf(channel = 'Email'), "
        f"countIf(props['plan'] = 'pro'), countIf(contract_version = 1) FROM {DB}.events")
    assert got == [[31, 31, 30, 30, 31]]
    _, ids = store.query_rows(f"SELECT toString(event_id) FROM {DB}.events WHERE channel != ''")
    assert sorted(i[0] for i in ids) == sorted(str(e["event_id"]) for e in evs)


def test_a_bad_arrow_row_is_dead_lettered_as_json(store: ChdbStore) -> None:
    evs = [event() for _ in range(15)]
    evs[9]["event_id"] = "not-a-uuid"
    writer = BatchWriter(store, max_rows=1000, dead_letter_table=f"{DB}.invalid_events")
    writer.write(f"{DB}.events", [], origin="t/2/0-0", arrow=[arrow_rows(evs)])
    assert asyncio.run(writer.flush()) == 14
    _, dead = store.query_rows(f"SELECT reason, payload FROM {DB}.invalid_events")
    assert len(dead) == 1 and "UUID" in dead[0][0]
    assert orjson.loads(dead[0][1])["event_id"] == "not-a-uuid"


def test_a_column_default_applies_when_a_row_leaves_it_out(store: ChdbStore) -> None:
    store.insert_json_rows(f"{DB}.events", [row(contract_version=2), row(),
                                            row(contract_version=None)])
    _, got = store.query_rows(f"SELECT contract_version FROM {DB}.events "
                              "ORDER BY contract_version")
    assert got == [[1], [1], [2]]


def test_messages_of_different_shapes_and_a_broken_one(store: ChdbStore) -> None:
    """Arrow messages whose columns disagree are inserted one by one; a value that starts
    like Arrow but is not is dead-lettered like an unparsable row."""
    a = arrow_rows([event(session_seq=1)])
    b = arrow_rows([event(session_seq="2")])  # the same column as text
    broken = ARROW_STREAM_MARKER + b"\x00garbage"
    rows, tables = decode([message(a), message(b), broken])
    assert rows == [broken] and len(tables) == 2
    writer = BatchWriter(store, max_rows=1000, dead_letter_table=f"{DB}.invalid_events")
    writer.write(f"{DB}.events", rows, origin="t/4/0-2", arrow=tables)
    assert asyncio.run(writer.flush()) == 2
    _, got = store.query_rows(f"SELECT session_seq FROM {DB}.events ORDER BY session_seq")
    assert got == [[1], [2]]
    _, dead = store.query_rows(f"SELECT step FROM {DB}.invalid_events")
    assert dead == [[f"insert:{DB}.events"]]


def test_text_that_is_not_utf8_is_stored_as_valid_utf8(store: ChdbStore) -> None:
    """Rows reach chDB as raw bytes: invalid UTF-8 is replaced, as readers decode UTF-8."""
    bad = row(title="x").replace(b'"title":"x"', b'"title":"a\xff\xfeb"')
    store.insert_json_rows(f"{DB}.events", [bad])
    _, got = store.query_rows(f"SELECT title, isValidUTF8(title) FROM {DB}.events")
    assert got == [["a\ufffdb", 1]]

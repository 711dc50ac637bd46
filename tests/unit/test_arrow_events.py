"""The worker's Arrow messages for the events topic: the columns each row value lands in,
message size limits, and the NDJSON fallback (streams/arrow_events.py, streams/events_out.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pytest

from schemas.timefmt import ms_to_text
from sinks.batches import ArrowBatch, decode, read_arrow
from streams import arrow_events, events_out
from streams.pipeline import Ctx

TS = 1_795_348_536_301
RECEIVED = 1_795_348_537_999


def ctx(partition: int = 0, **over: Any) -> Ctx:
    """An accepted event's context as the steps leave it."""
    row: dict[str, Any] = {name: default for name, _, default in arrow_events.COLUMNS}
    row.update(ts=ms_to_text(TS), received_at=ms_to_text(RECEIVED), _ts_ms=TS,
               event_id=str(uuid.uuid4()), site_id="shop", type="pageview",
               visitor_id="v1", url="https://shop.example/", host="shop.example", path="/",
               channel="Direct", source="(direct)", medium="(none)", session_id="s1",
               session_seq=1)
    row.update(over)
    c = Ctx(b"", None, partition, 0)
    c.row, c.envelope = row, {"received_at": RECEIVED}
    return c


def test_the_columns_are_the_events_table_in_order() -> None:
    names = [n for n, _, _ in arrow_events.COLUMNS]
    assert names[:6] == ["event_id", "site_id", "type", "name", "ts", "received_at"]
    assert len(names) == len(set(names)) == 43 and names[-1] == "contract_version"


def test_values_land_in_typed_columns() -> None:
    rows = [ctx(title="Grüße – 東京 🚀", revenue="12.3456", currency="EUR",
                props={"plan": "pro", "seats": "3", "trial": "true"}, is_bot=1,
                session_seq=4_000_000_000),
            ctx(revenue="-0.000099", title="", props={}),
            ctx(revenue="999999999.123456")]
    batch = arrow_events.record_batch(rows)
    assert batch.schema == arrow_events.SCHEMA
    assert pa.types.is_dictionary(batch.schema.field("channel").type)
    got = batch.to_pylist()
    assert got[0]["ts"] == datetime.fromtimestamp(TS / 1000, UTC)
    assert got[0]["received_at"] == datetime.fromtimestamp(RECEIVED / 1000, UTC)
    assert got[0]["title"] == "Grüße – 東京 🚀" and got[1]["title"] == ""
    assert [r["revenue"] for r in got] == [Decimal("12.3456"), Decimal("0"),
                                           Decimal("999999999.1234")]  # cut toward zero
    assert dict(got[0]["props"]) == {"plan": "pro", "seats": "3", "trial": "true"}
    assert got[1]["props"] == [] and got[0]["currency"] == "EUR"
    assert (got[0]["is_bot"], got[0]["session_seq"]) == (1, 4_000_000_000)
    assert got[2]["contract_version"] == 1


def test_missing_and_none_values_get_the_column_defaults() -> None:
    a = ctx(city=None, revenue=None, props=None, contract_version=None, title=None)
    b = ctx()
    for key in ("city", "props", "contract_version", "session_seq", "revenue"):
        del b.row[key]
    got = arrow_events.record_batch([a, b]).to_pylist()
    for r in got:
        assert (r["city"], r["props"], r["contract_version"], r["revenue"]) == (
            "", [], 1, Decimal(0))
    assert got[0]["title"] == "" and got[1]["session_seq"] == 0
    assert arrow_events.record_batch([a, b]).column("city").null_count == 0


def test_props_mixing_empty_and_full_maps() -> None:
    rows = [ctx(props={}), ctx(props={"a": "1", "b": ""}), ctx(props=None), ctx(props={"c": "ü"})]
    got = [dict(r["props"]) for r in arrow_events.record_batch(rows).to_pylist()]
    assert got == [{}, {"a": "1", "b": ""}, {}, {"c": "ü"}]


def test_messages_stay_under_the_limit_and_keep_every_row_in_order() -> None:
    rows = [ctx(title="t" * 400, url=f"https://shop.example/{i}") for i in range(600)]
    out = list(arrow_events.messages(rows, max_bytes=64 * 1024))
    assert len(out) > 3 and all(len(m) <= 64 * 1024 for m in out)
    urls = [u for m in out for u in read_arrow(m).column("url").to_pylist()]
    assert urls == [r.row["url"] for r in rows]


def test_a_row_larger_than_the_limit_goes_alone() -> None:
    out = list(arrow_events.messages([ctx(title="x" * 5000)], max_bytes=1000))
    assert len(out) == 1 and read_arrow(out[0]).num_rows == 1


def test_the_sink_reads_both_formats_to_the_same_values() -> None:
    arrow_rows = [ctx(props={"k": "v"}, revenue="1.5"), ctx()]
    json_rows = [ctx(**c.row) for c in arrow_rows]
    rows, tables = decode([*events_out.arrow_messages(arrow_rows),
                           *events_out.ndjson_messages(json_rows)])
    assert len(tables) == 1 and tables[0].num_rows == 2 and len(rows) == 2
    for table_row, json_row in zip(tables[0].to_pylist(), rows, strict=True):
        doc = orjson.loads(json_row)
        assert "_ts_ms" not in doc
        assert table_row["event_id"] == doc["event_id"]
        assert Decimal(doc["revenue"]) == table_row["revenue"]
        assert dict(table_row["props"]) == doc["props"]


def test_a_value_arrow_cannot_hold_falls_back_to_ndjson(caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    rows = [ctx(), ctx(revenue="not a number")]
    out = list(events_out.encoder("arrow")(rows))
    assert out and not any(m.startswith(b"\xff\xff\xff\xff") for m in out)
    assert len(decode(out)[0]) == 2 and "NDJSON" in caplog.text
    assert next(events_out.encoder("ndjson")([ctx()])).startswith(b"{")


def test_a_dead_letter_payload_reads_like_the_json_row() -> None:
    row = ctx(props={"plan": "pro"}, revenue="2.5")
    table = read_arrow(next(arrow_events.messages([row])))
    doc = orjson.loads(ArrowBatch(table).payload())
    assert doc["ts"] == ms_to_text(TS) and doc["received_at"] == ms_to_text(RECEIVED)
    assert doc["props"] == {"plan": "pro"} and doc["revenue"] == "2.5000"
    assert doc["event_id"] == row.row["event_id"]

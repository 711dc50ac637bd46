"""ServerStore (clickhouse-driver) builds the same native columns from JSON rows and from
Arrow tables. No server runs here: the driver call is captured."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import pyarrow as pa

from sinks.store import ServerStore

COLUMNS = [("event_id", "UUID"), ("site_id", "LowCardinality(String)"),
           ("ts", "DateTime64(3, 'UTC')"), ("revenue", "Decimal(18, 4)"),
           ("session_seq", "UInt32"), ("props", "Map(LowCardinality(String), String)")]
ID = "2f45e678-309d-4b79-965e-da32dae44550"


def store() -> tuple[ServerStore, list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []
    s = ServerStore.__new__(ServerStore)
    s._lock = threading.Lock()
    s.__dict__["_column_cache"] = {"db.events": COLUMNS}

    def call(sql: str, **kw: Any) -> None:
        calls.append({"sql": sql, **kw})

    s._call = call  # type: ignore[method-assign]
    return s, calls


def test_json_and_arrow_rows_become_the_same_columns() -> None:
    row = {"event_id": ID, "site_id": "s", "ts": "2026-11-23 13:15:30.691", "revenue": "49.9",
           "session_seq": 2, "props": {"plan": "pro"}}
    json_store, json_calls = store()
    json_store.insert_json_rows("db.events", [orjson.dumps(row)], "tok")
    arrow_store, arrow_calls = store()
    arrow_store.insert_arrow("db.events", pa.table({
        "event_id": [ID], "site_id": pa.array(["s"]).dictionary_encode(),
        "ts": pa.array(["2026-11-23 13:15:30.691"]).cast(pa.timestamp("ms"))
        .cast(pa.timestamp("ms", "UTC")),
        "revenue": pa.array([Decimal("49.9")], pa.decimal128(18, 4)),
        "session_seq": pa.array([2], pa.int64()),
        "props": pa.array([[("plan", "pro")]], pa.map_(pa.string(), pa.string()))}), "tok")
    want = [[UUID(ID)], ["s"], [datetime(2026, 11, 23, 13, 15, 30, 691000, UTC)],
            [Decimal("49.9")], [2], [{"plan": "pro"}]]
    for calls in (json_calls, arrow_calls):
        assert calls[0]["params"] == want
        assert calls[0]["settings"] == {"optimize_on_insert": 0,
                                        "insert_deduplication_token": "tok"}
        assert calls[0]["sql"].startswith("INSERT INTO db.events (`event_id`, `site_id`")


def test_a_column_the_arrow_data_lacks_gets_the_type_default() -> None:
    s, calls = store()
    s.insert_arrow("db.events", pa.table({"event_id": [ID]}))
    assert calls[0]["params"][1:] == [[""], [datetime.fromtimestamp(0, UTC)], [Decimal(0)],
                                      [0], [{}]]

"""Enriched events as Arrow IPC stream messages, built column by column.

The sink inserts Arrow at about 1.7-2.5 times the rows per CPU-second of NDJSON
(bench/store_bench.py): ClickHouse takes whole typed columns instead of parsing text. The
worker pays for it: there is no Python call per value, but pyarrow converts every value
(~40-80 ns each, 41 per row), where orjson writes a whole row in ~1.5 µs; bench/README.md
has the figures. The rows are transposed once (one `itemgetter` call per row), the plain
text columns are one `pa.array` call, every other column one call with its known type:
LowCardinality columns as dictionaries, times as epoch-ms timestamps, revenue as integers
scaled by 10^4 viewed as decimal128(18, 4), props as a map from flat key and value lists.

Values are what the NDJSON rows make of them in ClickHouse: a row without a column, or
with None in it, gets the value the JSON insert gives a missing field (the column's
default), and revenue digits past the fourth decimal are cut as ClickHouse's parser cuts
them (toward zero). tests/integration/test_events_formats.py holds both to the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from itertools import accumulate, chain
from operator import itemgetter
from typing import Any

import pyarrow as pa

from streams.pipeline import Ctx

_TEXT = pa.string()
_DICT = pa.dictionary(pa.int32(), pa.string())
_TIME = pa.timestamp("ms", "UTC")
_REVENUE = pa.decimal128(18, 4)
_PROPS = pa.map_(pa.string(), pa.string())
_EMPTY_TEXT = pa.array([], pa.string())
REVENUE_SCALE = 10_000
_REVENUE_LIMIT = 10**18

#: the events table's columns (sinks/migrations/0001_events.sql), in its order: name, Arrow
#: type, and the value a missing field gets (the JSON insert's default for the column)
COLUMNS: tuple[tuple[str, pa.DataType, Any], ...] = (
    ("event_id", _TEXT, ""), ("site_id", _DICT, ""), ("type", _DICT, ""), ("name", _DICT, ""),
    ("ts", _TIME, 0), ("received_at", _TIME, 0), ("visitor_id", _TEXT, ""),
    ("user_id", _TEXT, ""), ("session_id", _TEXT, ""), ("session_seq", pa.uint32(), 0),
    ("url", _TEXT, ""), ("host", _DICT, ""), ("path", _TEXT, ""), ("title", _TEXT, ""),
    ("referrer", _TEXT, ""), ("referrer_host", _DICT, ""), ("referrer_medium", _DICT, ""),
    ("referrer_source", _DICT, ""), ("search_term", _TEXT, ""), ("utm_source", _DICT, ""),
    ("utm_medium", _DICT, ""), ("utm_campaign", _DICT, ""), ("utm_term", _TEXT, ""),
    ("utm_content", _TEXT, ""), ("click_id_type", _DICT, ""), ("source", _DICT, ""),
    ("medium", _DICT, ""), ("channel", _DICT, ""), ("revenue", _REVENUE, "0"),
    ("currency", _DICT, ""), ("props", _PROPS, {}), ("screen", _DICT, ""),
    ("lang", _DICT, ""), ("browser", _DICT, ""), ("browser_version", _DICT, ""),
    ("os", _DICT, ""), ("os_version", _DICT, ""), ("device_type", _DICT, ""),
    ("is_bot", pa.uint8(), 0), ("country", _DICT, ""), ("region", _DICT, ""),
    ("city", _DICT, ""), ("contract_version", pa.uint8(), 1),
)
SCHEMA = pa.schema([pa.field(name, kind, nullable=False) for name, kind, _ in COLUMNS])
#: where each column's values are in a row: event time as epoch ms (the row's `ts` is text);
#: the receive time comes from the envelope
_KEYS = tuple("_ts_ms" if name == "ts" else name for name, _, _ in COLUMNS
              if name != "received_at")
_DEFAULTS = tuple(default for name, _, default in COLUMNS if name != "received_at")
_ROW_VALUES = itemgetter(*_KEYS)
#: positions of the plain text columns: converted in one call (one array, sliced)
_TEXT_AT = tuple(i for i, (_, kind, _) in enumerate(COLUMNS) if kind == _TEXT)
_RECEIVED = next(i for i, (name, _, _) in enumerate(COLUMNS) if name == "received_at")

_IPC_OPTIONS = pa.ipc.IpcWriteOptions(use_threads=False)
#: larger messages are split (the NDJSON limit: well inside a producer batch)
MAX_MESSAGE_BYTES = 256 * 1024


def record_batch(ctxs: Sequence[Ctx]) -> pa.RecordBatch:
    """The accepted events of `ctxs` (rows complete after the steps) as one record batch."""
    rows = [c.row for c in ctxs]
    try:
        columns: list[Sequence[Any]] = list(zip(*map(_ROW_VALUES, rows), strict=True))
    except KeyError:  # a row without some column: the default for it
        columns = [[r.get(k, d) for r in rows] for k, d in zip(_KEYS, _DEFAULTS, strict=True)]
    if not rows:
        columns = [() for _ in _KEYS]
    columns.insert(_RECEIVED, [c.envelope["received_at"] for c in ctxs])
    arrays = _texts(columns, len(rows))
    for i, (_, kind, default) in enumerate(COLUMNS):
        if arrays[i] is None:
            arrays[i] = _array(columns[i], kind, default)
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def _texts(columns: list[Sequence[Any]], n: int) -> list[pa.Array | None]:
    """The plain text columns, slices of one array (a None in them: converted alone)."""
    arrays: list[pa.Array | None] = [None] * len(COLUMNS)
    flat = pa.array(list(chain.from_iterable(columns[i] for i in _TEXT_AT)), _TEXT)
    if flat.null_count:
        return arrays
    for k, i in enumerate(_TEXT_AT):
        arrays[i] = flat.slice(k * n, n)
    return arrays


def _array(values: Sequence[Any], kind: pa.DataType, default: Any) -> pa.Array:
    if kind == _REVENUE:
        return _revenue(values)
    if kind == _PROPS:
        return _props(values)
    arr = pa.array(values, kind)
    if arr.null_count:  # None in a row: the JSON insert's default, never a null
        arr = pa.array([default if v is None else v for v in values], kind)
    return arr


def _revenue(values: Sequence[Any]) -> pa.Array:
    """Decimal text -> decimal128(18, 4) from scaled integers (no Decimal per row)."""
    if values.count("0") == len(values):  # most events: zeros, without a Python loop
        return pa.Array.from_buffers(_REVENUE, len(values),
                                     [None, pa.py_buffer(bytes(16 * len(values)))])
    scaled = [0 if v == "0" or v is None else _scaled(v) for v in values]
    return pa.array(scaled, pa.int64()).cast(pa.decimal128(19, 0)).view(_REVENUE)


def _scaled(value: Any) -> int:
    """Amount * 10^4, digits past the fourth decimal cut toward zero (as ClickHouse parses
    text into Decimal(18, 4))."""
    scaled = int(Decimal(value if isinstance(value, str) else str(value)) * REVENUE_SCALE)
    if not -_REVENUE_LIMIT < scaled < _REVENUE_LIMIT:
        raise ValueError(f"revenue {value} does not fit Decimal(18, 4)")
    return scaled


def _props(values: Sequence[Any]) -> pa.Array:
    """dicts -> map<string, string> from flat key and value lists (empty: no loop)."""
    maps = values if all(values) or not any(values) else [v or {} for v in values]
    if not any(maps):
        offsets = pa.py_buffer(bytes(4 * (len(maps) + 1)))
        return pa.MapArray.from_arrays(pa.Array.from_buffers(pa.int32(), len(maps) + 1,
                                                             [None, offsets]),
                                       _EMPTY_TEXT, _EMPTY_TEXT, type=_PROPS)
    offsets = pa.array(accumulate(map(len, maps), initial=0), pa.int32())
    keys = pa.array([k for m in maps for k in m], _TEXT)
    items = pa.array([v for m in maps for v in m.values()], _TEXT)
    if items.null_count:
        items = pa.array(["" if v is None else v for m in maps for v in m.values()], _TEXT)
    return pa.MapArray.from_arrays(offsets, keys, items, type=_PROPS)


def ipc_message(batch: pa.RecordBatch) -> bytes:
    """One Arrow IPC stream (schema, dictionaries, the batch): one Kafka message."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=_IPC_OPTIONS) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def messages(ctxs: Sequence[Ctx], max_bytes: int = MAX_MESSAGE_BYTES) -> Iterator[bytes]:
    """The events as IPC messages of at most max_bytes (a single larger row alone). The
    columns are built once; a message is a slice of them (with whole dictionaries)."""
    batch = record_batch(ctxs)
    pieces = batch.nbytes // max_bytes + 1  # Arrow's size: a little under the message's
    step = -(-batch.num_rows // pieces) if batch.num_rows else 1
    for start in range(0, max(batch.num_rows, 1), step):
        yield from _fitted(batch.slice(start, step), max_bytes)


def _fitted(batch: pa.RecordBatch, max_bytes: int) -> Iterator[bytes]:
    data = ipc_message(batch)
    if len(data) <= max_bytes or batch.num_rows < 2:
        yield data
        return
    half = batch.num_rows // 2
    yield from _fitted(batch.slice(0, half), max_bytes)
    yield from _fitted(batch.slice(half), max_bytes)

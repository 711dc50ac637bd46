"""What the sink buffers and inserts: rows of one table, as NDJSON lines or as Arrow.

A Kafka message holds NDJSON (one row per line) or, from producers that send columns, an
Arrow IPC stream (a schema and record batches; LowCardinality columns dictionary-encoded).
Arrow costs the store a fraction of what parsing JSON does (bench/store_bench.py), so the
sink takes both. Both kinds support what the writer needs: a length, halves for bisecting
a batch ClickHouse rejects, and a single row's payload for the dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import orjson

from schemas.timefmt import dt_to_ms, ms_to_text
from streams import ndjson

if TYPE_CHECKING:
    import pyarrow as pa

    from sinks.store import Store

#: An Arrow IPC stream starts with the continuation marker; NDJSON starts with "{".
ARROW_STREAM_MARKER = b"\xff\xff\xff\xff"


class Batch(Protocol):
    def __len__(self) -> int: ...

    def halves(self) -> tuple[Batch, Batch]: ...

    def payload(self) -> bytes:
        """The row of a one-row batch, as JSON (for the dead letter)."""
        ...

    def insert(self, store: Store, table: str, token: str | None) -> None: ...


@dataclass(frozen=True)
class JsonBatch:
    rows: list[bytes]

    def __len__(self) -> int:
        return len(self.rows)

    def halves(self) -> tuple[Batch, Batch]:
        mid = len(self.rows) // 2
        return JsonBatch(self.rows[:mid]), JsonBatch(self.rows[mid:])

    def payload(self) -> bytes:
        return self.rows[0]

    def insert(self, store: Store, table: str, token: str | None) -> None:
        store.insert_json_rows(table, self.rows, token)


@dataclass(frozen=True)
class ArrowBatch:
    data: pa.Table

    def __len__(self) -> int:
        return self.data.num_rows

    def halves(self) -> tuple[Batch, Batch]:
        mid = self.data.num_rows // 2
        return ArrowBatch(self.data.slice(0, mid)), ArrowBatch(self.data.slice(mid))

    def payload(self) -> bytes:
        """The row as its NDJSON row would read: times as ClickHouse text, maps as
        objects (amounts as text)."""
        import pyarrow as pa

        row = self.data.slice(0, 1).to_pylist()[0]
        for field in self.data.schema:
            value = row[field.name]
            if isinstance(value, datetime):
                row[field.name] = ms_to_text(dt_to_ms(value))
            elif value is not None and pa.types.is_map(field.type):
                row[field.name] = {str(k): v for k, v in value}
        return orjson.dumps(row, default=str)

    def insert(self, store: Store, table: str, token: str | None) -> None:
        store.insert_arrow(table, self.data, token)


def is_arrow(value: bytes) -> bool:
    return value.startswith(ARROW_STREAM_MARKER)


def decode(values: list[bytes]) -> tuple[list[bytes], list[pa.Table]]:
    """Kafka message values -> NDJSON rows and Arrow tables (empty values skipped). A value
    that looks like Arrow but does not read as Arrow is kept as one row: ClickHouse rejects
    it, and the writer dead-letters it with the reason, as any unparsable row."""
    rows: list[bytes] = []
    tables: list[pa.Table] = []
    for value in values:
        if not value:
            continue
        if is_arrow(value):
            try:
                tables.append(read_arrow(value))
            except Exception:  # pyarrow raises ArrowInvalid and friends
                rows.append(value)
        else:
            rows.extend(ndjson.split(value))
    return rows, tables


def read_arrow(value: bytes) -> pa.Table:
    import pyarrow as pa

    return pa.ipc.open_stream(value).read_all()


def concat(tables: list[pa.Table]) -> list[pa.Table]:
    """As few tables as the messages allow: one (a column missing in some messages becomes
    nulls there), or one per message when their columns' types differ."""
    import pyarrow as pa

    if len(tables) == 1:
        return tables
    try:
        return [pa.concat_tables(tables, promote_options="default")]
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return tables


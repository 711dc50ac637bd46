"""Buffered, batched writes to ClickHouse: `write(table, rows)` (NDJSON rows, and/or Arrow
tables), flush on size / interval / shutdown, retries with jittered exponential backoff, and
bad rows isolated into `invalid_events` instead of failing the whole batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from clickstream import __version__
from schemas.deadletter import dead_letter
from schemas.timefmt import ms_to_text, now_ms
from sinks.batches import ArrowBatch, Batch, JsonBatch, concat
from sinks.metrics import BATCH_ROWS, DEAD_LETTERS, INSERT_SECONDS, RETRIES, ROWS_WRITTEN
from sinks.store import Store, StoreError

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


class Backpressure(Exception):
    """The buffer is full while ClickHouse is not taking rows: stop reading for a while."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"sink buffer full; retry after {retry_after:.1f} s")
        self.retry_after = retry_after


@dataclass
class _Buffer:
    rows: list[bytes] = field(default_factory=list)  # NDJSON rows
    tables: list[pa.Table] = field(default_factory=list)  # Arrow rows
    arrow_rows: int = 0
    origins: list[str] = field(default_factory=list)  # "topic/partition/first-last" ranges
    started: float | None = None  # monotonic time of the first row since the last flush

    def __len__(self) -> int:
        return len(self.rows) + self.arrow_rows

    def batches(self, token: str | None) -> list[tuple[Batch, str | None]]:
        """What to insert, each with its dedup token (one per kind of rows: derived from
        the buffer's token when the buffer holds both kinds)."""
        batches: list[Batch] = [JsonBatch(self.rows)] if self.rows else []
        if self.tables:
            batches += [ArrowBatch(t) for t in concat(self.tables)]
        if len(batches) == 1 or not token:
            return [(b, token) for b in batches]
        return [(b, f"{token}-{i}") for i, b in enumerate(batches)]


@dataclass
class BatchWriter:
    """Buffers rows per table and inserts them in batches. A table is due once it has held
    rows for its flush interval (`table_flush_seconds`, else `flush_seconds`): the live
    view's table can flush more often than the large ones."""

    store: Store
    max_rows: int = 50_000
    flush_seconds: float = 1.0
    max_retry_seconds: float = 30.0
    dead_letter_table: str = ""
    stopping: Callable[[], bool] = lambda: False
    table_flush_seconds: dict[str, float] = field(default_factory=dict)
    flushes: dict[str, int] = field(default_factory=dict)  # table -> flushes written
    _buffers: dict[str, _Buffer] = field(default_factory=dict)

    @property
    def buffered(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def write(self, table: str, rows: Sequence[bytes], origin: str = "",
              arrow: Sequence[pa.Table] = ()) -> None:
        """Buffer rows for a table: NDJSON rows and/or Arrow tables. Raises Backpressure
        (buffering nothing) over twice the batch size."""
        if self.buffered >= 2 * self.max_rows:
            raise Backpressure(self.flush_seconds)
        buf = self._buffers.setdefault(table, _Buffer())
        if origin:
            buf.origins.append(origin)
        buf.rows.extend(rows)
        added = len(rows)
        for data in arrow:
            if data.num_rows:
                buf.tables.append(data)
                buf.arrow_rows += data.num_rows
                added += data.num_rows
        if buf.started is None and added:
            buf.started = time.monotonic()

    def holds(self, table: str) -> bool:
        """Whether rows for the table wait in the buffer."""
        buf = self._buffers.get(table)
        return buf is not None and len(buf) > 0

    def _left(self, table: str, buf: _Buffer, now: float) -> float:
        """Seconds until the table is due (<= 0: due)."""
        if buf.started is None:
            return float("inf")
        return self.table_flush_seconds.get(table, self.flush_seconds) - (now - buf.started)

    def due_tables(self) -> list[str]:
        """Tables to flush now: all of them over the batch size, else those whose rows have
        waited their flush interval."""
        if self.buffered >= self.max_rows:
            return [t for t, b in self._buffers.items() if len(b)]
        now = time.monotonic()
        return [t for t, b in self._buffers.items() if self._left(t, b, now) <= 0]

    def due(self) -> bool:
        return bool(self.due_tables())

    def seconds_until_due(self) -> float:
        now = time.monotonic()
        left = min((self._left(t, b, now) for t, b in self._buffers.items()),
                   default=float("inf"))
        return self.flush_seconds if left == float("inf") else max(0.0, left)

    async def flush(self, tables: Sequence[str] | None = None) -> int:
        """Insert what is buffered (for the given tables, else all); returns rows written.
        Retries until ClickHouse takes the rows (or the service stops, raising StoreError
        so offsets are not committed)."""
        written = 0
        for table in list(self._buffers) if tables is None else tables:
            buf = self._buffers.get(table)
            if buf is None:
                continue
            token = hashlib.sha1("|".join(buf.origins).encode()).hexdigest() \
                if buf.origins else None
            for batch, batch_token in buf.batches(token):
                written += await self._insert_with_retries(table, batch, batch_token)
            del self._buffers[table]
            self.flushes[table] = self.flushes.get(table, 0) + 1
        return written

    async def _insert_with_retries(self, table: str, batch: Batch, token: str | None) -> int:
        delay = 0.2
        while True:
            try:
                return await self._insert(table, batch, token)
            except StoreError as exc:
                if not _retryable(exc):
                    return await self._isolate_bad_rows(table, batch, exc)
                RETRIES.labels(table).inc()
                if self.stopping():
                    raise
                wait = min(self.max_retry_seconds, delay) * random.uniform(0.5, 1.0)
                log.warning("insert into %s failed (%s); retrying in %.1f s", table, exc, wait)
                await asyncio.sleep(wait)
                delay *= 2

    async def _insert(self, table: str, batch: Batch, token: str | None) -> int:
        t0 = time.perf_counter()
        await asyncio.to_thread(batch.insert, self.store, table, token)
        INSERT_SECONDS.labels(table).observe(time.perf_counter() - t0)
        BATCH_ROWS.labels(table).observe(len(batch))
        ROWS_WRITTEN.labels(table).inc(len(batch))
        return len(batch)

    async def _isolate_bad_rows(self, table: str, batch: Batch, exc: StoreError) -> int:
        """Bisect a rejected batch: good rows are written, bad ones dead-lettered."""
        if len(batch) == 1:
            await self._dead_letter(table, batch.payload(), str(exc))
            return 0
        written = 0
        for half in batch.halves():
            try:
                written += await self._insert(table, half, None)
            except StoreError as sub:
                if _retryable(sub):
                    raise
                written += await self._isolate_bad_rows(table, half, sub)
        return written

    async def _dead_letter(self, table: str, row: bytes, reason: str) -> None:
        DEAD_LETTERS.labels(table).inc()
        log.warning("row rejected by ClickHouse for %s: %s", table, reason[:300])
        if not self.dead_letter_table or table == self.dead_letter_table:
            return
        stamp = ms_to_text(now_ms())
        record = dead_letter(
            processor="sink", version=__version__, step=f"insert:{table}",
            reason=f"clickhouse_rejected: {reason}", payload=row, received_at=stamp,
            failed_at=stamp, origin=f"sink/{table}/{hashlib.sha1(row).hexdigest()}",
        )
        await self._insert(self.dead_letter_table, JsonBatch([orjson.dumps(record)]), None)


def _retryable(exc: StoreError) -> bool:
    """Data errors (bad values) are not worth retrying; everything else is."""
    text = str(exc)
    data_errors = ("CANNOT_PARSE", "CANNOT_READ", "TYPE_MISMATCH", "INCORRECT_DATA",
                   "ILLEGAL_TYPE", "INCORRECT_JSON", "ATTEMPT_TO_READ_AFTER_EOF",
                   "UNKNOWN_IDENTIFIER", "VALUE_IS_OUT_OF_RANGE", "CANNOT_INSERT_NULL",
                   "TOO_LARGE_STRING_SIZE", "Cannot parse")
    return not any(marker in text for marker in data_errors)

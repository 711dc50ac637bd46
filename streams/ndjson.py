"""Output records as newline-delimited JSON: many rows per Kafka message.

Every output message costs the worker about as much CPU as enriching an event, so rows of
one batch are packed per source partition into messages of at most `max_bytes`. Consumers
(the sink) split a message on newlines; orjson never writes a raw newline inside a row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

MAX_MESSAGE_BYTES = 256 * 1024


def chunks(rows: Iterable[bytes], max_bytes: int = MAX_MESSAGE_BYTES) -> Iterator[bytes]:
    """Join rows with newlines into messages of at most max_bytes (a larger row alone)."""
    batch: list[bytes] = []
    size = 0
    for row in rows:
        if batch and size + len(row) + 1 > max_bytes:
            yield b"\n".join(batch)
            batch, size = [], 0
        batch.append(row)
        size += len(row) + 1
    if batch:
        yield b"\n".join(batch)


def split(value: bytes) -> list[bytes]:
    """A message's rows (one row for a plain JSON message)."""
    return [row for row in value.split(b"\n") if row]

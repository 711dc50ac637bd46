"""The events topic's messages for one source partition's accepted events of a batch.

CLICKSTREAM_WORKER_EVENTS_FORMAT picks the encoding: Arrow IPC streams (streams/
arrow_events.py) or NDJSON rows (streams/ndjson.py). The sink reads both
(sinks/batches.py), so the setting can change while rows of the other kind wait in Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

import orjson

from streams import arrow_events, ndjson
from streams.pipeline import Ctx

log = logging.getLogger(__name__)

Encoder = Callable[[Sequence[Ctx]], Iterator[bytes]]


def ndjson_messages(ctxs: Sequence[Ctx]) -> Iterator[bytes]:
    """The rows as NDJSON, many per message (the event time in ms is not a column)."""
    rows = []
    for ctx in ctxs:
        row = ctx.row
        row.pop("_ts_ms", None)
        rows.append(orjson.dumps(row))
    return ndjson.chunks(rows)


def arrow_messages(ctxs: Sequence[Ctx]) -> Iterator[bytes]:
    """The rows as Arrow IPC streams; as NDJSON should a value not fit its column's type
    (the sink takes either, and ClickHouse then judges the row as it would any)."""
    try:
        return iter(list(arrow_events.messages(ctxs)))
    except (TypeError, ValueError, ArithmeticError) as exc:  # ArrowInvalid is a ValueError
        log.warning("events as NDJSON: no Arrow columns for them (%s)", exc)
        return ndjson_messages(ctxs)


def encoder(events_format: str) -> Encoder:
    return arrow_messages if events_format == "arrow" else ndjson_messages

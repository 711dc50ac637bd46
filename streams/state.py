"""Per-visitor state in a Faust table, written once per visitor per batch.

Faust normally finds the changelog partition from "the current event"; in a batch there is
no single current event, so we write the store and the changelog record ourselves, to the
partition the visitor's events came from (the raw topic is keyed by site + visitor, so a
visitor always lives in one partition, and the changelog partition matches it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import faust
import orjson
from faust.types import TP


class VisitorStateTable:
    """Visitor key (site|visitor) -> JSON state (see streams/sessionize.py)."""

    def __init__(self, app: faust.App, name: str, partitions: int) -> None:
        self.table = app.Table(name, default=None, key_type=bytes,
                               value_type=bytes, partitions=partitions,
                               help="Per-visitor state: sessions, recent event ids, counts.")

    def get(self, key: bytes) -> dict[str, Any] | None:
        raw = self.table.data.get(key)
        return orjson.loads(raw) if raw else None

    async def put_many(self, items: Iterable[tuple[bytes, int, dict[str, Any]]]) -> int:
        """Store states locally and write their changelog records straight through the
        producer (Faust's 100-message send buffer would warn on every batch)."""
        send = self.table.app.producer.send
        topic = self.table.changelog_topic.get_topic_name()
        n = 0
        for key, partition, state in items:
            value = orjson.dumps(state)
            self.table.data[key] = value
            fut = await send(topic, key, value, partition, None, None)
            fut.add_done_callback(self._persisted)
            n += 1
        return n

    def _persisted(self, fut: asyncio.Future[Any]) -> None:
        """Remember the changelog offset (RocksDB stores skip it on recovery)."""
        if not fut.cancelled() and fut.exception() is None:
            meta = fut.result()
            self.table.data.set_persisted_offset(TP(meta.topic, meta.partition), meta.offset)

    def summary(self) -> dict[str, int]:
        """Visitors known and events counted (for `clickstream status` and tests)."""
        visitors = events = 0
        for raw in list(self.table.data.values()):
            if raw:
                visitors += 1
                events += int(orjson.loads(raw)["n"])
        return {"visitors": visitors, "events": events}

"""Per-visitor state in a Faust table, written once per visitor per batch.

Faust normally finds the changelog partition from "the current event"; in a batch there is
no single current event, so we write the store and the changelog record ourselves, to the
partition the visitor's events came from (the raw topic is keyed by site + visitor, so a
visitor always lives in one partition, and the changelog partition matches it).
"""

from __future__ import annotations

from typing import Any

import faust
import orjson


class VisitorStateTable:
    """Visitor key (site|visitor) -> JSON state (see streams/sessionize.py)."""

    def __init__(self, app: faust.App, name: str, partitions: int) -> None:
        self.table = app.Table(name, default=None, key_type=bytes,
                               value_type=bytes, partitions=partitions,
                               help="Per-visitor state: sessions, recent event ids, counts.")

    def get(self, key: bytes) -> dict[str, Any] | None:
        raw = self.table.data.get(key)
        return orjson.loads(raw) if raw else None

    def put(self, key: bytes, partition: int, state: dict[str, Any]) -> None:
        value = orjson.dumps(state)
        self.table.data[key] = value
        self.table.send_changelog(partition, key, value)

    def summary(self) -> dict[str, int]:
        """Visitors known and events counted (for `clickstream status` and tests)."""
        visitors = events = 0
        for raw in list(self.table.data.values()):
            if raw:
                visitors += 1
                events += int(orjson.loads(raw)["n"])
        return {"visitors": visitors, "events": events}

"""Per-visitor state in a Faust table, written once per visitor per batch.

Faust normally finds the changelog partition from "the current event"; in a batch there is
no single current event, so we write the store and the changelog record ourselves, to the
partition the visitor's events came from (the raw topic is keyed by site + visitor, so a
visitor always lives in one partition, and the changelog partition matches it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faust
import orjson

from streams.pipeline import Ctx


class VisitorStateTable:
    """Visitor key (site|visitor) -> {"first": ms, "last": ms, "n": events}."""

    def __init__(self, app: faust.App, name: str, partitions: int) -> None:
        self.table = app.Table(name, default=None, key_type=bytes,
                               value_type=bytes, partitions=partitions,
                               help="Per-visitor state: first/last seen, event count.")

    def get(self, key: bytes) -> dict[str, Any] | None:
        raw = self.table.data.get(key)
        return orjson.loads(raw) if raw else None

    def update(self, ctxs: Sequence[Ctx]) -> int:
        """Fold a batch into the table; returns the number of state writes."""
        touched: dict[bytes, tuple[int, dict[str, Any]]] = {}
        for ctx in ctxs:
            if not ctx.ok:
                continue
            key = f"{ctx.row['site_id']}|{ctx.row['visitor_id']}".encode()
            entry = touched.get(key)
            state = entry[1] if entry else (self.get(key) or {"first": 0, "last": 0, "n": 0})
            ts = ctx.row.get("_ts_ms") or 0
            state["n"] += 1
            state["first"] = min(state["first"] or ts, ts)
            state["last"] = max(state["last"], ts)
            touched[key] = (ctx.partition, state)
        for key, (partition, state) in touched.items():
            value = orjson.dumps(state)
            self.table.data[key] = value
            self.table.send_changelog(partition, key, value)
        return len(touched)

    def summary(self) -> dict[str, int]:
        visitors = events = 0
        for raw in list(self.table.data.values()):
            if raw:
                visitors += 1
                events += int(orjson.loads(raw)["n"])
        return {"visitors": visitors, "events": events}

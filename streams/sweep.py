"""The visitor-state sweep: walks the partitions this worker owns a slice at a time (a Faust
timer calls `step`) and trims or deletes what can no longer change any output
(streams/expiry.py), through the changelog like any state write (deletes as tombstones).

Only partitions with a watermark are swept: the watermark is the newest receive time this
worker processed there, so a partition just taken over waits for its first batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import orjson

from streams.expiry import Retention, trim
from streams.state import PartitionWalk, VisitorStateTable

SLICE = 1_000  # states looked at per partition and step


class VisitorSweep:
    def __init__(self, table: VisitorStateTable, rules: Retention,
                 watermarks: Mapping[int, int], busy: Callable[[bytes], bool],
                 slice_size: int = SLICE) -> None:
        self.table = table
        self.rules = rules
        self.watermarks = watermarks
        self.busy = busy  # keys the current batch holds (it writes them itself)
        self.slice_size = slice_size
        self._walks: dict[int, PartitionWalk] = {}
        self.trimmed = self.deleted = self.passes = 0

    async def step(self, owned: Iterable[int]) -> int:
        """One slice of every owned partition; returns how many states were written."""
        owned = set(owned)
        changes: list[tuple[bytes, int, dict[str, Any] | None]] = []
        for p in owned:
            watermark = self.watermarks.get(p)
            if watermark is None:
                continue
            walk = self._walks.get(p)
            if walk is None:
                walk = self._walks[p] = PartitionWalk(self.table.table.data, p)
            chunk = walk.next(self.slice_size)
            if not chunk:  # a pass ended: the next step starts the next one
                del self._walks[p]
                self.passes += 1
                continue
            changes += self._expired(chunk, p, watermark)
        for p in list(self._walks):  # revoked since: forget the walk
            if p not in owned:
                del self._walks[p]
        return await self.table.put_many(changes) if changes else 0

    def _expired(self, chunk: list[tuple[bytes, bytes]], p: int, watermark: int
                 ) -> Iterator[tuple[bytes, int, dict[str, Any] | None]]:
        for key, raw in chunk:
            if not raw or self.busy(key):
                continue
            state = orjson.loads(raw)
            out = trim(state, watermark, self.rules)
            if out is state:
                continue
            if out is None:
                self.deleted += 1
            else:
                self.trimmed += 1
            yield key, p, out

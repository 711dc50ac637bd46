"""Window states in a Faust table with a changelog (survives restarts and rebalances).

Keys are `partition|site|window_start_ms` (bytes), values the JSON of a WindowState, plus
one `partition|~` record per partition with what has been evicted. Like the visitor state
(streams/state.py) a state is written to the changelog partition its events came from,
straight through the producer, once per batch; decoded states are cached per partition and
the cache is dropped on every rebalance (Faust then restores the table from the changelog).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import faust
import orjson

from streams.state import delete_in_partition, put_in_partition, remember_persisted
from streams.traffic.windows import WindowState

META = "~"


class Partition:
    """What one worker holds of one source partition: its windows, decoded."""

    def __init__(self) -> None:
        self.windows: dict[tuple[str, int], WindowState] = {}
        self.session_window: dict[str, tuple[str, int]] = {}  # session id -> its window
        self.watermark = 0          # latest receive time seen (collector clock)
        self.evicted_before = 0     # windows older than this are closed for good

    def index(self, site: str, start: int, state: WindowState) -> None:
        self.windows[(site, start)] = state
        for sid in state.sessions:
            self.session_window[sid] = (site, start)

    def drop(self, site: str, start: int) -> None:
        state = self.windows.pop((site, start))
        for sid in state.sessions:
            self.session_window.pop(sid, None)


class TrafficStateTable:
    def __init__(self, app: faust.App, name: str, partitions: int) -> None:
        self.table = app.Table(name, default=None, key_type=bytes, value_type=bytes,
                               partitions=partitions,
                               help="Traffic windows per source partition, site and minute.")
        self.parts: dict[int, Partition] = {}

        async def forget(*_args: Any, **_kwargs: Any) -> None:
            self.parts.clear()

        app.on_partitions_revoked.connect(forget)
        app.on_partitions_assigned.connect(forget)

    def partition(self, p: int) -> Partition:
        """This partition's windows, loaded from the table on first use."""
        part = self.parts.get(p)
        if part is None:
            part = self.parts[p] = Partition()
            prefix = f"{p}|".encode()
            for key, raw in list(self.table.data.items()):
                if not raw or not key.startswith(prefix):
                    continue
                rest = key[len(prefix):].decode()
                if rest == META:
                    meta = orjson.loads(raw)
                    part.evicted_before = meta["evicted_before"]
                    part.watermark = max(part.watermark, meta["watermark"])
                    continue
                site, _, start = rest.rpartition("|")
                state = WindowState.load(orjson.loads(raw))
                part.index(site, int(start), state)
                part.watermark = max(part.watermark, state.received)
        return part

    async def write(self, items: Iterable[tuple[int, str, int | None, Any]]) -> None:
        """(partition, site, window start or None for the meta record, value or None to
        delete): store locally, send to the changelog and wait until Kafka has them all."""
        send = self.table.app.producer.send
        topic = self.table.changelog_topic.get_topic_name()
        futures = []
        persisted = remember_persisted(self.table.data)
        for p, site, start, value in items:
            key = f"{p}|{META}".encode() if start is None else f"{p}|{site}|{start}".encode()
            raw = None if value is None else orjson.dumps(value)
            if raw is None:
                delete_in_partition(self.table.data, key, p)
            else:
                put_in_partition(self.table.data, key, raw, p)
            fut = await send(topic, key, raw, p, None, None)
            fut.add_done_callback(persisted)
            futures.append(fut)
        if futures:
            await asyncio.gather(*futures)

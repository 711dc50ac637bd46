"""Window counters and bounce trackers in a Faust table with a changelog (survives restarts
and rebalances).

Keys (bytes), all starting with the source partition:
- `p|site|window_start_ms`: the counters of a window (WindowState JSON);
- `p|~t|segment`: bounce trackers changed by one batch (streams/traffic/trackerlog.py);
- `p|~`: what has been evicted.
Like the visitor state (streams/state.py) records are written to the changelog partition
their events came from, straight through the producer, once per batch; decoded states are
cached per partition and the cache is dropped on every rebalance (Faust then restores the
table from the changelog).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import faust
import orjson

from streams.state import delete_in_partition, put_in_partition, remember_persisted
from streams.stores import table_options
from streams.traffic.bounces import Tracker
from streams.traffic.trackerlog import SEGMENT, TrackerLog
from streams.traffic.windows import WindowState

META = "~"


def window_key(p: int, site: str, start: int) -> bytes:
    return f"{p}|{site}|{start}".encode()


def meta_key(p: int) -> bytes:
    return f"{p}|{META}".encode()


class Partition:
    """What one worker holds of one source partition, decoded."""

    def __init__(self) -> None:
        self.windows: dict[tuple[str, int], WindowState] = {}
        self.sessions: dict[str, Tracker] = {}  # session id -> tracker (bounces only)
        self.log = TrackerLog()
        self.watermark = 0          # latest receive time seen (collector clock)
        self.evicted_before = 0     # windows older than this are closed for good
        self.unsaved: list[str] = []  # trackers read from old-format states: store them
        self.garbage: list[int] = []  # stored segments no longer needed: delete them
        self._segments: list[tuple[int, dict[str, list[Any]]]] = []

    def load(self, rest: str, raw: bytes) -> None:
        """Decode one stored record (key without the partition prefix); `loaded` when all
        are in."""
        data = orjson.loads(raw)
        if rest == META:
            self.evicted_before = data["evicted_before"]
            self.watermark = max(self.watermark, data["watermark"])
        elif rest.startswith(SEGMENT):
            self._segments.append((int(rest[len(SEGMENT):]), data))
        else:
            site, _, start_text = rest.rpartition("|")
            start = int(start_text)
            state = WindowState.load(data)
            self.windows[(site, start)] = state
            self.watermark = max(self.watermark, state.received)
            for sid, old in (data.get("s") or {}).items():  # format before 0007
                tracker = Tracker.from_old_state(site, start, state.offset, old)
                if tracker is not None:
                    self.sessions[sid] = tracker
                    self.unsaved.append(sid)

    def loaded(self) -> None:
        """Apply the tracker segments in order; drop sessions of windows that are gone (an
        eviction cut short: they can change nothing)."""
        for seq, entries in sorted(self._segments, key=lambda s: s[0]):
            self.garbage += self.log.apply(seq, entries, self.sessions)
        self._segments = []
        stale = [sid for sid, t in self.sessions.items()
                 if (t.site, t.start) not in self.windows]
        for sid in stale:
            del self.sessions[sid]
        stale += [sid for sid, where in self.log.engaged.items()
                  if where not in self.windows]
        self.garbage += self.log.forget(stale)


class TrafficStateTable:
    def __init__(self, app: faust.App, name: str, partitions: int) -> None:
        self.table = app.Table(name, default=None, key_type=bytes, value_type=bytes,
                               partitions=partitions, options=table_options(),
                               help="Traffic window counters and bounce trackers per source "
                                    "partition.")
        self.parts: dict[int, Partition] = {}

        async def forget(*_args: Any, **_kwargs: Any) -> None:
            self.parts.clear()

        app.on_partitions_revoked.connect(forget)
        app.on_partitions_assigned.connect(forget)

    def partition(self, p: int) -> Partition:
        """This partition's windows and trackers, loaded from the table on first use."""
        part = self.parts.get(p)
        if part is None:
            part = self.parts[p] = Partition()
            prefix = f"{p}|".encode()
            for key, raw in list(self.table.data.items()):
                if raw and key.startswith(prefix):
                    part.load(key[len(prefix):].decode(), raw)
            part.loaded()
        return part

    async def write(self, items: Iterable[tuple[int, bytes, Any]]) -> None:
        """(partition, key, value or None to delete), in order: store locally, send to the
        changelog and wait until Kafka has them all. Records of one partition reach Kafka in
        the order given, so a record that is stored implies every earlier one is."""
        send = self.table.app.producer.send
        topic = self.table.changelog_topic.get_topic_name()
        futures = []
        persisted = remember_persisted(self.table.data)
        for p, key, value in items:
            raw = None if value is None else orjson.dumps(value)
            if raw is None:
                delete_in_partition(self.table.data, key, p)
            else:  # (the stored copy is sent: orjson's larger buffer is freed at once)
                raw = put_in_partition(self.table.data, key, raw, p)
            fut = await send(topic, key, raw, p, None, None)
            fut.add_done_callback(persisted)
            futures.append(fut)
        if futures:
            await asyncio.gather(*futures)

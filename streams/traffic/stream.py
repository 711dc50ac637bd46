"""Real-time traffic in the worker: fold each batch into one-minute windows and emit the
changed rows of `traffic_1m`.

Per batch (see streams/app.py):
1. `fold(ctxs)` after the steps ran: counts every accepted event that is not a bot, not
   internal and not late beyond lateness into its (site, minute, source partition) window.
   An event is applied to a window only if its raw offset is above the window's stored
   offset, so a batch replayed after a crash is not counted twice.
2. `rows()` -> NDJSON on `<prefix>.traffic`, keyed by partition: each changed row carries
   version = the batch's last raw offset of that partition, so in ClickHouse
   (ReplacingMergeTree(version)) a re-emitted row replaces the older one.
3. `commit()` after the outputs are acknowledged and *before* the visitor state is written:
   window states (and evictions) go to the changelog and are awaited. (If the visitor state
   were stored first, a crash in between would make the replayed events duplicates in the
   session step, and they would never reach the windows.)
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import faust
import orjson
from prometheus_client import Counter, Gauge

from schemas.timefmt import ms_to_text
from streams import ndjson
from streams.pipeline import Ctx
from streams.traffic.internal import InternalTraffic
from streams.traffic.table import Partition, TrafficStateTable
from streams.traffic.windows import WINDOW_MS, WindowState, is_late, window_start

COUNTED = Counter("clickstream_worker_traffic_events_total",
                  "Events counted into traffic windows.")
EXCLUDED = Counter("clickstream_worker_traffic_excluded_total",
                   "Events left out of traffic windows, by cause (bot, internal, "
                   "late: arrived after the allowed lateness; replayed: already counted).",
                   ["cause"])
OPEN_WINDOWS = Gauge("clickstream_worker_traffic_open_windows",
                     "Traffic windows held in worker state.")
EVICT_EVERY_S = 5.0


def visitor_hash(site_id: str, visitor_id: str) -> int:
    """64-bit visitor hash stored in traffic_1m.visitors (mergeable exact uniques)."""
    digest = hashlib.blake2b(f"{site_id}|{visitor_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class TrafficWindows:
    def __init__(self, table: TrafficStateTable, *, lateness_ms: int, retention_ms: int,
                 top_n: int, internal: InternalTraffic) -> None:
        self.table = table
        self.lateness_ms = lateness_ms
        self.retention_ms = max(retention_ms, lateness_ms)
        self.top_n = top_n
        self.internal = internal
        self._dirty: dict[tuple[int, str, int], WindowState] = {}
        self._offsets: dict[int, int] = {}
        self._evicted: list[tuple[int, str, int | None, Any]] = []
        self._last_evict = 0.0

    def fold(self, ctxs: Sequence[Ctx]) -> None:
        """Count a batch (call after the pipeline ran, before rows are emitted)."""
        dirty, offsets = self._dirty, self._offsets
        hashes: dict[tuple[str, str], int] = {}
        counted = bots = internal = late = replayed = 0
        for ctx in ctxs:
            if not ctx.ok:
                continue
            p = ctx.partition
            if ctx.offset > offsets.get(p, -1):
                offsets[p] = ctx.offset
            row = ctx.row
            if row["is_bot"]:
                bots += 1
                continue
            site = row["site_id"]
            if self.internal.enabled and self.internal(site, str(ctx.envelope.get("ip") or "")):
                internal += 1
                continue
            part = self.table.partition(p)
            ts, received = row["_ts_ms"], ctx.envelope["received_at"]
            if received > part.watermark:
                part.watermark = received
            start = window_start(ts)
            if is_late(ts, received, self.lateness_ms) or start < part.evicted_before:
                late += 1
                continue
            state = part.windows.get((site, start))
            if state is None:
                state = WindowState()
                part.index(site, start, state)
            if ctx.offset <= state.offset:
                replayed += 1
                continue
            vkey = (site, row["visitor_id"])
            visitor = hashes.get(vkey)
            if visitor is None:
                visitor = hashes[vkey] = visitor_hash(site, row["visitor_id"])
            if received > state.received:
                state.received = received
            sid = row["session_id"]
            if row["session_seq"] == 1 and sid:
                state.add(row, ts, visitor)
                part.session_window[sid] = (site, start)
            else:
                state.add(row, ts, visitor)
                self._session_event(part, p, sid, ts, row["type"], ctx.offset)
            dirty[(p, site, start)] = state
            counted += 1
        COUNTED.inc(counted)
        for cause, n in (("bot", bots), ("internal", internal), ("late", late),
                         ("replayed", replayed)):
            if n:
                EXCLUDED.labels(cause).inc(n)

    def _session_event(self, part: Partition, p: int, sid: str, ts: int, kind: str,
                       offset: int) -> None:
        """A later event of a session: update the session in the window it started in."""
        where = part.session_window.get(sid) if sid else None
        if where is None:
            return  # started in a window that is closed, or its first event was late
        state = part.windows[where]
        if offset <= state.offset:
            return
        state.session_event(sid, ts, kind)
        self._dirty[(p, *where)] = state

    def rows(self) -> dict[int, list[dict[str, Any]]]:
        """Changed traffic_1m rows of this batch, per source partition."""
        out: dict[int, list[dict[str, Any]]] = {}
        for (p, site, start), state in self._dirty.items():
            version = self._offsets[p]
            state.offset = version
            window = ms_to_text(start)
            rows = out.setdefault(p, [])
            for dim, value, m in state.rows(self.top_n):
                row = {"site_id": site, "window_start": window, "kafka_partition": p,
                       "dimension": dim, "value": value, "version": version}
                row.update(m.columns() if m is not None else _ZEROS)
                rows.append(row)
        self._evict()
        return out

    def _evict(self) -> None:
        """Close windows whose sessions can no longer change (every few seconds)."""
        now = time.monotonic()
        if now - self._last_evict < EVICT_EVERY_S:
            return
        self._last_evict = now
        total = 0
        for p, part in list(self.table.parts.items()):
            horizon = window_start(part.watermark - self.retention_ms) - WINDOW_MS
            old = [key for key in part.windows if key[1] < horizon]
            for site, start in old:
                if (p, site, start) in self._dirty:
                    continue
                part.drop(site, start)
                self._evicted.append((p, site, start, None))
            if old and horizon > part.evicted_before:
                part.evicted_before = horizon
                self._evicted.append((p, "", None, {"evicted_before": horizon,
                                                    "watermark": part.watermark}))
            total += len(part.windows)
        OPEN_WINDOWS.set(total)

    async def emit(self, producer: Any, topic: str) -> list[Any]:
        """Send the batch's changed rows (NDJSON, keyed by partition); return the
        delivery futures."""
        deliveries = []
        for p, rows in self.rows().items():
            for chunk in ndjson.chunks(orjson.dumps(r) for r in rows):
                deliveries.append(await producer.send(topic, str(p).encode(), chunk, None,
                                                      None, None))
        return deliveries

    async def commit(self) -> None:
        """Store the batch's window states (after its outputs are acknowledged)."""
        items: list[tuple[int, str, int | None, Any]] = [
            (p, site, start, state.dump()) for (p, site, start), state in self._dirty.items()]
        items += self._evicted
        self._dirty, self._offsets, self._evicted = {}, {}, []
        await self.table.write(items)


_ZEROS = {"events": 0, "pageviews": 0, "conversions": 0, "revenue": "0", "sessions": 0,
          "bounces": 0, "visitors": []}


def create_traffic(app: faust.App, settings: Any) -> TrafficWindows:
    """Build the traffic windows from the worker settings."""
    lateness = settings.traffic_lateness_seconds * 1000
    retention = lateness + settings.session_timeout_minutes * 60_000 + 2 * WINDOW_MS
    return TrafficWindows(
        TrafficStateTable(app, "traffic-windows", settings.topic_partitions),
        lateness_ms=lateness, retention_ms=retention, top_n=settings.traffic_top_n,
        internal=InternalTraffic(settings.traffic_internal_networks))

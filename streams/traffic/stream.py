"""Real-time traffic in the worker: fold each batch into one-minute windows and emit what
changed: counter rows of `traffic_1m` and the new visitor hashes of `traffic_visitors_1m`.

Per batch (see streams/app.py):
1. `fold(ctxs)` after the steps ran: counts every accepted event that is not a bot, not
   internal and not late beyond lateness into its (site, minute, source partition) window.
   An event is counted only if its raw offset is above the window's stored offset, and a
   bounce tracker takes an event only above its own stored offset, so a batch replayed
   after a crash is not counted twice.
2. `emit()`: the visitor hashes not sent before for each window and value, as NDJSON rows
   (`hashes_only`) on `<prefix>.traffic` keyed by partition, for traffic_visitors_1m (an
   AggregatingMergeTree keeps their union: a hash sent twice is harmless). The changed
   counter rows for traffic_1m are computed here too, each with version = the batch's last
   raw offset of that partition, but held back.
3. `commit()` after the outputs are acknowledged and *before* the visitor state is written:
   window counters, then bounce trackers, then evictions go to the changelog and are
   awaited; then the counter rows go to `<prefix>.traffic` (acknowledged before the next
   batch's state is stored). (If the visitor state were stored first, a crash in between
   would make the replayed events duplicates in the session step, and they would never
   reach the windows.)
   - Windows before trackers: a stored tracker implies its window's counters are stored,
     so a replay never takes a bounce back twice (see `_session_event`).
   - Counter rows after the state: every row in Kafka was computed from a stored state, so
     the stored list of values with rows of their own is never behind Kafka, and a value
     that left the top N always gets its zero row (in ClickHouse, ReplacingMergeTree
     (version), the newest row of a key wins). Only the rows of the last batch may be
     lost in a crash; a restored partition writes its newest windows again (`_partition`).
"""

from __future__ import annotations

import asyncio
import hashlib
import operator
import time
from collections.abc import Sequence
from typing import Any

import faust
import orjson
from prometheus_client import Counter, Gauge

from schemas.timefmt import ms_to_text
from streams import ndjson
from streams.pipeline import Ctx
from streams.traffic.bounces import Tracker
from streams.traffic.internal import InternalTraffic
from streams.traffic.table import Partition, TrafficStateTable, meta_key, window_key
from streams.traffic.trackerlog import segment_key
from streams.traffic.windows import DIMENSIONS, WINDOW_MS, WindowState, columns, window_start

COUNTED = Counter("clickstream_worker_traffic_events_total",
                  "Events counted into traffic windows.")
EXCLUDED = Counter("clickstream_worker_traffic_excluded_total",
                   "Events left out of traffic windows, by cause (bot, internal, "
                   "late: arrived after the allowed lateness; replayed: already counted).",
                   ["cause"])
OPEN_WINDOWS = Gauge("clickstream_worker_traffic_open_windows",
                     "Traffic windows held in worker state.")
EVICT_EVERY_S = 5.0
MAX_HASHES_PER_ROW = 10_000          # keeps every message far below Kafka's 1 MB
HASH_CACHE = 16_384  # visitor hashes kept between batches (~200 B each; a visitor comes in bursts)
_VALUES = operator.itemgetter(*DIMENSIONS.values())
_ZEROS = {"events": 0, "pageviews": 0, "conversions": 0, "revenue": "0", "sessions": 0,
          "bounces": 0}


def visitor_hash(site_id: str, visitor_id: str) -> int:
    """64-bit visitor hash stored in traffic_visitors_1m.visitors (mergeable exact uniques)."""
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
        # trackers changed by the batch: (partition, session) -> (tracker, engaged now)
        self._trackers: dict[tuple[int, str], tuple[Tracker, bool]] = {}
        self._touched: dict[int, Partition] = {}
        self._offsets: dict[int, int] = {}
        self._evicted: list[tuple[int, bytes, Any]] = []
        self._rows: list[tuple[str, dict[int, list[dict[str, Any]]]]] = []  # to send
        self._sending: list[Any] = []  # the last batch's counter rows, not acknowledged yet
        self._hashes: dict[tuple[str, str], int] = {}
        self._last_evict = 0.0

    def _partition(self, p: int) -> Partition:
        part = self.table.parts.get(p)
        if part is None:
            part = self.table.partition(p)
            # the windows of the last stored batch: their rows may not have been sent
            newest = max((w.offset for w in part.windows.values()), default=-1)
            for (site, start), state in part.windows.items():
                if state.offset == newest:
                    state.resend()
                    self._dirty[(p, site, start)] = state
            for sid in part.unsaved:
                self._trackers[(p, sid)] = (part.sessions[sid], False)
            self._evicted += [(p, segment_key(p, seq), None) for seq in part.garbage]
            part.unsaved, part.garbage = [], []
        self._touched[p] = part
        return part

    def fold(self, ctxs: Sequence[Ctx]) -> None:
        """Count a batch (call after the pipeline ran, before rows are emitted)."""
        dirty, offsets, hashes = self._dirty, self._offsets, self._hashes
        if len(hashes) > HASH_CACHE:
            hashes.clear()
        internal = self.internal if self.internal.enabled else None
        lateness = self.lateness_ms
        counted = bots = internals = late = replayed = 0
        last_p, part = -1, Partition()
        parts: dict[int, Partition] = {}
        for ctx in ctxs:
            p = ctx.partition
            if p != last_p:  # (also for duplicates: a restored partition resends rows)
                last_p = p
                part = parts.get(p) or parts.setdefault(p, self._partition(p))
            if ctx.reject_step:
                continue
            offset, row = ctx.offset, ctx.row
            if offset > offsets.get(p, -1):
                offsets[p] = offset
            if row["is_bot"]:
                bots += 1
                continue
            site = row["site_id"]
            if internal is not None and internal(site, str(ctx.envelope.get("ip") or "")):
                internals += 1
                continue
            ts, received = row["_ts_ms"], ctx.envelope["received_at"]
            if received > part.watermark:
                part.watermark = received
            start = ts - ts % WINDOW_MS
            if received >= start + WINDOW_MS + lateness or start < part.evicted_before:
                late += 1
                continue
            state = part.windows.get((site, start))
            if state is None:
                state = part.windows[(site, start)] = WindowState()
            sid, kind = row["session_id"], row["type"]
            starts = bool(sid) and row["session_seq"] == 1
            if offset <= state.offset:  # counted before a restart: only trackers catch up
                replayed += 1
                if starts and sid not in part.sessions and sid not in part.log.engaged:
                    self._start_session(part, p, sid, site, start, ts, kind, _VALUES(row))
                elif sid and not starts:
                    self._session_event(part, p, sid, ts, kind, offset)
                continue
            visitor = hashes.get((site, row["visitor_id"]))
            if visitor is None:
                visitor = hashes[(site, row["visitor_id"])] = visitor_hash(
                    site, row["visitor_id"])
            if received > state.received:
                state.received = received
            values = _VALUES(row)
            bounce = starts and self._start_session(part, p, sid, site, start, ts, kind,
                                                    values)
            state.add(("", *values), kind, row["revenue"], visitor, starts, bounce)
            if sid and not starts:
                self._session_event(part, p, sid, ts, kind, offset)
            dirty[(p, site, start)] = state
            counted += 1
        COUNTED.inc(counted)
        for cause, n in (("bot", bots), ("internal", internals), ("late", late),
                         ("replayed", replayed)):
            if n:
                EXCLUDED.labels(cause).inc(n)

    def _start_session(self, part: Partition, p: int, sid: str, site: str, start: int,
                       ts: int, kind: str, values: Sequence[str]) -> bool:
        """A session's first event: track it while it is a bounce (True)."""
        tracker = Tracker(site, start, ts, values)
        if tracker.see(ts, kind):
            return False  # engaged from its first event (a conversion)
        part.sessions[sid] = tracker
        self._trackers[(p, sid)] = (tracker, False)
        return True

    def _session_event(self, part: Partition, p: int, sid: str, ts: int, kind: str,
                       offset: int) -> None:
        """A later event of a session that is still a bounce: when it engages, take the
        bounce back from the window it started in (once: only if that window has not
        counted this offset yet)."""
        tracker = part.sessions.get(sid)
        if tracker is None or offset <= tracker.offset:
            return  # engaged already, started in a closed window, or replayed
        engaged = tracker.see(ts, kind)
        self._trackers[(p, sid)] = (tracker, engaged)
        if not engaged:
            return
        del part.sessions[sid]
        where = (tracker.site, tracker.start)
        state = part.windows.get(where)
        if state is not None and offset > state.offset:
            state.take_back_bounce(tracker.values)
            self._dirty[(p, *where)] = state

    def rows(self) -> dict[int, list[dict[str, Any]]]:
        """Changed traffic_1m rows of this batch, per source partition."""
        out: dict[int, list[dict[str, Any]]] = {}
        for (p, site, start), state in self._dirty.items():
            version = max(self._offsets.get(p, -1), state.offset)
            state.offset = version
            window = ms_to_text(start)
            rows = out.setdefault(p, [])
            for dim, value, c in state.rows(self.top_n):
                row = {"site_id": site, "window_start": window, "kafka_partition": p,
                       "dimension": dim, "value": value, "version": version}
                row.update(columns(c) if c is not None else _ZEROS)
                rows.append(row)
        self._evict()
        return out

    def visitor_rows(self) -> dict[int, list[bytes]]:
        """traffic_visitors_1m rows of this batch (JSON): hashes not sent before, per source
        partition, window, dimension and value (every value, not only the top N). Built as
        bytes: a busy batch has hundreds of them, and a dict per row costs more than the
        hashes themselves."""
        out: dict[int, list[bytes]] = {}
        for (p, site, start), state in self._dirty.items():
            fresh = state.fresh_visitors()
            if not fresh:
                continue
            head = orjson.dumps({"site_id": site, "window_start": ms_to_text(start),
                                 "kafka_partition": p, "hashes_only": 1})[:-1] + b',"dimension":'
            rows = out.setdefault(p, [])
            for dim, value, hashes in fresh:
                key = b"".join((head, orjson.dumps(dim), b',"value":', orjson.dumps(value),
                                b',"visitors":'))
                for i in range(0, len(hashes), MAX_HASHES_PER_ROW):
                    rows.append(key + orjson.dumps(hashes[i:i + MAX_HASHES_PER_ROW]) + b"}")
        return out

    def _evict(self) -> None:
        """Every few seconds: close windows whose sessions can no longer change, and forget
        the sent-hash sets of windows no longer counting events."""
        now = time.monotonic()
        if now - self._last_evict < EVICT_EVERY_S:
            return
        self._last_evict = now
        total = 0
        for p, part in list(self.table.parts.items()):
            horizon = window_start(part.watermark - self.retention_ms) - WINDOW_MS
            closed = part.watermark - self.lateness_ms - 2 * WINDOW_MS
            old = []
            for (site, start), state in part.windows.items():
                if start < horizon and (p, site, start) not in self._dirty:
                    old.append((site, start))
                elif start < closed:
                    state.forget_visitors()
            for site, start in old:
                del part.windows[(site, start)]
                self._evicted.append((p, window_key(p, site, start), None))
            gone = [s for s, t in part.sessions.items() if (t.site, t.start) not in part.windows]
            for sid in gone:
                del part.sessions[sid]
            gone += [s for s, w in part.log.engaged.items() if w not in part.windows]
            for sid in gone:
                self._trackers.pop((p, sid), None)
            self._evicted += [(p, segment_key(p, seq), None) for seq in part.log.forget(gone)]
            if old and horizon > part.evicted_before:
                part.evicted_before = horizon
                self._evicted.append((p, meta_key(p), {"evicted_before": horizon,
                                                       "watermark": part.watermark}))
            total += len(part.windows)
        OPEN_WINDOWS.set(total)

    async def emit(self, producer: Any, topic: str) -> list[Any]:
        """Send the batch's new visitor hashes to `topic` (NDJSON, keyed by partition) and
        return the delivery futures; the counter rows are computed now and sent by
        `commit`, after the state they come from is stored."""
        self._rows.append((topic, self.rows()))
        return await _send(producer, topic, self.visitor_rows())

    async def commit(self) -> None:
        """Store the batch's window counters, then its bounce trackers, then evictions
        (after its outputs are acknowledged); then send its counter rows. Those are awaited
        at the start of the next commit (so a batch's state is never stored while the
        previous batch's rows may still be lost), or by Faust's flush before it commits
        offsets; a crash loses at most the rows of the newest stored windows, which a
        restored partition writes again."""
        if self._sending:
            await asyncio.gather(*self._sending)
            self._sending = []
        items: list[tuple[int, bytes, Any]] = [
            (p, window_key(p, site, start), state.dump())
            for (p, site, start), state in self._dirty.items()]
        changes: dict[int, list[tuple[str, Tracker, bool]]] = {}
        for (p, sid), (tracker, engaged) in self._trackers.items():
            if not engaged:
                tracker.offset = self._offsets.get(p, tracker.offset)
            changes.setdefault(p, []).append((sid, tracker, engaged))
        for p, changed in changes.items():
            seq, entries, dead = self._touched[p].log.write(changed)
            if entries:
                items.append((p, segment_key(p, seq), entries))
            items += [(p, segment_key(p, old), None) for old in dead]
        items += self._evicted
        rows, self._rows = self._rows, []
        self._dirty, self._trackers, self._offsets, self._evicted = {}, {}, {}, []
        self._touched = {}
        await self.table.write(items)
        producer = self.table.table.app.producer
        for topic, per_partition in rows:
            self._sending += await _send(producer, topic, per_partition)


async def _send(producer: Any, topic: str,
                per_partition: dict[int, list[dict[str, Any]]] | dict[int, list[bytes]],
                ) -> list[Any]:
    deliveries = []
    for p, rows in per_partition.items():
        encoded = (r if isinstance(r, bytes) else orjson.dumps(r) for r in rows)
        for chunk in ndjson.chunks(encoded):
            deliveries.append(await producer.send(topic, str(p).encode(), chunk, None, None,
                                                  None))
    return deliveries


def create_traffic(app: faust.App, settings: Any) -> TrafficWindows:
    """Build the traffic windows from the worker settings."""
    lateness = settings.traffic_lateness_seconds * 1000
    retention = lateness + settings.session_timeout_minutes * 60_000 + 2 * WINDOW_MS
    return TrafficWindows(
        TrafficStateTable(app, "traffic-windows", settings.topic_partitions),
        lateness_ms=lateness, retention_ms=retention, top_n=settings.traffic_top_n,
        internal=InternalTraffic(settings.traffic_internal_networks))

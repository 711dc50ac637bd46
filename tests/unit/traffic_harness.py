"""Test harness for the traffic windows: a fake Kafka that keeps every record, workers that
restore from its changelog (whole or cut short, as a crash leaves it), a model of the two
ClickHouse tables, and the expected rows recomputed from the events (the rules of
docs/traffic.md, as the acceptance test's SQL states them)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

import faust
import orjson

from streams.pipeline import Ctx
from streams.traffic.bounces import ENGAGED_MS
from streams.traffic.internal import InternalTraffic
from streams.traffic.stream import TrafficWindows, visitor_hash
from streams.traffic.table import TrafficStateTable
from streams.traffic.windows import DIMENSIONS, OTHER, WINDOW_MS

T0 = 1_795_430_400_000  # a minute boundary
MINUTE = "2026-11-23 10:40:00.000"  # its text
COUNTERS = "t.traffic"  # counter rows and (hashes_only) visitor rows
LATENESS_MS = 60_000
MEASURES = ("events", "pageviews", "conversions", "revenue", "sessions", "bounces")


def row(visitor: str = "v1", ts: int = T0, kind: str = "pageview", path: str = "/",
        session: str = "s1", seq: int = 1, revenue: str = "0", **extra: Any) -> dict[str, Any]:
    base = {"site_id": "site", "visitor_id": visitor, "type": kind, "revenue": revenue,
            "path": path, "channel": "Direct", "source": "(direct)", "medium": "(none)",
            "utm_campaign": "", "country": "DE", "device_type": "desktop", "is_bot": 0,
            "session_id": session, "session_seq": seq, "_ts_ms": ts}
    return base | extra


def ctx(r: dict[str, Any], offset: int, received: int, ip: str = "198.51.100.1",
        partition: int = 0) -> Ctx:
    c = Ctx(b"", None, partition, offset)
    c.row = dict(r)
    c.envelope = {"received_at": received, "ip": ip}
    return c


@dataclass
class _Meta:
    topic: str
    partition: int
    offset: int


@dataclass
class FakeKafka:
    """Producer stand-in: every record sent, in order; acknowledged at once, or (slow) a
    moment later -- and then it checks that no state record is sent while counter rows
    of an earlier batch are not acknowledged yet."""

    records: list[tuple[str, bytes | None, bytes | None, int | None]] = field(
        default_factory=list)
    slow: bool = False
    _counter_acks: list[asyncio.Future[Any]] = field(default_factory=list)

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   partition: int | None, timestamp: Any, headers: Any) -> asyncio.Future[Any]:
        self.records.append((topic, key, value, partition))
        fut = asyncio.get_running_loop().create_future()
        meta = _Meta(topic, partition or 0, len(self.records))
        counters = topic == COUNTERS and not is_hashes(value)
        if counters:
            self._counter_acks.append(fut)
        elif topic != COUNTERS:
            assert all(f.done() for f in self._counter_acks), "state before earlier rows"
        if self.slow:  # counter rows the slowest: the next batch would overtake them
            delay = 0.02 if counters else 0.001
            asyncio.get_running_loop().call_later(delay, fut.set_result, meta)
        else:
            fut.set_result(meta)
        return fut

    def changelog(self) -> list[tuple[bytes, bytes | None]]:
        return [(k, v) for t, k, v, _ in self.records if t != COUNTERS and k is not None]


def is_hashes(message: bytes | None) -> bool:
    """A message of visitor-hash rows (not counter rows)."""
    return message is not None and b'"hashes_only":1' in message.split(b"\n", 1)[0]


def worker(kafka: FakeKafka, top_n: int = 2) -> TrafficWindows:
    """A worker whose table is restored from everything the changelog holds."""
    app = faust.App(f"traffic-unit-{uuid.uuid4().hex[:6]}", broker="kafka://127.0.0.1:9",
                    store="memory://")
    app.producer = kafka  # type: ignore[assignment]
    table = TrafficStateTable(app, "traffic", 4)
    for key, value in kafka.changelog():
        if value is None:
            table.table.data.pop(key, None)
        else:
            table.table.data[key] = value
    return TrafficWindows(table, lateness_ms=LATENESS_MS, retention_ms=40 * 60_000,
                          top_n=top_n, internal=InternalTraffic("10.0.0.0/8"))


async def run_batch(w: TrafficWindows, kafka: FakeKafka, ctxs: Sequence[Ctx],
                    keep_changelog: int | None = None) -> None:
    """One batch as streams/app.py runs it; `keep_changelog`: a crash during the commit
    leaves only that many of its changelog records in Kafka."""
    w.fold(ctxs)
    await asyncio.gather(*await w.emit(kafka, COUNTERS))
    mark = len(kafka.records)
    await w.commit()
    if keep_changelog is not None:
        del kafka.records[mark + keep_changelog:]


@dataclass
class Store:
    """traffic_1m (newest version per key wins; equal versions must carry equal content)
    and traffic_visitors_1m (union of hashes per key)."""

    counters: dict[tuple[Any, ...], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    visitors: dict[tuple[Any, ...], set[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, kafka: FakeKafka) -> Store:
        store = cls()
        for topic, _, value, _ in kafka.records:
            if topic != COUNTERS or value is None:
                continue
            for line in value.split(b"\n"):
                r = orjson.loads(line)
                key = (r["window_start"], r["kafka_partition"], r["dimension"], r["value"])
                if r.get("hashes_only"):
                    store.visitors.setdefault(key, set()).update(r["visitors"])
                    continue
                cols = {m: Decimal(r[m]) if m == "revenue" else r[m] for m in MEASURES}
                old = store.counters.get(key)
                if old and old[0] == r["version"]:
                    assert old[1] == cols, f"version {r['version']} of {key} differs"
                if old is None or r["version"] >= old[0]:
                    store.counters[key] = (r["version"], cols)
        return store

    def minutes(self) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Like the traffic_minutes view: rows with events, each with its visitor set (a
        value's own hashes where it has a row, the rest under "(other)")."""
        rows = {k: dict(cols, visitors=set()) for k, (_, cols) in self.counters.items()
                if cols["events"]}
        for (w, p, dim, value), hashes in self.visitors.items():
            label = value if (w, p, dim, value) in rows and value != OTHER else OTHER
            if (w, p, dim, label) in rows:
                rows[(w, p, dim, label)]["visitors"] |= hashes
            else:
                assert not hashes, f"visitors without a row: {(w, p, dim, value)}"
        return rows


def expected_minutes(events: Sequence[Ctx], top_n: int) -> dict[tuple[Any, ...], Any]:
    """What traffic_minutes must hold after these (distinct) events, from the rules."""
    from schemas.timefmt import ms_to_text

    counted = [c for c in events if not c.row["is_bot"]
               and not c.envelope["ip"].startswith("10.")
               and c.envelope["received_at"] < c.row["_ts_ms"] - c.row["_ts_ms"] % WINDOW_MS
               + WINDOW_MS + LATENESS_MS]
    engaged: dict[str, bool] = {}
    for sid, group in itertools.groupby(sorted(counted, key=lambda c: c.row["session_id"]),
                                        key=lambda c: c.row["session_id"]):
        evs = [c.row for c in group]
        ts = [r["_ts_ms"] for r in evs]
        engaged[sid] = (max(ts) - min(ts) > ENGAGED_MS
                        or any(r["type"] == "conversion" for r in evs)
                        or sum(r["type"] == "pageview" for r in evs) >= 2)
    per_value: dict[tuple[Any, ...], dict[str, Any]] = {}
    for c in counted:
        r = c.row
        w = ms_to_text(r["_ts_ms"] - r["_ts_ms"] % WINDOW_MS)
        starts = r["session_seq"] == 1 and bool(r["session_id"])
        for dim, value in [("", ""), *((d, r[col]) for d, col in DIMENSIONS.items())]:
            m = per_value.setdefault((w, c.partition, dim, value), dict.fromkeys(
                MEASURES, 0) | {"revenue": Decimal(0), "visitors": set()})
            m["events"] += 1
            m["pageviews"] += r["type"] == "pageview"
            m["conversions"] += r["type"] == "conversion"
            # as events.revenue (Decimal(18, 4)) stores it: cut to 4 places toward zero
            m["revenue"] += Decimal(r["revenue"]).quantize(Decimal("0.0001"), ROUND_DOWN)
            m["sessions"] += starts
            m["bounces"] += starts and not engaged[r["session_id"]]
            m["visitors"].add(visitor_hash(r["site_id"], r["visitor_id"]))
    out: dict[tuple[Any, ...], Any] = {}
    for (*_, dim), group in itertools.groupby(sorted(per_value), key=lambda k: k[:3]):
        ranked = sorted(group, key=lambda k: (-per_value[k]["events"], k[3]))
        own = ranked[:top_n] if dim else ranked
        for k in own:
            out[k] = per_value[k]
        for k in ranked[len(own):]:
            other = out.setdefault((*k[:3], OTHER), dict.fromkeys(MEASURES, 0) | {
                "revenue": Decimal(0), "visitors": set()})
            for m in MEASURES:
                other[m] += per_value[k][m]
            other["visitors"] |= per_value[k]["visitors"]
    return out


def totals(kafka: FakeKafka) -> dict[str, Any]:
    """The stored counters of the whole site in MINUTE, partition 0."""
    return Store.of(kafka).counters[(MINUTE, 0, "", "")][1]


def run(*batches: list[Any], kafka: FakeKafka | None = None) -> FakeKafka:
    """Batches through one worker (two by top-N) into `kafka` (a new one by default)."""
    kafka = kafka or FakeKafka()

    async def go() -> None:
        w = worker(kafka)
        for batch in batches:
            await run_batch(w, kafka, batch)
    asyncio.run(go())
    return kafka

"""Visitor-state expiry (streams/expiry.py, streams/sweep.py): trimming a state at any
moment never changes what the session step outputs for events within the allowed
lateness; the sweep writes trims and tombstones through the changelog."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import faust
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.attribution.stream import Attributor
from streams.expiry import Retention, retention, trim
from streams.pipeline import Ctx, Reject
from streams.sessionize import Sessionizer
from streams.sessions import SessionRules
from streams.state import VisitorStateTable
from streams.sweep import VisitorSweep

MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
T0 = 1_795_430_400_000
RULES = SessionRules(timeout_ms=30 * MIN, lateness_ms=2 * HOUR, split_at_midnight=False)
DEDUP, LOOKBACK = HOUR, 3 * DAY
KEEP = Retention(dedup_ms=DEDUP, timeout_ms=RULES.timeout_ms, lateness_ms=RULES.lateness_ms,
                 lookback_ms=LOOKBACK)
SOURCES = [("(direct)", "(none)", "", "Direct"), ("google", "organic", "", "Organic Search"),
           ("newsletter", "email", "may", "Email")]


class DictTable:
    """The visitor table as the sessionizer reads it: states by key (stored as JSON)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes, partition: int | None = None) -> dict[str, Any] | None:
        raw = self.data.get(key)
        return orjson.loads(raw) if raw else None

    def commit(self, s: Sessionizer) -> None:
        for key, (_, state) in s._batch.items():
            self.data[key] = orjson.dumps(state)

    def sweep(self, watermark: int) -> None:
        for key, raw in list(self.data.items()):
            out = trim(orjson.loads(raw), watermark, KEEP)
            if out is None:
                del self.data[key]
            else:
                self.data[key] = orjson.dumps(out)


def event(visitor: str, event_id: str, ts: int, received: int, kind: str, source: int,
          user: str = "", order: str = "") -> Ctx:
    src, medium, campaign, channel = SOURCES[source]
    ctx = Ctx(b"", partition=0)
    ctx.envelope = {"received_at": received}
    ctx.row = {
        "event_id": event_id, "site_id": "s", "visitor_id": visitor, "user_id": user,
        "type": kind, "name": "buy" if kind == "conversion" else "", "path": "/p",
        "props": {"order_id": order} if order else {},
        "revenue": "5" if kind == "conversion" else "0", "currency": "EUR", "is_bot": 0,
        "source": src, "medium": medium, "utm_campaign": campaign, "utm_term": "",
        "utm_content": "", "click_id_type": "", "channel": channel, "referrer_host": "",
        "device_type": "desktop", "browser": "", "os": "", "country": "", "_ts_ms": ts,
    }
    return ctx


def outputs(steps: list[tuple[Any, ...]], sweep_after: set[int]) -> list[Any]:
    """Run events in batches of one; sweep the table after the listed ones. Returns what
    the session step decided per event, its session rows and attribution rows."""
    table = DictTable()
    attributor = Attributor(lookback_ms=LOOKBACK, max_touchpoints=4)
    s = Sessionizer(table, RULES, DEDUP, attributor)  # type: ignore[arg-type]
    out: list[Any] = []
    for i, args in enumerate(steps):
        s.begin_batch()
        ctx = event(*args)
        try:
            s(ctx)
            out.append((ctx.row["session_id"], ctx.row["session_seq"]))
        except Reject as exc:
            out.append(str(exc))
        out += [s.session_rows(), attributor.conversions, attributor.credits,
                [_visible(r, KEEP.touch_floor(args[3])) for r in s.identity]]
        table.commit(s)
        if i in sweep_after:
            table.sweep(s.watermarks[0])
    return out


def _visible(record: dict[str, Any], floor: int) -> dict[str, Any]:
    """An identity record without touchpoints too old for any conversion still to come
    (a link may carry them, or not once they were trimmed; the user's history drops them
    at its next touch and never credits them)."""
    if "tp" not in record:
        return record
    return {**record, "tp": [t for t in record["tp"] if t[0] >= floor]}


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[tuple[Any, ...]], set[int]]:
    """Events of a few visitors, received in order at gaps from seconds to days, each with
    an event time up to the lateness behind its receipt; repeated ids, campaign switches,
    conversions with repeated order ids, user links; sweeps at random points."""
    n = draw(st.integers(1, 30))
    received, steps, ids = T0, [], []
    for _ in range(n):
        received += draw(st.sampled_from([0, 1000, 10 * MIN, 31 * MIN, HOUR + 1, 3 * HOUR,
                                          DAY, 4 * DAY]))
        ts = received - draw(st.sampled_from([0, 5 * MIN, HOUR, RULES.lateness_ms]))
        if ids and draw(st.booleans()):
            event_id = draw(st.sampled_from(ids))  # a duplicate (or a late repeat)
        else:
            event_id = str(uuid.UUID(int=draw(st.integers(0, 2**64))))
            ids.append(event_id)
        steps.append((draw(st.sampled_from(["a", "b"])), event_id, ts, received,
                       draw(st.sampled_from(["pageview", "pageview", "conversion"])),
                       draw(st.integers(0, 2)), draw(st.sampled_from(["", "", "u1"])),
                       draw(st.sampled_from(["", "o1", "o2"]))))
    sweeps = draw(st.sets(st.integers(0, n - 1)))
    return steps, sweeps


@settings(max_examples=300, deadline=None)
@given(histories())
def test_expiring_state_never_changes_an_output(history: tuple[Any, ...]) -> None:
    steps, sweeps = history
    assert outputs(steps, sweeps) == outputs(steps, set())


def test_trim_drops_each_part_after_its_horizon() -> None:
    state = {"first": T0, "last": T0, "n": 2, "seen": {"a": T0, "b": T0 + HOUR},
             "sessions": [{"last": T0}], "tp": [[T0, "Direct"]]}
    assert trim(state, T0, KEEP) is state
    w = T0 + HOUR + KEEP.margin_ms + DEDUP  # "a" is out of the dedup window now
    assert trim(state, w, KEEP)["seen"] == {"b": T0 + HOUR}
    w = T0 + KEEP.margin_ms + RULES.lateness_ms + RULES.timeout_ms + 1
    assert "sessions" not in trim(state, w, KEEP)
    assert trim(state, T0 + 2 * HOUR + KEEP.margin_ms + LOOKBACK + RULES.lateness_ms,
                KEEP) is None


def test_user_links_and_orders_stay() -> None:
    late = T0 + 100 * DAY
    state = {"first": T0, "last": T0, "n": 1, "seen": {"a": T0}, "user": "u", "orders": ["o"]}
    assert trim(state, late, KEEP) == {"first": T0, "last": T0, "n": 1, "user": "u",
                                       "orders": ["o"]}
    assert trim(trim(state, late, KEEP), late, KEEP) == {  # type: ignore[arg-type]
        "first": T0, "last": T0, "n": 1, "user": "u", "orders": ["o"]}


def test_retention_takes_the_longest_site_rules() -> None:
    r = retention(HOUR, [RULES, SessionRules(timeout_ms=HOUR, lateness_ms=MIN)],
                  [DAY, 5 * DAY])
    assert (r.timeout_ms, r.lateness_ms, r.lookback_ms) == (HOUR, 2 * HOUR, 5 * DAY)


class Producer:
    """Faust's producer and the aiokafka one behind it: records kept, acknowledged at once."""

    def __init__(self) -> None:
        self.records: list[tuple[str, int, bytes | None, bytes | None]] = []

    def _ensure_producer(self) -> Producer:
        return self

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    def create_batch(self) -> list[tuple[bytes | None, bytes | None]]:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, partition: int) -> Any:
        self.records += [(topic, partition, k, v) for k, v in batch]
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(SimpleNamespace(topic=topic, partition=partition,
                                       offset=len(self.records)))
        return fut


class _Batch(list[tuple[bytes | None, bytes | None]]):
    def append(self, *, key: bytes | None, value: bytes | None,  # type: ignore[override]
               timestamp: Any) -> object:
        super().append((key, value))
        return self


def _sweep_run(store: str, tmp_path: Any) -> tuple[VisitorStateTable, Producer, VisitorSweep]:
    app = faust.App(f"expiry-{uuid.uuid4().hex[:6]}", broker="kafka://127.0.0.1:9",
                    store=store, datadir=str(tmp_path))
    producer = Producer()
    app.producer = producer  # type: ignore[assignment]
    table = VisitorStateTable(app, "visitor-state", 2)
    old = {"first": T0, "last": T0, "n": 1, "seen": {"x": T0}, "sessions": [{"last": T0}]}
    new = {**old, "last": T0 + DAY, "seen": {"y": T0 + DAY}, "sessions": [{"last": T0 + DAY}]}
    items = [(f"s|old{i}".encode(), i % 2, old) for i in range(5)]
    items += [(b"s|new", 1, new), (b"s|busy", 0, old),
              (b"s|linked", 0, {**old, "user": "u"})]
    sweep = VisitorSweep(table, KEEP, {0: T0 + DAY, 1: T0 + DAY},
                         lambda key: key == b"s|busy", slice_size=2)

    async def run() -> None:
        await table.put_many(items)
        producer.records.clear()
        for _ in range(8):
            await sweep.step([0, 1])
    asyncio.run(run())
    return table, producer, sweep


def _check_sweep(table: VisitorStateTable, producer: Producer, sweep: VisitorSweep) -> None:
    tombstones = sorted((p, k) for _, p, k, v in producer.records if v is None)
    assert tombstones == [(0, b"s|old0"), (0, b"s|old2"), (0, b"s|old4"),
                          (1, b"s|old1"), (1, b"s|old3")]
    written = {k: orjson.loads(v) for _, _, k, v in producer.records if v is not None}
    assert written == {b"s|linked": {"first": T0, "last": T0, "n": 1, "user": "u"}}
    assert table.get(b"s|old1", 1) is None and table.get(b"s|new", 1) is not None
    assert table.get(b"s|busy", 0) is not None  # the batch holding it writes it itself
    assert (sweep.deleted, sweep.trimmed) == (5, 1)


def test_sweep_deletes_with_tombstones_in_the_memory_store(tmp_path: Any) -> None:
    _check_sweep(*_sweep_run("memory://", tmp_path))


def test_sweep_deletes_with_tombstones_in_the_rocksdb_store(tmp_path: Any) -> None:
    _check_sweep(*_sweep_run("rocksdb://", tmp_path))

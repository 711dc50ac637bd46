"""The decoded visitor-state cache next to the Faust table (streams/state.py StateCache):
coherent across writes, failed batches, writes from elsewhere, rebalances and recovery, and
bounded; the sessionizer's outputs are the same with and without it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.attribution.stream import Attributor
from streams.pipeline import Ctx, Reject
from streams.sessionize import Sessionizer
from streams.sessions import SessionRules
from streams.state import VisitorStateTable, get_in_partition, put_in_partition
from tests.unit.test_visitor_expiry import Producer

T0 = 1_795_430_400_000
MIN = 60_000


def _table(tmp_path: Any, cache_size: int, store: str = "memory://") -> VisitorStateTable:
    app = faust.App(f"cache-{uuid.uuid4().hex[:6]}", broker="kafka://127.0.0.1:9",
                    store=store, datadir=str(tmp_path))
    app.producer = Producer()  # type: ignore[assignment]
    return VisitorStateTable(app, "visitor-state", 2, cache_size=cache_size)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_state_read_again_after_its_write_is_the_cached_object(tmp_path: Any,
                                                                 store: str) -> None:
    table = _table(tmp_path, 10, store)
    assert table.get(b"s|v", 1) is None
    state = {"n": 1, "seen": {"a": 1}}
    asyncio.run(table.put_many([(b"s|v", 1, state)]))
    got = table.get(b"s|v", 1)
    assert got is state and table.cache.hits == 1
    got["n"] = 2  # changed by its batch, written back: cached and stored alike
    asyncio.run(table.put_many([(b"s|v", 1, got)]))
    again = table.get(b"s|v", 1)
    assert again is state and again == {"n": 2, "seen": {"a": 1}}
    asyncio.run(table.put_many([(b"s|v", 1, again)]))
    assert orjson.loads(get_in_partition(table.table.data, b"s|v", 1)) == again


def test_a_batch_that_never_commits_leaves_no_change_behind(tmp_path: Any) -> None:
    table = _table(tmp_path, 10)
    asyncio.run(table.put_many([(b"s|v", 0, {"n": 1})]))
    lent = table.get(b"s|v", 0)
    assert lent is not None
    lent["n"] = 99  # the batch failed before its commit
    assert table.get(b"s|v", 0) == {"n": 1}


def test_writes_from_elsewhere_are_read_not_the_cache(tmp_path: Any) -> None:
    table = _table(tmp_path, 10)
    asyncio.run(table.put_many([(b"s|v", 0, {"n": 1}), (b"s|w", 0, {"n": 1})]))
    # changelog recovery writes the store directly
    put_in_partition(table.table.data, b"s|v", orjson.dumps({"n": 5}), 0)
    assert table.get(b"s|v", 0) == {"n": 5}
    # the sweep writes states it did not borrow: never cached, the old entry dropped
    asyncio.run(table.put_many([(b"s|w", 0, {"n": 7})]))
    assert len(table.cache) == 0 and table.get(b"s|w", 0) == {"n": 7}
    assert table.cache.hits == 0
    asyncio.run(table.put_many([(b"s|w", 0, None)]))  # deleted
    assert table.get(b"s|w", 0) is None


def test_rebalance_and_recovery_drop_entries(tmp_path: Any) -> None:
    table = _table(tmp_path, 10)

    async def run() -> None:
        for key, p in ((b"s|a", 0), (b"s|b", 1)):
            table.get(key, p)
            await table.put_many([(key, p, {"n": 1})])
        assert len(table.cache) == 2
        topic = table.table.changelog_topic.get_topic_name()
        await table.table.on_rebalance({TP(topic, 0)}, {TP(topic, 1)}, set())
        assert len(table.cache) == 1
        await table.table.on_recovery_completed({TP(topic, 0)}, set())
        assert len(table.cache) == 0
    asyncio.run(run())
    # the store dropped the revoked partition's states too
    assert table.get(b"s|a", 0) == {"n": 1} and table.get(b"s|b", 1) is None


def test_the_cache_is_bounded_least_recently_written_first(tmp_path: Any) -> None:
    table = _table(tmp_path, 3)
    for i in range(5):
        key = f"s|{i}".encode()
        table.get(key, 0)
        asyncio.run(table.put_many([(key, 0, {"n": i})]))
    assert len(table.cache) == 3
    assert [table.get(f"s|{i}".encode(), 0) for i in range(5)] == [{"n": i} for i in range(5)]
    assert table.cache.hits == 3


def _ctx(visitor: str, event_id: str, ts: int, kind: str) -> Ctx:
    ctx = Ctx(b"", partition=hash(visitor) % 2)
    ctx.envelope = {"received_at": ts}
    source = {"mail": "newsletter", "ads": "facebook"}.get(kind, "(direct)")
    ctx.row = {
        "event_id": event_id, "site_id": "s", "visitor_id": visitor,
        "user_id": "u1" if kind == "login" else "",
        "type": "event" if kind == "buy" else "pageview",
        "name": "purchase" if kind == "buy" else "", "path": f"/{kind}",
        "props": {"order_id": event_id[:4]} if kind == "buy" else {},
        "revenue": "5" if kind == "buy" else "0", "currency": "EUR", "is_bot": 0,
        "source": source, "medium": "email" if kind == "mail" else "(none)",
        "utm_campaign": "", "utm_term": "", "utm_content": "", "click_id_type": "",
        "channel": "Email" if kind == "mail" else "Direct", "referrer_host": "",
        "device_type": "desktop", "browser": "", "os": "", "country": "", "_ts_ms": ts,
    }
    return ctx


batches = st.lists(st.tuples(
    st.lists(st.tuples(st.sampled_from("abcde"), st.integers(0, 40),
                       st.sampled_from([0, MIN, 20 * MIN, 31 * MIN, 8 * 3600_000]),
                       st.sampled_from(["view", "view", "mail", "ads", "buy", "login"])),
             max_size=12),
    st.booleans()), min_size=1, max_size=8)


def _outputs(tmp_path: Any, cache_size: int, plan: list[Any]) -> list[Any]:
    """Everything the sessionizer says over `plan` (batches of (visitor, event id, gap,
    kind); a batch whose flag is False fails before its commit)."""
    table = _table(tmp_path, cache_size)
    attributor = Attributor(goals=["event:purchase", "pageview:/ads"])
    sessionizer = Sessionizer(table, SessionRules(), 30 * MIN, attributor)
    out: list[Any] = []
    clock = T0

    async def run() -> None:
        nonlocal clock
        for events, commits in plan:
            sessionizer.begin_batch()
            for visitor, eid, gap, kind in events:
                clock += gap + 1000
                ctx = _ctx(visitor, f"{eid:04d}-{visitor}", clock, kind)
                try:
                    sessionizer(ctx)
                    out.append(("row", ctx.row["session_id"], ctx.row["session_seq"]))
                except Reject as exc:
                    out.append(("reject", str(exc)))
            out.extend([sessionizer.session_rows(), sessionizer.identity,
                        attributor.conversions, attributor.credits])
            if commits:
                await sessionizer.commit()
        out.append(sorted((k.decode(), orjson.loads(v)) for k, v in table.table.data.items()))
    asyncio.run(run())
    return out


@settings(max_examples=40, deadline=None)
@given(batches)
def test_outputs_are_identical_with_and_without_the_cache(tmp_path_factory: Any,
                                                          plan: list[Any]) -> None:
    plain = _outputs(tmp_path_factory.mktemp("plain"), 0, plan)
    cached = _outputs(tmp_path_factory.mktemp("cached"), 2, plan)
    assert orjson.dumps(cached) == orjson.dumps(plain)


@pytest.mark.parametrize("size", [0, 123])
def test_the_worker_takes_its_size_from_the_settings(tmp_path: Any, size: int) -> None:
    from clickstream.settings import WorkerSettings
    from streams.app import create_app

    app = create_app(WorkerSettings(kafka_bootstrap="127.0.0.1:9", home=tmp_path,
                                    worker_state_cache=size))
    table = app.clickstream_sweep.table  # type: ignore[attr-defined]
    assert table.cache.size == size
    raw = orjson.dumps({"n": 1})
    table.cache.take(b"s|v", raw)
    table.cache.keep(b"s|v", raw, {"n": 1}, 0)
    assert len(table.cache) == min(size, 1)

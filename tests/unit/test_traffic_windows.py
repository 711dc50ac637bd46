"""Traffic windows: boundaries, lateness, top-N with an exact "(other)", bounces, replays."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import faust
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline import Ctx
from streams.traffic.internal import InternalTraffic
from streams.traffic.stream import TrafficWindows, visitor_hash
from streams.traffic.table import TrafficStateTable
from streams.traffic.windows import DIMENSIONS, OTHER, WindowState, is_late, window_start

T0 = 1_795_430_400_000  # a minute boundary


def row(visitor: str = "v1", ts: int = T0, kind: str = "pageview", path: str = "/",
        session: str = "s1", seq: int = 1, revenue: str = "0", **extra: Any) -> dict[str, Any]:
    base = {"site_id": "site", "visitor_id": visitor, "type": kind, "revenue": revenue,
            "path": path, "channel": "Direct", "source": "(direct)", "medium": "(none)",
            "utm_campaign": "", "country": "DE", "device_type": "desktop", "is_bot": 0,
            "session_id": session, "session_seq": seq, "_ts_ms": ts}
    return base | extra


def test_window_boundaries() -> None:
    assert window_start(T0) == T0
    assert window_start(T0 + 59_999) == T0
    assert window_start(T0 + 60_000) == T0 + 60_000
    assert window_start(T0 - 1) == T0 - 60_000


def test_lateness_boundary() -> None:
    end = T0 + 60_000
    assert not is_late(T0 + 5, end + 119_999, 120_000)
    assert is_late(T0 + 5, end + 120_000, 120_000)
    assert is_late(T0, end, 0)          # no lateness: only events of open windows count
    assert not is_late(T0, end - 1, 0)


@given(ts=st.integers(0, 2**42), delay=st.integers(-300_000, 3_600_000),
       lateness=st.integers(0, 3_600_000))
def test_late_means_received_after_window_end_plus_lateness(ts: int, delay: int,
                                                           lateness: int) -> None:
    start = window_start(ts)
    assert start <= ts < start + 60_000 and start % 60_000 == 0
    assert is_late(ts, ts + delay, lateness) == (ts + delay - (start + 60_000) >= lateness)


def test_bounce_taken_back_when_the_session_engages() -> None:
    w = WindowState()
    w.add(row(), T0, 1)
    assert (w.total.sessions, w.total.bounces) == (1, 1)
    assert not w.session_event("s1", T0 + 4_000, "event")  # 4 s, no pageview: still a bounce
    assert w.total.bounces == 1
    assert w.session_event("s1", T0 + 11_000, "event")     # > 10 s: engaged
    assert w.total.bounces == 0 and w.dims["path"]["/"].bounces == 0
    assert not w.session_event("s1", T0 + 12_000, "pageview")  # never counted twice
    assert w.total.bounces == 0
    w.add(row("v2", session="s2", kind="conversion", revenue="12.5"), T0, 2)
    assert (w.total.sessions, w.total.bounces, w.total.revenue) == (2, 0, Decimal("12.5"))


events = st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["/", "/a", "/b", "/c", "/d"]),
                            st.sampled_from(["pageview", "event", "conversion"]),
                            st.integers(0, 59_999), st.booleans()),
                  min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(evs=events, top_n=st.integers(1, 4), cuts=st.lists(st.integers(0, 60), max_size=5))
def test_rows_replace_to_exact_top_n_and_totals(evs: list[Any], top_n: int,
                                               cuts: list[int]) -> None:
    """Whatever the batch boundaries, the rows written (newest per key, as ReplacingMergeTree
    keeps them) are the top N of the final state plus "(other)", and every dimension sums
    to the totals."""
    w = WindowState()
    stored: dict[tuple[str, str], dict[str, Any]] = {}
    seen: set[str] = set()
    bounds = sorted({0, len(evs), *(min(c, len(evs)) for c in cuts)})
    for a, b in itertools.pairwise(bounds):
        for visitor, path, kind, offset, _ in evs[a:b]:
            sid = f"s{visitor}"
            r = row(f"v{visitor}", T0 + offset, kind, path, sid, 1 if sid not in seen else 2,
                    "1.5" if kind == "conversion" else "0")
            if sid in seen:
                w.add(r, T0 + offset, visitor)
                w.session_event(sid, T0 + offset, kind)
            else:
                seen.add(sid)
                w.add(r, T0 + offset, visitor)
        for dim, value, m in w.rows(top_n):
            stored[(dim, value)] = m.columns() if m is not None else {"events": 0}
    live = {k: v for k, v in stored.items() if v["events"]}
    total = live[("", "")]
    assert total["events"] == len(evs)
    for dim in DIMENSIONS:
        rows = {v: m for (d, v), m in live.items() if d == dim}
        for measure in ("events", "pageviews", "conversions", "sessions", "bounces"):
            assert sum(m[measure] for m in rows.values()) == total[measure], (dim, measure)
        assert sum(Decimal(m["revenue"]) for m in rows.values()) == Decimal(total["revenue"])
        assert set().union(*(m["visitors"] for m in rows.values())) == set(total["visitors"])
        by_value = w.dims[dim]
        ranked = sorted(by_value, key=lambda v: (-by_value[v].events, v))
        assert set(rows) - {OTHER} == set(ranked[:top_n])
        assert (OTHER in rows) == (len(ranked) > top_n)
        for value in ranked[:top_n]:
            assert rows[value] == by_value[value].columns()


def test_state_round_trips_through_json() -> None:
    w = WindowState()
    w.add(row(), T0, 1)
    w.add(row("v2", path="/x", session="s2", kind="conversion", revenue="3.25"), T0, 2)
    w.offset, w.received = 41, T0 + 500
    back = WindowState.load(w.dump())
    assert back.dump() == w.dump()
    assert back.session_event("s1", T0 + 20_000, "pageview")  # trackers survive too


def test_internal_networks() -> None:
    internal = InternalTraffic("10.0.0.0/8, shop.example=192.0.2.0/24, shop.example=2001:db8::/32")
    assert internal("any.example", "10.1.2.3")
    assert internal("shop.example", "192.0.2.9") and internal("shop.example", "2001:db8::1")
    assert not internal("other.example", "192.0.2.9")
    assert not internal("shop.example", "198.51.100.1")
    assert not internal("shop.example", "") and not internal("shop.example", "not-an-ip")
    assert not InternalTraffic("")("shop.example", "10.1.2.3")
    with pytest.raises(ValueError):
        InternalTraffic("10.0.0.300/8")


def ctx(r: dict[str, Any], offset: int, received: int, ip: str = "198.51.100.1",
        partition: int = 0) -> Ctx:
    c = Ctx(b"", None, partition, offset)
    c.row = dict(r)
    c.envelope = {"received_at": received, "ip": ip}
    return c


@pytest.fixture
def windows() -> TrafficWindows:
    """The worker's fold over a real (not started) Faust table."""
    app = faust.App("traffic-unit", broker="kafka://127.0.0.1:9", store="memory://")
    return TrafficWindows(TrafficStateTable(app, "traffic", 4), lateness_ms=60_000,
                          retention_ms=40 * 60_000, top_n=2,
                          internal=InternalTraffic("10.0.0.0/8"))


def test_fold_excludes_bots_internal_late_and_replays(windows: TrafficWindows) -> None:
    batch = [
        ctx(row("a"), 10, T0 + 1_000),
        ctx(row("b", session="sb", is_bot=1, seq=0), 11, T0 + 1_000),
        ctx(row("c", session="sc"), 12, T0 + 1_000, ip="10.2.3.4"),
        ctx(row("d", ts=T0 - 200_000, session="sd"), 13, T0 + 1_000),  # ended 181 s ago
        ctx(row("e", ts=T0 - 50_000, session="se"), 14, T0 + 1_000),  # late but allowed
    ]
    windows.fold(batch)
    rows = windows.rows()[0]
    totals = {r["window_start"][:16]: r for r in rows if r["dimension"] == ""}
    assert sorted(totals) == ["2026-11-23 10:39", "2026-11-23 10:40"]
    assert all(r["events"] == 1 and r["version"] == 14 for r in totals.values())
    assert totals["2026-11-23 10:40"]["visitors"] == [visitor_hash("site", "a")]
    # a replay of the same offsets changes nothing; a new offset does
    windows.fold(batch)
    assert [r for rows in windows.rows().values() for r in rows] == []
    windows.fold([ctx(row("a", ts=T0 + 30_000, seq=2), 15, T0 + 31_000)])
    (total,) = [r for r in windows.rows()[0] if r["dimension"] == ""]
    assert (total["events"], total["sessions"], total["bounces"], total["version"]) == \
        (2, 1, 0, 15)

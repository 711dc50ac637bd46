"""Traffic windows: boundaries, lateness, top-N with an exact "(other)", bounces, visitor
hashes sent once (streams/traffic). The crash cases the commit order exists for:
tests/unit/test_traffic_crashes.py."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.traffic import stream as traffic_stream
from streams.traffic.internal import InternalTraffic
from streams.traffic.stream import TrafficWindows, visitor_hash
from streams.traffic.table import Partition
from streams.traffic.windows import (
    DIMENSIONS,
    DIMS,
    OTHER,
    REVENUE,
    WindowState,
    columns,
    is_late,
    money,
    revenue_units,
    window_start,
)
from tests.unit.traffic_harness import (
    MINUTE,
    T0,
    FakeKafka,
    Store,
    ctx,
    row,
    run,
    totals,
    worker,
)


def values(r: dict[str, Any]) -> tuple[str, ...]:
    return ("", *(r[col] for col in DIMENSIONS.values()))


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


def test_bounces_follow_engagement() -> None:
    """A session is a bounce in its first window until > 10 s, a conversion or 2 pageviews;
    the bounce is taken back once, whatever comes later."""
    kafka = run([ctx(row("a", session="sa"), 1, T0 + 500),
                 ctx(row("b", session="sb", kind="conversion", revenue="12.5"), 2, T0 + 500),
                 ctx(row("c", session="sc", kind="event"), 3, T0 + 500)])
    assert (totals(kafka)["sessions"], totals(kafka)["bounces"]) == (3, 2)  # b converted
    run([ctx(row("c", T0 + 4_000, "event", session="sc", seq=2), 4, T0 + 4_500)],
        kafka=kafka)
    assert totals(kafka)["bounces"] == 2     # 4 s and no pageview: still a bounce
    run([ctx(row("c", T0 + 11_000, "event", session="sc", seq=3), 5, T0 + 11_500),
         ctx(row("a", T0 + 3_000, session="sa", seq=2), 6, T0 + 11_500)], kafka=kafka)
    assert totals(kafka)["bounces"] == 0     # c after 11 s, a with its 2nd pageview
    run([ctx(row("a", T0 + 20_000, session="sa", seq=3), 7, T0 + 20_500)], kafka=kafka)
    t = totals(kafka)
    assert (t["sessions"], t["bounces"], t["revenue"]) == (3, 0, Decimal("12.5"))
    assert Store.of(kafka).counters[(MINUTE, 0, "path", "/")][1]["bounces"] == 0


events = st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["/", "/a", "/b", "/c", "/d"]),
                            st.sampled_from(["pageview", "event", "conversion"])),
                  min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(evs=events, top_n=st.integers(1, 4), cuts=st.lists(st.integers(0, 60), max_size=5))
def test_rows_replace_to_exact_top_n_and_totals(evs: list[Any], top_n: int,
                                               cuts: list[int]) -> None:
    """Whatever the batch boundaries, the rows written (newest per key, as ReplacingMergeTree
    keeps them) are the top N of the final state plus "(other)", every dimension sums to
    the totals, and the hashes sent per value are its visitors, each once."""
    w = WindowState()
    stored: dict[tuple[str, str], dict[str, Any]] = {}
    hashes: dict[tuple[str, str], list[int]] = {}
    bounds = sorted({0, len(evs), *(min(c, len(evs)) for c in cuts)})
    for a, b in itertools.pairwise(bounds):
        for visitor, path, kind in evs[a:b]:
            r = row(f"v{visitor}", path=path, kind=kind)
            w.add(values(r), kind, "1.5" if kind == "conversion" else "0", visitor, False,
                  False)
        for dim, value, c in w.rows(top_n):
            stored[(dim, value)] = columns(c) if c is not None else {"events": 0}
        for dim, value, sent in w.fresh_visitors():
            hashes.setdefault((dim, value), []).extend(sent)
    live = {k: v for k, v in stored.items() if v["events"]}
    total = live[("", "")]
    assert total["events"] == len(evs)
    for i, dim in enumerate(DIMS[1:], 1):
        rows = {v: m for (d, v), m in live.items() if d == dim}
        for measure in ("events", "pageviews", "conversions"):
            assert sum(m[measure] for m in rows.values()) == total[measure], (dim, measure)
        assert sum(Decimal(m["revenue"]) for m in rows.values()) == Decimal(total["revenue"])
        by_value = w.by_dim[i]
        ranked = sorted(by_value, key=lambda v: (-by_value[v].c[0], v))
        assert set(rows) - {OTHER} == set(ranked[:top_n])
        assert (OTHER in rows) == (len(ranked) > top_n)
        for value in ranked[:top_n]:
            assert rows[value] == by_value[value].columns()
    for (dim, value), sent in hashes.items():
        assert len(sent) == len(set(sent))  # each hash once per value
        col = DIMENSIONS.get(dim)
        assert set(sent) == {v for v, path, _ in evs
                             if not col or row(path=path)[col] == value}


def test_revenue_is_cut_to_four_places_like_clickhouse_stores_it() -> None:
    assert revenue_units("19.99") == 199_900
    assert revenue_units("1.23456") == 12_345 and revenue_units("-1.23456") == -12_345
    assert revenue_units("0.00009") == 0
    assert [money(u) for u in (0, 5, 199_900, -12_345, -5)] == \
        ["0.0000", "0.0005", "19.9900", "-1.2345", "-0.0005"]


def test_state_round_trips_through_json() -> None:
    w = WindowState()
    w.add(values(row()), "pageview", "0", 1, True, True)
    w.add(values(row(path="/x")), "conversion", "3.25", 2, True, False)
    w.rows(1)
    w.offset, w.received = 41, T0 + 500
    back = WindowState.load(orjson.loads(orjson.dumps(w.dump())))
    assert back.dump() == w.dump()
    assert back.by_dim[1]["/x"].c[REVENUE] == 32_500
    assert back.emitted[1] == ["/"] and back.zeroed[1] == []


def test_state_written_before_0007_is_read() -> None:
    """Window states of the old layout (visitor sets and sessions inside) are read: counters
    and top lists kept, sessions that are still bounces become trackers to store."""
    m = [2, 1, 1, "9.5", 2, 1, [11, 12]]
    old = {"o": 40, "r": T0 + 900, "t": m,
           "d": {d: {"x": m} for d in DIMENSIONS}, "e": {d: ["x"] for d in DIMENSIONS},
           "s": {"s-bounce": [T0, T0, 1, 0, ["x"] * 7], "s-engaged": [T0, T0, 1, 1, ["x"] * 7]}}
    part = Partition()
    part.load("site|1795430400000", orjson.dumps(old))
    state = part.windows[("site", T0)]
    assert state.offset == 40 and state.by_dim[0][""].c[REVENUE] == 95_000
    assert state.emitted == [[""]] + [["x"]] * 7
    assert list(part.sessions) == ["s-bounce"] and part.unsaved == ["s-bounce"]
    assert part.sessions["s-bounce"].offset == 40
    assert part.watermark == T0 + 900


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


@pytest.fixture
def windows() -> TrafficWindows:
    """The worker's fold over a real (not started) Faust table."""
    return worker(FakeKafka())


def test_fold_excludes_bots_internal_late_and_replays(windows: TrafficWindows) -> None:
    batch = [
        ctx(row("a"), 10, T0 + 1_000),
        ctx(row("b", session="sb", is_bot=1, seq=0), 11, T0 + 1_000),
        ctx(row("c", session="sc"), 12, T0 + 1_000, ip="10.2.3.4"),
        ctx(row("d", ts=T0 - 200_000, session="sd"), 13, T0 + 1_000),  # ended 140 s ago
        ctx(row("e", ts=T0 - 50_000, session="se"), 14, T0 + 1_000),  # late but allowed
    ]
    windows.fold(batch)
    rows = windows.rows()[0]
    hashes = [orjson.loads(h) for h in windows.visitor_rows()[0]]
    tot = {r["window_start"][:16]: r for r in rows if r["dimension"] == ""}
    assert sorted(tot) == ["2026-11-23 10:39", "2026-11-23 10:40"]
    assert all(r["events"] == 1 and r["version"] == 14 and "visitors" not in r
               for r in tot.values())
    assert [h["visitors"] for h in hashes if h["dimension"] == "" and
            h["window_start"].startswith("2026-11-23 10:40")] == [[visitor_hash("site", "a")]]
    # a replay of the same offsets changes nothing; a new offset does
    windows.fold(batch)
    assert [r for rows in windows.rows().values() for r in rows] == []
    assert windows.visitor_rows() == {}
    windows.fold([ctx(row("a", ts=T0 + 30_000, seq=2), 15, T0 + 31_000)])
    (total,) = [r for r in windows.rows()[0] if r["dimension"] == ""]
    assert (total["events"], total["sessions"], total["bounces"], total["version"]) == \
        (2, 1, 0, 15)
    assert windows.visitor_rows() == {}  # "a" was sent for this window already


def sent(windows: TrafficWindows) -> list[dict[str, Any]]:
    """The visitor rows of partition 0, decoded."""
    return [orjson.loads(r) for r in windows.visitor_rows()[0]]


def test_only_new_visitor_hashes_are_sent(windows: TrafficWindows) -> None:
    windows.fold([ctx(row("a"), 1, T0 + 500), ctx(row("b", path="/b", session="s2"), 2,
                                                    T0 + 500)])
    first = {(h["dimension"], h["value"]): h["visitors"] for h in sent(windows)}
    assert sorted(first[("", "")]) == sorted([visitor_hash("site", "a"),
                                              visitor_hash("site", "b")])
    windows.rows()
    windows.fold([ctx(row("a", path="/b", seq=2), 3, T0 + 900),
                  ctx(row("c", session="s3"), 4, T0 + 900)])
    second = {(h["dimension"], h["value"]): h["visitors"] for h in sent(windows)}
    c = visitor_hash("site", "c")
    assert second == {("", ""): [c], ("path", "/"): [c], ("path", "/b"): [
        visitor_hash("site", "a")], ("channel", "Direct"): [c], ("source", "(direct)"): [c],
        ("medium", "(none)"): [c], ("campaign", ""): [c], ("country", "DE"): [c],
        ("device_type", "desktop"): [c]}


def test_forgotten_windows_send_a_straggler_again() -> None:
    w = WindowState()
    w.add(values(row()), "pageview", "0", 7, False, False)
    w.fresh_visitors()
    w.forget_visitors()
    w.add(values(row()), "pageview", "0", 7, False, False)
    assert all(sent == [7] for _, _, sent in w.fresh_visitors())


def test_long_hash_lists_are_split(windows: TrafficWindows,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traffic_stream, "MAX_HASHES_PER_ROW", 2)
    windows.fold([ctx(row(f"v{i}", session=f"s{i}"), i, T0 + 500) for i in range(5)])
    total = [h["visitors"] for h in sent(windows) if h["dimension"] == ""]
    assert [len(t) for t in total] == [2, 2, 1]
    assert {v for t in total for v in t} == {visitor_hash("site", f"v{i}") for i in range(5)}

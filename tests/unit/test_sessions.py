"""Session rules: hand-worked cases and invariants (hypothesis)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.sessions import Hit, SessionRules, assign, is_engaged

MIN = 60_000
T0 = 1_763_900_000_000  # 2025-11-23 12:13:20 UTC


def hit(ts: int, i: int = 0, *, source_key: str = "", type_: str = "pageview",
        path: str = "/", revenue: str = "0") -> Hit:
    return Hit(event_id=f"e{i}-{ts}", ts_ms=ts, type=type_, path=path, revenue=revenue,
               source_key=source_key, source="", medium="", campaign="", channel="Direct",
               referrer_host="", device_type="desktop", browser="", os="", country="",
               user_id="")


def run(hits: list[Hit], rules: SessionRules | None = None) -> list[str]:
    rules = rules or SessionRules()
    sessions: list[dict[str, Any]] = []
    return [assign(sessions, "site|v", h, rules)[0]["id"] for h in hits]


def test_thirty_minutes_of_inactivity_starts_a_new_session() -> None:
    ids = run([hit(T0), hit(T0 + 29 * MIN, 1), hit(T0 + 59 * MIN + 1, 2), hit(T0 + 200 * MIN, 3)])
    assert ids[0] == ids[1] and ids[1] != ids[2] and ids[2] != ids[3]


def test_exactly_thirty_minutes_still_continues() -> None:
    ids = run([hit(T0), hit(T0 + 30 * MIN, 1)])
    assert ids[0] == ids[1]


@pytest.mark.parametrize("split, expect_new", [(True, True), (False, False)])
def test_new_campaign_splits_when_enabled(split: bool, expect_new: bool) -> None:
    rules = SessionRules(split_on_campaign=split)
    ids = run([hit(T0, source_key="google|organic|"), hit(T0 + MIN, 1),  # internal click
               hit(T0 + 2 * MIN, 2, source_key="newsletter|email|nov")], rules)
    assert ids[0] == ids[1]
    assert (ids[2] != ids[1]) is expect_new


def test_same_campaign_again_does_not_split() -> None:
    ids = run([hit(T0, source_key="fb|social|"), hit(T0 + MIN, 1, source_key="fb|social|")])
    assert ids[0] == ids[1]


@pytest.mark.parametrize("tz, split_expected", [("UTC", True), ("America/New_York", False)])
def test_midnight_split_in_the_site_time_zone(tz: str, split_expected: bool) -> None:
    before = 1_763_942_100_000  # 2025-11-23 23:55 UTC = 18:55 in New York
    ids = run([hit(before), hit(before + 10 * MIN, 1)], SessionRules(timezone=tz))
    assert (ids[0] != ids[1]) is split_expected


def test_midnight_split_can_be_switched_off() -> None:
    before = 1_763_942_100_000
    ids = run([hit(before), hit(before + 10 * MIN, 1)], SessionRules(split_at_midnight=False))
    assert ids[0] == ids[1]


def test_late_event_joins_the_session_that_covers_it() -> None:
    rules = SessionRules()
    sessions: list[dict[str, Any]] = []
    first = assign(sessions, "s|v", hit(T0, 0, path="/a"), rules)[0]
    assign(sessions, "s|v", hit(T0 + 10 * MIN, 1, path="/b"), rules)
    second = assign(sessions, "s|v", hit(T0 + 90 * MIN, 2, path="/c"), rules)[0]
    late, seq = assign(sessions, "s|v", hit(T0 + 5 * MIN, 3, path="/late"), rules)
    assert late["id"] == first["id"] != second["id"] and seq == 3
    earlier, _ = assign(sessions, "s|v", hit(T0 - 2 * MIN, 4, path="/entry"), rules)
    assert earlier["id"] == first["id"]
    assert earlier["start"] == T0 - 2 * MIN and earlier["entry"] == "/entry"
    assert earlier["exit"] == "/late" or earlier["exit"] == "/b"


def test_session_measures_and_engagement() -> None:
    rules = SessionRules()
    sessions: list[dict[str, Any]] = []
    s, _ = assign(sessions, "s|v", hit(T0, 0, path="/"), rules)
    assert not is_engaged(s)  # one pageview, no time: a bounce
    assign(sessions, "s|v", hit(T0 + 5000, 1, type_="conversion", revenue="19.99"), rules)
    assign(sessions, "s|v", hit(T0 + 9000, 2, type_="conversion", revenue="0.01"), rules)
    assert (s["pv"], s["conv"], s["rev"], s["n"]) == (1, 2, "20.00", 3)
    assert is_engaged(s)


def test_session_ids_are_deterministic() -> None:
    hits = [hit(T0 + i * 7 * MIN, i) for i in range(20)]
    assert run(hits) == run(hits)


gaps = st.lists(st.integers(min_value=0, max_value=90 * MIN), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(gaps, st.booleans())
@example([0, 0, 0, 0, 0, 0], True)  # a campaign split in the same millisecond: later events
def test_in_order_streams_follow_the_timeout_rule_and_never_overlap(  # join the newer session
        gap_list: list[int], campaigns: bool) -> None:
    rules = SessionRules(split_at_midnight=False, split_on_campaign=campaigns)
    ts, hits = T0, []
    for i, gap in enumerate(gap_list):
        ts += gap
        hits.append(hit(ts, i, source_key=f"src{i % 3}|x|" if campaigns and i % 4 == 0 else ""))
    sessions: list[dict[str, Any]] = []
    assigned = [assign(sessions, "s|v", h, SessionRules(
        split_at_midnight=False, split_on_campaign=campaigns, max_sessions=10_000,
        lateness_ms=10**12))[0] for h in hits]
    # every event in exactly one session, seq counts add up
    assert sum(s["n"] for s in {id(s): s for s in assigned}.values()) == len(hits)
    for prev, cur, h, gap in zip(assigned, assigned[1:], hits[1:], gap_list[1:], strict=False):
        if gap > rules.timeout_ms:
            assert cur is not prev  # inactivity always splits
        elif not (campaigns and h.source_key and h.source_key != prev["src_key"]):
            assert cur is prev      # and nothing else splits
    spans = sorted((s["start"], s["last"]) for s in {id(s): s for s in assigned}.values())
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start         # sessions of one visitor never overlap


@settings(max_examples=200, deadline=None)
@given(gaps, st.randoms(use_true_random=False))
def test_shuffled_streams_put_every_event_in_one_session(gap_list: list[int], rnd: Any) -> None:
    ts, hits = T0, []
    for i, gap in enumerate(gap_list):
        ts += gap
        hits.append(hit(ts, i))
    rnd.shuffle(hits)
    rules = SessionRules(split_at_midnight=False, max_sessions=10_000, lateness_ms=10**12)
    sessions: list[dict[str, Any]] = []
    owners = [assign(sessions, "s|v", h, rules)[0] for h in hits]
    assert sum(s["n"] for s in sessions) == len(hits)
    for h, s in zip(hits, owners, strict=True):
        assert s["start"] <= h.ts_ms <= s["last"]  # each event lies within its session

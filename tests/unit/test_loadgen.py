"""Load generator: deterministic journeys, shares within tolerance, consistent ground truth,
rate control (through the real run loop, with an in-process transport that records)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from producers.loadgen.catalog import ARRIVALS, COUNTRIES, SITES
from producers.loadgen.model import GAP_MIN_MS, Journey, JourneyMaker, Options, malformed_count
from producers.loadgen.send import Limits, Pacer, Stats, prepare, run
from producers.loadgen.truth import TruthWriter, load
from schemas.event import Event

ANCHOR = 1_790_000_000_000  # a fixed "now" (2026-09-21)


def journeys(seed: int = 3, n: int = 4000, **opts: Any) -> list[Journey]:
    maker = JourneyMaker(seed, Options(**opts))
    return [maker.make(i, ANCHOR) for i in range(n)]


def test_same_seed_same_traffic_other_seed_other_traffic() -> None:
    a, b = journeys(7, 200), journeys(7, 200)
    assert [j.requests for j in a] == [j.requests for j in b]
    assert [j.sessions for j in a] == [j.sessions for j in b]
    c = journeys(8, 200)
    assert [j.visitor.visitor_id for j in a] != [j.visitor.visitor_id for j in c]
    # only absolute times follow the anchor
    later = JourneyMaker(7).make(5, ANCHOR + 3_600_000)
    assert later.requests[0][0]["event_id"] == a[5].requests[0][0]["event_id"]
    assert later.sessions[-1]["ended_at"] == a[5].sessions[-1]["ended_at"] + 3_600_000


def test_shares_follow_the_catalog() -> None:
    js = journeys()
    n = len(js)
    sites = Counter(j.visitor.site.site_id for j in js)
    for site in SITES:
        assert abs(sites[site.site_id] / n - site.weight) < 0.03, site.site_id
    countries = Counter(j.visitor.country.code for j in js)
    for c in COUNTRIES:
        assert abs(countries[c.code] / n - c.weight / sum(x.weight for x in COUNTRIES)) < 0.02
    bots = sum(j.visitor.is_bot for j in js) / n
    assert 0.02 < bots < 0.04
    human = [s for j in js for s in j.sessions if not s["bot"]]
    arrivals = Counter(s["arrival"] for s in human)
    total_w = sum(a.weight for a in ARRIVALS)
    for a in ARRIVALS:
        assert abs(arrivals[a.kind] / len(human) - a.weight / total_w) < 0.02, a.kind
    multi = sum(len(j.sessions) > 1 for j in js) / n
    assert 0.3 < multi < 0.5
    conversions = [c for j in js for c in j.conversions]
    assert 0.03 < len(conversions) / n < 0.10
    assert sum(len(c["path"]) > 1 for c in conversions) > len(conversions) / 2
    requests = [r for j in js for r in j.requests]
    malformed = sum(malformed_count(j) for j in js) / len(requests)
    assert 0.003 < malformed < 0.007


def test_events_are_valid_contract_v1_except_the_malformed_ones() -> None:
    for j in journeys(n=300):
        for req in j.requests:
            assert len(req) <= 11 and len({e["anonymous_id"] for e in req}) == 1
            for ev in req:
                _, valid = j.event_meta[ev["event_id"]]
                if valid:
                    Event.model_validate(ev)
                else:
                    with pytest.raises(ValueError):
                        Event.model_validate(ev)


def test_sessions_are_unambiguous_for_the_worker_rules() -> None:
    for j in journeys(n=1500):
        sessions = j.sessions
        assert sessions[-1]["ended_at"] <= ANCHOR
        assert sessions[0]["started_at"] > ANCHOR - 7 * 86_400_000
        for older, newer in itertools.pairwise(sessions):
            assert newer["started_at"] - older["ended_at"] >= GAP_MIN_MS
        for s in sessions:
            day = {datetime.fromtimestamp(t / 1000, UTC).date()
                   for t in (s["started_at"], s["ended_at"])}
            assert len(day) == 1  # never across midnight (UTC split)
        # per-session counts agree with the events
        events = [e for r in j.requests for e in r if j.event_meta[e["event_id"]][1]]
        for i, s in enumerate(sessions):
            mine = [e for e in events if j.event_meta[e["event_id"]][0] == i]
            assert s["events"] == len(mine)
            assert s["pageviews"] == sum(e["type"] == "pageview" for e in mine)
            assert s["started_at"] == min(e["ts"] for e in mine)
            assert s["ended_at"] == max(e["ts"] for e in mine)
            assert s["conversions"] == sum(e["type"] == "conversion" for e in mine)
            assert s["engaged"] == (s["ended_at"] - s["started_at"] > 10_000
                                    or s["conversions"] > 0 or s["pageviews"] >= 2)
        ts = [e["ts"] for e in events]
        assert ts == sorted(ts)  # sent in client-time order


class Recorder:
    """In-process transport: keeps what would be sent, and when."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, list[dict[str, Any]]]] = []

    async def start(self) -> None: ...
    async def flush(self) -> None: ...
    async def stop(self) -> None: ...

    async def send(self, journey: Journey, events: list[dict[str, Any]], stats: Stats) -> int:
        self.sent.append((time.monotonic(), events))
        stats.accepted += len(events)
        return 202


def test_rate_is_held(tmp_path: Path) -> None:
    rec = Recorder()
    stats = asyncio.run(run(JourneyMaker(1), rec, rate=2000, limits=Limits(duration=1.5),
                            truth=TruthWriter(None), concurrency=32))
    t0 = rec.sent[0][0]
    in_window = sum(len(ev) for t, ev in rec.sent if t - t0 <= 1.0)
    assert 1700 <= in_window <= 2300
    assert 2500 <= stats.events <= 3600  # 1.5 s plus the journeys in flight


def test_ground_truth_files_describe_what_was_sent(tmp_path: Path) -> None:
    rec = Recorder()
    truth_dir = tmp_path / "truth"
    writer = TruthWriter(truth_dir)
    stats = asyncio.run(run(JourneyMaker(4), rec, rate=0, limits=Limits(visitors=120),
                            truth=writer, concurrency=8, clock=lambda: ANCHOR))
    writer.close(stats.as_dict())
    t = load(truth_dir)
    sent = [e for _, req in rec.sent for e in req]
    assert [e["event_id"] for e in t["events"]] == [e["event_id"] for e in sent]
    assert len(t["visitors"]) == 120 == stats.journeys
    assert {s["visitor"] for s in t["sessions"]} == {v["visitor"] for v in t["visitors"]}
    valid = [e for e in t["events"] if e["valid"]]
    assert sum(s["events"] for s in t["sessions"]) == len(valid)
    assert all(e["sent_at"] == ANCHOR and e["status"] == 202 for e in t["events"])
    assert t["summary"]["events"] == len(sent)
    # same seed, same journeys, whatever the concurrency
    again = [JourneyMaker(4).make(i, ANCHOR) for i in range(120)]
    assert sorted(e["event_id"] for e in t["events"]) == sorted(
        e["event_id"] for j in again for r in j.requests for e in r)


def test_prepared_journeys_are_the_ones_made_on_the_way(tmp_path: Path) -> None:
    """--prepare makes the same traffic first and sends all of it, whatever the limit."""
    clock = lambda: ANCHOR  # noqa: E731
    prepared = prepare(JourneyMaker(5), Limits(events=3000), clock)
    assert sum(j.events for j in prepared) >= 3000 > sum(j.events for j in prepared[:-1])
    rec = Recorder()
    stats = asyncio.run(run(JourneyMaker(99), rec, rate=0, limits=Limits(duration=0.001),
                            truth=TruthWriter(None), concurrency=8, clock=clock,
                            prepared=prepared))
    made = [JourneyMaker(5).make(i, ANCHOR) for i in range(len(prepared))]
    assert stats.journeys == len(prepared)
    assert sorted(e["event_id"] for _, req in rec.sent for e in req) == sorted(
        e["event_id"] for j in made for r in j.requests for e in r)
    assert len(prepare(JourneyMaker(5), Limits(visitors=7), clock)) == 7
    with pytest.raises(ValueError):
        prepare(JourneyMaker(5), Limits(duration=5))


def test_pacer_does_not_burst_after_falling_behind() -> None:
    async def go() -> float:
        pacer = Pacer(1000)
        pacer._next -= 5  # as if the sender stalled for five seconds
        t = time.monotonic()
        for _ in range(10):
            await pacer.take(50)  # 500 events: half a second at 1000/s
        return time.monotonic() - t
    assert 0.4 < asyncio.run(go()) < 0.8

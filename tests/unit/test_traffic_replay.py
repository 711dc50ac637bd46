"""Traffic windows end to end in the worker, against a model of the ClickHouse tables:
whatever the batch boundaries, a crash in the middle of a commit (the changelog keeps any
prefix of it) and a replay from any earlier raw offset, the tables end up holding exactly
the numbers the rules give (the same check as the acceptance test, on random streams)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hypothesis import given, note, settings
from hypothesis import strategies as st

from streams.pipeline import Ctx
from tests.unit.traffic_harness import (
    T0,
    FakeKafka,
    Store,
    ctx,
    expected_minutes,
    row,
    run_batch,
    worker,
)


@st.composite
def streams(draw: st.DrawFn) -> list[Ctx]:
    """Two partitions (visitor % 2); visitor 5 internal, 6 a bot; sessions in order per
    visitor, a few seconds between events (so sessions stay bounces for a while); events on
    time, late within the allowed lateness (60 s), or beyond it."""
    sessions: dict[int, list[Any]] = {}
    clock: dict[int, int] = {}
    offsets = [100, 100]
    out = []
    for i in range(draw(st.integers(1, 60))):
        v = draw(st.integers(0, 6))
        kind = draw(st.sampled_from(["pageview", "pageview", "event", "event", "conversion"]))
        ts = clock[v] = clock.get(v, T0 + draw(st.integers(0, 150_000))) + draw(
            st.sampled_from([0, 2_000, 4_000, 6_000, 30_000, -3_000]))
        delay = draw(st.sampled_from([300, 300, 300, 300, 65_000, 100_000, 130_000]))
        sid, seq = "", 0
        if v != 6:
            sess = sessions.get(v)
            if sess is None or draw(st.integers(0, 7)) == 0:
                sess = sessions[v] = [f"s{v}.{i}", 0]
            sess[1] += 1
            sid, seq = sess
        p = v % 2
        offsets[p] += 1
        r = row(f"v{v}", ts, kind, draw(st.sampled_from(["/", "/a", "/b", "/c"])), sid, seq,
                draw(st.sampled_from(["2.5", "19.123456", "-0.00019"]))
                if kind == "conversion" else "0", is_bot=int(v == 6),
                channel=draw(st.sampled_from(["Direct", "Email", "Organic Search"])))
        out.append(ctx(r, offsets[p], ts + delay, "10.0.0.9" if v == 5 else "198.51.100.1",
                       partition=p))
    return out


def batches(events: list[Ctx], cuts: list[int]) -> list[list[Ctx]]:
    bounds = sorted({0, len(events), *(min(c, len(events)) for c in cuts)})
    return [events[a:b] for a, b in itertools.pairwise(bounds)]


def describe(events: list[Ctx]) -> str:
    return "\n".join(
        f"p{c.partition}@{c.offset} {c.row['visitor_id']} {c.row['session_id']}#"
        f"{c.row['session_seq']} {c.row['type']} +{(c.row['_ts_ms'] - T0) / 1000:g}s "
        f"recv +{(c.envelope['received_at'] - T0) / 1000:g}s {c.row['path']} "
        f"{c.row['channel']}" for c in events)


def assert_tables_right(kafka: FakeKafka, events: list[Ctx], top_n: int) -> None:
    note(describe(events))
    got = Store.of(kafka).minutes()
    want = expected_minutes(events, top_n)
    assert got.keys() == want.keys()
    for key, cols in want.items():
        assert got[key] == cols, key


@settings(max_examples=120, deadline=None)
@given(events=streams(), cuts=st.lists(st.integers(0, 60), max_size=12),
       top_n=st.integers(1, 3))
def test_any_batching_gives_the_rules_numbers(events: list[Ctx], cuts: list[int],
                                              top_n: int) -> None:
    async def scenario() -> FakeKafka:
        kafka = FakeKafka()
        w = worker(kafka, top_n)
        for batch in batches(events, cuts):
            await run_batch(w, kafka, batch)
        return kafka

    assert_tables_right(asyncio.run(scenario()), events, top_n)


@settings(max_examples=300, deadline=None)
@given(events=streams(), cuts=st.lists(st.integers(0, 60), max_size=12),
       crash=st.integers(0, 60), kept=st.integers(0, 12), back=st.integers(0, 60),
       recuts=st.lists(st.integers(0, 60), max_size=8))
def test_crash_in_a_commit_then_replay(events: list[Ctx], cuts: list[int], crash: int,
                                       kept: int, back: int, recuts: list[int]) -> None:
    """The worker dies while storing batch `crash` (its outputs were sent; `kept` of its
    changelog records reached Kafka); a new worker restores the changelog and reads again
    from `back` events before that batch (what the session step has not marked as seen),
    in other batches."""
    note(f"cuts={cuts} crash={crash} kept={kept} back={back} recuts={recuts}")
    parts = batches(events, cuts)
    ends = list(itertools.accumulate(len(b) for b in parts))
    crash = next(i for i, end in enumerate(ends) if end > min(crash, len(events) - 1))
    done = ends[crash] - len(parts[crash])

    async def scenario() -> FakeKafka:
        kafka = FakeKafka()
        w = worker(kafka)
        for batch in parts[:crash]:
            await run_batch(w, kafka, batch)
        await run_batch(w, kafka, parts[crash], keep_changelog=kept)
        w = worker(kafka)  # restarted: state from the changelog only
        for batch in batches(events[max(0, done - back):], recuts):
            await run_batch(w, kafka, batch)
        return kafka

    assert_tables_right(asyncio.run(scenario()), events, 2)


@settings(max_examples=60, deadline=None)
@given(events=streams(), cuts=st.lists(st.integers(0, 60), max_size=12))
def test_replaying_committed_batches_changes_nothing(events: list[Ctx],
                                                     cuts: list[int]) -> None:
    """A restarted worker fed batches it had already stored: no counter row changes (the
    newest windows are written again, with the same numbers), and the visitor sets stay the
    same (hashes may be sent again)."""
    async def scenario() -> tuple[Store, Store]:
        kafka = FakeKafka()
        w = worker(kafka)
        for batch in batches(events, cuts):
            await run_batch(w, kafka, batch)
        before = Store.of(kafka)
        w = worker(kafka)
        for batch in batches(events, cuts):
            await run_batch(w, kafka, batch)
        return before, Store.of(kafka)

    before, after = asyncio.run(scenario())
    assert {k: cols for k, (_, cols) in after.counters.items()} == \
        {k: cols for k, (_, cols) in before.counters.items()}
    assert after.visitors == before.visitors

"""Traffic windows across crashes: a worker that dies in its commit with part of what it
writes in Kafka, and a new one that takes over from the changelog. Each case is one reason
for the commit order in streams/traffic/stream.py (hashes, then state, then counter rows)."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.traffic.windows import OTHER
from tests.unit.traffic_harness import (
    COUNTERS,
    T0,
    FakeKafka,
    Store,
    ctx,
    is_hashes,
    row,
    run,
    run_batch,
    totals,
    worker,
)


def crash_then(first: list[list[Any]], crashing: list[Any], kept: int,
               after: list[list[Any]], top_n: int = 2) -> FakeKafka:
    """Batches `first`, then `crashing` dies in its commit with `kept` of the records it
    writes there in Kafka; a new worker (state from the changelog) runs `after`."""
    kafka = FakeKafka()

    async def go() -> None:
        w = worker(kafka, top_n)
        for batch in first:
            await run_batch(w, kafka, batch)
        await run_batch(w, kafka, crashing, keep_changelog=kept)
        w = worker(kafka, top_n)
        for batch in after:
            await run_batch(w, kafka, batch)
    asyncio.run(go())
    return kafka


def test_tracker_records_follow_their_window() -> None:
    """A session engages (its bounce is taken back) and the crash keeps only the first
    record of the commit: it must be the window's, so the replay takes the bounce back from
    the stored counters exactly once."""
    start = ctx(row("a", session="sa"), 1, T0 + 500)
    engage = ctx(row("a", T0 + 11_000, "event", session="sa", seq=2), 2, T0 + 11_500)
    kafka = crash_then([[start]], [engage], 1, [[engage]])
    assert (totals(kafka)["sessions"], totals(kafka)["bounces"]) == (1, 0)


def test_an_engaged_session_stays_engaged_after_a_restart() -> None:
    """Its tracker is deleted when it engages, so a later event after a restart does not
    take the bounce back a second time."""
    start = ctx(row("a", session="sa"), 1, T0 + 500)
    engage = ctx(row("a", T0 + 2_000, session="sa", seq=2), 2, T0 + 2_500)
    later = ctx(row("a", T0 + 4_000, session="sa", seq=3), 3, T0 + 4_500)
    kafka = crash_then([[start], [engage]], [], 99, [[later]])
    assert (totals(kafka)["sessions"], totals(kafka)["bounces"]) == (1, 0)


def test_a_replayed_event_is_not_seen_twice_by_its_tracker() -> None:
    """start (no pageview), 1st pageview: still a bounce. Replayed after a restart, the
    pageview must not count twice (it would engage the session there, where the bounce can
    not be taken back); the 2nd pageview later does engage it."""
    start = ctx(row("a", kind="event", session="sa"), 1, T0 + 500)
    pageview = ctx(row("a", T0 + 2_000, session="sa", seq=2), 2, T0 + 2_500)
    second = ctx(row("a", T0 + 4_000, session="sa", seq=3), 3, T0 + 4_500)
    kafka = crash_then([[start]], [pageview], 99, [[pageview], [second]])
    assert (totals(kafka)["sessions"], totals(kafka)["bounces"]) == (1, 0)


def test_rows_lost_in_a_crash_are_written_again() -> None:
    """/b entered the top 1 and left it again; the crash loses the counter rows of the last
    batch (its state is stored): the restarted worker writes the newest windows again, so
    /b gets its zero row and "(other)" its count."""
    a = [ctx(row(f"a{i}", path="/a", session=f"a{i}"), i, T0 + 500) for i in range(1, 3)]
    b = [ctx(row(f"b{i}", path="/b", session=f"b{i}"), i, T0 + 600) for i in range(3, 6)]
    more_a = [ctx(row(f"a{i}", path="/a", session=f"a{i}"), i, T0 + 700) for i in range(6, 9)]
    kafka = crash_then([a, b], more_a, 1, [more_a], top_n=1)
    by_path = {v: c for (_, _, d, v), (_, c) in Store.of(kafka).counters.items()
               if d == "path"}
    assert by_path["/a"]["events"] == 5 and by_path["/b"]["events"] == 0
    assert by_path[OTHER]["events"] == 3


def test_hashes_then_state_then_counter_rows() -> None:
    """A batch sends its visitor hashes with its other outputs, then stores its state, and
    only then sends the counter rows computed from that state."""
    kafka = FakeKafka()
    asyncio.run(run_batch(worker(kafka), kafka, [ctx(row("a"), 1, T0 + 500)]))
    kinds = ["hashes" if is_hashes(v) else "counters" if t == COUNTERS else "state"
             for t, _, v, _ in kafka.records]
    assert kinds == ["hashes", "state", "state", "counters"]  # window, trackers
    assert all(b'"visitors"' not in v for t, _, v, _ in kafka.records
               if t == COUNTERS and not is_hashes(v))


def test_a_session_whose_tracker_was_lost_is_tracked_again() -> None:
    """The crash keeps the window (it counted the session's start) but not the tracker:
    the replayed start creates it again, so a later pageview takes the bounce back."""
    start = ctx(row("a", session="sa"), 1, T0 + 500)
    later = ctx(row("a", T0 + 2_000, session="sa", seq=2), 2, T0 + 2_500)
    kafka = crash_then([], [start], 1, [[start], [later]])
    assert (totals(kafka)["sessions"], totals(kafka)["bounces"]) == (1, 0)


def test_tracker_segments_are_restored_in_order() -> None:
    """a and b start in one batch (one segment); a engages in the next (a marker in the
    next segment, the first one still holds b): restored in order, a stays engaged."""
    first = [ctx(row("a", session="sa"), 1, T0 + 500), ctx(row("b", session="sb"), 2, T0 + 500)]
    engage = ctx(row("a", T0 + 2_000, session="sa", seq=2), 3, T0 + 2_500)
    later = ctx(row("a", T0 + 4_000, session="sa", seq=3), 4, T0 + 4_500)
    kafka = crash_then([first, [engage]], [], 99, [[later]])
    assert (totals(kafka)["sessions"], totals(kafka)["bounces"]) == (2, 1)


def test_a_segment_is_deleted_only_after_its_replacement() -> None:
    """The tracker moves to a newer segment and the old one is deleted: a crash that keeps
    only the window and one more record must keep the new segment, not the deletion."""
    start = ctx(row("a", kind="event", session="sa"), 1, T0 + 500)
    moved = ctx(row("a", T0 + 2_000, "event", session="sa", seq=2), 2, T0 + 2_500)
    engage = ctx(row("a", T0 + 4_000, "conversion", session="sa", seq=3, revenue="5"), 3,
                 T0 + 4_500)
    kafka = crash_then([[start]], [moved], 2, [[moved], [engage]])
    assert (totals(kafka)["sessions"], totals(kafka)["bounces"]) == (1, 0)


def test_duplicates_alone_make_a_restored_partition_resend() -> None:
    """The crash loses the last rows after the visitor state was stored: the replayed
    events come back as duplicates (rejected by the session step), and that is enough for
    the restored partition to write its newest windows again."""
    first = [ctx(row("a", path="/a"), 1, T0 + 500)]
    second = [ctx(row("b", path="/b", session="sb"), 2, T0 + 600)]
    kafka = crash_then([first], second, 2, [])
    assert totals(kafka)["events"] == 1                    # the second batch's rows: lost
    duplicates = [ctx(row("b", path="/b", session="sb"), 2, T0 + 600)]
    duplicates[0].reject_step = "session"
    kafka = run(duplicates, kafka=kafka)
    assert totals(kafka)["events"] == 2


def test_rows_of_a_batch_are_acknowledged_before_the_next_state() -> None:
    """With acknowledgements that take a while, no state record goes out while an earlier
    batch's counter rows are unacknowledged (FakeKafka checks it on every send)."""
    kafka = FakeKafka(slow=True)
    batches = [[ctx(row(f"v{i}", path=f"/{i % 3}", session=f"s{i}"), i, T0 + 500)]
               for i in range(1, 6)]
    run(*batches, kafka=kafka)
    assert totals(kafka)["events"] == 5

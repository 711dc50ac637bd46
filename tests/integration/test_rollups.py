"""The rollups of migration 0008 give the numbers the base tables give with FINAL: rows
written through the sink's writer in many inserts, with replays and session versions in any
order, before and after ClickHouse merges the parts; rows stored before the migration ran
are rolled up by it; a refund lowers a session's revenue."""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from clickstream.settings import CommonSettings
from schemas.timefmt import ms_to_text, now_ms
from sinks.migrate import TTL_TABLES, apply_ttl, available, default_params, migrate
from sinks.store import ChdbStore
from sinks.writer import BatchWriter

DB = "clickstream"
DAY_MS = 86_400_000

#: traffic_daily recomputed from sessions FINAL (the view as it was before 0008)
TRAFFIC_REF = """
SELECT toDate(first_seen) AS day, site_id, channel, source, medium, campaign,
       count(), uniq(visitor_id), sum(pageviews), sum(is_engaged), sum(is_bounce),
       countIf(s.conversions > 0), sum(conversions), sum(revenue), sum(duration_ms)
FROM {db}.sessions AS s FINAL
GROUP BY day, site_id, channel, source, medium, campaign ORDER BY ALL"""
TRAFFIC = """
SELECT day, site_id, channel, source, medium, campaign, sessions, visitors, pageviews,
       engaged_sessions, bounces, converting_sessions, conversions, revenue, duration_ms
FROM {db}.traffic_daily ORDER BY ALL"""
PAGES_REF = """
SELECT toDate(ts) AS day, site_id, host, path, count(), uniq(visitor_id), uniq(session_id),
       countIf(session_seq = 1)
FROM {db}.events FINAL WHERE type = 'pageview' AND is_bot = 0
GROUP BY day, site_id, host, path ORDER BY ALL"""
PAGES = """
SELECT day, site_id, host, path, pageviews, visitors, sessions, entrances
FROM {db}.pages_daily ORDER BY ALL"""
FUNNEL_ARGS = ("site = 's1', date_from = now() - INTERVAL 20 DAY, date_to = now() + INTERVAL 1 "
               "DAY, window_seconds = 900, step1 = '/', step2 = '/pricing', step3 = 'signup', "
               "step4 = ''")
FUNNEL_REF = """
SELECT level, count() FROM (
    SELECT visitor_id, windowFunnel(900)(toDateTime(ts), step = '/', step = '/pricing',
                                         step = 'signup') AS level
    FROM (SELECT visitor_id, ts, if(type = 'pageview', path, name) AS step FROM {db}.events
          WHERE site_id = 's1' AND is_bot = 0 AND ts >= now() - INTERVAL 20 DAY)
    GROUP BY visitor_id)
WHERE level > 0 GROUP BY level ORDER BY level"""


def traffic(seed: int = 4) -> tuple[list[bytes], list[bytes]]:
    """Events and every version of every session, as the worker emits them."""
    rng = random.Random(seed)
    now = now_ms()
    events, sessions = [], []
    for v in range(120):
        site, visitor = ("s1", "s2")[v % 3 == 0], f"visitor-{v}"
        for _ in range(rng.randint(1, 3)):
            sid, start = uuid.uuid4().hex[:20], now - rng.randint(0, 12 * DAY_MS)
            channel = rng.choice(["Direct", "Email", "Paid Search"])
            steps = rng.choice([["/"], ["/", "/pricing"], ["/", "/pricing", "signup"],
                                ["/blog", "/", "/pricing", "signup"]])
            revenue = 0.0
            for seq, step in enumerate(steps, start=1):
                conv = step == "signup"
                revenue += 30.0 if conv else 0.0
                ev = {"event_id": str(uuid.uuid4()), "site_id": site,
                      "type": "conversion" if conv else "pageview", "name": step if conv
                      else "", "path": "" if conv else step, "host": f"{site}.example",
                      "ts": ms_to_text(start + seq * 40_000), "received_at": ms_to_text(now),
                      "visitor_id": visitor, "session_id": sid, "session_seq": seq,
                      "is_bot": int(rng.random() < 0.05), "revenue": str(30 if conv else 0)}
                events.append(orjson.dumps(ev))
                pv = sum(1 for s in steps[:seq] if s != "signup")
                engaged = int(seq > 1)
                sessions.append(orjson.dumps({
                    "session_id": sid, "site_id": site, "visitor_id": visitor,
                    "first_seen": ms_to_text(start + 40_000),
                    "started_at": ms_to_text(start + 40_000),
                    "ended_at": ms_to_text(start + seq * 40_000),
                    "duration_ms": (seq - 1) * 40_000, "pageviews": pv, "events": seq,
                    "conversions": int(conv), "revenue": str(revenue), "channel": channel,
                    "source": channel.lower(), "medium": "x", "campaign": "",
                    "is_engaged": engaged, "is_bounce": 1 - engaged, "version": seq}))
    return events, sessions


def write(store: ChdbStore, table: str, rows: list[bytes], seed: int) -> None:
    """Through the writer in many small flushes, in shuffled order, with a sixth replayed."""
    rng = random.Random(seed)
    rows = rows + rng.sample(rows, len(rows) // 6)
    rng.shuffle(rows)

    async def run() -> None:
        writer = BatchWriter(store, max_rows=60)
        for i in range(0, len(rows), 25):
            writer.write(f"{DB}.{table}", rows[i:i + 25], origin=f"t/{seed}/{i}")
            if writer.due():
                await writer.flush()
        await writer.flush()

    asyncio.run(run())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    s = ChdbStore(tmp_path_factory.mktemp("rollups-chdb"))
    migrate(s, DB)
    s.execute("SYSTEM STOP MERGES")  # keep the parts apart: FINAL must combine them
    events, sessions = traffic()
    write(s, "events", events, 1)
    write(s, "sessions", sessions, 2)
    yield s
    s.close()


def rows_of(store: ChdbStore, sql: str, db: str = DB) -> list[list[Any]]:
    return store.query_rows(sql.format(db=db))[1]


def test_rollups_hold_unmerged_parts_and_give_the_final_numbers(store: ChdbStore) -> None:
    _, parts = store.query_rows(f"SELECT table, count() FROM system.parts WHERE database = "
                                f"'{DB}' AND active GROUP BY table")
    assert {t: n for t, n in parts}["traffic_daily_sessions"] >= 8  # the view must merge them
    _, dup = store.query_rows(f"SELECT count() - uniqExact(event_id) FROM {DB}.events")
    assert dup[0][0] > 0
    assert rows_of(store, TRAFFIC) == rows_of(store, TRAFFIC_REF)
    assert rows_of(store, PAGES) == rows_of(store, PAGES_REF)
    funnel = rows_of(store, "SELECT step, visitors FROM {db}.funnel(" + FUNNEL_ARGS + ")")
    ref = dict(rows_of(store, FUNNEL_REF))
    assert [v for _, v in funnel] == [sum(n for lv, n in ref.items() if lv >= s)
                                      for s in (1, 2, 3, 4)]
    assert funnel[2][1] > 0  # some visitors reach the last step


def test_merged_parts_give_the_same_numbers(store: ChdbStore) -> None:
    before = rows_of(store, TRAFFIC), rows_of(store, PAGES)
    store.execute("SYSTEM START MERGES")
    for table in ("events", "sessions", "traffic_daily_sessions", "pages_daily_rollup"):
        store.execute(f"OPTIMIZE TABLE {DB}.{table} FINAL")
    assert (rows_of(store, TRAFFIC), rows_of(store, PAGES)) == before
    assert rows_of(store, TRAFFIC) == rows_of(store, TRAFFIC_REF)


def test_a_refund_lowers_the_revenue_of_the_latest_version(store: ChdbStore) -> None:
    db = "refund"
    migrate(store, db)
    day = ms_to_text(now_ms())

    def version(n: int, revenue: str) -> bytes:
        return orjson.dumps({"session_id": "r1", "site_id": "s", "visitor_id": "v",
                             "first_seen": day, "channel": "Email", "conversions": 2 if n > 2
                             else 1, "revenue": revenue, "pageviews": n, "version": n})

    for n, revenue in ((3, "-20.5"), (2, "49.9"), (1, "0")):  # latest first, older later
        store.insert_json_rows(f"{db}.sessions", [version(n, revenue)])
    _, got = store.query_rows(f"SELECT sessions, pageviews, conversions, revenue "
                              f"FROM {db}.traffic_daily")
    assert got == [[1, 3, 2, -20.5]]


def test_the_migration_rolls_up_rows_stored_before_it(store: ChdbStore) -> None:
    db = "backfill"
    migrate(store, db)
    events, sessions = traffic(seed=7)
    store.insert_json_rows(f"{db}.events", events)
    store.insert_json_rows(f"{db}.sessions", sessions)
    want = rows_of(store, TRAFFIC, db), rows_of(store, PAGES, db)
    for name in ("pages_daily_rollup_mv", "traffic_daily_sessions_mv", "funnel_steps_mv",
                 "pages_daily_rollup", "traffic_daily_sessions", "funnel_steps"):
        store.execute(f"DROP TABLE {db}.{name} SYNC")
    store.execute(f"DELETE FROM {db}.schema_migrations WHERE version = 8")
    assert migrate(store, db) == ["0008_rollups"]
    assert (rows_of(store, TRAFFIC, db), rows_of(store, PAGES, db)) == want
    assert rows_of(store, TRAFFIC, db) == rows_of(store, TRAFFIC_REF, db)


def test_uniq_of_the_visitor_hash_is_uniq_of_the_id(store: ChdbStore) -> None:
    """traffic_daily counts visitors as uniq(cityHash64(id)): the same number as uniq(id),
    also past 65,536 visitors, where uniq samples (it hashes a string with cityHash64)."""
    _, got = store.query_rows(
        "SELECT uniq(s) = uniq(cityHash64(s)), uniq(s) > 65536 FROM (SELECT concat('v', "
        "toString(cityHash64(number) % 3000000)) AS s FROM numbers(400000))")
    assert got == [[True, True]]


def test_every_table_with_a_ttl_follows_its_setting(store: ChdbStore) -> None:
    """Each table a migration creates with a TTL is in TTL_TABLES with the TTL's column, and
    apply_ttl changes the rollups' retention with the settings of their source tables."""
    params = default_params("ttl", CommonSettings())
    created = {m.group(1): m.group(2) for mig in available() for sql in mig.statements(params)
               if (m := re.match(r"CREATE TABLE IF NOT EXISTS ttl\.(\w+).*\nTTL "
                                 r"toDateTime\((\w+)\)", sql, re.S))}
    assert created == {table: column for table, (column, _) in TTL_TABLES.items()}
    db = "ttl"
    try:
        migrate(store, db, default_params(db, CommonSettings(events_ttl_days=30,
                                                             sessions_ttl_days=60)))

        def days() -> dict[str, str]:
            _, rows = store.query_rows(
                "SELECT name, extract(engine_full, 'toIntervalDay\\\\((\\\\d+)\\\\)') FROM "
                f"system.tables WHERE database = '{db}' AND name IN ('pages_daily_rollup', "
                "'traffic_daily_sessions', 'funnel_steps')")
            return dict(rows)

        assert days() == {"pages_daily_rollup": "30", "traffic_daily_sessions": "60",
                          "funnel_steps": "30"}
        changed = apply_ttl(store, db, default_params(db, CommonSettings(
            events_ttl_days=45, sessions_ttl_days=0)))
        assert {"pages_daily_rollup", "traffic_daily_sessions", "funnel_steps"} <= set(changed)
        assert days() == {"pages_daily_rollup": "45", "traffic_daily_sessions": "",
                          "funnel_steps": "45"}
    finally:
        store.execute(f"DROP DATABASE IF EXISTS {db} SYNC")

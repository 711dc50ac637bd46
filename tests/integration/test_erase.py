"""`clickstream erase`: nothing of the person is left in any table; others are untouched."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from schemas.timefmt import ms_to_text, now_ms
from sinks.cluster_sql import quote_string
from sinks.migrate import migrate
from sinks.store import ChdbStore
from streams.traffic.stream import visitor_hash
from tests.integration.test_rollups import (
    FUNNEL_ARGS,
    FUNNEL_REF,
    PAGES,
    PAGES_REF,
    TRAFFIC,
    TRAFFIC_REF,
    rows_of,
)

DB = "clickstream"


def seed(store: ChdbStore, visitor: str, user: str) -> None:
    now = now_ms()
    sid, cid = uuid.uuid4().hex[:20], str(uuid.uuid4())
    ev = [{"event_id": str(uuid.uuid4()), "site_id": "gdpr", "type": t, "ts": ms_to_text(now),
           "received_at": ms_to_text(now), "visitor_id": visitor, "user_id": user,
           "session_id": sid, "url": "https://gdpr.example/"} for t in ("pageview", "identify")]
    store.insert_json_rows(f"{DB}.events", [orjson.dumps(e) for e in ev])
    store.insert_json_rows(f"{DB}.sessions", [orjson.dumps({
        "session_id": sid, "site_id": "gdpr", "visitor_id": visitor, "user_id": user,
        "first_seen": ms_to_text(now), "started_at": ms_to_text(now),
        "ended_at": ms_to_text(now), "version": 2})])
    store.insert_json_rows(f"{DB}.conversions", [orjson.dumps({
        "conversion_id": cid, "site_id": "gdpr", "visitor_id": visitor, "user_id": user,
        "ts": ms_to_text(now), "name": "purchase", "path": ["Email"]})])
    store.insert_json_rows(f"{DB}.attribution", [orjson.dumps({
        "conversion_id": cid, "site_id": "gdpr", "conversion_ts": ms_to_text(now),
        "model": m, "touch_ts": ms_to_text(now), "channel": "Email", "credit": 1.0})
        for m in ("linear", "first_touch")])
    store.insert_json_rows(f"{DB}.invalid_events", [orjson.dumps({
        "dead_letter_id": str(uuid.uuid4()), "site_id": "gdpr", "received_at": ms_to_text(now),
        "failed_at": ms_to_text(now), "reason": "invalid: x",
        "payload": orjson.dumps({"anonymous_id": visitor, "type": "bogus"}).decode()})])


def mentions(store: ChdbStore, needle: str) -> dict[str, int]:
    _, tables = store.query_rows(
        f"SELECT name FROM system.tables WHERE database = '{DB}' AND engine LIKE '%MergeTree'")
    out = {}
    for (table,) in tables:
        _, rows = store.query_rows(f"SELECT count() FROM {DB}.{table} WHERE "
                                   f"position(toString(tuple(*)), '{needle}') > 0")
        out[table] = int(rows[0][0])
    return out


def test_erase_visitor_and_user_leave_nothing_behind(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = ChdbStore(home / "chdb")
    migrate(store, DB)
    seed(store, "visitor-p", "user-p")
    seed(store, "visitor-q", "user-q")
    assert sum(mentions(store, "visitor-p").values()) >= 5
    store.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    env["CLICKSTREAM_HOME"] = str(home)
    for args in (["--visitor", "visitor-p"], ["--user", "user-q"]):
        run = subprocess.run([sys.executable, "-m", "clickstream", "erase", "--site", "gdpr",
                              *args], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "audit in erasure_log" in run.stderr

    store = ChdbStore(home / "chdb")
    for needle in ("visitor-p", "user-p", "visitor-q", "user-q"):
        left = {t: n for t, n in mentions(store, needle).items() if n}
        assert left == {}, f"{needle} still in {left}"
    _, audit = store.query_rows(
        f"SELECT subject_kind, rows_deleted['events'], rows_deleted['attribution'], "
        f"position(toString(tuple(*)), 'visitor-p') FROM {DB}.erasure_log ORDER BY erased_at")
    assert audit == [["visitor", 2, 2, 0], ["user", 2, 2, 0]]
    store.close()


# --- a site with traffic: every table filled, then two people erased ------------------------

SITE = "s1"
PERSON = ("user-p", ["visitor-p", "visitor-p2"])  # erased by user id: both devices go
OTHER = "visitor-q"                                # erased by visitor id
MINUTE_ROWS = """
SELECT toUnixTimestamp64Milli(window_start), kafka_partition, dimension, value, {columns}
FROM {db}.{table} WHERE site_id = 's1' ORDER BY ALL"""
TRAFFIC_VISITORS = MINUTE_ROWS.format(db=DB, table="traffic_minutes",
                                      columns="length(visitors)")
COUNTERS = MINUTE_ROWS.format(db=DB, table="traffic_1m FINAL", columns="events, pageviews")
TRAFFIC_VISITORS_REF = """
SELECT intDiv(toUnixTimestamp64Milli(ts), 60000) * 60000, {p}, d.1 AS dim, d.2 AS val,
       uniqExact(visitor_id)
FROM {db}.events FINAL ARRAY JOIN [('', ''), ('path', path)] AS d
WHERE site_id = 's1' AND is_bot = 0 GROUP BY ALL ORDER BY ALL"""
HOURLY = ("SELECT toString(hour), dimension, value, visitors FROM {db}.traffic_1h "
          "WHERE site_id = 's1' ORDER BY ALL")
HOURLY_REF = """
SELECT toString(toStartOfHour(ts)), d.1 AS dim, d.2 AS val, uniqExact(visitor_id)
FROM {db}.events FINAL ARRAY JOIN [('', ''), ('path', path)] AS d
WHERE site_id = 's1' AND is_bot = 0 GROUP BY ALL ORDER BY ALL"""


def listed(values: Sequence[object]) -> str:
    return ", ".join(quote_string(str(v)) for v in values)


def partition(visitor: str) -> int:
    """The raw partition of a visitor in this test (the worker's is the record's)."""
    return len(visitor) % 2


def site_traffic(seed: int = 11) -> dict[str, list[dict[str, Any]]]:
    """Events, session versions, conversions and credits of 40 visitors of s1 (the person,
    on two devices, shares pages with others and has a page of their own) and a few of s2;
    traffic_in rows (hashes and counters, as the worker writes them; totals rows in the old
    layout, with their visitor sets) for every minute, value and partition of s1."""
    rng = random.Random(seed)
    now = now_ms() - 3_600_000
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "events", "sessions", "conversions", "attribution", "traffic_in")}
    people = [(f"visitor-{n}", "") for n in range(36)] + [(OTHER, "user-q")]
    people += [(v, PERSON[0]) for v in PERSON[1]] + [("visitor-s2", "")]
    for visitor, user in people:
        site = "s2" if visitor.endswith("s2") else SITE
        for n in range(rng.randint(1, 3)):
            sid = uuid.uuid4().hex[:20]
            start = now - rng.randint(0, 3 * 86_400_000)
            if n == 0 and visitor in (*PERSON[1], OTHER, "visitor-1", "visitor-2"):
                start = now - len(visitor) % 2 * 86_400_000  # minutes shared with others
            steps = rng.choice([["/"], ["/", "/pricing"], ["/", "/pricing", "signup"]])
            if visitor in PERSON[1]:
                steps = ["/", f"/account/{visitor}", "/pricing", "signup"]
            channel = rng.choice(["Direct", "Email"])
            for seq, step in enumerate(steps, start=1):
                conv = step == "signup"
                out["events"].append({"_ms": start + seq * 20_000,  # (not a column)
                    "event_id": str(uuid.uuid4()), "site_id": site,
                    "type": "conversion" if conv else "pageview", "name": step if conv
                    else "", "path": "" if conv else step, "host": "h", "session_id": sid,
                    "ts": ms_to_text(start + seq * 20_000), "received_at": ms_to_text(now),
                    "visitor_id": visitor, "user_id": user, "session_seq": seq,
                    "channel": channel, "revenue": "30" if conv else "0"})
                out["sessions"].append({
                    "session_id": sid, "site_id": site, "visitor_id": visitor,
                    "user_id": user, "first_seen": ms_to_text(start + 20_000),
                    "started_at": ms_to_text(start + 20_000),
                    "ended_at": ms_to_text(start + seq * 20_000), "channel": channel,
                    "pageviews": seq - conv, "conversions": int(conv),
                    "revenue": "30" if conv else "0", "is_engaged": int(seq > 1),
                    "is_bounce": int(seq == 1), "version": seq})
                if conv:
                    cid = str(uuid.uuid4())
                    out["conversions"].append({
                        "conversion_id": cid, "site_id": site, "visitor_id": visitor,
                        "user_id": user, "ts": ms_to_text(start + seq * 20_000),
                        "name": "signup", "session_id": sid, "path": [channel]})
                    out["attribution"].append({
                        "conversion_id": cid, "site_id": site, "model": "linear",
                        "conversion_ts": ms_to_text(start + seq * 20_000), "session_id": sid,
                        "touch_ts": ms_to_text(start), "channel": channel, "credit": 1.0})
    windows: dict[tuple[int, int, str, str], list[dict[str, Any]]] = {}
    for ev in out["events"]:
        if ev["site_id"] != SITE:
            continue
        ms = ev["_ms"]
        for dim, value in (("", ""), ("path", ev["path"])):
            key = (ms - ms % 60_000, partition(ev["visitor_id"]), dim, value)
            windows.setdefault(key, []).append(ev)
    for (start, p, dim, value), evs in windows.items():
        hashes = sorted({visitor_hash(SITE, e["visitor_id"]) for e in evs})
        row = {"site_id": SITE, "window_start": ms_to_text(start), "kafka_partition": p,
               "dimension": dim, "value": value, "version": 7}
        out["traffic_in"].append({**row, "visitors": hashes, "hashes_only": 1})
        out["traffic_in"].append({  # counters; the totals row carries its set (old layout)
            **row, "events": len(evs), "visitors": hashes if dim == "" else [],
            "pageviews": sum(e["type"] == "pageview" for e in evs)})
    return out


def person_needles(store: ChdbStore) -> tuple[list[str], list[str]]:
    """What the tables may hold of the two people: their ids and the hashes the tables
    store of them (as text), and their visitor and session ids (for uniq states)."""
    visitors = [*PERSON[1], OTHER]
    ids = listed(visitors)
    _, rows = store.query_rows(
        f"SELECT groupUniqArray(session_id), groupUniqArray(toString(event_id)) "
        f"FROM {DB}.events WHERE visitor_id IN ({ids})")
    sessions, events = rows[0]
    _, conv = store.query_rows(f"SELECT toString(conversion_id) FROM {DB}.conversions "
                               f"WHERE visitor_id IN ({ids})")
    _, hashed = store.query_rows(
        f"SELECT arrayJoin(arrayFlatten([groupArray(toString(cityHash64(v))), "
        f"groupArray(toString(reinterpretAsUInt128(sipHash128(v))))])) "
        f"FROM (SELECT arrayJoin([{ids}, {listed(sessions)}]) AS v)")
    needles = [*visitors, PERSON[0], "user-q", *sessions, *events, *(c for c, in conv),
               *(h for h, in hashed), *(str(visitor_hash(SITE, v)) for v in visitors)]
    assert len(sessions) >= 3 and conv
    return needles, [*visitors, *sessions]


def leftovers(store: ChdbStore, needles: list[str], members: list[str]) -> dict[str, int]:
    """Rows of any table naming one of the needles in any column, and rows whose uniq state
    (a set of hashes that prints as bytes; keyed table.column) holds one of the members.
    Every table is looked at."""
    _, tables = store.query_rows(
        f"SELECT name, engine FROM system.tables WHERE database = '{DB}'")
    found: dict[str, int] = {}
    for table, engine in tables:
        if engine in ("View", "MaterializedView", "Null"):
            continue  # derived, or stores nothing
        assert engine.endswith("MergeTree"), (table, engine)
        _, rows = store.query_rows(
            f"SELECT countIf(multiSearchAny(toString(tuple(*)), [{listed(needles)}])) "
            f"FROM {DB}.{table}")
        found[table] = int(rows[0][0])
        _, states = store.query_rows(
            f"SELECT name, type FROM system.columns WHERE database = '{DB}' AND table = "
            f"'{table}' AND type LIKE 'AggregateFunction(%'")
        for column, kind in states:
            assert kind == "AggregateFunction(uniq, String)", (table, column, kind)
            found[f"{table}.{column}"] = 0
            for m in members:  # a member is in a state when adding it changes nothing
                _, rows = store.query_rows(
                    f"SELECT countIf(finalizeAggregation({column}) = arrayReduce('uniqMerge',"
                    f" [{column}, (SELECT uniqState({quote_string(m)}))])) FROM {DB}.{table}")
                found[f"{table}.{column}"] += int(rows[0][0])
    return found


def test_erase_leaves_no_id_or_hash_and_rollups_equal_the_remaining_events(
        tmp_path: Path) -> None:
    from sinks.erase import erase

    store = ChdbStore(tmp_path / "chdb")
    migrate(store, DB)
    data = site_traffic()
    for table, rows in data.items():
        store.insert_json_rows(f"{DB}.{table}", [orjson.dumps(r) for r in rows])
    needles, members = person_needles(store)
    before = leftovers(store, needles, members)
    for table in ("events", "sessions", "conversions", "attribution", "pages_daily_rollup",
                  "pages_daily_rollup.visitors", "pages_daily_rollup.sessions",
                  "traffic_daily_sessions", "funnel_steps", "traffic_1m",
                  "traffic_visitors_1m"):
        assert before[table], f"the seed leaves {table} without the people"
    counters = {tuple(r[:4]): r[4:] for r in rows_of(store, COUNTERS)}

    counts = erase(store, DB, SITE, "user", PERSON[0])
    assert counts["events"] > 0 and counts["pages_daily_rollup"] > 0
    assert counts["traffic_1m"] > 0 and counts["traffic_visitors_1m"] > 0
    erase(store, DB, SITE, "visitor", OTHER)
    _, mutated = store.query_rows(f"SELECT table FROM system.mutations WHERE database = '{DB}' "
                                  "AND command LIKE '%UPDATE visitors%' ORDER BY table")
    assert [t for t, in mutated] == ["traffic_1m", "traffic_1m", "traffic_visitors_1m",
                                     "traffic_visitors_1m"]  # sets shared with others

    left = {t: n for t, n in leftovers(store, needles, members).items() if n}
    assert left == {}, f"still there: {left}"
    _, others = store.query_rows(f"SELECT uniqExact(visitor_id) FROM {DB}.events")
    assert others == [[37]]  # 36 visitors of s1 and one of s2 stay
    for got, want in ((TRAFFIC, TRAFFIC_REF), (PAGES, PAGES_REF)):
        assert rows_of(store, got) == rows_of(store, want)
    funnel = rows_of(store, "SELECT step, visitors FROM {db}.funnel(" + FUNNEL_ARGS + ")")
    ref = dict(rows_of(store, FUNNEL_REF))
    assert [v for _, v in funnel] == [sum(n for lv, n in ref.items() if lv >= s)
                                      for s in (1, 2, 3, 4)]
    p = "toUInt16(length(visitor_id) % 2)"  # partition() in SQL
    assert rows_of(store, TRAFFIC_VISITORS) == rows_of(store, TRAFFIC_VISITORS_REF.format(
        db=DB, p=p))
    assert rows_of(store, HOURLY) == rows_of(store, HOURLY_REF)
    # counter rows: those shared with others keep their numbers, the people's own are gone
    after = {tuple(r[:4]): r[4:] for r in rows_of(store, COUNTERS)}
    shared = {tuple(r[:4]) for r in rows_of(store, TRAFFIC_VISITORS)}
    assert after == {k: v for k, v in counters.items() if k in shared}
    assert len(after) < len(counters)
    assert not any("/account/" in str(k) for k in after)

    for table in ("events", "sessions", "pages_daily_rollup", "traffic_daily_sessions",
                  "funnel_steps", "traffic_1m", "traffic_visitors_1m"):
        store.execute(f"OPTIMIZE TABLE {DB}.{table} FINAL")  # merges bring nothing back
    assert not any(leftovers(store, needles, members).values())
    assert rows_of(store, PAGES) == rows_of(store, PAGES_REF)
    store.close()




class _ClusterNode:
    """chDB standing in for one node of a cluster (sinks/cluster.py layout): a DELETE or
    ALTER must name `<table>_local ON CLUSTER '<name>'`, a rebuilding INSERT must run shard
    by shard; each is recorded, then run on the single-node table of the same name (chDB
    runs no distributed DDL)."""

    def __init__(self, store: ChdbStore) -> None:
        self.store = store
        self.changes: list[str] = []

    def query_rows(self, sql: str) -> tuple[list[str], list[list[object]]]:
        return self.store.query_rows(sql)

    def execute(self, sql: str) -> None:
        if sql.startswith(("DELETE", "ALTER")):
            self.changes.append(sql)
            table = sql.split()[2]
            assert table.endswith("_local") and " ON CLUSTER 'c1' " in sql, sql
            sql = sql.replace("_local ON CLUSTER 'c1'", "", 1)
        elif sql.startswith("INSERT INTO clickstream.pages_daily_rollup"):
            self.changes.append(sql)
            assert " SETTINGS parallel_distributed_insert_select = 2 SELECT " in sql, sql
        self.store.execute(sql)


def test_erase_on_a_cluster_changes_the_local_tables_on_every_node(
        tmp_path: Path) -> None:
    from sinks.erase import erase

    store = ChdbStore(tmp_path / "chdb")
    migrate(store, DB)
    for table, rows in site_traffic().items():
        store.insert_json_rows(f"{DB}.{table}", [orjson.dumps(r) for r in rows])
    seed(store, "visitor-c", "user-c")
    needles, members = person_needles(store)
    node = _ClusterNode(store)
    counts = erase(node, DB, "gdpr", "user", "user-c", cluster="c1")  # type: ignore[arg-type]
    assert counts["events"] == 2 and counts["attribution"] == 2
    erase(node, DB, SITE, "user", PERSON[0], cluster="c1")  # type: ignore[arg-type]
    erase(node, DB, SITE, "visitor", OTHER, cluster="c1")  # type: ignore[arg-type]
    changed = {c.split()[2] for c in node.changes if not c.startswith("INSERT")}
    assert changed == {f"{DB}.{t}_local" for t in (
        "attribution", "conversions", "sessions", "events", "invalid_events",
        "traffic_daily_sessions", "funnel_steps", "pages_daily_rollup", "traffic_1m",
        "traffic_visitors_1m")}
    assert any(c.startswith("INSERT") for c in node.changes)
    assert not any(mentions(store, "visitor-c").values())
    assert not any(leftovers(store, needles, members).values())
    assert rows_of(store, PAGES) == rows_of(store, PAGES_REF)
    store.close()

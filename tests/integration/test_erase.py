"""`clickstream erase`: nothing of the person is left in any table; others are untouched."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson

from schemas.timefmt import ms_to_text, now_ms
from sinks.migrate import migrate
from sinks.store import ChdbStore

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


class _ClusterNode:
    """chDB standing in for one node of a cluster (sinks/cluster.py layout): a DELETE must
    name `<table>_local ON CLUSTER '<name>'`; it is recorded, then run on the single-node
    table of the same name (chDB runs no distributed DDL)."""

    def __init__(self, store: ChdbStore) -> None:
        self.store = store
        self.deletes: list[str] = []

    def query_rows(self, sql: str) -> tuple[list[str], list[list[object]]]:
        return self.store.query_rows(sql)

    def execute(self, sql: str) -> None:
        if sql.startswith("DELETE"):
            self.deletes.append(sql)
            table = sql.split()[2]
            assert table.endswith("_local") and " ON CLUSTER 'c1' WHERE " in sql, sql
            sql = sql.replace("_local ON CLUSTER 'c1'", "", 1)
        self.store.execute(sql)


def test_erase_on_a_cluster_deletes_from_the_local_tables_on_every_node(
        tmp_path: Path) -> None:
    from sinks.erase import erase

    store = ChdbStore(tmp_path / "chdb")
    migrate(store, DB)
    seed(store, "visitor-c", "user-c")
    seed(store, "visitor-d", "user-d")
    node = _ClusterNode(store)
    counts = erase(node, DB, "gdpr", "user", "user-c", cluster="c1")  # type: ignore[arg-type]
    assert counts["events"] == 2 and counts["attribution"] == 2
    assert {d.split()[2] for d in node.deletes} == {
        f"{DB}.{t}_local" for t in ("attribution", "conversions", "sessions", "events",
                                    "invalid_events")}
    assert not any(mentions(store, "visitor-c").values())
    assert sum(mentions(store, "visitor-d").values()) >= 5
    store.close()

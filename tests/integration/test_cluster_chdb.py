"""The cluster variant of the migrations executed by ClickHouse (chDB configured as a node of
a cluster, tests/integration/chdb_cluster.py), as far as one process can go:

- on a two-shard layout (both shards this node) every statement runs, ON CLUSTER removed
  (chDB has no DDL worker), except ALTERs on the replicated tables, whose replicas stay
  read-only without a real Keeper; replica paths expand from the macros; every view runs,
  including the JOINs that a second shard would refuse without GLOBAL;
- the same schema with unreplicated engines takes the sink's inserts through the
  Distributed tables: the insert token deduplicates across the hop, replays collapse with
  FINAL, materialized views fire on the local tables, views count right;
- the migrations' backfills of rollups run shard by shard (local source to local target);
- deploy/clickhouse/cluster/config.d/cluster.xml loads: 2 shards x 2 replicas, macros.

Not here (no ClickHouse server, Keeper or Docker on this machine): ON CLUSTER fan-out,
replication between replicas, and inserts spread over real shards.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from clickstream.settings import CommonSettings
from sinks.cluster import ClusterRenderer
from sinks.migrate import bookkeeping, default_params, plan
from tests.integration.chdb_cluster import CLUSTER, config_xml, run

pytestmark = pytest.mark.integration

DAY = (datetime.now(UTC) - timedelta(days=1)).date()  # inside every retention period

DB = "clickstream"
ROOT = Path(__file__).resolve().parents[2]
READ_ONLY = ("TABLE_IS_READ_ONLY", "ABORTED")  # replicated tables without a Keeper session


def cluster_statements() -> list[str]:
    params = default_params(DB, CommonSettings())
    statements = bookkeeping(DB, CLUSTER) + [s for _, ss in plan(params, CLUSTER) for s in ss]
    on_cluster = f" ON CLUSTER '{CLUSTER}'"
    assert all(on_cluster in s for s in statements if not s.startswith("INSERT"))
    return [s.replace(on_cluster, "") for s in statements]


def unreplicated(sql: str) -> str:
    """The same statement on unreplicated engines (chDB cannot write replicated tables)."""
    sql = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '[^']*'(?:, )?", r"\1(", sql)
    return sql.replace("replicated_deduplication_window", "non_replicated_deduplication_window")


def views() -> list[str]:
    params = default_params(DB, CommonSettings())
    return [m.group(1) for _, ss in plan(params) for s in ss
            if (m := re.match(rf"CREATE OR REPLACE VIEW {DB}\.(\w+)", s))]


def select_view(name: str) -> str:
    if name == "funnel":
        return (f"SELECT count() FROM {DB}.funnel(site='s', date_from='{DAY} 00:00:00', "
                f"date_to='{DAY + timedelta(days=1)} 00:00:00', window_seconds=3600, "
                "step1='/', step2='/buy', step3='', step4='')")
    return f"SELECT count() FROM {DB}.{name}"


#: A view joining Distributed tables directly: refused on two shards unless made GLOBAL.
JOIN_VIEW = (f"CREATE VIEW {DB}.probe_join AS SELECT count() AS n FROM {DB}.events AS e "
             f"JOIN {DB}.sessions AS s ON e.session_id = s.session_id WHERE e.visitor_id IN "
             f"(SELECT visitor_id FROM {DB}.conversions)")


def test_cluster_schema_executes_on_a_two_shard_node(tmp_path: Path) -> None:
    statements = cluster_statements()
    rendered = ClusterRenderer(CLUSTER, sharded={"events", "sessions", "conversions"})
    join_view = rendered.statement(JOIN_VIEW)[0].replace(f" ON CLUSTER '{CLUSTER}'", "")
    assert "GLOBAL JOIN" in join_view and "GLOBAL IN" in join_view
    checks = [
        JOIN_VIEW.replace("probe_join", "probe_join_as_written"),
        f"SELECT n FROM {DB}.probe_join_as_written",
        join_view,
        f"SELECT n FROM {DB}.probe_join",
        f"SELECT name, engine FROM system.tables WHERE database = '{DB}' ORDER BY name",
        "SELECT table, zookeeper_path, replica_name FROM system.replicas ORDER BY table",
        f"SELECT name, dependencies_table FROM system.tables WHERE database = '{DB}' "
        "AND notEmpty(dependencies_table) ORDER BY name",
        *(select_view(v) for v in views()),
    ]
    results = run(statements + checks, tmp_path)
    for sql, r in zip(statements, results, strict=False):
        if sql.startswith("ALTER TABLE") and "_local " in sql:
            assert r["ok"] or any(code in r["error"] for code in READ_ONLY), r["error"]
        else:
            assert r["ok"], f"{sql[:200]}\n-> {r['error'][:500]}"
    _, as_written, _, join, engines, replicas, deps, *counts = results[len(statements):]
    assert "DISTRIBUTED_IN_JOIN_SUBQUERY_DENIED" in as_written["error"]
    assert join["ok"] and join["out"].strip() == "0", join["error"]
    tables = dict(line.split("\t") for line in engines["out"].splitlines())
    for name, engine in tables.items():
        if name.endswith("_local"):
            assert engine.startswith("Replicated") or engine == "Null", (name, engine)
            assert tables[name.removesuffix("_local")] == "Distributed", name
        elif engine not in ("Distributed", "View", "MaterializedView"):
            assert name == "schema_migrations" and engine.startswith("Replicated")
    paths = [line.split("\t") for line in replicas["out"].splitlines()]
    for table, path, replica in paths:
        if table == "schema_migrations":
            assert (path, replica) == (f"/clickhouse/tables/all/{DB}/{table}", "01-r1")
        else:
            assert (path, replica) == (f"/clickhouse/tables/01/{DB}/{table}", "r1")
    assert len(paths) == sum(e.startswith("Replicated") for e in tables.values())
    fired_by = dict(line.split("\t") for line in deps["out"].splitlines())
    for sql in statements:  # materialized views hang on the local tables
        if m := re.match(rf"CREATE MATERIALIZED VIEW (?:IF NOT EXISTS )?{DB}\.(\w+) TO "
                         rf"{DB}\.\w+_local AS .* FROM {DB}\.(\w+_local)", sql, re.S):
            assert m.group(1) in fired_by[m.group(2)], sql[:200]
    for name, r in zip(views(), counts, strict=True):
        assert r["ok"] and r["out"].strip() == "0", f"view {name}: {r['error'][:400]}"


def insert(table: str, rows: list[dict[str, object]], token: str, db: str = DB) -> str:
    """What the sink sends (sinks/store.py), plus the writer profile's foreground insert."""
    settings = ("input_format_skip_unknown_fields=1, date_time_input_format='best_effort', "
                f"insert_deduplication_token='{token}', insert_distributed_sync=1")
    body = "\n".join(orjson.dumps(r).decode() for r in rows)
    return f"INSERT INTO {db}.{table} SETTINGS {settings} FORMAT JSONEachRow\n{body}"


def test_sink_inserts_through_the_distributed_tables_stay_idempotent(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    config = tmp_path / "one" / "config.xml"
    config.write_text(config_xml(shards=1))  # two shards on one node would share a table
    probe = ClusterRenderer(CLUSTER).render("probe", [  # a Null entry table + its view
        "CREATE DATABASE IF NOT EXISTS probe",
        "CREATE TABLE probe.totals (site_id String, d Date, n UInt64) "
        "ENGINE = SummingMergeTree ORDER BY (site_id, d)",
        "CREATE TABLE probe.entry (site_id String, d Date, n UInt64) ENGINE = Null",
        "CREATE MATERIALIZED VIEW probe.entry_mv TO probe.totals AS SELECT site_id, d, n "
        "FROM probe.entry"])
    schema = [unreplicated(s) for s in cluster_statements()] + [
        unreplicated(s.replace(f" ON CLUSTER '{CLUSTER}'", "")) for s in probe]
    events = [{"event_id": f"00000000-0000-0000-0000-00000000000{i}", "site_id": "s",
               "type": "pageview", "path": p, "visitor_id": v, "session_id": f"{v}-1",
               "session_seq": n, "ts": f"{DAY} 1{i}:00:00"}
              for i, (v, p, n) in enumerate([("v1", "/", 1), ("v1", "/buy", 2),
                                             ("v2", "/", 1)], 1)]
    session = {"session_id": "v1-1", "site_id": "s", "visitor_id": "v1",
               "first_seen": f"{DAY} 11:00:00", "pageviews": 1, "version": 1}
    minute = {"site_id": "s", "window_start": f"{DAY} 11:00:00", "kafka_partition": 0,
              "dimension": "", "value": "", "events": 2, "pageviews": 2, "version": 5}
    entry = {"site_id": "s", "d": str(DAY), "n": 5}
    steps = [
        insert("events", events, "batch-1"),
        insert("events", events, "batch-1"),  # the same batch again: dropped by its token
        f"SELECT count() FROM {DB}.events",
        insert("events", events, "batch-9"),  # a replay in another batch: replaced by key
        f"SELECT count(), (SELECT count() FROM {DB}.events FINAL) FROM {DB}.events",
        insert("sessions", [session], "s-1"),
        insert("sessions", [{**session, "pageviews": 2, "version": 2}], "s-2"),
        f"SELECT pageviews FROM {DB}.sessions FINAL",
        insert("traffic_1m", [minute], "t-1"),
        insert("traffic_1m", [minute], "t-1"),
        f"SELECT pageviews FROM {DB}.traffic_1h",
        insert("entry", [entry], "e-1", db="probe"),
        insert("entry", [entry, entry], "e-2", db="probe"),
        f"SELECT sum(pageviews), sum(entrances) FROM {DB}.pages_daily",
        select_view("funnel").replace("count()", "visitors") + " ORDER BY step",
        "SELECT sum(n) FROM probe.totals",  # the view fired on the local Null table
        f"DESCRIBE TABLE {DB}.events",
        f"DESCRIBE TABLE {DB}.events_local",
    ]
    results = run(schema + steps, tmp_path / "one", config=str(config))
    for sql, r in zip(schema + steps, results, strict=True):
        assert r["ok"], f"{sql[:200]}\n-> {r['error'][:500]}"
    out = [r["out"].strip() for r in results[len(schema):]]
    assert out[2] == "3"
    assert out[4] == "6\t3"
    assert out[7] == "2"
    assert out[10] == "2"  # the same minute inserted twice: counted once
    assert out[13] == "3\t2"
    assert out[14].splitlines() == ["2", "1", "0", "0"]
    assert out[15] == "15"
    assert out[16] == out[17]  # the sink's column list (DESCRIBE) is the local table's


def test_backfills_run_shard_by_shard(tmp_path: Path) -> None:
    """0008's backfills run on every shard from its local events into its local rollup,
    where the materialized views write (not through the Distributed table, which would put
    rows by the rollup's own key). Both shards of this node are the same tables, so a GROUP
    BY run per shard writes its groups once per shard, and one run through the Distributed
    table reads both shards and writes each group once. The session starts with the setting
    ClickHouse 23.8 has by default (0; chDB's newer engine defaults to 2)."""
    schema = [unreplicated(s) for s in cluster_statements()]
    fill = next(s for s in schema if s.startswith(f"INSERT INTO {DB}.pages_daily_rollup"))
    through_distributed = fill.replace("SETTINGS parallel_distributed_insert_select = 2 ", "")
    assert through_distributed != fill
    events = [{"event_id": f"00000000-0000-0000-0000-00000000000{i}", "site_id": "s",
               "type": "pageview", "path": p, "host": "h", "visitor_id": v,
               "session_id": f"{v}-1", "session_seq": n, "ts": f"{DAY} 1{i}:00:00"}
              for i, (v, p, n) in enumerate([("v1", "/", 1), ("v1", "/buy", 2),
                                             ("v2", "/", 1), ("v2", "/buy", 2)], 1)]
    count = f"SELECT count() FROM {DB}.pages_daily_rollup_local"
    # rows are counted before any merge folds the groups together
    steps = [f"SYSTEM STOP MERGES {DB}.pages_daily_rollup_local",
             insert("events", events, "b-1"), count, fill, count, through_distributed, count]
    results = run(["SET parallel_distributed_insert_select = 0", *schema, *steps], tmp_path)
    for sql, r in zip(["SET", *schema, *steps], results, strict=True):
        assert r["ok"], f"{sql[:200]}\n-> {r['error'][:500]}"
    out = [r["out"].strip() for r in results[-len(steps):]]
    # the view: 2 groups in each shard's block (4); the backfill: 2 groups on each shard
    # (+4); through the Distributed table: the 2 groups once (+2)
    assert (out[2], out[4], out[6]) == ("4", "8", "10")


def test_deploy_cluster_config_loads_into_clickhouse(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.d").mkdir()
    shutil.copy(ROOT / "deploy/clickhouse/cluster/config.d/cluster.xml", tmp_path / "config.d")
    (tmp_path / "config.xml").write_text("<clickhouse><tcp_port>9000</tcp_port></clickhouse>")
    for var, value in {"CLICKHOUSE_SHARD": "02", "CLICKHOUSE_REPLICA": "clickhouse-s2-r1",
                       "CLICKHOUSE_CLUSTER_SECRET": "test", "CLICKHOUSE_INTERSERVER_PASSWORD":
                       "test"}.items():
        monkeypatch.setenv(var, value)
    clusters, macros = run([
        "SELECT shard_num, replica_num, host_name FROM system.clusters WHERE cluster = "
        "'clickstream' ORDER BY shard_num, replica_num",
        "SELECT macro, substitution FROM system.macros ORDER BY macro"],
        tmp_path / "work", config=str(tmp_path / "config.xml"))
    assert clusters["out"].splitlines() == [
        "1\t1\tclickhouse", "1\t2\tclickhouse-s1-r2", "2\t1\tclickhouse-s2-r1",
        "2\t2\tclickhouse-s2-r2"]
    assert macros["out"].splitlines() == [
        "cluster\tclickstream", "replica\tclickhouse-s2-r1", "shard\t02"]

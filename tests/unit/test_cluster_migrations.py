"""The cluster variant of the migrations (CLICKSTREAM_CLICKHOUSE_CLUSTER, sinks/cluster.py).

Every shipped migration, rendered for a cluster, parses in the real ClickHouse engine (chDB,
in a child process), runs ON CLUSTER, replicates every MergeTree table under a local name
with a Distributed twin under the original one, shards by visitor or by the replacing key,
and keeps views on the Distributed tables. The single-server path is byte for byte what it
was. A migration the renderer cannot make cluster-safe fails, naming the migration, before
anything runs. Execution on a cluster-configured chDB: tests/integration/test_cluster_chdb.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from clickstream.settings import CommonSettings
from sinks import migrate as migrate_module
from sinks.cluster import ClusterError
from sinks.cluster_sql import quote_string
from sinks.cluster_tables import SUFFIX
from sinks.migrate import (
    Migration,
    apply_ttl,
    available,
    bookkeeping,
    default_params,
    migrate,
    plan,
    script,
)
from tests.integration.chdb_cluster import run as run_in_chdb

C = "clickstream"  # the cluster name used here (as in deploy/clickhouse/cluster)
DB = "clickstream"
DDL = re.compile(r"^(CREATE|ALTER|DROP|TRUNCATE|OPTIMIZE|DELETE)\b")
ON_CLUSTER = re.compile(
    r"^(?:CREATE|ALTER|DROP|TRUNCATE|OPTIMIZE|DELETE)\b[A-Z ]*? [\w.`]+ ON CLUSTER "
    + C + r"\b")
ENGINE = re.compile(r"ENGINE = `?(\w+)`?(?:\(([^)]*)\))?")
#: Tables sharded by visitor although visitor_id is not in their sorting key: a row's
#: visitor_id is still fixed by its key (conversion_id is the converting event's id).
VISITOR_FIXED_BY_KEY = {"conversions"}


def params() -> dict[str, object]:
    return default_params(DB, CommonSettings())


@pytest.fixture(scope="module")
def single() -> list[str]:
    return [s for _, stmts in plan(params()) for s in stmts]


@pytest.fixture(scope="module")
def clustered() -> list[str]:
    return bookkeeping(DB, C) + [s for _, stmts in plan(params(), C) for s in stmts]


@pytest.fixture(scope="module")
def formatted(clustered: list[str], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Each cluster statement as ClickHouse's own parser formats it (one line)."""
    results = run_in_chdb([f"SELECT formatQuerySingleLine({quote_string(s)})"
                           for s in clustered], tmp_path_factory.mktemp("parse"))
    bad = [(s[:200], r["error"][:300]) for s, r in zip(clustered, results, strict=True)
           if not r["ok"]]
    assert not bad, f"statements ClickHouse cannot parse: {bad}"
    return [r["out"].strip() for r in results]


def test_every_statement_parses_in_clickhouse(formatted: list[str],
                                              clustered: list[str]) -> None:
    assert len(formatted) == len(clustered) and all(formatted)


def test_every_ddl_runs_on_cluster(formatted: list[str], single: list[str]) -> None:
    ddl = [f for f in formatted if DDL.match(f)]
    assert len(ddl) > len([s for s in single if DDL.match(s)])  # + Distributed tables
    missing = [f[:120] for f in ddl if not ON_CLUSTER.match(f)]
    assert not missing, missing
    others = {f.split()[0] for f in formatted if not DDL.match(f)}
    assert others <= {"INSERT"}  # the migrations' own data moves (backfills)


def test_every_mergetree_engine_is_replicated(formatted: list[str],
                                             single: list[str]) -> None:
    engines = [(f, m) for f in formatted for m in ENGINE.finditer(f)
               if "MergeTree" in m.group(1)]
    shipped = [s for s in single if re.search(r"ENGINE = \w*MergeTree", s)]
    assert len(engines) == len(shipped) + 1  # + schema_migrations
    for f, m in engines:
        name = re.match(r"CREATE TABLE (?:IF NOT EXISTS )?\w+\.(\w+)", f).group(1)
        assert m.group(1).startswith("Replicated"), f[:120]
        path, replica = [a.strip() for a in m.group(2).split(",")[:2]]
        if name == "schema_migrations":  # one replica set on every node: not sharded
            assert (path, replica) == (f"'/clickhouse/tables/all/{DB}/{name}'",
                                       "'{shard}-{replica}'")
        else:
            assert name.endswith(SUFFIX)
            assert (path, replica) == (f"'/clickhouse/tables/{{shard}}/{DB}/{name}'",
                                       "'{replica}'")


def test_engine_parameters_and_dedup_window_are_kept(clustered: list[str]) -> None:
    text = "\n".join(clustered)
    assert ("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/clickstream/"
            "sessions_local', '{replica}', version)") in text
    assert ("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/clickstream/"
            "traffic_1m_local', '{replica}', version)") in text
    assert "non_replicated_deduplication_window" not in text
    assert text.count("replicated_deduplication_window = 1000") == "\n".join(
        s for _, ss in plan(params()) for s in ss).count("deduplication_window = 1000")


def _created(statements: list[str], kind: str) -> dict[str, str]:
    out = {}
    for s in statements:
        m = re.match(rf"CREATE (?:OR REPLACE )?{kind} (?:IF NOT EXISTS )?\w+\.(\w+)", s)
        if m:
            out[m.group(1)] = s
    return out


def test_readers_keep_the_original_names(single: list[str], formatted: list[str]) -> None:
    tables = _created(formatted, "TABLE")
    for name, sql in _created(single, "TABLE").items():
        assert name in tables, f"{name} has no table under its own name on the cluster"
        engine = ENGINE.search(sql).group(1)
        twin = ENGINE.search(tables[name]).group(1)
        assert twin == "Distributed" and f"{name}{SUFFIX}" in tables, name
        if engine != "Null":
            assert ENGINE.search(tables[f"{name}{SUFFIX}"]).group(1) == f"Replicated{engine}"
        args = ENGINE.search(tables[name]).group(0)
        assert args.startswith(f"ENGINE = Distributed('{C}', '{DB}', '{name}{SUFFIX}', ")
    for kind in ("VIEW", "MATERIALIZED VIEW"):
        assert set(_created(single, kind)) == set(_created(formatted, kind)), kind


def test_every_local_table_has_its_distributed_twin(formatted: list[str]) -> None:
    tables = _created(formatted, "TABLE")
    local = {n for n in tables if n.endswith(SUFFIX)}
    assert local and all(n.removesuffix(SUFFIX) in tables for n in local)
    distributed = {n for n, s in tables.items() if "ENGINE = Distributed" in s}
    assert {f"{n}{SUFFIX}" for n in distributed} == local


def _sharding(formatted: list[str]) -> dict[str, tuple[str, str, list[str]]]:
    """table -> (engine, sharding key, sorting key columns)."""
    tables = _created(formatted, "TABLE")
    out = {}
    for name, sql in tables.items():
        m = re.search(r"Distributed\('\w+', '\w+', '\w+', (.+)\)(?: COMMENT|$)", sql)
        if not m:
            continue
        local = tables[f"{name}{SUFFIX}"]
        order = re.search(r"ORDER BY \((.*?)\)(?: TTL| SETTINGS| COMMENT|$)", local)
        columns = re.findall(r"\b(\w+)\b(?!\()", order.group(1)) if order else []
        out[name] = (ENGINE.search(local).group(1), m.group(1), columns)
    return out


def test_replays_land_on_the_shard_of_their_original(formatted: list[str]) -> None:
    sharding = _sharding(formatted)
    for name in ("events", "sessions", "conversions"):
        assert sharding[name][1] == "cityHash64(site_id, visitor_id)", name
    assert sharding["attribution"][1].startswith("cityHash64(site_id, toDate(conversion_ts)")
    for name, (engine, key, order) in sharding.items():
        if engine.removeprefix("Replicated") in ("ReplacingMergeTree", "CollapsingMergeTree"):
            used = set(re.findall(r"\b(\w+)\b(?!\()", key))
            assert used <= set(order) or name in VISITOR_FIXED_BY_KEY, (
                f"{name}: sharded by {key}, but rows are replaced by ({', '.join(order)}): a "
                "replay could land on another shard and never replace its original")
    # a Null entry table is sharded exactly like the table its materialized view fills
    for view in _created(formatted, "MATERIALIZED VIEW").values():
        target, source = re.search(r" TO \w+\.(\w+)_local .* FROM \w+\.(\w+)_local", view).groups()
        if ENGINE.search(_created(formatted, "TABLE")[f"{source}{SUFFIX}"]).group(1) == "Null":
            assert sharding[source][1] == sharding[target][1], view[:120]


def test_views_read_distributed_tables_and_mvs_read_local(
        formatted: list[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    local = {n for n in _created(formatted, "TABLE") if n.endswith(SUFFIX)}
    views = [f for f in formatted if re.match(r"CREATE (OR REPLACE )?(MATERIALIZED )?VIEW", f)]
    results = run_in_chdb([f"EXPLAIN AST {v}" for v in views], tmp_path_factory.mktemp("ast"))
    mvs = 0
    for view, r in zip(views, results, strict=True):
        assert r["ok"], r["error"]
        read = set(re.findall(r"TableIdentifier \w+\.(\w+)", r["out"]))
        assert read, view[:100]
        if " MATERIALIZED VIEW " in f" {view}":
            mvs += 1
            target = re.search(r" TO \w+\.(\w+)", view).group(1)
            assert read | {target} <= local, view[:160]
        else:
            assert not read & local, f"{view[:100]} reads {read & local}"
    assert mvs == len(_created(formatted, "MATERIALIZED VIEW"))


def test_views_join_with_global(clustered: list[str]) -> None:
    for s in clustered:  # a JOIN over a Distributed table needs GLOBAL on two shards
        for m in re.finditer(r"(\w+ )(\w+ )?JOIN\b", s):
            assert "ARRAY" in m.group(0) or "GLOBAL" in m.group(0), m.group(0)
    funnel = next(s for s in clustered if ".funnel " in s)
    assert "ARRAY JOIN" in funnel and "GLOBAL ARRAY" not in funnel


# --- single server: unchanged ---------------------------------------------------------------

class RecordingStore:
    """A Store that records statements; query answers are scripted per SQL prefix."""

    def __init__(self, answers: dict[str, list[list[Any]]] | None = None) -> None:
        self.sql: list[str] = []
        self.answers = answers or {}

    def execute(self, sql: str) -> None:
        self.sql.append(sql)

    def query_rows(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        self.sql.append(sql)
        for prefix, rows in self.answers.items():
            if sql.startswith(prefix):
                return [], rows
        return [], []

    def query_text(self, sql: str, fmt: str = "") -> str:
        raise NotImplementedError

    def insert_json_rows(self, table: str, rows: Any, dedup_token: str | None = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


LAYOUT_CHECK = ("SELECT engine FROM system.tables WHERE database = 'clickstream' AND name = "
                "'schema_migrations'")
#: What `migrate` executed on one server before the cluster variant existed.
SINGLE_BOOKKEEPING = [
    "CREATE DATABASE IF NOT EXISTS clickstream",
    "CREATE TABLE IF NOT EXISTS clickstream.schema_migrations (version UInt32, "
    "name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
    "ENGINE = ReplacingMergeTree ORDER BY version "
    "COMMENT 'Which schema migrations ran, and when.'",
    "SELECT version, checksum FROM clickstream.schema_migrations FINAL ORDER BY version",
]


def test_single_server_path_is_byte_for_byte_unchanged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLICKSTREAM_CLICKHOUSE_CLUSTER", raising=False)
    # every statement is the same; new is only the read that refuses a cluster database
    expected = [LAYOUT_CHECK, *SINGLE_BOOKKEEPING]
    for mig in available():
        expected += mig.statements(params())
        expected.append(f"INSERT INTO clickstream.schema_migrations (version, name, checksum) "
                        f"VALUES ({mig.version}, '{mig.name}', '{mig.checksum}')")
    expected.append("SELECT name, engine_full FROM system.tables WHERE database = "
                    "'clickstream'")
    for cluster in (None, ""):  # the setting's default, and an explicit empty name
        store = RecordingStore()
        migrate(store, DB, params(), cluster=cluster)
        assert store.sql == expected
    assert [s for _, ss in plan(params()) for s in ss] == [
        s for m in available() for s in m.statements(params())]


def test_cluster_migrate_runs_the_rendered_statements() -> None:
    store = RecordingStore({"SELECT version": [[1, available()[0].checksum]]})
    ran = migrate(store, DB, params(), cluster=C)
    assert ran == [f"{m.version:04d}_{m.name}" for m in available()[1:]]
    expected = [LAYOUT_CHECK, *bookkeeping(DB, C), SINGLE_BOOKKEEPING[-1]]
    for mig, statements in plan(params(), C)[1:]:  # 0001 is recorded as applied
        expected += statements
        expected.append(f"INSERT INTO clickstream.schema_migrations (version, name, checksum) "
                        f"VALUES ({mig.version}, '{mig.name}', '{mig.checksum}')")
    expected.append("SELECT name, engine_full FROM system.tables WHERE database = "
                    "'clickstream'")
    assert store.sql == expected


def test_layouts_are_never_mixed() -> None:
    store = RecordingStore({LAYOUT_CHECK: [["ReplacingMergeTree"]]})
    with pytest.raises(ClusterError, match="migrated as a single server"):
        migrate(store, DB, params(), cluster=C)
    assert store.sql == [LAYOUT_CHECK]
    store = RecordingStore({LAYOUT_CHECK: [["ReplicatedReplacingMergeTree"]]})
    with pytest.raises(ClusterError, match="set CLICKSTREAM_CLICKHOUSE_CLUSTER"):
        migrate(store, DB, params(), cluster="")  # a sink that misses the setting
    assert store.sql == [LAYOUT_CHECK]


def test_retention_changes_go_to_the_local_tables_on_cluster() -> None:
    rows = [["events", "Distributed('clickstream', 'clickstream', 'events_local', x)"],
            ["events_local", "ReplicatedReplacingMergeTree('/p', '{replica}') ORDER BY x "
             "TTL toDateTime(ts) + toIntervalDay(400) SETTINGS index_granularity = 8192"]]
    store = RecordingStore({"SELECT name, engine_full": rows})
    changed = apply_ttl(store, DB, {**params(), "events_ttl_days": 30}, cluster=C)
    assert changed == ["events"]
    assert store.sql[-1] == ("ALTER TABLE clickstream.events_local ON CLUSTER 'clickstream' "
                             "MODIFY TTL toDateTime(ts) + INTERVAL 30 DAY")
    with pytest.raises(ClusterError, match="set CLICKSTREAM_CLICKHOUSE_CLUSTER"):
        apply_ttl(RecordingStore({"SELECT name, engine_full": rows}), DB, params())


# --- shipped migrations and the renderer (its statement-by-statement tests:
# tests/unit/test_cluster_renderer.py) ----------------------------------------------------

def test_shipped_backfills_of_views_run_shard_by_shard(clustered: list[str]) -> None:
    fills = {re.match(r"INSERT INTO \w+\.(\w+)", s).group(1): s for s in clustered
             if s.startswith("INSERT") and "schema_migrations" not in s}
    assert set(fills) == {"traffic_visitors_1m", "pages_daily_rollup",
                          "traffic_daily_sessions", "funnel_steps"}
    for table, sql in fills.items():
        assert re.match(rf"INSERT INTO {DB}\.{table}\s+SETTINGS "
                        r"parallel_distributed_insert_select = 2 SELECT ", sql), sql


def test_a_new_migration_without_a_cluster_form_fails_before_anything_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    new = Migration(99, "memory_cache", "CREATE TABLE {db}.cache (k String) ENGINE = Memory;")
    monkeypatch.setattr(migrate_module, "available", lambda: [*available(), new])
    plan(params())  # one server: fine
    with pytest.raises(ClusterError, match=r"migration 0099_memory_cache, statement 1"):
        plan(params(), C)
    store = RecordingStore()
    with pytest.raises(ClusterError):
        migrate(store, DB, params(), cluster=C)
    assert store.sql == []


# --- setting, CLI ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["clickstream", "prod-eu.1", "{cluster}", ""])
def test_cluster_setting_accepts_names_and_macros(monkeypatch: pytest.MonkeyPatch,
                                                  value: str) -> None:
    monkeypatch.setenv("CLICKSTREAM_CLICKHOUSE_CLUSTER", value)
    assert CommonSettings().clickhouse_cluster == value


@pytest.mark.parametrize("value", ["a'b", "a b", "{cluster", "x;DROP"])
def test_cluster_setting_refuses_anything_else(monkeypatch: pytest.MonkeyPatch,
                                               value: str) -> None:
    monkeypatch.setenv("CLICKSTREAM_CLICKHOUSE_CLUSTER", value)
    with pytest.raises(ValidationError):
        CommonSettings()


def test_migrate_dry_run_prints_the_script_without_a_store(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    from clickstream.cli import main

    monkeypatch.setenv("CLICKSTREAM_HOME", str(tmp_path))
    monkeypatch.delenv("CLICKSTREAM_CLICKHOUSE_URL", raising=False)
    monkeypatch.setenv("CLICKSTREAM_CLICKHOUSE_CLUSTER", C)
    with pytest.raises(SystemExit) as done:
        main(["migrate", "--dry-run"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out == script(params(), C)
    assert "-- 0001_events" in out and "ENGINE = Distributed('clickstream'" in out
    assert ";;" not in out and not (tmp_path / "chdb").exists()
    with pytest.raises(SystemExit) as refused:  # a cluster needs a server, not chDB
        main(["migrate"])
    assert refused.value.code == 2

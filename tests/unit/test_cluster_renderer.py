"""The cluster renderer (sinks/cluster.py), statement by statement: where each kind of
statement goes (local tables, Distributed twins, ON CLUSTER), and the statements it has no
cluster form for, which fail naming the migration. The shipped migrations rendered whole:
tests/unit/test_cluster_migrations.py."""

from __future__ import annotations

import pytest

from sinks.cluster import ClusterError, ClusterRenderer

TABLE = ("CREATE TABLE IF NOT EXISTS db.t (site_id String, visitor_id String, v UInt32, "
         "n UInt64) ENGINE = ReplacingMergeTree(v) ORDER BY (site_id, visitor_id)")
ROLLUP = ("CREATE TABLE IF NOT EXISTS db.r (site_id String, d Date, n UInt64) "
          "ENGINE = SummingMergeTree ORDER BY (site_id, d)")


def render(*statements: str) -> list[str]:
    return ClusterRenderer("c").render("0099_test", list(statements))


def test_alter_goes_to_local_and_column_changes_to_both() -> None:
    out = render(TABLE, "ALTER TABLE db.t ADD COLUMN x String, ADD INDEX i x TYPE "
                        "bloom_filter GRANULARITY 1")
    assert out[2:] == [
        "ALTER TABLE db.t_local ON CLUSTER 'c' ADD COLUMN x String, ADD INDEX i x TYPE "
        "bloom_filter GRANULARITY 1",
        "ALTER TABLE db.t ON CLUSTER 'c' ADD COLUMN x String"]
    dropped = render(TABLE, "ALTER TABLE db.t DROP COLUMN n")[2:]
    assert dropped == ["ALTER TABLE db.t ON CLUSTER 'c' DROP COLUMN n",  # readers first
                       "ALTER TABLE db.t_local ON CLUSTER 'c' DROP COLUMN n"]
    assert render(TABLE, "ALTER TABLE db.t MODIFY TTL d + INTERVAL 1 DAY")[2:] == [
        "ALTER TABLE db.t_local ON CLUSTER 'c' MODIFY TTL d + INTERVAL 1 DAY"]


def test_drop_truncate_optimize_delete() -> None:
    assert render(TABLE, "DROP TABLE IF EXISTS db.t SYNC")[2:] == [
        "DROP TABLE IF EXISTS db.t ON CLUSTER 'c' SYNC",
        "DROP TABLE IF EXISTS db.t_local ON CLUSTER 'c' SYNC"]
    assert render("DROP VIEW IF EXISTS db.v") == ["DROP VIEW IF EXISTS db.v ON CLUSTER 'c'"]
    assert render(TABLE, "OPTIMIZE TABLE db.t FINAL", "TRUNCATE TABLE db.t",
                  "DELETE FROM db.t WHERE n = 0")[2:] == [
        "OPTIMIZE TABLE db.t_local ON CLUSTER 'c' FINAL",
        "TRUNCATE TABLE db.t_local ON CLUSTER 'c'",
        "DELETE FROM db.t_local ON CLUSTER 'c' WHERE n = 0"]


def test_views_get_global_joins_and_ins() -> None:
    view = render(TABLE, "CREATE VIEW db.v AS SELECT a.n FROM db.t AS a LEFT JOIN db.t AS b "
                         "USING site_id WHERE a.visitor_id NOT IN (SELECT visitor_id FROM "
                         "db.t) AND a.site_id IN ('x', 'y') AND a.n IN db.t ARRAY JOIN [1] "
                         "AS k")[2]
    assert view == ("CREATE VIEW db.v ON CLUSTER 'c' AS SELECT a.n FROM db.t AS a GLOBAL LEFT "
                    "JOIN db.t AS b USING site_id WHERE a.visitor_id GLOBAL NOT IN (SELECT "
                    "visitor_id FROM db.t) AND a.site_id IN ('x', 'y') AND a.n GLOBAL IN db.t "
                    "ARRAY JOIN [1] AS k")


def test_materialized_view_fires_on_the_local_tables() -> None:
    out = render(TABLE, ROLLUP.replace("db.r", "db.r2"),
                 "CREATE TABLE db.entry (site_id String, d Date, n UInt64) ENGINE = Null",
                 "CREATE MATERIALIZED VIEW db.mv TO db.r2 AS SELECT site_id, d, n "
                 "FROM db.entry")
    assert out[5] == ("CREATE MATERIALIZED VIEW db.mv ON CLUSTER 'c' TO db.r2_local AS SELECT "
                      "site_id, d, n FROM db.entry_local")
    assert out[4] == ("CREATE TABLE db.entry_local ON CLUSTER 'c' (site_id String, d Date, "
                      "n UInt64) ENGINE = Null")
    assert out[6].startswith("CREATE TABLE db.entry ON CLUSTER 'c' AS db.entry_local\n"
                             "ENGINE = Distributed('c', 'db', 'entry_local', "
                             "cityHash64(site_id, d))")


def test_backfills_run_shard_by_shard() -> None:
    """A backfill of a view's target from the view's source (or between tables sharded
    alike) runs on every shard, local to local, where the view puts the same rows; other
    INSERTs run once, through the Distributed tables."""
    mv = "CREATE MATERIALIZED VIEW db.mv TO db.r AS SELECT site_id, today() AS d, n FROM db.t"
    fill = "INSERT INTO db.r SELECT site_id, today(), n FROM db.t"
    out = render(TABLE, ROLLUP, mv, fill, "INSERT INTO db.r (site_id, n) SELECT site_id, n "
                 "FROM db.t FINAL", TABLE.replace("db.t", "db.t2"),
                 "INSERT INTO db.t2 SELECT * FROM db.t", "INSERT INTO db.t SELECT * FROM db.r",
                 "INSERT INTO db.r VALUES ('s', today(), 1)")
    assert out[5:7] == [
        "INSERT INTO db.r SETTINGS parallel_distributed_insert_select = 2 SELECT site_id, "
        "today(), n FROM db.t",
        "INSERT INTO db.r (site_id, n) SETTINGS parallel_distributed_insert_select = 2 "
        "SELECT site_id, n FROM db.t FINAL"]
    assert out[9] == ("INSERT INTO db.t2 SETTINGS parallel_distributed_insert_select = 2 "
                      "SELECT * FROM db.t")  # same sharding key: same shards either way
    assert out[10:] == ["INSERT INTO db.t SELECT * FROM db.r",  # no view: by t's own key
                        "INSERT INTO db.r VALUES ('s', today(), 1)"]
    assert render(ROLLUP, fill) == [*render(ROLLUP), fill]  # db.t is no table of these


@pytest.mark.parametrize("statements, message", [
    (["CREATE TABLE db.m (a UInt8) ENGINE = Memory"], "no cluster form for engine Memory"),
    (["CREATE TABLE db.x (a UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a"],
     "no cluster form for engine ReplicatedMergeTree"),
    (["CREATE TABLE db.x_local (a UInt8) ENGINE = MergeTree ORDER BY a"], "_local are taken"),
    (["CREATE TABLE x (a UInt8) ENGINE = MergeTree ORDER BY a"], "must be qualified"),
    (["CREATE OR REPLACE TABLE db.x (a UInt8) ENGINE = MergeTree ORDER BY a"], "no known"),
    (["CREATE TABLE db.x AS db.y"], "only CREATE TABLE name (columns)"),
    (["CREATE TABLE db.x (v UInt8) ENGINE = ReplacingMergeTree ORDER BY tuple()"],
     "empty sorting key"),
    (["RENAME TABLE db.a TO db.b"], "RENAME TABLE DB has no known cluster form"),
    (["SYSTEM STOP MERGES"], "no known cluster form"),
    (["CREATE TABLE db.x ON CLUSTER c (a UInt8) ENGINE = MergeTree ORDER BY a"],
     "already has ON CLUSTER"),
    ([TABLE, "ALTER TABLE db.t FREEZE"], "ALTER ... FREEZE has no cluster form"),
    (["ALTER TABLE db.unknown ADD COLUMN x UInt8"], "not a table of the migrations"),
    ([TABLE, "CREATE VIEW db.v AS SELECT * FROM db.t_local"], "must read the Distributed"),
    ([TABLE, "CREATE MATERIALIZED VIEW db.mv ENGINE = MergeTree ORDER BY n AS SELECT n "
             "FROM db.t"], "needs TO"),
    ([TABLE, ROLLUP, ROLLUP.replace("db.r", "db.r2"), "CREATE MATERIALIZED VIEW db.mv TO db.r "
      "AS SELECT site_id, today() AS d, n FROM db.t JOIN db.r2 USING site_id"],
     "exactly one table"),
    ([ROLLUP, TABLE.replace("db.t", "db.t2").replace("site_id, visitor_id)", "v, n)"),
      "CREATE MATERIALIZED VIEW db.mv TO db.t2 AS SELECT * FROM db.r"], "different shards"),
    (["CREATE TABLE db.e (a UInt8) ENGINE = Null"], "feed no materialized view"),
    ([TABLE, "CREATE TABLE db.e (n UInt64) ENGINE = Null",
      "CREATE MATERIALIZED VIEW db.mv TO db.t AS SELECT n FROM db.e"], "lacks the columns"),
    (["CREATE TABLE db.x (a String) ENGINE = MergeTree ORDER BY a COMMENT 'open"],
     "unclosed quote"),
    (["CREATE TABLE db.x (a String) ENGINE"], "no engine name"),
    (["CREATE TABLE db.x (a String"], "unclosed parenthesis"),
])
def test_statements_without_a_cluster_form_fail_naming_the_migration(
        statements: list[str], message: str) -> None:
    with pytest.raises(ClusterError) as err:
        render(*statements)
    assert "0099_test" in str(err.value) and message in str(err.value)

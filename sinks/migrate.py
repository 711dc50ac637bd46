"""Versioned SQL migrations, recorded in `schema_migrations`; applying them is idempotent."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

from clickstream.settings import CommonSettings
from sinks.cluster import ClusterError, ClusterRenderer, render_bookkeeping
from sinks.cluster_sql import quote_string
from sinks.cluster_tables import SUFFIX
from sinks.store import Store

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self, params: dict[str, object]) -> list[str]:
        text = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        ).format(**params)
        return [s.strip() for s in text.split(";\n") if s.strip().rstrip(";").strip()]


def available() -> list[Migration]:
    """Migrations shipped in sinks/migrations, in version order."""
    found = []
    for entry in resources.files("sinks.migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


#: Table -> (time column its TTL counts from, setting giving its retention in days).
#: A table added by a later migration that has a TTL belongs here too, so its retention is
#: a setting and `apply_ttl` keeps it in line with that setting.
TTL_TABLES: dict[str, tuple[str, str]] = {
    "events": ("ts", "events_ttl_days"),
    "invalid_events": ("received_at", "invalid_ttl_days"),
    "sessions": ("first_seen", "sessions_ttl_days"),
    "conversions": ("ts", "attribution_ttl_days"),
    "attribution": ("conversion_ts", "attribution_ttl_days"),
    "traffic_1m": ("window_start", "rollup_ttl_days"),
    "traffic_visitors_1m": ("window_start", "rollup_ttl_days"),
    # the daily rollups of 0008 keep what their source tables keep (they hold hashes of
    # visitor and session ids and event ids, which must not outlive the rows they come from)
    "pages_daily_rollup": ("day", "events_ttl_days"),
    "traffic_daily_sessions": ("day", "sessions_ttl_days"),
    "funnel_steps": ("ts", "events_ttl_days"),
}
_TTL_DAYS = re.compile(r"\bTTL\b.*?toIntervalDay\((\d+)\)")


def default_params(database: str, settings: CommonSettings | None = None) -> dict[str, object]:
    """Placeholders of the migrations: the database and every `*_ttl_days` setting (read
    from CLICKSTREAM_* variables unless a settings object is given)."""
    settings = settings or CommonSettings()
    params: dict[str, object] = {"db": database}
    for name in CommonSettings.model_fields:
        if name.endswith("_ttl_days"):
            params[name] = getattr(settings, name)
    return params


def apply_ttl(store: Store, database: str, params: dict[str, object],
              cluster: str = "") -> list[str]:
    """Bring each table's TTL in line with its setting (tables are created with the value of
    the day; a changed setting is applied here with ALTER ... MODIFY TTL). 0 removes it.
    On a cluster the TTL lives on the `*_local` tables, changed ON CLUSTER."""
    _, rows = store.query_rows(
        f"SELECT name, engine_full FROM system.tables WHERE database = '{database}'")
    changed = []
    for name, engine in rows:
        target = f"{database}.{name}"
        if cluster:
            if not name.endswith(SUFFIX):
                continue  # the Distributed tables have no TTL: their local tables do
            name = name.removesuffix(SUFFIX)
            target += f" ON CLUSTER {quote_string(cluster)}"
        if name not in TTL_TABLES:
            continue
        if str(engine).startswith("Distributed"):
            raise ClusterError(f"{target} is a Distributed table: this database has the "
                               "cluster layout; set CLICKSTREAM_CLICKHOUSE_CLUSTER")
        column, setting = TTL_TABLES[name]
        if setting not in params:
            continue
        want = int(str(params[setting]))
        m = _TTL_DAYS.search(str(engine))
        have = int(m.group(1)) if m else 0
        if want == have:
            continue
        if want:
            store.execute(f"ALTER TABLE {target} MODIFY TTL "
                          f"toDateTime({column}) + INTERVAL {want} DAY")
        else:
            store.execute(f"ALTER TABLE {target} REMOVE TTL")
        log.info("retention of %s.%s: %s -> %s days", database, name, have or "forever",
                 want or "forever")
        changed.append(name)
    return changed


def bookkeeping(database: str, cluster: str = "") -> list[str]:
    """The DDL of the database and of `schema_migrations` (cluster: replicated on every node)."""
    ddl = [
        f"CREATE DATABASE IF NOT EXISTS {database}",
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations (version UInt32, "
        "name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version "
        "COMMENT 'Which schema migrations ran, and when.'",
    ]
    return render_bookkeeping(ddl, cluster) if cluster else ddl


def _check_layout(store: Store, database: str, cluster: str) -> None:
    """Refuse to mix layouts: a cluster run on a database migrated for one server, or a
    single-server run (a sink without the setting) on a cluster database."""
    _, rows = store.query_rows(
        f"SELECT engine FROM system.tables WHERE database = '{database}' "
        "AND name = 'schema_migrations'")
    replicated = bool(rows) and str(rows[0][0]).startswith("Replicated")
    if cluster and rows and not replicated:
        raise ClusterError(f"{database} was migrated as a single server ({rows[0][0]} "
                           "schema_migrations): the cluster layout needs a new database "
                           "(docs/production.md, ClickHouse clusters)")
    if not cluster and replicated:
        raise ClusterError(f"{database} has the cluster layout (replicated "
                           "schema_migrations): set CLICKSTREAM_CLICKHOUSE_CLUSTER")


def applied(store: Store, database: str, cluster: str = "") -> dict[int, str]:
    _check_layout(store, database, cluster)
    for stmt in bookkeeping(database, cluster):
        store.execute(stmt)
    _, rows = store.query_rows(
        f"SELECT version, checksum FROM {database}.schema_migrations FINAL ORDER BY version"
    )
    return {int(v): str(c) for v, c in rows}


def _record(database: str, mig: Migration) -> str:
    return (f"INSERT INTO {database}.schema_migrations (version, name, checksum) VALUES "
            f"({mig.version}, '{mig.name}', '{mig.checksum}')")


def plan(params: dict[str, object], cluster: str = "") -> list[tuple[Migration, list[str]]]:
    """Every shipped migration with the statements it runs: as written for one server, or
    their cluster variant (sinks/cluster.py). Raises ClusterError, naming the migration, for
    a statement without a cluster form, before anything runs."""
    renderer = ClusterRenderer(cluster) if cluster else None
    out = []
    for mig in available():
        statements = mig.statements(params)
        if renderer:
            statements = renderer.render(f"{mig.version:04d}_{mig.name}", statements)
        out.append((mig, statements))
    return out


def script(params: dict[str, object], cluster: str = "") -> str:
    """What `clickstream migrate` runs on an empty database, as one SQL script
    (`clickstream migrate --dry-run`); retention changes of existing tables are not in it."""
    db = str(params["db"])
    parts = ["-- bookkeeping", *(f"{s};" for s in bookkeeping(db, cluster))]
    for mig, statements in plan(params, cluster):
        parts.append(f"\n-- {mig.version:04d}_{mig.name}")
        parts += [f"{s.removesuffix(';')};" for s in (*statements, _record(db, mig))]
    return "\n".join(parts) + "\n"


def migrate(store: Store, database: str, params: dict[str, object] | None = None,
            cluster: str | None = None) -> list[str]:
    """Apply what is missing; return the names applied. `cluster` (default: the
    CLICKSTREAM_CLICKHOUSE_CLUSTER setting) selects the cluster variant."""
    params = params or default_params(database)
    if cluster is None:
        cluster = CommonSettings().clickhouse_cluster
    steps = plan(params, cluster)
    done = applied(store, database, cluster)
    ran = []
    for mig, statements in steps:
        if mig.version in done:
            if done[mig.version] != mig.checksum:
                log.warning("migration %04d_%s changed after it was applied", mig.version,
                            mig.name)
            continue
        for stmt in statements:
            store.execute(stmt)
        store.execute(_record(database, mig))
        ran.append(f"{mig.version:04d}_{mig.name}")
        log.info("applied migration %04d_%s", mig.version, mig.name)
    apply_ttl(store, database, params, cluster)
    return ran

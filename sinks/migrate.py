"""Versioned SQL migrations, recorded in `schema_migrations`; applying them is idempotent."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

from clickstream.settings import CommonSettings
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


def apply_ttl(store: Store, database: str, params: dict[str, object]) -> list[str]:
    """Bring each table's TTL in line with its setting (tables are created with the value of
    the day; a changed setting is applied here with ALTER ... MODIFY TTL). 0 removes it."""
    _, rows = store.query_rows(
        f"SELECT name, engine_full FROM system.tables WHERE database = '{database}'")
    changed = []
    for name, engine in rows:
        if name not in TTL_TABLES:
            continue
        column, setting = TTL_TABLES[name]
        if setting not in params:
            continue
        want = int(str(params[setting]))
        m = _TTL_DAYS.search(str(engine))
        have = int(m.group(1)) if m else 0
        if want == have:
            continue
        if want:
            store.execute(f"ALTER TABLE {database}.{name} MODIFY TTL "
                          f"toDateTime({column}) + INTERVAL {want} DAY")
        else:
            store.execute(f"ALTER TABLE {database}.{name} REMOVE TTL")
        log.info("retention of %s.%s: %s -> %s days", database, name, have or "forever",
                 want or "forever")
        changed.append(name)
    return changed


def applied(store: Store, database: str) -> dict[int, str]:
    store.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    store.execute(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations (version UInt32, "
        "name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version "
        "COMMENT 'Which schema migrations ran, and when.'"
    )
    _, rows = store.query_rows(
        f"SELECT version, checksum FROM {database}.schema_migrations FINAL ORDER BY version"
    )
    return {int(v): str(c) for v, c in rows}


def migrate(store: Store, database: str, params: dict[str, object] | None = None) -> list[str]:
    """Apply what is missing; return the names applied."""
    params = params or default_params(database)
    done = applied(store, database)
    ran = []
    for mig in available():
        if mig.version in done:
            if done[mig.version] != mig.checksum:
                log.warning("migration %04d_%s changed after it was applied", mig.version,
                            mig.name)
            continue
        for stmt in mig.statements(params):
            store.execute(stmt)
        store.execute(
            f"INSERT INTO {database}.schema_migrations (version, name, checksum) VALUES "
            f"({mig.version}, '{mig.name}', '{mig.checksum}')"
        )
        ran.append(f"{mig.version:04d}_{mig.name}")
        log.info("applied migration %04d_%s", mig.version, mig.name)
    apply_ttl(store, database, params)
    return ran

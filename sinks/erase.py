"""Erase one person (a visitor id or a user id of a site) from every table.

Erasing a user also erases every visitor id (device) ever linked to it, so pre-login
events go too.

Rows are removed with lightweight DELETE (visible at once, physically dropped by merges).
Every statement names its rows by literal values (ids, hashes, keys) found first: a
mutation on a replicated table refuses subqueries. An audit record with a hash of the id
(never the id) and the rows deleted or rewritten per table goes to `erasure_log`.

What each table keeps of the person, and how it goes:

- events, sessions, conversions, attribution (via the conversions), invalid_events (the
  payload names the id): their rows are deleted.
- traffic_daily_sessions (one row per session, visitor as cityHash64 of the id) and
  funnel_steps (one row per event, visitor as sipHash128 of the id): every row belongs to
  one visitor, so the rows with the person's hashes are deleted; nothing else changes.
- pages_daily_rollup holds sets (pageview event ids, uniq states of visitor and session
  ids) that cannot lose one element. The (day, host, path) keys of the person's pageviews
  are read before the events go; after, those rows are deleted and rebuilt from the events
  left. A row the materialized view writes meanwhile is harmless: the rollup keeps sets, so
  a row it adds before the delete is deleted and its events are in the rebuild (the view
  writes after the events are stored), and one it adds after the delete is already in the
  rebuild or new, and a set takes an element twice without change.
- traffic_visitors_1m (and traffic_1m's old-layout `visitors`) hold the worker's hash of
  site and visitor id (blake2b, streams/traffic/stream.py). These rows cannot be rebuilt
  from events: the worker leaves out internal traffic by IP (not stored), counts by raw
  partition (not stored) and by its lateness and top-N state. So the person's hash is taken
  out of every set (a mutation, waited for), which is exact: unique visitors of any minute,
  hour or day are what they would be without the person. The keys (minute, partition,
  dimension, value) whose set held nobody else are deleted from both tables: those counter
  rows counted the person's events alone (and a value such as a path only they produced
  goes with them). The counters of rows shared with others (events, pageviews, sessions,
  bounces, conversions, revenue) keep the person's part: numbers without anything that
  identifies anyone, which expire with rollup_ttl_days.

On a cluster (sinks/cluster.py layout) rows are counted through the Distributed tables,
deleted and mutated on the `<table>_local` tables ON CLUSTER, and pages_daily_rollup is
rebuilt shard by shard (parallel_distributed_insert_select = 2: each shard from its own
events, where the materialized view writes them).

Not covered here: Kafka topics (they expire by retention) and the stream worker's state
(sessions and touchpoints age out after the lookback window; a traffic window still open
may send its rows again, with the person, until it closes).
"""

from __future__ import annotations

import getpass
import hashlib
from collections.abc import Iterator, Sequence
from typing import Literal

from sinks.cluster_sql import quote_string
from sinks.cluster_tables import SUFFIX
from sinks.store import Store

Kind = Literal["visitor", "user"]
#: Keys per statement (each a short tuple literal): far below ClickHouse's max_query_size.
CHUNK = 2000
#: A rollup built from events with the same states as its materialized view (0008).
PAGES_ROLLUP = (
    "SELECT toDate(ts) AS day, site_id, host, path, groupUniqArray(event_id), "
    "groupUniqArrayIf(event_id, session_seq = 1), uniqState(visitor_id), "
    "uniqState(session_id) FROM {db}.events WHERE {where} GROUP BY day, site_id, host, path")
#: Keys of traffic_visitors_1m (traffic_1m has the same ones, plus the counters).
TRAFFIC_KEY = "toUnixTimestamp64Milli(window_start), kafka_partition, dimension, value"


def erase(store: Store, database: str, site_id: str, kind: Kind, subject: str,
          cluster: str = "") -> dict[str, int]:
    """Delete the person's rows; returns rows deleted or rewritten per table. On a cluster
    (see sinks/cluster.py) rows are counted through the Distributed tables and changed in
    the `<table>_local` tables on every node (Distributed tables take no DELETE)."""
    if not subject or not site_id:
        raise ValueError("site and id are required")
    site, who = quote_string(site_id), quote_string(subject)
    if kind == "visitor":
        visitors = [subject]
    else:  # a user's devices: every visitor id ever linked to the user id
        visitors = _column(store, (
            f"SELECT DISTINCT visitor_id FROM {database}.events WHERE site_id = {site} AND "
            f"user_id = {who} UNION DISTINCT SELECT DISTINCT visitor_id FROM "
            f"{database}.sessions WHERE site_id = {site} AND user_id = {who}"))
    ids = _values(visitors)
    person = f"site_id = {site} AND (" + (f"visitor_id IN ({ids})" if visitors else "0")
    person += f" OR user_id = {who})" if kind == "user" else ")"
    conversions = _column(store, f"SELECT DISTINCT toString(conversion_id) FROM "
                                 f"{database}.conversions WHERE {person}")
    pages = _rows(store, f"SELECT DISTINCT toString(toDate(ts)), host, path FROM "
                         f"{database}.events WHERE {person} AND type = 'pageview' AND is_bot = 0")
    needles = [f'"anonymous_id":"{v}"' for v in visitors]
    if kind == "user":
        needles.append(f'"user_id":"{subject}"')
    in_payload = " OR ".join(f"position(payload, {quote_string(n)}) > 0" for n in needles)
    plan = [
        ("attribution", f"site_id = {site} AND conversion_id IN ({_values(conversions)})"
         if conversions else ""),
        ("conversions", person),
        ("sessions", person),
        ("events", person),
        ("invalid_events", f"site_id = {site} AND ({in_payload})"),
        ("traffic_daily_sessions", _hashed(site, "cityHash64({})", visitors)),
        ("funnel_steps", _hashed(site, "reinterpretAsUInt128(sipHash128({}))", visitors)),
    ]
    counts = {table: _delete(store, database, table, where, cluster)
              for table, where in plan}
    counts["pages_daily_rollup"] = _rebuild_pages(store, database, site, pages, cluster)
    counts.update(_traffic(store, database, site_id, visitors, cluster))
    digest = hashlib.sha256(f"{site_id}\x1f{subject}".encode()).hexdigest()
    pairs = ", ".join(f"{quote_string(t)}, {n}" for t, n in counts.items())
    store.execute(
        f"INSERT INTO {database}.erasure_log (site_id, subject_kind, subject_hash, "
        f"rows_deleted, requested_by) VALUES ({site}, {quote_string(kind)}, "
        f"{quote_string(digest)}, map({pairs}), {quote_string(getpass.getuser())})")
    return counts


def _column(store: Store, sql: str) -> list[str]:
    return [str(r[0]) for r in store.query_rows(sql)[1]]


def _rows(store: Store, sql: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in store.query_rows(sql)[1]]


def _literal(value: object) -> str:
    return str(value) if isinstance(value, int) else quote_string(str(value))


def _values(values: Sequence[object]) -> str:
    return ", ".join(_literal(v) for v in values)


def _tuples(keys: Sequence[tuple[object, ...]]) -> str:
    return ", ".join(f"({_values(k)})" for k in keys)


def _chunks(keys: Sequence[tuple[object, ...]]) -> Iterator[Sequence[tuple[object, ...]]]:
    for i in range(0, len(keys), CHUNK):
        yield keys[i:i + CHUNK]


def _hashed(site: str, expr: str, visitors: Sequence[str]) -> str:
    """Rows whose visitor_hash is expr of one of the visitor ids ('' for none)."""
    calls = ", ".join(expr.format(quote_string(v)) for v in visitors)
    return f"site_id = {site} AND visitor_hash IN ({calls})" if visitors else ""


def _target(database: str, table: str, cluster: str) -> str:
    """Where a DELETE or ALTER goes: the table, or its local tables on every node."""
    if cluster:
        return f"{database}.{table}{SUFFIX} ON CLUSTER {quote_string(cluster)}"
    return f"{database}.{table}"


def _delete(store: Store, database: str, table: str, where: str, cluster: str) -> int:
    """DELETE the rows `where` names (none for ''); returns how many there were."""
    if not where:
        return 0
    _, rows = store.query_rows(f"SELECT count() FROM {database}.{table} WHERE {where}")
    n = int(rows[0][0])
    if n:
        store.execute(f"DELETE FROM {_target(database, table, cluster)} WHERE {where}")
    return n


def _rebuild_pages(store: Store, database: str, site: str,
                   keys: Sequence[tuple[object, ...]], cluster: str) -> int:
    """Delete the pages_daily_rollup rows of these (day, host, path) keys and roll them up
    again from the events (after the person's events are gone)."""
    # on a cluster each shard rebuilds from its own events into its own rollup
    parallel = " SETTINGS parallel_distributed_insert_select = 2" if cluster else ""
    n = 0
    for part in _chunks(keys):
        tuples = _tuples(part)
        n += _delete(store, database, "pages_daily_rollup",
                     f"site_id = {site} AND (day, host, path) IN ({tuples})", cluster)
        where = (f"site_id = {site} AND type = 'pageview' AND is_bot = 0 AND "
                 f"(toDate(ts), host, path) IN ({tuples})")
        store.execute(f"INSERT INTO {database}.pages_daily_rollup{parallel} "
                      + PAGES_ROLLUP.format(db=database, where=where))
    return n


def _traffic(store: Store, database: str, site_id: str, visitors: Sequence[str],
             cluster: str) -> dict[str, int]:
    """Take the person's worker hashes out of the traffic tables (see the module doc)."""
    counts = {"traffic_1m": 0, "traffic_visitors_1m": 0}
    if not visitors:
        return counts
    from streams.traffic.stream import visitor_hash  # the worker's own hash

    site = quote_string(site_id)
    hashes = f"CAST([{_values([visitor_hash(site_id, v) for v in visitors])}] AS Array(UInt64))"
    mine = f"site_id = {site} AND hasAny(visitors, {hashes})"
    # GLOBAL: on a cluster both sides read Distributed tables (the keys' rows span shards)
    alone = _rows(store, (
        f"SELECT {TRAFFIC_KEY} FROM {database}.traffic_visitors_1m WHERE site_id = {site} "
        f"AND (window_start, kafka_partition) GLOBAL IN (SELECT window_start, kafka_partition "
        f"FROM {database}.traffic_visitors_1m WHERE {mine}) GROUP BY {TRAFFIC_KEY} "
        f"HAVING arrayAll(h -> has({hashes}, h), groupUniqArrayArray(visitors))"))
    for part in _chunks(alone):
        where = f"site_id = {site} AND ({TRAFFIC_KEY}) IN ({_tuples(part)})"
        for table in counts:
            counts[table] += _delete(store, database, table, where, cluster)
    for table in counts:
        _, rows = store.query_rows(f"SELECT count() FROM {database}.{table} WHERE {mine}")
        if n := int(rows[0][0]):
            store.execute(f"ALTER TABLE {_target(database, table, cluster)} UPDATE visitors = "
                          f"arrayFilter(h -> NOT has({hashes}, h), visitors) WHERE {mine} "
                          "SETTINGS mutations_sync = 2")
            counts[table] += n
    return counts

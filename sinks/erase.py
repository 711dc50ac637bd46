"""Erase one person (a visitor id or a user id of a site) from every table.

Erasing a user also erases every visitor id (device) ever linked to it, so pre-login
events go too.

Rows are removed with lightweight DELETE (visible at once, physically dropped by merges).
Attribution rows go first, found through the person's conversions. An audit record with a
hash of the id (never the id) and the row counts is written to `erasure_log`.

Not covered here: Kafka topics (they expire by retention) and the stream worker's visitor
state (sessions and touchpoints age out after the lookback window).
"""

from __future__ import annotations

import getpass
import hashlib
from typing import Literal

from sinks.cluster_sql import quote_string
from sinks.cluster_tables import SUFFIX
from sinks.store import Store

Kind = Literal["visitor", "user"]


def erase(store: Store, database: str, site_id: str, kind: Kind, subject: str,
          cluster: str = "") -> dict[str, int]:
    """Delete the person's rows; returns rows deleted per table. On a cluster (see
    sinks/cluster.py) rows are counted through the Distributed tables and deleted from the
    `<table>_local` tables on every node (Distributed tables take no DELETE)."""
    if not subject or not site_id:
        raise ValueError("site and id are required")
    site, who = quote_string(site_id), quote_string(subject)
    if kind == "visitor":
        visitors = [subject]
    else:  # a user's devices: every visitor id ever linked to the user id
        _, rows = store.query_rows(
            f"SELECT DISTINCT visitor_id FROM {database}.events WHERE site_id = {site} AND "
            f"user_id = {who} UNION DISTINCT SELECT DISTINCT visitor_id FROM "
            f"{database}.sessions WHERE site_id = {site} AND user_id = {who}")
        visitors = [str(r[0]) for r in rows]
    vis = ", ".join(quote_string(v) for v in visitors) or "''"
    person = f"site_id = {site} AND (visitor_id IN ({vis})"
    person += f" OR user_id = {who})" if kind == "user" else ")"
    conversions = f"SELECT conversion_id FROM {database}.conversions WHERE {person}"
    needles = [f'"anonymous_id":"{v}"' for v in visitors]
    if kind == "user":
        needles.append(f'"user_id":"{subject}"')
    in_payload = " OR ".join(f"position(payload, {quote_string(n)}) > 0" for n in needles)
    plan = [
        ("attribution", f"site_id = {site} AND conversion_id IN ({conversions})"),
        ("conversions", person),
        ("sessions", person),
        ("events", person),
        ("invalid_events", f"site_id = {site} AND ({in_payload})"),
    ]
    counts: dict[str, int] = {}
    for table, where in plan:
        _, rows = store.query_rows(f"SELECT count() FROM {database}.{table} WHERE {where}")
        counts[table] = int(rows[0][0])
        if counts[table] and cluster:
            store.execute(f"DELETE FROM {database}.{table}{SUFFIX} ON CLUSTER "
                          f"{quote_string(cluster)} WHERE {where}")
        elif counts[table]:
            store.execute(f"DELETE FROM {database}.{table} WHERE {where}")
    digest = hashlib.sha256(f"{site_id}\x1f{subject}".encode()).hexdigest()
    pairs = ", ".join(f"{quote_string(t)}, {n}" for t, n in counts.items())
    store.execute(
        f"INSERT INTO {database}.erasure_log (site_id, subject_kind, subject_hash, "
        f"rows_deleted, requested_by) VALUES ({site}, {quote_string(kind)}, "
        f"{quote_string(digest)}, map({pairs}), {quote_string(getpass.getuser())})")
    return counts

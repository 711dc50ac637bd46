"""`GET /v1/stats/{site_id}/live`: what a site looks like right now, from traffic_1m.

Served by the sink (it owns the store). Every number is computed by ClickHouse over
`traffic_1m FINAL`, so it is right with any number of workers: each worker partition writes
its own rows, and unique visitors are merged exactly from the stored visitor hashes.
"Now" is the current minute and the four before it (five one-minute windows).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from aiohttp import web

from sinks.store import Store, StoreError

MINUTE_MS = 60_000
SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # the contract's site id
NOW_MINUTES = 5
SERIES_MINUTES = 30
TOP = 10


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def live_stats(store: Store, database: str, site_id: str,
               now_ms: int | None = None) -> dict[str, Any]:
    """The live view of one site as a JSON-able dict."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    current = now_ms - now_ms % MINUTE_MS
    since_now = current - (NOW_MINUTES - 1) * MINUTE_MS
    since_series = current - (SERIES_MINUTES - 1) * MINUTE_MS
    table = f"{database}.traffic_1m"
    site = _quote(site_id)

    def window_filter(since: int) -> str:
        return (f"site_id = {site} AND window_start >= fromUnixTimestamp64Milli({since}) "
                f"AND window_start <= fromUnixTimestamp64Milli({current})")

    _, totals = store.query_rows(
        f"SELECT uniqExactArray(visitors), sum(pageviews), sum(events), sum(sessions), "
        f"sum(conversions), toString(sum(revenue)) FROM {table} FINAL "
        f"WHERE {window_filter(since_now)} AND dimension = ''")
    _, series = store.query_rows(
        f"SELECT toUnixTimestamp64Milli(window_start), sum(pageviews), "
        f"uniqExactArray(visitors) FROM {table} FINAL "
        f"WHERE {window_filter(since_series)} AND dimension = '' GROUP BY window_start")
    _, top = store.query_rows(
        f"SELECT dimension, value, sum(pageviews) AS pv, uniqExactArray(visitors) AS uv "
        f"FROM {table} FINAL WHERE {window_filter(since_now)} "
        f"AND dimension IN ('path', 'source', 'channel') AND value != '(other)' "
        f"GROUP BY dimension, value HAVING sum(events) > 0 "
        f"ORDER BY dimension, uv DESC, pv DESC, value LIMIT {TOP} BY dimension")
    by_minute = {int(ts): (int(pv), int(uv)) for ts, pv, uv in series}
    visitors, pageviews, events, sessions, conversions, revenue = (
        totals[0] if totals else (0, 0, 0, 0, 0, "0"))
    lists: dict[str, list[dict[str, Any]]] = {"path": [], "source": [], "channel": []}
    for dim, value, pv, uv in top:
        lists[dim].append({"value": value, "pageviews": int(pv), "visitors": int(uv)})
    return {
        "site_id": site_id,
        "generated_at": now_ms,
        "now": {"minutes": NOW_MINUTES, "visitors": int(visitors or 0),
                "pageviews": int(pageviews or 0), "events": int(events or 0),
                "sessions": int(sessions or 0), "conversions": int(conversions or 0),
                "revenue": str(revenue or "0")},
        "pageviews_per_minute": [
            {"minute": ts, "pageviews": by_minute.get(ts, (0, 0))[0],
             "visitors": by_minute.get(ts, (0, 0))[1]}
            for ts in range(since_series, current + 1, MINUTE_MS)],
        "top_pages": lists["path"],
        "top_sources": lists["source"],
        "top_channels": lists["channel"],
    }


def add_live_routes(app: web.Application, store: Store, database: str) -> None:
    """Register the live endpoint on the sink's web app."""

    async def live(request: web.Request) -> web.Response:
        site_id = request.match_info["site_id"]
        if not SITE_ID.match(site_id):
            return web.json_response({"error": "invalid site id"}, status=400)
        try:
            doc = await asyncio.to_thread(live_stats, store, database, site_id)
        except StoreError as exc:
            return web.json_response({"error": str(exc)[:500]}, status=503)
        return web.json_response(doc, headers={"Cache-Control": "no-store"})

    app.router.add_get("/v1/stats/{site_id}/live", live)

"""`GET /v1/stats/{site_id}/live`: what a site looks like right now, from the traffic windows.

Served by the sink (it owns the store). Every number is computed by ClickHouse, so it is
right with any number of workers: counters from `traffic_1m FINAL` (each worker partition
writes its own rows), unique visitors merged exactly from `traffic_visitors_1m` (visitor
hashes per minute, partition and value). A top value's visitors are those of the minutes in
which it has a row of its own, as in the traffic_1h/1d views (docs/traffic.md).
"Now" is the current minute and the four before it (five one-minute windows).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Hashable
from decimal import Decimal
from typing import Any

from aiohttp import web

from sinks.store import Store, StoreError

MINUTE_MS = 60_000
SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # the contract's site id
NOW_MINUTES = 5
SERIES_MINUTES = 30
TOP = 10
TOP_DIMENSIONS = ("path", "source", "channel")
MAX_KEPT = 1000  # sites whose last answer is kept


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def live_queries(database: str, site_id: str, now_ms: int) -> dict[str, str]:
    """The live view's queries (each reads its tables once; no joins: they are the slow
    part in ClickHouse at this size)."""
    current = now_ms - now_ms % MINUTE_MS
    since_now = current - (NOW_MINUTES - 1) * MINUTE_MS
    since_series = current - (SERIES_MINUTES - 1) * MINUTE_MS
    counters, hashes = f"{database}.traffic_1m FINAL", f"{database}.traffic_visitors_1m"
    site = _quote(site_id)
    dims = ", ".join(_quote(d) for d in TOP_DIMENSIONS)

    def since(ms: int) -> str:
        return f"window_start >= fromUnixTimestamp64Milli({ms})"

    until = f"site_id = {site} AND window_start <= fromUnixTimestamp64Milli({current})"
    top_rows = f"dimension IN ({dims}) AND value != '(other)' AND {since(since_now)}"
    return {
        # totals per minute (series, and "now" summed in Python) and top values per minute
        "counters": (
            f"SELECT dimension, value, toUnixTimestamp64Milli(window_start) AS m, "
            f"sum(pageviews), sum(events), sum(sessions), sum(conversions), "
            f"toString(sum(revenue)) FROM {counters} WHERE {until} AND "
            f"((dimension = '' AND {since(since_series)}) OR ({top_rows})) "
            f"GROUP BY dimension, value, m"),
        # unique visitors per minute, and over "now" (the grouping set without a minute)
        "visitors": (
            f"SELECT toUnixTimestamp64Milli(window_start) AS m, grouping(m), "
            f"uniqExactArray(visitors), uniqExactArrayIf(visitors, {since(since_now)}) "
            f"FROM {hashes} WHERE {until} AND dimension = '' AND {since(since_series)} "
            f"GROUP BY GROUPING SETS ((m), ())"),
        # a top value's visitors in the minutes (and partitions) it has a row of its own
        "top_visitors": (
            f"SELECT dimension, value, uniqExactArray(visitors) FROM {hashes} "
            f"WHERE {until} AND {top_rows} AND "
            f"(window_start, kafka_partition, dimension, value) IN "
            f"(SELECT window_start, kafka_partition, dimension, value FROM {counters} "
            f"WHERE {until} AND {top_rows} AND events > 0) GROUP BY dimension, value"),
    }


def live_stats(store: Store, database: str, site_id: str,
               now_ms: int | None = None) -> dict[str, Any]:
    """The live view of one site as a JSON-able dict."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    current = now_ms - now_ms % MINUTE_MS
    since_now = current - (NOW_MINUTES - 1) * MINUTE_MS
    since_series = current - (SERIES_MINUTES - 1) * MINUTE_MS
    queries = live_queries(database, site_id, now_ms)
    _, counters = store.query_rows(queries["counters"])
    _, visitors = store.query_rows(queries["visitors"])
    _, top_visitors = store.query_rows(queries["top_visitors"])

    now = {"pageviews": 0, "events": 0, "sessions": 0, "conversions": 0}
    revenue = Decimal(0)
    pageviews: dict[int, int] = {}
    top: dict[tuple[str, str], list[int]] = {}  # (dimension, value) -> [pageviews, events]
    for dim, value, minute, pv, ev, se, co, rev in counters:
        if dim:
            acc = top.setdefault((dim, value), [0, 0])
            acc[0] += int(pv)
            acc[1] += int(ev)
            continue
        pageviews[int(minute)] = int(pv)
        if int(minute) >= since_now:
            for key, n in zip(now, (pv, ev, se, co), strict=True):
                now[key] += int(n)
            revenue += Decimal(str(rev))
    per_minute, visitors_now = {}, 0
    for minute, rolled_up, uv, uv_now in visitors:
        if int(rolled_up):
            visitors_now = int(uv_now)
        else:
            per_minute[int(minute)] = int(uv)
    uv_of = {(dim, value): int(uv) for dim, value, uv in top_visitors}
    lists: dict[str, list[dict[str, Any]]] = {d: [] for d in TOP_DIMENSIONS}
    for (dim, value), (pv, ev) in top.items():
        if ev > 0:
            lists[dim].append({"value": value, "pageviews": pv,
                               "visitors": uv_of.get((dim, value), 0)})
    for items in lists.values():
        items.sort(key=lambda i: (-i["visitors"], -i["pageviews"], i["value"]))
        del items[TOP:]
    return {
        "site_id": site_id,
        "generated_at": now_ms,
        "now": {"minutes": NOW_MINUTES, "visitors": visitors_now, **now,
                "revenue": format(revenue.normalize(), "f") if revenue else "0"},
        "pageviews_per_minute": [
            {"minute": ts, "pageviews": pageviews.get(ts, 0), "visitors": per_minute.get(ts, 0)}
            for ts in range(since_series, current + 1, MINUTE_MS)],
        "top_pages": lists["path"],
        "top_sources": lists["source"],
        "top_channels": lists["channel"],
    }


def add_live_routes(app: web.Application, store: Store, database: str,
                    version: Callable[[], Hashable] | None = None) -> None:
    """Register the live endpoint on the sink's web app. `version`: a value that changes
    whenever the traffic tables may have changed (given when this process is the store's
    only writer): an answer is then reused until it changes or the minute turns, so any
    number of dashboards polling costs the store one computation per traffic flush."""
    answers: dict[str, tuple[Hashable, int, dict[str, Any]]] = {}
    # computations under way, by (site, version, minute): a poll that arrives meanwhile
    # waits for the same answer instead of queueing its own queries behind the store's lock
    running: dict[tuple[str, Hashable, int], asyncio.Future[dict[str, Any]]] = {}

    async def live(request: web.Request) -> web.Response:
        site_id = request.match_info["site_id"]
        if not SITE_ID.match(site_id):
            return web.json_response({"error": "invalid site id"}, status=400)
        now_ms = int(time.time() * 1000)
        minute = now_ms - now_ms % MINUTE_MS
        seen = version() if version else None
        kept = answers.get(site_id)
        if kept and version and kept[0] == seen and kept[1] == minute:
            return web.json_response(kept[2], headers={"Cache-Control": "no-store"})
        key = (site_id, seen, minute)
        computing = running.get(key) if version else None
        if computing is None:
            computing = asyncio.ensure_future(
                asyncio.to_thread(live_stats, store, database, site_id, now_ms))
            if version:
                running[key] = computing
                computing.add_done_callback(lambda _f: running.pop(key, None))
        try:
            doc = await asyncio.shield(computing)  # a poll that goes away leaves it running
        except StoreError as exc:
            return web.json_response({"error": str(exc)[:500]}, status=503)
        if version:
            if len(answers) >= MAX_KEPT and site_id not in answers:
                answers.pop(next(iter(answers)))
            answers[site_id] = (seen, minute, doc)
        return web.json_response(doc, headers={"Cache-Control": "no-store"})

    app.router.add_get("/v1/stats/{site_id}/live", live)

"""Store: rows/s per core into chDB through the sink's decode + BatchWriter path (and into a
ClickHouse server when CLICKSTREAM_CLICKHOUSE_URL is set), then p50/p95 of the main
dashboard panels over N synthetic events (default 10 million) in chDB, next to the queries
they replace, with a check that both give the same rows.

    python -m bench.store_bench [--rows 10000000] [--write-rows 500000] [--runs 20]
                                [--load-order time|random] [--tail 100000] [--write-only]

Data: bench/store_data.py. Events are inserted the way the sink writes them (in time order,
sessions in two versions, a replay of 0.5 % after each insert), so the materialized views
fill the rollups as they would in production. Panels are timed in three states (see
query_part); `--load-order random` spreads every insert over the whole period (every part
then overlaps every other: the worst case for FINAL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.common import write_result
from bench.store_data import SITE, load, sink_rows
from schemas.timefmt import dt_to_ms
from sinks.batches import decode
from sinks.migrate import migrate
from sinks.store import ChdbStore, ServerStore, Store
from sinks.writer import BatchWriter
from streams import arrow_events, ndjson
from streams.pipeline import Ctx

#: traffic_daily as it was before migration 0008: sessions FINAL, grouped
OLD_TRAFFIC_DAILY = """(
SELECT toDate(first_seen) AS day, site_id, channel, source, medium, campaign,
       count() AS sessions, uniq(visitor_id) AS visitors, sum(pageviews) AS pageviews,
       countIf(s.conversions > 0) AS converting_sessions, sum(revenue) AS revenue
FROM {db}.sessions AS s FINAL
GROUP BY day, site_id, channel, source, medium, campaign)"""
#: the funnel view as it was before migration 0008: events, grouped by visitor id
OLD_FUNNEL = """
SELECT step, sumIf(visitors_at_level, level >= step) AS visitors,
       round(visitors / max(visitors) OVER (), 4) AS rate_from_first_step
FROM (SELECT level, count() AS visitors_at_level
      FROM (SELECT visitor_id, windowFunnel(3600)(toDateTime(ts), step_key = '/',
                       step_key = '/pricing', step_key = '/signup', step_key = 'purchase')
                       AS level
            FROM (SELECT visitor_id, ts, if(type = 'pageview', path, name) AS step_key
                  FROM {db}.events
                  WHERE site_id = '{site}' AND is_bot = 0 AND ts >= {since_ts}
                    AND ts < {until}
                    AND step_key IN ('/', '/pricing', '/signup', 'purchase'))
            GROUP BY visitor_id)
      GROUP BY level)
ARRAY JOIN [1, 2, 3, 4] AS step
GROUP BY step ORDER BY step"""


def dashboard_queries(db: str) -> dict[str, tuple[str, str | None]]:
    """The main dashboard panels over the last 30 days of one site, with literal dates as a
    dashboard (Grafana's $__fromTime) sends them: name -> (panel SQL, the SQL it replaces or
    None when unchanged). Both must return the same rows."""
    today = date.today()
    since = f"'{today - timedelta(days=30)}'"
    until = f"'{today + timedelta(days=1)} 00:00:00'"
    since_ts = f"'{today - timedelta(days=30)} 00:00:00'"
    old_traffic = OLD_TRAFFIC_DAILY.format(db=db)
    traffic = """
SELECT day, channel, sum(sessions) AS sessions, sum(pageviews) AS pageviews,
       sum(visitors) AS visitors
FROM {src} WHERE site_id = '{site}' AND day >= {since}
GROUP BY day, channel ORDER BY day, sessions DESC, channel"""
    conversions = """
SELECT channel, sum(sessions) AS sessions, sum(converting_sessions) AS converting,
       round(converting / sessions, 4) AS conversion_rate, sum(revenue) AS revenue
FROM {src} WHERE site_id = '{site}' AND day >= {since}
GROUP BY channel ORDER BY revenue DESC"""
    return {
        "traffic_per_channel_per_day": (
            traffic.format(src=f"{db}.traffic_daily", site=SITE, since=since),
            traffic.format(src=old_traffic, site=SITE, since=since)),
        "top_pages": (f"""
SELECT path, sum(pageviews) AS pageviews, sum(entrances) AS entrances
FROM {db}.pages_daily WHERE site_id = '{SITE}' AND day >= {since}
GROUP BY path ORDER BY pageviews DESC, path LIMIT 20""", f"""
SELECT path, count() AS pageviews, countIf(session_seq = 1) AS entrances
FROM {db}.events FINAL
WHERE site_id = '{SITE}' AND toDate(ts) >= {since} AND type = 'pageview' AND is_bot = 0
GROUP BY path ORDER BY pageviews DESC, path LIMIT 20"""),
        "conversions_by_channel": (
            conversions.format(src=f"{db}.traffic_daily", site=SITE, since=since),
            conversions.format(src=old_traffic, site=SITE, since=since)),
        "unique_visitors_per_day": (f"""
SELECT toDate(first_seen) AS day, uniq(visitor_id) AS visitors
FROM {db}.sessions WHERE site_id = '{SITE}' AND first_seen >= {since}
GROUP BY day ORDER BY day""", None),
        "funnel": (f"""
SELECT * FROM {db}.funnel(site = '{SITE}', date_from = {since_ts}, date_to = {until},
  window_seconds = 3600, step1 = '/', step2 = '/pricing', step3 = '/signup',
  step4 = 'purchase')""", OLD_FUNNEL.format(db=db, site=SITE, since_ts=since_ts,
                                           until=until)),
    }


def time_query(store: Store, sql: str, runs: int) -> tuple[dict[str, Any], list[list[Any]]]:
    """Wall p50/p95 and the median CPU time of this process per run (chDB runs in it): the
    CPU figure holds when other work shares the machine, wall time does not."""
    _, rows = store.query_rows(sql)  # warm-up (marks, caches)
    times, cpus = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        store.query_rows(sql)
        times.append((time.perf_counter() - t0) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[max(0, -(-len(times) * 95 // 100) - 1)], 1),
            "cpu_p50_ms": round(statistics.median(cpus), 1), "rows": len(rows)}, rows


def time_panels(store: Store, queries: dict[str, tuple[str, str | None]],
                runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (panel, before) in queries.items():
        fig, rows = time_query(store, panel, runs)
        out[name] = fig
        line = f"  {name:28s} p50 {fig['p50_ms']:7.1f} ms  p95 {fig['p95_ms']:7.1f} ms  " \
               f"cpu {fig['cpu_p50_ms']:7.1f} ms"
        if before:
            old, old_rows = time_query(store, before, runs)
            fig["replaced_query"] = old
            fig["same_rows_as_replaced"] = _same(rows, old_rows)
            line += f"   (was p50 {old['p50_ms']:.1f}, p95 {old['p95_ms']:.1f}, cpu " \
                    f"{old['cpu_p50_ms']:.1f}; same rows: {fig['same_rows_as_replaced']})"
        print(line, flush=True)
    return out


def _same(a: list[list[Any]], b: list[list[Any]]) -> bool:
    def norm(rows: list[list[Any]]) -> list[tuple[Any, ...]]:
        return [tuple(round(float(x), 4) if isinstance(x, float) else x for x in r)
                for r in rows]
    return norm(a) == norm(b)


def wait_for_merges(store: Store, db: str, limit_s: float = 300) -> float:
    """Wait until no merge runs on db (they run in this process: timing queries during
    merges would time the merges)."""
    t0 = time.perf_counter()
    quiet = 0
    while quiet < 3 and time.perf_counter() - t0 < limit_s:
        _, rows = store.query_rows(f"SELECT count() FROM system.merges WHERE database = '{db}'")
        quiet = quiet + 1 if rows[0][0] == 0 else 0
        time.sleep(1)
    return round(time.perf_counter() - t0, 1)


def worker_contexts(rows: list[bytes]) -> list[Ctx]:
    """The JSON event rows as the worker holds them before its output: row dicts with the
    event time in ms, the receive time in the envelope (streams/arrow_events.py reads
    both)."""
    out = []
    for raw in rows:
        row = orjson.loads(raw)
        row["_ts_ms"] = _text_ms(row["ts"])
        row["revenue"] = str(row["revenue"])
        ctx = Ctx(b"")
        ctx.row, ctx.envelope = row, {"received_at": _text_ms(row["received_at"])}
        out.append(ctx)
    return out


def _text_ms(text: str) -> int:
    return dt_to_ms(datetime.fromisoformat(text).replace(tzinfo=UTC))


def arrow_messages(rows: list[bytes], per_message: int = 250) -> tuple[list[bytes], float]:
    """The rows as the worker's Arrow messages (streams/arrow_events.py), `per_message`
    rows each as one partition's share of a 1,000-event batch over 4 partitions gives;
    returns them and the worker's CPU µs per row for building them."""
    ctxs = worker_contexts(rows)
    c0 = time.process_time()
    out = [m for i in range(0, len(ctxs), per_message)
           for m in arrow_events.messages(ctxs[i:i + per_message])]
    return out, (time.process_time() - c0) / len(rows) * 1e6


def write_throughput(store: Any, table: str, messages: list[bytes],
                     batch: int) -> dict[str, Any]:
    """Kafka message values through what the sink service does with them: decode (NDJSON
    split or Arrow read), BatchWriter.write in polls of 100 messages, flush at `batch` rows.
    Wall and CPU time of this process (chDB runs inside it; for a server, the client side
    only): the inserts, the materialized views they run, and background merges where they
    ran in time."""
    writer = BatchWriter(store, max_rows=batch, flush_seconds=3600)

    async def run() -> int:
        written = 0
        for i in range(0, len(messages), 100):
            rows, arrow = decode(messages[i:i + 100])
            writer.write(table, rows, f"bench/0/{i}-{i + 99}", arrow)
            if writer.due():
                written += await writer.flush()
        return written + await writer.flush()

    cpu0, t0 = time.process_time(), time.perf_counter()
    written = asyncio.run(run())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    return {"rows": written, "messages": len(messages), "batch_rows": batch,
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "rows_per_s": round(written / wall), "rows_per_cpu_s": round(written / cpu)}


class InlineJsonStore:
    """The chDB insert as it was before (NDJSON body inlined in the statement, parsed into
    the table's types, ReplacingMergeTree collapsing duplicates per block): the baseline."""

    def __init__(self, store: ChdbStore) -> None:
        self.store = store

    def insert_json_rows(self, table: str, rows: list[bytes], token: str | None = None) -> None:
        settings = "input_format_skip_unknown_fields=1, date_time_input_format='best_effort'"
        if token:
            settings += f", insert_deduplication_token='{token}'"
        body = b"\n".join(rows).decode("utf-8", "replace")
        self.store.execute(f"INSERT INTO {table} SETTINGS {settings} FORMAT JSONEachRow\n{body}")


def write_part(store: ChdbStore, rows_n: int, batch: int, reps: int = 3) -> dict[str, Any]:
    migrate(store, "bench_write")
    rows = sink_rows(store, "bench_write", rows_n)
    result: dict[str, Any] = {}
    cases: list[tuple[str, str, list[bytes]]] = [
        ("events_ndjson_before", "events", list(ndjson.chunks(rows["events"]))),
        ("events_ndjson", "events", list(ndjson.chunks(rows["events"]))),
        ("events_arrow", "events", []),
        ("sessions_ndjson", "sessions", list(ndjson.chunks(rows["sessions"]))),
        ("attribution_json", "attribution", rows["attribution"]),  # one row per message
        ("traffic_1m_json", "traffic_1m", rows["traffic_1m"]),
    ]
    arrow, build_us = arrow_messages(rows["events"])
    cases[2] = ("events_arrow", "events", arrow)
    result["arrow_build_us_per_row"] = round(build_us, 2)
    print(f"  (the worker builds the Arrow messages in {build_us:.1f} CPU µs per row)",
          flush=True)
    for name, table, messages in cases:
        runs = []
        for _ in range(reps):  # the machine is shared: the median of a few runs
            store.execute(f"TRUNCATE TABLE bench_write.{table}")
            target: Any = InlineJsonStore(store) if name.endswith("_before") else store
            runs.append(write_throughput(target, f"bench_write.{table}", messages, batch))
        _, stored = store.query_rows(f"SELECT count() FROM bench_write.{table}")
        fig = sorted(runs, key=lambda r: r["rows_per_cpu_s"])[len(runs) // 2]
        fig = {**fig, "stored": stored[0][0], "runs": len(runs),
               "best_rows_per_cpu_s": max(r["rows_per_cpu_s"] for r in runs)}
        result[name] = fig
        print(f"  {name:18s} {fig['rows']:>8,} rows  {fig['rows_per_s']:>9,} rows/s  "
              f"{fig['rows_per_cpu_s']:>9,} rows per CPU-second (median of {len(runs)}; "
              f"best {fig['best_rows_per_cpu_s']:,})  {fig['messages']:,} messages",
              flush=True)
    if os.environ.get("CLICKSTREAM_CLICKHOUSE_URL"):
        server = ServerStore(os.environ["CLICKSTREAM_CLICKHOUSE_URL"])
        try:
            migrate(server, "clickstream_bench")
            result["events_server"] = write_throughput(
                server, "clickstream_bench.events", list(ndjson.chunks(rows["events"])), batch)
            print(f"  events -> server    {result['events_server']}", flush=True)
            server.execute("DROP DATABASE clickstream_bench SYNC")
        finally:
            server.close()
    store.execute("DROP DATABASE bench_write SYNC")
    return result


TABLES = ("events", "sessions", "conversions", "pages_daily_rollup", "traffic_daily_sessions",
          "funnel_steps")


def query_part(store: ChdbStore, args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Three states: right after a bulk load of all but the last day (100k-event inserts:
    the parts of the newest days are not merged yet, each a day wide, with the replays
    beside them); live (older data merged, as days of background merges leave it, and the
    last day written in 5k-event inserts just before); everything merged (OPTIMIZE FINAL)."""
    migrate(store, "bench")
    visitors = max(1, args.rows // 10)
    bulk = max(0, args.rows - args.tail)
    in_time_order = args.load_order == "time"
    loads = result["load"] = {}
    _, have = store.query_rows("SELECT count() FROM bench.events")
    if have[0][0] == 0:
        print(f"loading {bulk:,} events into chDB ({args.load_order} order, 100k per insert)",
              flush=True)
        loads["bulk"] = load(store, "bench", args.rows, visitors, 0, bulk, 100_000,
                             in_time_order)
        print(f"  {loads['bulk']}", flush=True)
    queries = dashboard_queries("bench")
    measure(store, "after_bulk_load", queries, args.runs, result)
    optimize(store, result, "optimize_bulk_s")
    if have[0][0] == 0:
        loads["tail"] = load(store, "bench", args.rows, visitors, bulk, args.rows, 5_000,
                             in_time_order)
        print(f"  last {args.tail:,} events in 5k-event inserts: {loads['tail']}", flush=True)
    _, counts = store.query_rows(
        "SELECT (SELECT count() FROM bench.events), (SELECT count() FROM bench.sessions),"
        " (SELECT count() FROM bench.conversions), (SELECT count() FROM bench.events FINAL),"
        " (SELECT count() FROM bench.sessions FINAL)")
    result["stored"] = dict(zip(("events", "sessions", "conversions", "events_final",
                                 "sessions_final"), counts[0], strict=True))
    print(f"  {result['stored']}", flush=True)
    measure(store, "live", queries, args.runs, result)
    optimize(store, result, "optimize_s")
    measure(store, "merged", queries, args.runs, result)


def measure(store: ChdbStore, state: str, queries: dict[str, tuple[str, str | None]],
            runs: int, result: dict[str, Any]) -> None:
    result[f"merge_wait_s_{state}"] = wait_for_merges(store, "bench")
    result[f"parts_{state}"] = parts(store)
    print(f"panels, {state.replace('_', ' ')} (parts {result[f'parts_{state}']}; {runs} runs "
          "each):", flush=True)
    result[f"queries_{state}"] = time_panels(store, queries, runs)


def optimize(store: ChdbStore, result: dict[str, Any], key: str) -> None:
    t0 = time.perf_counter()
    for table in TABLES:
        store.execute(f"OPTIMIZE TABLE bench.{table} FINAL")
    result[key] = round(time.perf_counter() - t0, 1)


def parts(store: Store) -> dict[str, int]:
    _, rows = store.query_rows("SELECT table, count() FROM system.parts WHERE database = "
                               "'bench' AND active GROUP BY table ORDER BY table")
    return {t: int(n) for t, n in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="events for the query part")
    ap.add_argument("--write-rows", type=int, default=500_000, help="events for the write part")
    ap.add_argument("--batch", type=int, default=50_000, help="writer batch size")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per query")
    ap.add_argument("--load-order", choices=("time", "random"), default="time")
    ap.add_argument("--write-only", action="store_true", help="only the write part")
    ap.add_argument("--tail", type=int, default=100_000,
                    help="events written last, in small inserts (the live state)")
    ap.add_argument("--out", default="store", help="results file name (bench/results/NAME.json)")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="keep the chDB data here and reuse loaded events on the next run")
    args = ap.parse_args()

    result: dict[str, Any] = {"events": args.rows}
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        store = ChdbStore(args.data_dir or Path(tmp) / "chdb")
        try:
            print(f"sink -> chDB, {args.write_rows:,} events and the rows derived from them:",
                  flush=True)
            result["write"] = write_part(store, args.write_rows, args.batch)
            if not args.write_only:
                query_part(store, args, result)
        finally:
            store.close()
    result["target_rows_per_cpu_s"] = 200_000
    result["target_p95_ms"] = 200
    for state in () if args.write_only else ("after_bulk_load", "live", "merged"):
        panels = result[f"queries_{state}"].values()
        result[f"worst_p95_ms_{state}"] = max(q["p95_ms"] for q in panels)
        result[f"worst_replaced_p95_ms_{state}"] = max(
            q["replaced_query"]["p95_ms"] for q in panels if "replaced_query" in q)
        print(f"worst p95 ({state.replace('_', ' ')}): {result[f'worst_p95_ms_{state}']} ms "
              f"(target <= 200 ms; the replaced queries: "
              f"{result[f'worst_replaced_p95_ms_{state}']} ms)")
    print(f"wrote {write_result(args.out, result)}")


if __name__ == "__main__":
    main()

"""Acceptance test of the traffic windows (docs/traffic.md): a deterministic synthetic
stream (three sites, campaigns, bots, internal visitors, out-of-order events, late events
inside and beyond the allowed lateness) through the real broker, two workers (one killed
with -9 and restarted in the middle) and the sink on chDB. Then every number of
traffic_1m with its visitor sets (the traffic_minutes view over traffic_1m and
traffic_visitors_1m), traffic_1h and traffic_1d must equal the same recomputed by SQL from
clickstream.events, and the live endpoint must agree with it too."""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from aiokafka import AIOKafkaProducer

from clickstream.stack import Stack
from streams.traffic.stream import visitor_hash
from tests.conftest import store_of
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

PARTITIONS = 4
LATENESS_S = 120
TOP_N = 3
SITES = ("alpha.example", "beta.example", "gamma.example")
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"
MOBILE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
CAMPAIGNS = ["?utm_source=newsletter&utm_medium=email&utm_campaign=nov",
             "?utm_source=facebook&utm_medium=cpc&utm_campaign=blackfriday",
             "?utm_source=google&utm_medium=cpc&utm_campaign=brand", "", ""]
REFERRERS = ["https://www.google.com/", "https://news.ycombinator.com/", ""]
PATHS = ["/", "/pricing", "/blog/a", "/blog/b", "/docs", "/shop", "/cart", "/about"]
IPS = ["81.2.69.142", "8.8.8.8", "198.51.100.7", "2a02:c7f:d2::1"]
#: Events the windows count (not bots, not internal, not late beyond the lateness).
COUNTED = ("is_bot = 0 AND NOT startsWith(visitor_id, 'int-') AND "
           "toUnixTimestamp64Milli(received_at) < intDiv(toUnixTimestamp64Milli(ts), 60000) "
           f"* 60000 + {60_000 + LATENESS_S * 1000}")


def synthetic_stream(now: int, seed: int = 6) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, envelope) in produce order. Visitor ids are `<kind>-<n>` and go to
    partition n % PARTITIONS, so SQL can tell every visitor's partition."""
    rng = random.Random(seed)
    start = now - now % 60_000 - 18 * 60_000
    out: list[tuple[int, bytes, bytes]] = []
    n = 0
    for site in SITES:
        for k in range(18):
            n += 1
            kind = "int" if k == 0 else "bot" if k == 1 else "v"
            visitor = f"{kind}-{n}"
            ua = BOT if kind == "bot" else MOBILE if k % 3 == 0 else DESKTOP
            ip = "10.9.1.5" if kind == "int" else IPS[k % len(IPS)]
            events: list[tuple[int, int, dict[str, Any]]] = []
            t = start + rng.randint(0, 14 * 60_000)
            for _visit in range(rng.randint(1, 2)):
                query = rng.choice(CAMPAIGNS)
                referrer = rng.choice(REFERRERS)
                for i in range(rng.randint(1, 5)):
                    t += rng.randint(2_000, 40_000)
                    path = rng.choice(PATHS)
                    ev: dict[str, Any] = {"type": "pageview",
                                          "url": f"https://{site}{path}{query if i == 0 else ''}"}
                    if i == 0 and referrer:
                        ev["referrer"] = referrer
                    roll = rng.random()
                    if roll < 0.12:
                        ev = {"type": "conversion", "name": "purchase",
                              "url": f"https://{site}/cart",
                              "revenue": {"amount": rng.choice([9.99, 25, 120.5]),
                                          "currency": "EUR"}}
                    elif roll < 0.25:
                        ev = {"type": "event", "name": "click", "url": f"https://{site}{path}"}
                    delay = rng.randint(50, 3_000)
                    lateness = rng.random()
                    end = t - t % 60_000 + 60_000
                    if lateness < 0.1:      # late, but inside the allowed lateness
                        delay = end - t + rng.randint(5_000, LATENESS_S * 1000 - 5_000)
                    elif lateness < 0.16:   # beyond it: stored, never in the windows
                        delay = end - t + LATENESS_S * 1000 + rng.randint(1_000, 120_000)
                    events.append((t, t + delay, ev))
                t += rng.randint(60_000, 240_000)
            # out of order: arrival order, with some neighbours swapped
            events.sort(key=lambda e: e[1])
            for i in range(len(events) - 1):
                if rng.random() < 0.3:
                    events[i], events[i + 1] = events[i + 1], events[i]
            for ts, received, body in events:
                event = {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                         "site_id": site, "anonymous_id": visitor, "ts": ts, **body}
                env = {"v": 1, "received_at": received, "ip": ip, "ua": ua, "event": event}
                out.append((n % PARTITIONS, f"{site}|{visitor}".encode(), orjson.dumps(env)))
    # interleave visitors as a collector would, keeping each visitor's (arrival) order
    queues: dict[bytes, list[tuple[int, bytes, bytes]]] = {}
    for rec in out:
        queues.setdefault(rec[1], []).append(rec)
    bag = [rec[1] for rec in out]
    rng.shuffle(bag)
    return [queues[key].pop(0) for key in bag]


def warmup_record(n: int, now: int) -> tuple[int, bytes, bytes]:
    event = {"event_id": str(uuid.uuid4()), "type": "pageview", "site_id": SITES[1],
             "anonymous_id": f"w-{n}", "ts": now, "url": f"https://{SITES[1]}/"}
    env = {"v": 1, "received_at": now, "ip": IPS[0], "ua": DESKTOP, "event": event}
    return n % PARTITIONS, f"{SITES[1]}|w-{n}".encode(), orjson.dumps(env)


def produce(stack: Stack, records: list[tuple[int, bytes, bytes]]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=5)
        await producer.start()
        futures = [await producer.send(stack.settings.topic("raw"), value, key=key,
                                       partition=p) for p, key, value in records]
        await asyncio.gather(*futures)
        await producer.stop()
    asyncio.run(run())


def expected_minutes_sql(db: str) -> str:
    """traffic_1m recomputed from events: same rules, same top-N ranking."""
    return f"""
WITH counted AS (
    SELECT site_id, visitor_id, session_id, session_seq, type, revenue,
           path, channel, source, medium, utm_campaign, country, device_type,
           toUnixTimestamp64Milli(ts) AS t, intDiv(t, 60000) * 60000 AS w,
           toUInt16(toUInt32(splitByChar('-', visitor_id)[2]) % {PARTITIONS}) AS p
    FROM {db}.events FINAL
    WHERE is_bot = 0 AND NOT startsWith(visitor_id, 'int-')
      AND toUnixTimestamp64Milli(received_at) < w + 60000 + {LATENESS_S * 1000}
),
sess AS (
    SELECT session_id,
           max(t) - min(t) > 10000 OR countIf(type = 'conversion') > 0
             OR countIf(type = 'pageview') >= 2 AS engaged
    FROM counted GROUP BY session_id
),
per_value AS (
    SELECT site_id, w, p, d.1 AS dim, d.2 AS val, count() AS events,
           countIf(type = 'pageview') AS pageviews, countIf(type = 'conversion') AS conversions,
           sum(revenue) AS revenue, countIf(session_seq = 1) AS sessions,
           countIf(session_seq = 1 AND NOT engaged) AS bounces,
           groupUniqArray(visitor_id) AS vis
    FROM counted AS c LEFT JOIN sess AS s ON c.session_id = s.session_id
    ARRAY JOIN [('', ''), ('path', path), ('channel', channel), ('source', source),
                ('medium', medium), ('campaign', utm_campaign), ('country', country),
                ('device_type', device_type)] AS d
    GROUP BY site_id, w, p, dim, val
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY site_id, w, p, dim
                                 ORDER BY events DESC, val ASC) AS rn
    FROM per_value
)
SELECT site_id, w, p, dim, if(dim = '' OR rn <= {TOP_N}, val, '(other)') AS value,
       sum(events) AS events, sum(pageviews) AS pageviews, sum(conversions) AS conversions,
       sum(revenue) AS revenue, sum(sessions) AS sessions, sum(bounces) AS bounces,
       groupUniqArrayArray(vis) AS vis
FROM ranked GROUP BY site_id, w, p, dim, value"""


def rollup_sql(source: str, bucket: str) -> str:
    return (f"SELECT site_id, toString({bucket}) AS b, dim, value, sum(events), "
            f"sum(pageviews), sum(conversions), toString(sum(revenue)), sum(sessions), "
            f"sum(bounces), uniqExactArray(vis) FROM ({source}) "
            f"GROUP BY site_id, b, dim, value ORDER BY ALL")


def table_rows(rows: list[list[Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(str(Decimal(str(c)).normalize()) if isinstance(c, float)
                        else c for c in r) for r in rows)


def test_traffic_windows_equal_sql_over_events(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(CLICKSTREAM_TRAFFIC_LATENESS_SECONDS=str(LATENESS_S),
                          CLICKSTREAM_TRAFFIC_TOP_N=str(TOP_N),
                          CLICKSTREAM_TRAFFIC_INTERNAL_NETWORKS="10.9.0.0/16",
                          partitions=str(PARTITIONS))
    store, db = store_of(stack), stack.settings.database
    records = synthetic_stream(int(time.time() * 1000))
    half = len(records) // 2

    def counted_by(name: str) -> float:
        text = requests.get(stack.services[name].url + "/metrics", timeout=10).text
        m = re.search(r"^clickstream_worker_traffic_events_total (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    warm: list[tuple[int, bytes, bytes]] = []

    def trickle_until(workers: tuple[str, ...]) -> None:
        """Pageviews to every partition until these workers count, so the consumer group
        has settled (they are part of the data checked below)."""
        deadline = time.monotonic() + 60
        while not all(counted_by(name) > 0 for name in workers):
            assert time.monotonic() < deadline, f"{workers} never counted"
            now = int(time.time() * 1000)
            batch = [warmup_record(1000 + len(warm) + p, now) for p in range(PARTITIONS)]
            produce(stack, batch)
            warm.extend(batch)
            time.sleep(0.5)

    trickle_until(("worker",))
    stack.add_worker()
    trickle_until(("worker", "worker2"))
    produce(stack, records[:half])
    stack.kill("worker2")            # a crash in the middle: its partitions move, then back
    produce(stack, records[half:])
    stack.restart("worker2")

    expected_1m = expected_minutes_sql(db)
    actual_1m = (f"SELECT site_id, toUnixTimestamp64Milli(window_start), kafka_partition, "
                 f"dimension, value, events, pageviews, conversions, toString(revenue), "
                 f"sessions, bounces, length(visitors) FROM {db}.traffic_minutes "
                 f"ORDER BY ALL")
    want_1m = (f"SELECT site_id, w, p, dim, value, events, pageviews, conversions, "
               f"toString(revenue), sessions, bounces, length(vis) FROM ({expected_1m}) "
               f"ORDER BY ALL")

    def stored_events() -> int:
        return int(store.query_rows(f"SELECT count() FROM {db}.events FINAL")[1][0][0])

    try:
        wait_until(lambda: stored_events() == len(records) + len(warm), timeout=90,
                   what="every event stored")
    except AssertionError:
        _, bad = store.query_rows(f"SELECT step, reason, count() FROM {db}.invalid_events "
                                  "GROUP BY step, reason")
        raise AssertionError(f"{stored_events()} of {len(records) + len(warm)} stored; "
                             f"dead letters {bad}") from None
    want = table_rows(store.query_rows(want_1m)[1])
    assert len(want) > 200 and any(r[4] == "(other)" for r in want)
    try:
        wait_until(lambda: table_rows(store.query_rows(actual_1m)[1]) == want, timeout=60,
                   what="traffic_1m equal to SQL over events")
    except AssertionError:
        got = table_rows(store.query_rows(actual_1m)[1])
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        raise AssertionError(f"{len(missing)} rows differ:\nwant {missing[:8]}\n"
                             f"got  {extra[:8]}") from None

    # the layout: counters in traffic_1m, visitor hashes only in traffic_visitors_1m, for
    # every value (also those counted in "(other)"), and the same hashes as SQL finds
    _, layout = store.query_rows(
        f"SELECT (SELECT countIf(notEmpty(visitors)) FROM {db}.traffic_1m), "
        f"(SELECT count() FROM (SELECT DISTINCT site_id, window_start, kafka_partition, "
        f"dimension, value FROM {db}.traffic_visitors_1m)), "
        f"(SELECT count() FROM {db}.traffic_minutes)")
    in_1m, hash_keys, minute_rows = layout[0]
    assert in_1m == 0 and hash_keys > minute_rows
    _, hashes = store.query_rows(
        f"SELECT arraySort(groupUniqArrayArray(visitors)) FROM {db}.traffic_visitors_1m "
        f"WHERE dimension = ''")
    _, visitor_ids = store.query_rows(
        f"SELECT DISTINCT site_id, visitor_id FROM {db}.events FINAL WHERE {COUNTED}")
    assert hashes[0][0] == sorted(visitor_hash(s, v) for s, v in visitor_ids)

    # rollups: exact, with unique visitors merged (not summed) over the minutes
    for view, bucket in (("traffic_1h", "toStartOfHour(toDateTime(intDiv(w, 1000)))"),
                         ("traffic_1d", "toDate(toDateTime(intDiv(w, 1000)))")):
        col = "hour" if view == "traffic_1h" else "day"
        got = store.query_rows(
            f"SELECT site_id, toString({col}), dimension, value, events, pageviews, "
            f"conversions, toString(revenue), sessions, bounces, visitors FROM {db}.{view} "
            f"ORDER BY ALL")[1]
        assert table_rows(got) == table_rows(
            store.query_rows(rollup_sql(expected_1m, bucket))[1]), view
    _, per_site = store.query_rows(
        f"SELECT site_id, sum(visitors), sum(events) FROM {db}.traffic_1d "
        f"WHERE dimension = '' GROUP BY site_id ORDER BY site_id")
    _, direct = store.query_rows(
        f"SELECT site_id, uniqExact(visitor_id), count() FROM {db}.events FINAL "
        f"WHERE {COUNTED} GROUP BY site_id ORDER BY site_id")
    assert per_site == direct

    # dropped-late events are counted in a metric
    late = 0.0
    for name in ("worker", "worker2"):
        text = requests.get(stack.services[name].url + "/metrics", timeout=10).text
        m = re.search(r'clickstream_worker_traffic_excluded_total\{cause="late"\} (\S+)', text)
        late += float(m.group(1)) if m else 0.0
    assert late > 0

    # the live endpoint agrees with SQL over events (two workers wrote the rows)
    site = SITES[0]
    live = requests.get(f"{stack.services['sink'].url}/v1/stats/{site}/live", timeout=30).json()
    minutes = [m["minute"] for m in live["pageviews_per_minute"]]
    assert len(minutes) == 30 and minutes[-1] - minutes[0] == 29 * 60_000
    _, per_minute = store.query_rows(
        f"SELECT w, sum(pageviews) FROM ({expected_1m}) WHERE site_id = '{site}' AND dim = '' "
        f"AND w BETWEEN {minutes[0]} AND {minutes[-1]} GROUP BY w")
    want_series = dict.fromkeys(minutes, 0) | {int(w): int(pv) for w, pv in per_minute}
    assert {m["minute"]: m["pageviews"] for m in live["pageviews_per_minute"]} == want_series
    assert sum(want_series.values()) > 0
    _, recent = store.query_rows(
        f"SELECT uniqExactArray(vis) FROM ({expected_1m}) WHERE site_id = '{site}' "
        f"AND dim = '' AND w BETWEEN {minutes[-5]} AND {minutes[-1]}")
    assert live["now"]["visitors"] == recent[0][0]
    assert live["top_channels"] and live["top_pages"]

    # every query documented in docs/traffic.md runs and answers on these windows
    doc = (Path(__file__).resolve().parents[2] / "docs" / "traffic.md").read_text()
    blocks = re.findall(r"```clickhouse\n(.*?)```", doc, re.S)
    assert len(blocks) >= 5
    for sql in blocks:
        sql = sql.replace("shop.example", site).replace("clickstream.", f"{db}.")
        assert store.query_rows(sql)[1], sql

    # and `clickstream live` draws it
    out = subprocess.run([sys.executable, "-m", "clickstream", "live", site, "--once", "--url",
                          stack.services["sink"].url], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "COLUMNS": "160"}, check=True).stdout
    assert f"{recent[0][0]:,} visitors" in out and live["top_pages"][0]["value"] in out

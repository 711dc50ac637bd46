"""The analyst views (migration 0005) give the numbers an independent recomputation in
Python gives from the same synthetic rows, with the traps of the real tables in the data:
replayed events and conversions (same ids inserted twice), several versions of each session
row (older versions inserted last), bots, two sites, refunds. Also: every view has a
comment, the user_id skip index exists, and retention TTLs follow the settings."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from clickstream.settings import CommonSettings
from schemas.timefmt import ms_to_text
from sinks.migrate import default_params, migrate
from sinks.store import ChdbStore

DB = "clickstream"
SITES = ("a.example", "b.example")
CHANNELS = [("Direct", "(direct)", "(none)", ""),
            ("Organic Search", "google", "organic", ""),
            ("Paid Search", "google", "cpc", "spring_sale"),
            ("Email", "newsletter", "email", "may_news"),
            ("Paid Social", "facebook", "paid_social", "spring_sale")]
PAGES = ["/", "/pricing", "/signup", "/blog/a", "/blog/b"]
GOALS = [("purchase", "49.9"), ("purchase", "120"), ("purchase", "-20"), ("newsletter", "0")]
FUNNEL_WINDOW_S = 600


@dataclass
class Synthetic:
    events: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)  # final versions
    older_versions: list[dict[str, Any]] = field(default_factory=list)
    conversions: list[dict[str, Any]] = field(default_factory=list)


def _session_row(sid: str, site: str, visitor: str, chan: tuple[str, str, str, str],
                 tech: dict[str, str], evs: list[dict[str, Any]],
                 times: list[int]) -> dict[str, Any]:
    pageviews = sum(e["type"] == "pageview" for e in evs)
    conversions = sum(e["type"] == "conversion" for e in evs)
    duration = times[len(evs) - 1] - times[0]
    engaged = int(duration > 10_000 or conversions > 0 or pageviews >= 2)
    return {"session_id": sid, "site_id": site, "visitor_id": visitor,
            "first_seen": ms_to_text(times[0]), "started_at": ms_to_text(times[0]),
            "ended_at": ms_to_text(times[len(evs) - 1]), "duration_ms": duration,
            "pageviews": pageviews, "events": len(evs), "conversions": conversions,
            "revenue": str(sum(Decimal(e["revenue"]) for e in evs)),
            "entry_path": evs[0]["path"], "exit_path": evs[-1]["path"],
            "channel": chan[0], "source": chan[1], "medium": chan[2], "campaign": chan[3],
            "is_engaged": engaged, "is_bounce": 1 - engaged, "version": len(evs), **tech}


def make_data(seed: int = 8) -> Synthetic:
    rng = random.Random(seed)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    data = Synthetic()
    for v in range(160):
        site = SITES[0] if v % 8 else SITES[1]
        visitor = f"v{v}"
        tech = {"device_type": rng.choice(["desktop", "mobile"]),
                "browser": rng.choice(["Chrome", "Firefox", "Safari"]),
                "os": rng.choice(["Windows", "iOS", "Android"]),
                "country": rng.choice(["DE", "FR", "US"])}
        geo = {"DE": ("Berlin", "Berlin"), "FR": ("IDF", "Paris"), "US": ("CA", "LA")}
        for day in sorted(rng.sample(range(0, 28), rng.randint(1, 3)), reverse=True):
            start = int((today - timedelta(days=day, hours=-11)).timestamp() * 1000) \
                + rng.randint(0, 3_600) * 1000
            sid = uuid.uuid4().hex[:16]
            chan = rng.choice(CHANNELS)
            n = rng.randint(1, 5)
            times = [start]
            for _ in range(n):
                times.append(times[-1] + rng.choice([3, 8, 30, 200, 900]) * 1000)
            evs = []
            for _ in range(n):
                evs.append({"type": "pageview", "name": "", "path": rng.choice(PAGES),
                            "revenue": "0", "currency": ""})
            if rng.random() < 0.35:
                name, revenue = rng.choice(GOALS)
                evs.append({"type": "conversion", "name": name, "path": evs[-1]["path"],
                            "revenue": revenue, "currency": "EUR"})
            rows = []
            for seq, e in enumerate(evs, start=1):
                row = {"event_id": str(uuid.uuid4()), "site_id": site, "ts": ms_to_text(
                    times[seq - 1]), "received_at": ms_to_text(times[seq - 1]),
                    "visitor_id": visitor, "session_id": sid, "session_seq": seq,
                    "host": site, "url": f"https://{site}{e['path']}", "channel": chan[0],
                    "source": chan[1], "medium": chan[2], "utm_campaign": chan[3],
                    "region": geo[tech["country"]][0], "city": geo[tech["country"]][1],
                    "is_bot": 0, **tech, **e}
                rows.append(row)
                if row["type"] == "conversion":
                    data.conversions.append({
                        "conversion_id": row["event_id"], "site_id": site, "visitor_id": visitor,
                        "ts": row["ts"], "name": row["name"], "revenue": row["revenue"],
                        "currency": "EUR", "order_id": uuid.uuid4().hex, "session_id": sid,
                        "path_length": 1, "first_channel": chan[0], "last_channel": chan[0],
                        "path": [chan[0]]})
            data.events.extend(rows)
            data.sessions.append(_session_row(sid, site, visitor, chan, tech, evs, times))
            for version in range(1, len(evs)):  # what the worker emitted as the session grew
                data.older_versions.append(
                    _session_row(sid, site, visitor, chan, tech, evs[:version], times))
    for b in range(12):  # crawlers: stored in events, no sessions, never counted
        for seq, path in enumerate(["/", "/pricing", "/signup"]):
            data.events.append({
                "event_id": str(uuid.uuid4()), "site_id": SITES[0], "type": "pageview",
                "ts": ms_to_text(int((today - timedelta(days=b % 5)).timestamp() * 1000)
                                 + 40_000_000 + seq * 5000),
                "visitor_id": f"bot{b}", "session_id": "", "session_seq": 0, "path": path,
                "host": SITES[0], "channel": "Direct", "is_bot": 1, "device_type": "desktop",
                "browser": "Googlebot", "os": "Other", "country": "US", "revenue": "0"})
    return data


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChdbStore, Synthetic]]:
    """One chDB directory per process at a time: every test here shares this one."""
    store = ChdbStore(tmp_path_factory.mktemp("views-chdb"))
    migrate(store, DB)
    data = make_data()
    rng = random.Random(3)

    def insert(table: str, rows: list[dict[str, Any]]) -> None:
        store.insert_json_rows(f"{DB}.{table}", [orjson.dumps(r) for r in rows])

    insert("events", data.events)
    insert("events", rng.sample(data.events, len(data.events) // 6))  # replays
    insert("sessions", data.sessions)
    insert("sessions", data.older_versions)  # older versions arriving later
    insert("conversions", data.conversions)
    insert("conversions", data.conversions[::3])  # replays
    for table, distinct in (("events", "event_id"), ("sessions", "session_id"),
                            ("conversions", "conversion_id")):  # the traps are really there
        _, counts = store.query_rows(f"SELECT count(), uniqExact({distinct}) FROM {DB}.{table}")
        assert counts[0][0] > counts[0][1], table
    yield store, data
    store.close()


def rows_of(store: ChdbStore, sql: str, keys: int) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    _, rows = store.query_rows(sql)
    out = {}
    for r in rows:
        key = tuple(str(x) for x in r[:keys])
        assert key not in out, f"duplicate key {key}"
        out[key] = tuple(round(x, 4) if isinstance(x, float) else x for x in r[keys:])
    return out


def day_of(ts_text: str) -> str:
    return ts_text[:10]


def num(x: Decimal | float | int) -> float | int:
    return round(float(x), 4) if isinstance(x, Decimal | float) else x


def test_traffic_and_conversion_rates(loaded: tuple[ChdbStore, Synthetic]) -> None:
    store, data = loaded
    acc: dict[tuple[str, ...], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for s in data.sessions:
        k = (day_of(s["first_seen"]), s["site_id"], s["channel"], s["source"], s["medium"],
             s["campaign"])
        a = acc[k]
        a["sessions"] += 1
        a.setdefault("visitors", set()).add(s["visitor_id"])
        a["pageviews"] += s["pageviews"]
        a["engaged"] += s["is_engaged"]
        a["bounces"] += s["is_bounce"]
        a["converting"] += int(s["conversions"] > 0)
        a["conversions"] += s["conversions"]
        a["revenue"] += Decimal(s["revenue"])
        a["duration"] += s["duration_ms"]
    want = {k: (a["sessions"], len(a["visitors"]), a["pageviews"], a["engaged"], a["bounces"],
                a["converting"], a["conversions"], num(a["revenue"]), a["duration"])
            for k, a in acc.items()}
    got = rows_of(store, f"SELECT day, site_id, channel, source, medium, campaign, sessions, "
                         f"visitors, pageviews, engaged_sessions, bounces, converting_sessions, "
                         f"conversions, revenue, duration_ms FROM {DB}.traffic_daily", 6)
    assert got == want
    rates = rows_of(store, f"SELECT day, site_id, channel, source, medium, campaign, "
                           f"conversion_rate, engagement_rate, revenue_per_session "
                           f"FROM {DB}.conversion_rates_daily", 6)
    assert rates == {k: (round(w[5] / w[0], 4), round(w[3] / w[0], 4), round(w[7] / w[0], 4))
                     for k, w in want.items()}
    assert any(r[0] > 0 for r in rates.values())  # the data has conversions to rate


def _event_view_expectation(data: Synthetic, dims: tuple[str, ...]) -> dict[tuple[str, ...],
                                                                            tuple[Any, ...]]:
    acc: dict[tuple[str, ...], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for e in data.events:
        if e["is_bot"]:
            continue
        a = acc[(day_of(e["ts"]), e["site_id"], *(e.get(d, "") for d in dims))]
        a.setdefault("visitors", set()).add(e["visitor_id"])
        a.setdefault("sessions", set()).add(e["session_id"])
        a["pageviews"] += e["type"] == "pageview"
        a["conversions"] += e["type"] == "conversion"
        a["revenue"] += Decimal(e["revenue"])
    return {k: (len(a["visitors"]), len(a["sessions"]), a["pageviews"], a["conversions"],
                num(a["revenue"])) for k, a in acc.items()}


def test_geo_and_devices(loaded: tuple[ChdbStore, Synthetic]) -> None:
    store, data = loaded
    measures = "visitors, sessions, pageviews, conversions, revenue"
    geo = rows_of(store, f"SELECT day, site_id, country, region, city, {measures} "
                         f"FROM {DB}.geo_daily", 5)
    assert geo == _event_view_expectation(data, ("country", "region", "city"))
    tech = rows_of(store, f"SELECT day, site_id, device_type, browser, os, {measures} "
                          f"FROM {DB}.devices_daily", 5)
    assert tech == _event_view_expectation(data, ("device_type", "browser", "os"))
    assert all(k[3] != "Googlebot" for k in tech)


def test_top_pages(loaded: tuple[ChdbStore, Synthetic]) -> None:
    store, data = loaded
    acc: dict[tuple[str, ...], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for e in data.events:
        if e["is_bot"] or e["type"] != "pageview":
            continue
        a = acc[(day_of(e["ts"]), e["site_id"], e["host"], e["path"])]
        a["pageviews"] += 1
        a.setdefault("visitors", set()).add(e["visitor_id"])
        a.setdefault("sessions", set()).add(e["session_id"])
        a["entrances"] += e["session_seq"] == 1
    want = {k: (a["pageviews"], len(a["visitors"]), len(a["sessions"]), a["entrances"])
            for k, a in acc.items()}
    got = rows_of(store, f"SELECT day, site_id, host, path, pageviews, visitors, sessions, "
                         f"entrances FROM {DB}.pages_daily", 4)
    assert got == want


def test_revenue_and_average_order_value(loaded: tuple[ChdbStore, Synthetic]) -> None:
    store, data = loaded
    acc: dict[tuple[str, ...], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for c in data.conversions:
        a = acc[(day_of(c["ts"]), c["site_id"], c["name"], c["currency"], c["last_channel"])]
        rev = Decimal(c["revenue"])
        a["conversions"] += 1
        a.setdefault("converters", set()).add(c["visitor_id"])
        a["orders"] += rev > 0
        a["gross"] += max(rev, Decimal(0))
        a["net"] += rev
    want = {k: (a["conversions"], len(a["converters"]), a["orders"], num(a["gross"]),
                num(a["net"]), num(a["gross"] / a["orders"] if a["orders"] else 0))
            for k, a in acc.items()}
    got = rows_of(store, f"SELECT day, site_id, goal, currency, last_channel, conversions, "
                         f"converters, orders, gross_revenue, revenue, average_order_value "
                         f"FROM {DB}.revenue_daily", 5)
    assert got == want
    assert any(w[3] != w[4] for w in want.values())  # refunds make net differ from gross


def test_new_returning_and_retention(loaded: tuple[ChdbStore, Synthetic]) -> None:
    store, data = loaded
    first: dict[tuple[str, str], str] = {}
    for s in data.sessions:
        key = (s["site_id"], s["visitor_id"])
        first[key] = min(first.get(key, "9999"), day_of(s["first_seen"]))
    acc: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for s in data.sessions:
        day = day_of(s["first_seen"])
        a = acc[(day, s["site_id"])]
        a["visitors"].add(s["visitor_id"])
        a["sessions"].add(s["session_id"])
        if first[(s["site_id"], s["visitor_id"])] == day:
            a["new"].add(s["visitor_id"])
    want = {k: (len(a["visitors"]), len(a["new"]), len(a["visitors"]) - len(a["new"]),
                len(a["sessions"])) for k, a in acc.items()}
    got = rows_of(store, f"SELECT day, site_id, visitors, new_visitors, returning_visitors, "
                         f"sessions FROM {DB}.visitors_daily", 2)
    assert got == want
    assert sum(w[2] for w in want.values()) > 0  # returning visitors exist in the data

    def monday(d: str) -> date:
        x = date.fromisoformat(d)
        return x - timedelta(days=x.weekday())

    cohorts: dict[tuple[str, str, int], set[str]] = defaultdict(set)
    for s in data.sessions:
        cohort = monday(first[(s["site_id"], s["visitor_id"])])
        weeks = (monday(day_of(s["first_seen"])) - cohort).days // 7
        cohorts[(s["site_id"], str(cohort), weeks)].add(s["visitor_id"])
    want_r = {}
    for (site, cohort, weeks), visitors in cohorts.items():
        size = len(cohorts[(site, cohort, 0)])
        want_r[(site, cohort, str(weeks))] = (len(visitors), size,
                                              round(len(visitors) / size, 4))
    got_r = rows_of(store, f"SELECT site_id, cohort_week, weeks_since, visitors, "
                           f"cohort_visitors, retention FROM {DB}.retention_weekly", 3)
    assert got_r == want_r
    assert any(k[2] != "0" for k in want_r)


def funnel_levels(data: Synthetic, site: str, steps: list[str], window_s: int) -> list[int]:
    """Visitors reaching each step: for every start at step 1, follow the steps in order
    (the earliest next match is the best), within window_s of the start."""
    by_visitor: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for e in data.events:
        if e["site_id"] == site and not e["is_bot"]:
            secs = int(datetime.fromisoformat(e["ts"]).replace(tzinfo=UTC).timestamp())
            key = e["path"] if e["type"] == "pageview" else e["name"]
            by_visitor[e["visitor_id"]].append((secs, key))
    reached = [0] * len(steps)
    for hits in by_visitor.values():
        hits.sort()
        best = 0
        for i, (t0, key) in enumerate(hits):
            if key != steps[0]:
                continue
            level = 1
            for t, k in hits[i + 1:]:
                if t - t0 > window_s or level == len(steps) or not steps[level]:
                    break
                if k == steps[level] and t > t0:
                    level += 1
            best = max(best, level)
        for s in range(best):
            reached[s] += 1
    return reached


def test_funnel_view(loaded: tuple[ChdbStore, Synthetic]) -> None:
    store, data = loaded
    for steps in (["/", "/pricing", "/signup", "purchase"], ["/pricing", "/signup", "", ""]):
        _, rows = store.query_rows(
            f"SELECT step, visitors FROM {DB}.funnel(site = '{SITES[0]}', "
            f"date_from = now() - INTERVAL 60 DAY, date_to = now() + INTERVAL 1 DAY, "
            f"window_seconds = {FUNNEL_WINDOW_S}, step1 = '{steps[0]}', step2 = '{steps[1]}', "
            f"step3 = '{steps[2]}', step4 = '{steps[3]}')")
        want = funnel_levels(data, SITES[0], steps, FUNNEL_WINDOW_S)
        assert [r[1] for r in rows] == want, steps
        assert want[0] > want[1] > 0


def test_every_view_has_a_comment_and_user_index_exists(
        loaded: tuple[ChdbStore, Synthetic]) -> None:
    store, _ = loaded
    _, views = store.query_rows(f"SELECT name, comment FROM system.tables WHERE database = "
                                f"'{DB}' AND engine = 'View'")
    assert {v[0] for v in views} >= {"traffic_daily", "conversion_rates_daily", "pages_daily",
                                      "geo_daily", "devices_daily", "revenue_daily",
                                      "visitors_daily", "retention_weekly", "funnel"}
    assert all(len(v[1]) > 40 for v in views), views
    _, idx = store.query_rows(f"SELECT name, type FROM system.data_skipping_indices "
                              f"WHERE database = '{DB}' AND table = 'events'")
    assert ["idx_user_id", "bloom_filter"] in idx


def test_retention_ttl_follows_settings(loaded: tuple[ChdbStore, Synthetic]) -> None:
    store, _ = loaded
    try:
        def ttl_days() -> dict[str, str]:
            _, rows = store.query_rows("SELECT name, extract(engine_full, "
                                       "'toIntervalDay\\\\((\\\\d+)\\\\)') FROM system.tables "
                                       "WHERE database = 'ttl' AND engine LIKE '%MergeTree'")
            return {r[0]: r[1] for r in rows}

        settings = CommonSettings(events_ttl_days=30, sessions_ttl_days=60,
                                  attribution_ttl_days=90, invalid_ttl_days=7)
        migrate(store, "ttl", default_params("ttl", settings))
        days = ttl_days()
        assert (days["events"], days["sessions"], days["conversions"], days["attribution"],
                days["invalid_events"]) == ("30", "60", "90", "90", "7")
        changed = CommonSettings(events_ttl_days=45, sessions_ttl_days=0,
                                 attribution_ttl_days=90, invalid_ttl_days=7)
        assert migrate(store, "ttl", default_params("ttl", changed)) == []  # nothing new
        days = ttl_days()
        assert days["events"] == "45" and days["sessions"] == "" and days["attribution"] == "90"
    finally:
        store.execute("DROP DATABASE IF EXISTS ttl SYNC")

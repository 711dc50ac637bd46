"""Every Grafana panel query in deploy/grafana/dashboards runs: ClickHouse panels against chDB
(the real migrations, synthetic rows) after expanding Grafana's macros the way the ClickHouse
plugin does; Prometheus panels only name metrics that some service exports."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.timefmt import ms_to_text, now_ms
from sinks.migrate import migrate
from sinks.store import ChdbStore
from tests.unit.test_deploy_metrics import exported_metric_names, promql_metric_names

pytestmark = pytest.mark.integration

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
SITE = "dash.example"
CHANNELS = ["Direct", "Organic Search", "Paid Social", "Email", "Referral"]
CAMPAIGNS = ["", "spring_sale", "newsletter_04"]
#: the dashboards' time range: the last 30 days up to a minute after the data was made
#: (set again by the `store` fixture: modules are imported long before their tests run)
RANGE_FROM = datetime.now(UTC) - timedelta(days=30)
RANGE_TO = datetime.now(UTC) + timedelta(minutes=1)
INTERVAL_S = 3600


def panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in doc.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def targets(datasource_type: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        doc = json.loads(path.read_text())
        for panel in panels(doc):
            for target in panel.get("targets", []):
                ds = target.get("datasource") or panel.get("datasource") or {}
                if ds.get("type") == datasource_type:
                    out.append((f"{path.stem}/{panel['title']}/{target['refId']}", target))
        for var in doc.get("templating", {}).get("list", []):
            if (var.get("datasource") or {}).get("type") == datasource_type:
                out.append((f"{path.stem}/${var['name']}", {"rawSql": var["query"],
                                                            "refId": "var"}))
    return out


def _seconds(t: datetime) -> int:
    return int(t.timestamp())


def expand(raw: str) -> str:
    """Grafana variables and the ClickHouse plugin's macros (pkg/macros of the plugin)."""
    frm, to = _seconds(RANGE_FROM), _seconds(RANGE_TO)
    one_arg = {
        "timeFilter": lambda c: f"{c} >= toDateTime({frm}) AND {c} <= toDateTime({to})",
        "timeFilter_ms": lambda c: (f"{c} >= fromUnixTimestamp64Milli({frm * 1000}) AND "
                                    f"{c} <= fromUnixTimestamp64Milli({to * 1000})"),
        "dateFilter": lambda c: (f"{c} >= toDate('{RANGE_FROM:%Y-%m-%d}') AND "
                                 f"{c} <= toDate('{RANGE_TO:%Y-%m-%d}')"),
        "timeInterval": lambda c: (f"toStartOfInterval(toDateTime({c}), "
                                   f"INTERVAL {INTERVAL_S} second)"),
        "timeInterval_ms": lambda c: (f"toStartOfInterval(toDateTime64({c}, 3), "
                                      f"INTERVAL {INTERVAL_S * 1000} millisecond)"),
    }
    sql = re.sub(r"\$__(\w+)\(([^()]*)\)",
                 lambda m: one_arg[m.group(1)](m.group(2).strip()), raw)
    plain = {"fromTime": f"toDateTime({frm})", "toTime": f"toDateTime({to})",
             "fromTime_ms": f"fromUnixTimestamp64Milli({frm * 1000})",
             "toTime_ms": f"fromUnixTimestamp64Milli({to * 1000})",
             "interval_s": str(INTERVAL_S)}
    sql = re.sub(r"\$__(\w+)", lambda m: plain[m.group(1)], sql)
    sql = re.sub(r"\$\{site\}|\$site\b", SITE, sql)
    assert "$" not in sql, f"unexpanded variable or macro in: {sql}"
    return sql


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    """Migrated chDB with a month of synthetic traffic, sessions (two versions each, as the
    worker re-emits them), conversions and credits under every model, some rows from a
    minute ago (live visitors) and some from another site and from bots."""
    s = ChdbStore(tmp_path_factory.mktemp("dash-chdb"))
    migrate(s, "clickstream")
    rng = random.Random(9)
    now = now_ms()
    global RANGE_FROM, RANGE_TO
    made = datetime.fromtimestamp(now / 1000, UTC)
    RANGE_FROM, RANGE_TO = made - timedelta(days=30), made + timedelta(minutes=1)
    events, sessions, conversions, credits = [], [], [], []
    for v in range(300):
        visitor = f"v{v}"
        site = SITE if v % 10 else "other.example"
        for _ in range(rng.randint(1, 3)):
            sid = uuid.uuid4().hex[:20]
            start = now - (60_000 if v < 20 else rng.randint(0, 25 * 86_400_000))
            channel, campaign = rng.choice(CHANNELS), rng.choice(CAMPAIGNS)
            n, conv = rng.randint(1, 5), rng.random() < 0.25
            for seq in range(1, n + 1):
                last = conv and seq == n
                events.append({
                    "event_id": str(uuid.uuid4()), "site_id": site,
                    "type": "conversion" if last else "pageview",
                    "name": "purchase" if last else "", "ts": ms_to_text(start + seq * 9000),
                    "received_at": ms_to_text(now), "visitor_id": visitor, "session_id": sid,
                    "session_seq": seq, "path": f"/p{seq}", "host": site, "channel": channel,
                    "utm_campaign": campaign, "source": channel.lower(),
                    "device_type": rng.choice(["desktop", "mobile", "tablet"]),
                    "browser": rng.choice(["Chrome", "Firefox", "Safari"]), "os": "Linux",
                    "country": rng.choice(["DE", "FR", "US", ""]),
                    "is_bot": int(rng.random() < 0.05),
                    "revenue": "40" if last else "0", "currency": "EUR" if last else "",
                })
            for version in sorted({1, n}):
                sessions.append({
                    "session_id": sid, "site_id": site, "visitor_id": visitor,
                    "first_seen": ms_to_text(start), "started_at": ms_to_text(start),
                    "ended_at": ms_to_text(start + version * 9000),
                    "duration_ms": version * 9000, "pageviews": version, "events": version,
                    "conversions": int(conv and version == n),
                    "revenue": "40" if conv and version == n else "0", "entry_path": "/p1",
                    "exit_path": f"/p{version}", "source": channel.lower(), "medium": "x",
                    "campaign": campaign, "channel": channel, "device_type": "desktop",
                    "country": "DE", "is_engaged": int(version >= 2),
                    "is_bounce": int(version < 2), "version": version,
                })
            if conv:
                path = [rng.choice(CHANNELS) for _ in range(rng.randint(1, 4))] + [channel]
                cid, ts = str(uuid.uuid4()), start + n * 9000
                conversions.append({
                    "conversion_id": cid, "site_id": site, "visitor_id": visitor,
                    "ts": ms_to_text(ts), "name": "purchase", "revenue": "40",
                    "currency": "EUR", "session_id": sid, "path_length": len(path),
                    "time_to_convert_ms": rng.randint(0, 40 * 86_400_000),
                    "first_channel": path[0], "last_channel": path[-1], "path": path,
                })
                for model in ("first_touch", "last_touch", "last_non_direct", "linear",
                              "time_decay", "position_based"):
                    for i, ch in enumerate(path):
                        credits.append({
                            "conversion_id": cid, "site_id": site,
                            "conversion_ts": ms_to_text(ts), "model": model,
                            "touch_index": i, "touch_ts": ms_to_text(ts - 1000), "channel": ch,
                            "source": ch.lower(), "medium": "x",
                            "campaign": rng.choice(CAMPAIGNS), "credit": 1 / len(path),
                            "revenue_credit": str(round(40 / len(path), 4)),
                            "currency": "EUR"})
    for table, rows in (("events", events), ("conversions", conversions),
                        ("attribution", credits)):
        s.insert_json_rows(f"clickstream.{table}", [orjson.dumps(r) for r in rows])
    for half in (0, 1):  # session versions arrive in separate inserts, as from the sink
        s.insert_json_rows("clickstream.sessions",
                           [orjson.dumps(r) for r in sessions[half::2]])
    yield s
    s.close()  # chDB serves one data directory per process: free it for the next module


CLICKHOUSE_TARGETS = targets("grafana-clickhouse-datasource")


def test_every_dashboard_has_clickhouse_or_prometheus_targets() -> None:
    names = {p.stem for p in DASHBOARDS.glob("*.json")}
    assert {"traffic", "attribution", "pipeline"} <= names
    assert len(CLICKHOUSE_TARGETS) >= 30


@pytest.mark.parametrize("name, target", CLICKHOUSE_TARGETS,
                         ids=[n for n, _ in CLICKHOUSE_TARGETS])
def test_clickhouse_panel_query_runs(store: ChdbStore, name: str,
                                     target: dict[str, Any]) -> None:
    columns, rows = store.query_rows(expand(target["rawSql"]))
    assert rows, f"{name} returned no rows on the synthetic data"
    if target.get("queryType") == "timeseries":
        assert columns[0] == "time", f"{name}: a time series query returns `time` first"
        assert len(rows) > 1, f"{name}: one bucket only"


def test_site_variable_and_filter_select_one_site(store: ChdbStore) -> None:
    """The $site variable lists the sites, and panels count only the chosen one."""
    sql = next(t["rawSql"] for n, t in CLICKHOUSE_TARGETS if n == "traffic/$site")
    _, sites = store.query_rows(expand(sql))
    assert [r[0] for r in sites] == ["dash.example", "other.example"]
    visitors = next(t["rawSql"] for n, t in CLICKHOUSE_TARGETS if n == "traffic/Visitors/A")
    _, got = store.query_rows(expand(visitors))
    _, want = store.query_rows(
        f"SELECT uniqExact(visitor_id) FROM clickstream.events WHERE site_id = '{SITE}' "
        "AND is_bot = 0")
    assert abs(int(got[0][0]) - int(want[0][0])) <= 1  # uniq() is approximate


def test_side_by_side_models_sum_to_conversions(store: ChdbStore) -> None:
    """Each model column of 'Conversions per channel' adds up to the conversion count."""
    sql = next(t["rawSql"] for n, t in CLICKHOUSE_TARGETS
               if n == "attribution/Conversions per channel, by model/A")
    columns, rows = store.query_rows(expand(sql))
    _, total = store.query_rows(
        f"SELECT count() FROM clickstream.conversions FINAL WHERE site_id = '{SITE}'")
    for i, model in enumerate(columns[1:], start=1):
        assert sum(float(r[i]) for r in rows) == pytest.approx(int(total[0][0]), abs=0.1), model


def test_prometheus_panels_use_exported_metrics() -> None:
    exported = exported_metric_names()
    used: dict[str, str] = {}
    for name, target in targets("prometheus"):
        for metric in promql_metric_names(target["expr"]):
            used[metric] = name
    assert len(used) >= 15
    missing = {m: where for m, where in used.items() if m not in exported}
    assert not missing, f"dashboard metrics no service exports: {missing}"


#: Panels that read the daily rollups, with the scans they replace (as they were).
SESSIONS_SCAN = ("FROM clickstream.sessions FINAL WHERE site_id = '${site}' AND "
                 "$__timeFilter(started_at)")
REPLACED = {
    "traffic/Pageviews/A": "SELECT countIf(type = 'pageview') FROM clickstream.events FINAL "
                           "WHERE site_id = '${site}' AND $__timeFilter(ts) AND is_bot = 0",
    "traffic/Sessions/A": f"SELECT count() {SESSIONS_SCAN}",
    "traffic/Bounce rate/A": f"SELECT if(count() = 0, 0, avg(is_bounce)) {SESSIONS_SCAN}",
    "traffic/Pages per session/A": f"SELECT if(count() = 0, 0, avg(pageviews)) {SESSIONS_SCAN}",
    "traffic/Channels/A": f"SELECT if(channel = '', 'Unassigned', channel) AS channel, "
                          f"count() AS sessions {SESSIONS_SCAN} GROUP BY channel "
                          "ORDER BY sessions DESC",
    "attribution/Conversion rate (sessions)/A": "SELECT if(count() = 0, 0, countIf(conversions "
                                                f"> 0) / count()) {SESSIONS_SCAN}",
}


def _rounded(rows: list[list[Any]]) -> list[list[Any]]:
    return [[round(c, 9) if isinstance(c, float) else c for c in r] for r in rows]


@pytest.mark.parametrize("name", [*REPLACED, "attribution/Conversion rate per channel, by "
                                             "model/A"])
def test_rollup_panels_give_the_numbers_of_the_scans_they_replace(
        store: ChdbStore, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over whole UTC days (the dashboards' default range starts at midnight, in UTC), a
    panel reading traffic_daily or pages_daily shows what the scan of events or sessions
    showed; the range cuts the month of data at midnight ten days ago."""
    since = RANGE_TO.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=10)
    monkeypatch.setitem(globals(), "RANGE_FROM", since)  # what expand() reads
    _, cut = store.query_rows(f"SELECT countIf(started_at < toDateTime({_seconds(since)})) "
                              "FROM clickstream.sessions WHERE site_id = 'dash.example'")
    assert cut[0][0] > 0
    panel = dict(CLICKHOUSE_TARGETS)[name]["rawSql"]
    assert "_daily" in panel and "$__dateFilter(day)" in panel, name
    if name in REPLACED:
        scan = REPLACED[name]
    else:  # the sessions side of the join, as it was
        scan = panel.replace("sum(sessions) AS sessions", "count() AS sessions").replace(
            "FROM clickstream.traffic_daily WHERE site_id = '${site}' AND $__dateFilter(day)",
            SESSIONS_SCAN)
    got = _rounded(store.query_rows(expand(panel))[1])
    assert got and got == _rounded(store.query_rows(expand(scan))[1]), name

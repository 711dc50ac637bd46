"""Dashboards as code: writes deploy/grafana/dashboards/*.json (Grafana provisions them).

    python deploy/grafana/build_dashboards.py

Edit the panels here, run it, commit both. tests/unit/test_deploy_manifests.py fails when
the JSON files are not what this script writes; tests/integration/test_dashboards.py runs
every ClickHouse query against chDB and checks every Prometheus metric exists.

SQL rules (docs/sessions.md, docs/attribution.md): the tables are ReplacingMergeTree, so
counts read them with FINAL; sessions by `started_at`, conversions by `ts`, attribution by
`conversion_ts`; bots (`is_bot = 1`) are left out of traffic figures.

Figures that add up over days (pageviews, sessions, bounces, conversions) read the daily
rollup views (traffic_daily, pages_daily: migration 0008) over the whole UTC days of the
time range (`$__dateFilter`) instead of scanning events or sessions; the dashboards use UTC
and start their default range at midnight, so these give the numbers the scans gave
(tests/integration/test_dashboards.py compares them). Unique visitors over a range, time
series and the live panel still read events and sessions: a sum of daily uniques is not the
range's unique count.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
CH = {"type": "grafana-clickhouse-datasource", "uid": "clickhouse"}
PROM = {"type": "prometheus", "uid": "prometheus"}
MODELS = ("first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
          "position_based")
SITE = "site_id = '${site}'"
EVENTS = f"FROM clickstream.events FINAL WHERE {SITE} AND $__timeFilter(ts) AND is_bot = 0"
SESSIONS = f"FROM clickstream.sessions FINAL WHERE {SITE} AND $__timeFilter(started_at)"
CONVERSIONS = f"FROM clickstream.conversions FINAL WHERE {SITE} AND $__timeFilter(ts)"
ATTRIBUTION = f"FROM clickstream.attribution FINAL WHERE {SITE} AND $__timeFilter(conversion_ts)"
TRAFFIC_DAILY = f"FROM clickstream.traffic_daily WHERE {SITE} AND $__dateFilter(day)"
PAGES_DAILY = f"FROM clickstream.pages_daily WHERE {SITE} AND $__dateFilter(day)"
DAILY = ("Whole UTC days of the time range, from the daily rollups (sessions by the day of "
         "their first event).")


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to new rows."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def panel(self, kind: str, title: str, w: int, h: int, targets: list[dict[str, Any]],
              ds: dict[str, str], *, unit: str | None = None, description: str = "",
              options: dict[str, Any] | None = None) -> dict[str, Any]:
        panel = {
            "id": self.next_id, "type": kind, "title": title, "description": description,
            "gridPos": self.place(w, h), "datasource": ds, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": []},
            "options": options or {},
        }
        self.next_id += 1
        return panel


def sql(raw: str, *, timeseries: bool = False, ref: str = "A") -> dict[str, Any]:
    """A ClickHouse plugin (v4) target; timeseries queries return a `time` column first."""
    return {"refId": ref, "datasource": CH, "editorType": "sql", "rawSql": raw.strip(),
            "format": 0 if timeseries else 1,
            "queryType": "timeseries" if timeseries else "table"}


def prom(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    return {"refId": ref, "datasource": PROM, "expr": expr, "legendFormat": legend,
            "range": True}


def site_variable() -> dict[str, Any]:
    query = ("SELECT DISTINCT site_id FROM clickstream.events "
             "WHERE ts >= now() - INTERVAL 90 DAY ORDER BY site_id")
    return {"name": "site", "label": "Site", "type": "query", "datasource": CH,
            "query": query, "definition": query, "refresh": 2, "includeAll": False,
            "multi": False, "sort": 1, "current": {}}


def dashboard(uid: str, title: str, panels: list[dict[str, Any]], *, variables: list[Any],
              time_from: str, refresh: str, tags: list[str],
              timezone: str = "browser") -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "tags": ["clickstream", *tags], "timezone": timezone,
        "schemaVersion": 39, "version": 1, "editable": False, "graphTooltip": 1,
        "time": {"from": time_from, "to": "now"}, "refresh": refresh,
        "templating": {"list": variables}, "annotations": {"list": []}, "links": [],
        "panels": panels,
    }


def table_opts(sort_by: str | None = None) -> dict[str, Any]:
    opts: dict[str, Any] = {"showHeader": True, "cellHeight": "sm"}
    if sort_by:
        opts["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return opts


def pie() -> dict[str, Any]:
    return {"pieType": "donut", "legend": {"displayMode": "table", "placement": "right",
                                           "values": ["value", "percent"]},
            "reduceOptions": {"calcs": ["lastNotNull"], "values": True, "fields": ""}}


def traffic() -> dict[str, Any]:
    lay = Layout()
    stat = {"reduceOptions": {"calcs": ["lastNotNull"], "values": False, "fields": ""},
            "colorMode": "value", "graphMode": "none", "textMode": "value"}
    panels = [
        lay.panel("stat", "Visitors", 4, 4, [sql(
            f"SELECT uniq(visitor_id) AS visitors {EVENTS}")], CH, unit="short",
            options=stat),
        lay.panel("stat", "Pageviews", 4, 4, [sql(
            f"SELECT sum(pageviews) AS pageviews {PAGES_DAILY}")], CH, unit="short",
            options=stat, description=DAILY),
        lay.panel("stat", "Sessions", 4, 4, [sql(
            f"SELECT sum(sessions) AS sessions {TRAFFIC_DAILY}")], CH, unit="short",
            options=stat, description=DAILY),
        lay.panel("stat", "Bounce rate", 4, 4, [sql(
            f"SELECT if(sum(sessions) = 0, 0, sum(bounces) / sum(sessions)) AS bounce_rate "
            f"{TRAFFIC_DAILY}")], CH, unit="percentunit", options=stat,
            description="Sessions that were not engaged (<= 10 s, no conversion, "
                        f"one pageview). {DAILY}"),
        lay.panel("stat", "Pages per session", 4, 4, [sql(
            f"SELECT if(sum(sessions) = 0, 0, sum(pageviews) / sum(sessions)) AS pages "
            f"{TRAFFIC_DAILY}")], CH, unit="short", options=stat, description=DAILY),
        lay.panel("stat", "Live visitors (last 5 min)", 4, 4, [sql(
            "SELECT uniq(visitor_id) AS live FROM clickstream.events "
            f"WHERE {SITE} AND ts >= now() - INTERVAL 5 MINUTE AND is_bot = 0")], CH,
            unit="short", options=stat,
            description="Ignores the time picker: visitors seen in the last five minutes."),
        lay.panel("timeseries", "Visitors and pageviews", 24, 8, [sql(
            f"""SELECT $__timeInterval(ts) AS time, uniq(visitor_id) AS visitors,
       countIf(type = 'pageview') AS pageviews
{EVENTS}
GROUP BY time ORDER BY time""", timeseries=True)], CH, unit="short"),
        lay.panel("table", "Top pages", 12, 10, [sql(
            f"""SELECT path, countIf(type = 'pageview') AS pageviews, uniq(visitor_id) AS visitors
{EVENTS}
GROUP BY path ORDER BY pageviews DESC LIMIT 50""")], CH, options=table_opts("pageviews")),
        lay.panel("table", "Sources", 12, 10, [sql(
            f"""SELECT if(source = '', '(direct)', source) AS source, medium, count() AS sessions,
       uniq(visitor_id) AS visitors, round(avg(is_bounce), 3) AS bounce_rate
{SESSIONS}
GROUP BY source, medium ORDER BY sessions DESC LIMIT 50""")], CH,
            options=table_opts("sessions")),
        lay.panel("piechart", "Channels", 8, 10, [sql(
            f"""SELECT if(channel = '', 'Unassigned', channel) AS channel, sum(sessions) AS sessions
{TRAFFIC_DAILY}
GROUP BY channel ORDER BY sessions DESC""")], CH, options=pie(), description=DAILY),
        lay.panel("table", "Campaigns", 16, 10, [sql(
            f"""SELECT campaign, source, medium, count() AS sessions, uniq(visitor_id) AS visitors,
       sum(conversions) AS conversions, sum(revenue) AS revenue,
       round(avg(is_bounce), 3) AS bounce_rate
{SESSIONS} AND campaign != ''
GROUP BY campaign, source, medium ORDER BY sessions DESC LIMIT 50""")], CH,
            options=table_opts("sessions")),
        lay.panel("geomap", "Countries", 12, 12, [sql(
            f"""SELECT country, uniq(visitor_id) AS visitors
{EVENTS} AND country != ''
GROUP BY country ORDER BY visitors DESC""")], CH, options={
                "view": {"id": "zero", "lat": 20, "lon": 0, "zoom": 1},
                "controls": {"showZoom": True, "mouseWheelZoom": True},
                "layers": [{"type": "markers", "name": "visitors",
                            "location": {"mode": "lookup", "lookup": "country",
                                         "gazetteer": "public/gazetteer/countries.json"},
                            "config": {"size": {"field": "visitors", "min": 3, "max": 30,
                                                "fixed": 5},
                                       "showLegend": True}}]}),
        lay.panel("table", "Countries (table)", 12, 12, [sql(
            f"""SELECT if(country = '', '(unknown)', country) AS country,
       uniq(visitor_id) AS visitors, countIf(type = 'pageview') AS pageviews
{EVENTS}
GROUP BY country ORDER BY visitors DESC LIMIT 100""")], CH, options=table_opts("visitors")),
        lay.panel("piechart", "Devices", 8, 9, [sql(
            f"""SELECT if(device_type = '', 'unknown', device_type) AS device,
       uniq(visitor_id) AS visitors
{EVENTS}
GROUP BY device ORDER BY visitors DESC""")], CH, options=pie()),
        lay.panel("barchart", "Browsers", 8, 9, [sql(
            f"""SELECT if(browser = '', 'unknown', browser) AS browser, uniq(visitor_id) AS visitors
{EVENTS}
GROUP BY browser ORDER BY visitors DESC LIMIT 15""")], CH,
            options={"orientation": "horizontal", "xField": "browser",
                     "legend": {"showLegend": False}}),
        lay.panel("barchart", "Operating systems", 8, 9, [sql(
            f"""SELECT if(os = '', 'unknown', os) AS os, uniq(visitor_id) AS visitors
{EVENTS}
GROUP BY os ORDER BY visitors DESC LIMIT 15""")], CH,
            options={"orientation": "horizontal", "xField": "os",
                     "legend": {"showLegend": False}}),
    ]
    return dashboard("clickstream-traffic", "clickstream / Traffic", panels,
                     variables=[site_variable()], time_from="now-7d/d", refresh="1m",
                     tags=["traffic"], timezone="utc")


def per_model(expr: str, digits: int | None = 2) -> str:
    cols = []
    for m in MODELS:
        value = f"{expr.format(model=m)}"
        cols.append(f"       {f'round({value}, {digits})' if digits else value} AS {m}")
    return ",\n".join(cols)


def attribution() -> dict[str, Any]:
    lay = Layout()
    stat = {"reduceOptions": {"calcs": ["lastNotNull"], "values": False, "fields": ""},
            "colorMode": "value", "graphMode": "none", "textMode": "value"}
    rate_by = """SELECT a.{key} AS {key}, s.sessions AS sessions,
{rates}
FROM (SELECT {key},
{credits}
      {attribution}
      GROUP BY {key}) AS a
LEFT JOIN (SELECT {key}, sum(sessions) AS sessions
           {sessions}
           GROUP BY {key}) AS s USING ({key})
ORDER BY linear DESC LIMIT 50"""

    def rates(key: str) -> str:
        return rate_by.format(
            key=key, attribution=ATTRIBUTION, sessions=TRAFFIC_DAILY,
            credits=per_model("sumIf(credit, model = '{model}')", None).replace(
                "       ", "             "),
            rates=",\n".join(f"       if(s.sessions = 0, 0, round(a.{m} / s.sessions, 4)) "
                             f"AS {m}" for m in MODELS))

    panels = [
        lay.panel("stat", "Conversions", 6, 4, [sql(
            f"SELECT count() AS conversions {CONVERSIONS}")], CH, unit="short", options=stat),
        lay.panel("stat", "Revenue", 6, 4, [sql(
            f"SELECT sum(revenue) AS revenue {CONVERSIONS}")], CH, unit="none", options=stat),
        lay.panel("stat", "Conversion rate (sessions)", 6, 4, [sql(
            f"SELECT if(sum(sessions) = 0, 0, sum(converting_sessions) / sum(sessions)) "
            f"AS rate {TRAFFIC_DAILY}")], CH, unit="percentunit", options=stat,
            description=f"Sessions with at least one conversion / sessions. {DAILY}"),
        lay.panel("stat", "Median time to convert", 6, 4, [sql(
            f"SELECT if(count() = 0, 0, quantile(0.5)(time_to_convert_ms)) AS ms "
            f"{CONVERSIONS}")], CH, unit="ms", options=stat,
            description="From the first touch in the lookback window to the conversion."),
        lay.panel("timeseries", "Conversions and revenue", 24, 8, [sql(
            f"""SELECT $__timeInterval(ts) AS time, count() AS conversions,
       toFloat64(sum(revenue)) AS revenue
{CONVERSIONS}
GROUP BY time ORDER BY time""", timeseries=True)], CH),
        lay.panel("table", "Conversions per channel, by model", 12, 10, [sql(
            f"""SELECT channel,
{per_model("sumIf(credit, model = '{model}')")}
{ATTRIBUTION}
GROUP BY channel ORDER BY linear DESC""")], CH, options=table_opts("linear"),
            description="Credit per channel under each attribution model, side by side "
                        "(each conversion sums to 1 per model)."),
        lay.panel("table", "Revenue per channel, by model", 12, 10, [sql(
            f"""SELECT channel,
{per_model("sumIf(revenue_credit, model = '{model}')")}
{ATTRIBUTION}
GROUP BY channel ORDER BY linear DESC""")], CH, options=table_opts("linear")),
        lay.panel("table", "Conversion rate per channel, by model", 24, 9, [sql(
            rates("channel"))], CH, options=table_opts("linear"),
            description="Attributed conversions / sessions of the channel in the range "
                        "(sessions from traffic_daily: whole UTC days)."),
        lay.panel("table", "Conversions per campaign, by model", 12, 10, [sql(
            f"""SELECT campaign, source, medium,
{per_model("sumIf(credit, model = '{model}')")}
{ATTRIBUTION} AND campaign != ''
GROUP BY campaign, source, medium ORDER BY linear DESC LIMIT 50""")], CH,
            options=table_opts("linear")),
        lay.panel("table", "Revenue per campaign, by model", 12, 10, [sql(
            f"""SELECT campaign, source, medium,
{per_model("sumIf(revenue_credit, model = '{model}')")}
{ATTRIBUTION} AND campaign != ''
GROUP BY campaign, source, medium ORDER BY linear DESC LIMIT 50""")], CH,
            options=table_opts("linear")),
        lay.panel("table", "Conversion rate per campaign, by model", 24, 9, [sql(
            rates("campaign"))], CH, options=table_opts("linear")),
        lay.panel("barchart", "Time to convert", 12, 9, [sql(
            f"""SELECT multiIf(time_to_convert_ms < 3600000, '1: < 1 hour',
               time_to_convert_ms < 86400000, '2: < 1 day',
               time_to_convert_ms < 7 * 86400000, '3: 1-7 days',
               time_to_convert_ms < 14 * 86400000, '4: 7-14 days',
               time_to_convert_ms < 30 * 86400000, '5: 14-30 days', '6: > 30 days')
         AS time_to_convert,
       count() AS conversions
{CONVERSIONS}
GROUP BY time_to_convert ORDER BY time_to_convert""")], CH,
            options={"xField": "time_to_convert", "legend": {"showLegend": False}}),
        lay.panel("barchart", "Path length (touches before converting)", 12, 9, [sql(
            f"""SELECT toString(path_length) AS touches, count() AS conversions,
       toFloat64(sum(revenue)) AS revenue
{CONVERSIONS}
GROUP BY path_length ORDER BY path_length""")], CH,
            options={"xField": "touches"}),
        lay.panel("table", "Top converting paths", 24, 9, [sql(
            f"""SELECT arrayStringConcat(path, ' > ') AS channel_path, count() AS conversions,
       sum(revenue) AS revenue
{CONVERSIONS}
GROUP BY channel_path ORDER BY conversions DESC LIMIT 25""")], CH,
            options=table_opts("conversions")),
    ]
    return dashboard("clickstream-attribution", "clickstream / Campaigns & attribution",
                     panels, variables=[site_variable()], time_from="now-30d/d",
                     refresh="5m", tags=["attribution", "campaigns"], timezone="utc")


def pipeline() -> dict[str, Any]:
    lay = Layout()
    rate = "$__rate_interval"
    panels = [
        lay.panel("timeseries", "Ingest rate (events/s)", 12, 8, [
            prom(f"sum(rate(clickstream_collector_events_accepted_total[{rate}]))",
                 "accepted by collectors"),
            prom(f"sum(rate(clickstream_worker_events_out_total[{rate}]))",
                 "enriched by workers", "B"),
            prom(f"sum(rate(clickstream_sink_rows_written_total{{table=~\".*[.]events\"}}[{rate}]))",
                 "written to ClickHouse", "C"),
        ], PROM, unit="ops"),
        lay.panel("timeseries", "Collector requests by status", 12, 8, [
            prom(f"sum by (status) (rate(clickstream_collector_requests_total[{rate}]))",
                 "{{status}}"),
        ], PROM, unit="reqps"),
        lay.panel("timeseries", "Rejected events by reason", 12, 8, [
            prom(f"sum by (reason) (rate(clickstream_collector_events_rejected_total[{rate}]))",
                 "collector: {{reason}}"),
            prom("sum by (step, reason) "
                 f"(rate(clickstream_worker_events_rejected_total[{rate}]))",
                 "worker {{step}}: {{reason}}", "B"),
        ], PROM, unit="ops"),
        lay.panel("timeseries", "Dead letters", 12, 8, [
            prom(f"sum(rate(clickstream_sink_rows_written_total{{table=~\".*[.]invalid_events\"}}"
                 f"[{rate}]))", "written to invalid_events"),
            prom(f"sum by (table) (rate(clickstream_sink_dead_letters_total[{rate}]))",
                 "rows ClickHouse rejected: {{table}}", "B"),
        ], PROM, unit="ops"),
        lay.panel("timeseries", "Consumer lag per group (records)", 12, 8, [
            prom("sum by (group, topic) (clickstream_worker_consumer_lag_records)",
                 "{{group}} {{topic}}"),
            prom("sum by (topic) (clickstream_sink_consumer_lag_records)",
                 "clickstream-sink {{topic}}", "B"),
        ], PROM, unit="short"),
        lay.panel("timeseries", "Collector delivery buffer", 12, 8, [
            prom("sum(clickstream_collector_buffer_events)", "events waiting for Kafka"),
            prom(f"sum(rate(clickstream_collector_produce_errors_total[{rate}]))",
                 "produce errors/s", "B"),
        ], PROM, unit="short"),
        lay.panel("timeseries", "Sink insert latency", 12, 8, [
            prom("histogram_quantile(0.5, sum by (le, table) "
                 f"(rate(clickstream_sink_insert_seconds_bucket[{rate}])))", "p50 {{table}}"),
            prom("histogram_quantile(0.99, sum by (le, table) "
                 f"(rate(clickstream_sink_insert_seconds_bucket[{rate}])))", "p99 {{table}}",
                 "B"),
        ], PROM, unit="s"),
        lay.panel("timeseries", "Sink batch size (rows per insert)", 12, 8, [
            prom(f"sum by (table) (rate(clickstream_sink_batch_rows_sum[{rate}])) / "
                 f"sum by (table) (rate(clickstream_sink_batch_rows_count[{rate}]))",
                 "{{table}}"),
            prom(f"sum(rate(clickstream_sink_retries_total[{rate}]))", "insert retries/s",
                 "B"),
        ], PROM, unit="short"),
        lay.panel("timeseries", "Worker restarts and rebalances", 12, 8, [
            prom('changes(process_start_time_seconds{job="clickstream-worker"}[$__range])',
                 "restarts {{instance}}"),
            prom("max by (instance) (clickstream_worker_faust_total_rebalances)",
                 "rebalances {{instance}}", "B"),
        ], PROM, unit="short",
            description="Process restarts in the selected range, and Faust rebalances "
                        "(needs CLICKSTREAM_WORKER_FAUST_METRICS=true)."),
        lay.panel("timeseries", "Collector latency", 12, 8, [
            prom("histogram_quantile(0.99, sum by (le, route) "
                 f"(rate(clickstream_collector_request_seconds_bucket[{rate}])))",
                 "p99 {{route}}"),
        ], PROM, unit="s"),
        lay.panel("timeseries", "Worker batch size (events)", 12, 8, [
            prom(f"sum(rate(clickstream_worker_batch_events_sum[{rate}])) / "
                 f"sum(rate(clickstream_worker_batch_events_count[{rate}]))", "events/batch"),
        ], PROM, unit="short"),
        lay.panel("timeseries", "Worker time per step", 12, 8, [
            prom(f"sum by (step) (rate(clickstream_worker_step_seconds_total[{rate}]))",
                 "{{step}}"),
        ], PROM, unit="percentunit",
            description="Seconds spent per second in each ingestion step (1 = one core)."),
        lay.panel("stat", "Targets up", 24, 4, [
            prom('sum by (job) (up{job=~"clickstream-.*"})', "{{job}}"),
        ], PROM, unit="short", options={
            "reduceOptions": {"calcs": ["lastNotNull"], "values": False, "fields": ""},
            "colorMode": "value", "graphMode": "none", "textMode": "value_and_name"}),
    ]
    return dashboard("clickstream-pipeline", "clickstream / Pipeline health", panels,
                     variables=[], time_from="now-6h", refresh="30s", tags=["pipeline"])


DASHBOARDS = {"traffic.json": traffic, "attribution.json": attribution,
              "pipeline.json": pipeline}


def render() -> dict[str, str]:
    """File name -> JSON text, as committed."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()

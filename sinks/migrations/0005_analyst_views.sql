-- Analyst layer: one view per common question (docs/queries.md says which answers what).
-- Every view leaves bots out (events.is_bot = 1; bots make no sessions or conversions) and
-- reads the ReplacingMergeTree tables with FINAL, so replayed or re-emitted rows count once;
-- views that only use duplicate-insensitive aggregates (sets of visitors, min, windowFunnel)
-- skip FINAL, which gives the same numbers faster. FINAL costs little once a partition is
-- merged (ClickHouse skips single-part partitions), see bench/store_bench.py.
-- `visitors` uses uniq (exact up to 65,536 distinct visitors per row, then within ~2 %);
-- use uniqExact on the base tables where an exact large count matters.
-- Daily views have a UTC `day` column: filter on it, and re-aggregate their additive columns
-- (sessions, pageviews, conversions, revenue) with sum(); `visitors` is unique per day only,
-- so unique visitors over a period are counted from the base tables (docs/queries.md).
-- Query parameters of the parameterised `funnel` view are written {{name:Type}} here because
-- `clickstream migrate` fills {db} with str.format.

CREATE OR REPLACE VIEW {db}.traffic_daily AS
SELECT toDate(first_seen) AS day, site_id, channel, source, medium, campaign,
       count() AS sessions,
       uniq(visitor_id) AS visitors,
       sum(pageviews) AS pageviews,
       sum(is_engaged) AS engaged_sessions,
       sum(is_bounce) AS bounces,
       countIf(s.conversions > 0) AS converting_sessions,
       sum(conversions) AS conversions,
       sum(revenue) AS revenue,
       sum(duration_ms) AS duration_ms
FROM {db}.sessions AS s FINAL
GROUP BY day, site_id, channel, source, medium, campaign
COMMENT 'Sessions, visitors (unique per day), pageviews, engagement, conversions and revenue per day (of the first event of the session, UTC: sessions are split at midnight) and landing channel / source / medium / campaign. Bots excluded.';

CREATE OR REPLACE VIEW {db}.conversion_rates_daily AS
SELECT day, site_id, channel, source, medium, campaign, sessions, converting_sessions,
       conversions, revenue,
       round(converting_sessions / sessions, 4) AS conversion_rate,
       round(engaged_sessions / sessions, 4) AS engagement_rate,
       round(toFloat64(revenue) / sessions, 4) AS revenue_per_session
FROM {db}.traffic_daily
COMMENT 'Session conversion rate (sessions with a conversion / sessions), engagement rate and revenue per session, per day and landing channel / source / medium / campaign. Rates of one day: for a period, divide the sums from traffic_daily.';

CREATE OR REPLACE VIEW {db}.pages_daily AS
SELECT toDate(ts) AS day, site_id, host, path,
       count() AS pageviews,
       uniq(visitor_id) AS visitors,
       uniq(session_id) AS sessions,
       countIf(session_seq = 1) AS entrances
FROM {db}.events FINAL
WHERE type = 'pageview' AND is_bot = 0
GROUP BY day, site_id, host, path
COMMENT 'Top pages: pageviews, visitors and sessions (unique per day) and entrances (first hit of a session) per day, host and path. Bots excluded.';

CREATE OR REPLACE VIEW {db}.geo_daily AS
SELECT toDate(ts) AS day, site_id, country, region, city,
       uniq(visitor_id) AS visitors,
       uniq(session_id) AS sessions,
       countIf(type = 'pageview') AS pageviews,
       countIf(type = 'conversion') AS conversions,
       sum(revenue) AS revenue
FROM {db}.events FINAL
WHERE is_bot = 0
GROUP BY day, site_id, country, region, city
COMMENT 'Visitors and sessions (unique per day), pageviews, conversions and revenue per day and country / region / city (DB-IP Lite, from the IP at ingestion; the IP itself is never stored). Bots excluded.';

CREATE OR REPLACE VIEW {db}.devices_daily AS
SELECT toDate(ts) AS day, site_id, device_type, browser, os,
       uniq(visitor_id) AS visitors,
       uniq(session_id) AS sessions,
       countIf(type = 'pageview') AS pageviews,
       countIf(type = 'conversion') AS conversions,
       sum(revenue) AS revenue
FROM {db}.events FINAL
WHERE is_bot = 0
GROUP BY day, site_id, device_type, browser, os
COMMENT 'Visitors and sessions (unique per day), pageviews, conversions and revenue per day and device type / browser / operating system. Bots excluded.';

CREATE OR REPLACE VIEW {db}.revenue_daily AS
SELECT toDate(ts) AS day, site_id, name AS goal, currency, last_channel,
       count() AS conversions,
       uniqExact(visitor_id) AS converters,
       countIf(c.revenue > 0) AS orders,
       sumIf(c.revenue, c.revenue > 0) AS gross_revenue,
       sum(revenue) AS revenue,
       round(if(orders = 0, 0, toFloat64(gross_revenue) / orders), 4) AS average_order_value
FROM {db}.conversions AS c FINAL
GROUP BY day, site_id, goal, currency, last_channel
COMMENT 'Conversions (deduplicated by order id), orders (revenue > 0), gross and net revenue (refunds are negative) and average order value (gross revenue / orders) per day, goal, currency and last-touch channel. Never sum revenue across currencies.';

CREATE OR REPLACE VIEW {db}.visitors_daily AS
SELECT day, site_id,
       uniqExact(visitor_id) AS visitors,
       uniqExactIf(visitor_id, day = first_day) AS new_visitors,
       visitors - new_visitors AS returning_visitors,
       uniqExact(session_id) AS sessions
FROM
(
    SELECT site_id, visitor_id, session_id, toDate(first_seen) AS day,
           min(toDate(first_seen)) OVER (PARTITION BY site_id, visitor_id) AS first_day
    FROM {db}.sessions
)
GROUP BY day, site_id
COMMENT 'New and returning visitors per day: new = the visitor (one browser) had no session on an earlier day in the retained data. Sets and minimums only, so it reads sessions without FINAL. Bots excluded.';

CREATE OR REPLACE VIEW {db}.retention_weekly AS
SELECT site_id, cohort_week, weeks_since,
       uniqExact(visitor_id) AS visitors,
       max(visitors) OVER (PARTITION BY site_id, cohort_week) AS cohort_visitors,
       round(visitors / cohort_visitors, 4) AS retention
FROM
(
    SELECT site_id, visitor_id, toMonday(toDate(first_seen)) AS week,
           min(week) OVER (PARTITION BY site_id, visitor_id) AS cohort_week,
           intDiv(dateDiff('day', cohort_week, week), 7) AS weeks_since
    FROM {db}.sessions
)
GROUP BY site_id, cohort_week, weeks_since
COMMENT 'Weekly retention cohorts: visitors first seen in cohort_week (Monday, UTC) who had a session weeks_since weeks later, and their share of the cohort (week 0 = 1). Sets only, so no FINAL needed. Bots excluded.';

CREATE OR REPLACE VIEW {db}.funnel AS
SELECT step, sumIf(visitors_at_level, level >= step) AS visitors,
       round(visitors / max(visitors) OVER (), 4) AS rate_from_first_step
FROM
(
    SELECT level, count() AS visitors_at_level
    FROM
    (
        SELECT visitor_id,
               windowFunnel({{window_seconds:UInt32}})(
                   toDateTime(ts),
                   step_key = {{step1:String}},
                   step_key = {{step2:String}} AND {{step2:String}} != '',
                   step_key = {{step3:String}} AND {{step3:String}} != '',
                   step_key = {{step4:String}} AND {{step4:String}} != '') AS level
        FROM
        (
            SELECT visitor_id, ts, if(type = 'pageview', path, name) AS step_key
            FROM {db}.events
            WHERE site_id = {{site:String}} AND is_bot = 0
              AND ts >= {{date_from:DateTime}} AND ts < {{date_to:DateTime}}
              AND step_key IN ({{step1:String}}, {{step2:String}}, {{step3:String}},
                               {{step4:String}})
        )
        GROUP BY visitor_id
    )
    GROUP BY level
)
ARRAY JOIN [1, 2, 3, 4] AS step
GROUP BY step
ORDER BY step
COMMENT 'Funnel with windowFunnel: visitors reaching each of up to four ordered steps (a page path or an event / conversion name; pass an empty string for unused steps) within window_seconds of step 1. Parameters: site, date_from, date_to, window_seconds, step1..step4. A replayed event cannot change a funnel level, so it reads events without FINAL. Bots excluded.';

-- Skip index. Dashboards filter on channel and utm_campaign, but events are ordered by
-- (site, day, visitor), so every value is spread over nearly every granule: in the 10M-event
-- benchmark one of 200 campaigns sits in 1,166 of 1,223 granules, and a channel in all of
-- them. A skip index on those would be read and skip nothing. It pays on user_id, which is
-- rare per granule: `clickstream erase --user`, a signed-in user's journey across devices.
ALTER TABLE {db}.events ADD INDEX IF NOT EXISTS idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 1;

ALTER TABLE {db}.events MATERIALIZE INDEX idx_user_id;

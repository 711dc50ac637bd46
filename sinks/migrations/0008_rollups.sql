-- Tables for the dashboards and the daily views, filled by materialized views as rows
-- arrive, so a panel over a month reads a few thousand rows (pages), narrow session rows
-- (traffic) or only the events of its steps (funnels), never events with FINAL.
--
-- Exact although the sources hold duplicates: events are replayed (a worker restarted after
-- a crash emits a batch again, a tracker retries after the worker's dedup window, a sink
-- replays offsets it inserted but had not committed) and every session is re-emitted as it
-- grows. A materialized view sees every copy, so nothing here keeps a count or a sum:
--   * pages_daily_rollup (AggregatingMergeTree) keeps the set of pageview event ids per day
--     and page (a copy adds an id already in the set; the view counts the set) and uniq
--     states for visitors and sessions (sets of hashes, as the views counted them);
--   * traffic_daily_sessions keeps one narrow row per session with each number under the
--     version (version << 32 | value), so the largest is the latest version's, as sessions
--     FINAL has it (a per-day sum of latest versions cannot be kept exact as versions
--     arrive);
--   * funnel_steps keeps events as steps; a duplicate cannot change a funnel level.
-- The views read them WITH FINAL: the same numbers as before (tests/integration/
-- test_analyst_views.py, test_rollups.py). They are sorted by day first: rows arrive for
-- recent days, so older parts do not overlap newer ones and FINAL only has to combine the
-- recent rows (recent ClickHouse versions, as the chDB here, split FINAL into overlapping
-- and non-overlapping ranges).
-- Retention: the source tables' settings (events_ttl_days, sessions_ttl_days) when the
-- tables are created; a later change of a setting reaches a table through apply_ttl
-- (sinks/migrate.py) once its TTL_TABLES lists it.

CREATE TABLE IF NOT EXISTS {db}.pages_daily_rollup
(
    day Date,
    site_id LowCardinality(String),
    host LowCardinality(String),
    path String,
    pageview_ids SimpleAggregateFunction(groupUniqArrayArray, Array(UUID)) COMMENT 'event ids of the pageviews: count with length() after FINAL',
    entrance_ids SimpleAggregateFunction(groupUniqArrayArray, Array(UUID)) COMMENT 'event ids of the pageviews that opened a session (session_seq = 1)',
    visitors AggregateFunction(uniq, String),
    sessions AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, site_id, host, path)
TTL toDateTime(day) + INTERVAL {events_ttl_days} DAY
COMMENT 'Pageviews (event id sets), entrances, visitors and sessions per day, site, host and path, from events (bots left out); read with FINAL, or through the view pages_daily.';

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.pages_daily_rollup_mv TO {db}.pages_daily_rollup AS
SELECT toDate(ts) AS day, site_id, host, path,
       groupUniqArray(event_id) AS pageview_ids,
       groupUniqArrayIf(event_id, session_seq = 1) AS entrance_ids,
       uniqState(visitor_id) AS visitors,
       uniqState(session_id) AS sessions
FROM {db}.events
WHERE type = 'pageview' AND is_bot = 0
GROUP BY day, site_id, host, path;

INSERT INTO {db}.pages_daily_rollup
SELECT toDate(ts) AS day, site_id, host, path,
       groupUniqArray(event_id), groupUniqArrayIf(event_id, session_seq = 1),
       uniqState(visitor_id), uniqState(session_id)
FROM {db}.events
WHERE type = 'pageview' AND is_bot = 0
GROUP BY day, site_id, host, path;

-- Sessions: the views want the latest version of each session, and the worker re-emits a
-- session as it grows. traffic_daily_sessions keeps one narrow row per session, sorted by
-- day and landing source. Each number is stored with the version in its high bits, so the
-- largest value is the one of the highest version, as sessions FINAL picks it (plain
-- integers: read and merged as fast as any column). The visitor is kept as cityHash64 of
-- the id: uniq() of it equals uniq() of the id (uniq hashes a string with that very
-- function), so visitors count as before without the id being kept.
CREATE TABLE IF NOT EXISTS {db}.traffic_daily_sessions
(
    day Date COMMENT 'day of the first event of the session (UTC)',
    site_id LowCardinality(String),
    channel LowCardinality(String),
    source LowCardinality(String),
    medium LowCardinality(String),
    campaign LowCardinality(String),
    session_hash UInt128 COMMENT 'sipHash128 of the session id',
    visitor_hash SimpleAggregateFunction(any, UInt64) COMMENT 'cityHash64 of the visitor id',
    pageviews SimpleAggregateFunction(max, UInt64) COMMENT 'version << 32 | pageviews',
    conversions SimpleAggregateFunction(max, UInt64) COMMENT 'version << 32 | conversions',
    is_engaged SimpleAggregateFunction(max, UInt64) COMMENT 'version << 32 | is_engaged',
    is_bounce SimpleAggregateFunction(max, UInt64) COMMENT 'version << 32 | is_bounce',
    duration_ms SimpleAggregateFunction(max, UInt128) COMMENT 'version << 64 | duration_ms',
    revenue SimpleAggregateFunction(max, UInt128) COMMENT 'version << 64 | the Int64 bits of revenue * 10000'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, site_id, channel, source, medium, campaign, session_hash)
TTL toDateTime(day) + INTERVAL {sessions_ttl_days} DAY
COMMENT 'One row per session with the numbers of its latest version (each in the low bits, under the version), sorted by day and landing channel / source / medium / campaign; read with FINAL through traffic_daily.';

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.traffic_daily_sessions_mv
TO {db}.traffic_daily_sessions AS
SELECT toDate(first_seen) AS day, site_id, channel, source, medium, campaign,
       reinterpretAsUInt128(sipHash128(session_id)) AS session_hash,
       cityHash64(visitor_id) AS visitor_hash,
       bitShiftLeft(toUInt64(version), 32) + pageviews AS pageviews,
       bitShiftLeft(toUInt64(version), 32) + conversions AS conversions,
       bitShiftLeft(toUInt64(version), 32) + is_engaged AS is_engaged,
       bitShiftLeft(toUInt64(version), 32) + is_bounce AS is_bounce,
       bitShiftLeft(toUInt128(version), 64) + duration_ms AS duration_ms,
       bitShiftLeft(toUInt128(version), 64) + reinterpretAsUInt64(toInt64(revenue * 10000))
           AS revenue
FROM {db}.sessions;

INSERT INTO {db}.traffic_daily_sessions
SELECT toDate(first_seen), site_id, channel, source, medium, campaign,
       reinterpretAsUInt128(sipHash128(session_id)), cityHash64(visitor_id),
       bitShiftLeft(toUInt64(version), 32) + pageviews,
       bitShiftLeft(toUInt64(version), 32) + conversions,
       bitShiftLeft(toUInt64(version), 32) + is_engaged,
       bitShiftLeft(toUInt64(version), 32) + is_bounce,
       bitShiftLeft(toUInt128(version), 64) + duration_ms,
       bitShiftLeft(toUInt128(version), 64) + reinterpretAsUInt64(toInt64(revenue * 10000))
FROM {db}.sessions;

-- The daily views, now over the rollups (same columns, same numbers).
CREATE OR REPLACE VIEW {db}.traffic_daily AS
SELECT day, site_id, channel, source, medium, campaign,
       count() AS sessions,
       uniq(visitor_hash) AS visitors,
       sum(bitAnd(t.pageviews, 4294967295)) AS pageviews,
       sum(bitAnd(t.is_engaged, 4294967295)) AS engaged_sessions,
       sum(bitAnd(t.is_bounce, 4294967295)) AS bounces,
       countIf(bitAnd(t.conversions, 4294967295) > 0) AS converting_sessions,
       sum(bitAnd(t.conversions, 4294967295)) AS conversions,
       toDecimal128(sum(toInt128(reinterpretAsInt64(toUInt64(bitAnd(t.revenue,
                                                                   18446744073709551615))))),
                    4) / 10000 AS revenue,
       sum(toUInt64(bitAnd(t.duration_ms, 18446744073709551615))) AS duration_ms
FROM {db}.traffic_daily_sessions AS t FINAL
GROUP BY day, site_id, channel, source, medium, campaign
COMMENT 'Sessions, visitors (unique per day), pageviews, engagement, conversions and revenue per day (of the first event of the session, UTC: sessions are split at midnight) and landing channel / source / medium / campaign, from traffic_daily_sessions (the latest version of each session). Bots excluded.';

CREATE OR REPLACE VIEW {db}.pages_daily AS
SELECT day, site_id, host, path,
       sum(length(pageview_ids)) AS pageviews,
       uniqMerge(visitors) AS visitors,
       uniqMerge(sessions) AS sessions,
       sum(length(entrance_ids)) AS entrances
FROM {db}.pages_daily_rollup FINAL
GROUP BY day, site_id, host, path
COMMENT 'Top pages: pageviews, visitors and sessions (unique per day) and entrances (first hit of a session) per day, host and path, from pages_daily_rollup. Bots excluded.';

-- Funnels: the events a funnel can use, narrow and sorted by step, so a funnel reads only
-- the rows of its steps in its date range. A visitor is kept as a 128-bit hash of the id
-- (a funnel groups by visitor and never shows one; ClickHouse's uniqExact counts strings
-- by the same kind of hash). Plain MergeTree: a replayed event cannot change the step a
-- visitor reaches, so duplicates need no replacing.
CREATE TABLE IF NOT EXISTS {db}.funnel_steps
(
    site_id LowCardinality(String),
    step_key String COMMENT 'the path of a pageview, the name of any other event',
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    visitor_hash UInt128 COMMENT 'sipHash128 of the visitor id'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (site_id, step_key, ts)
TTL toDateTime(ts) + INTERVAL {events_ttl_days} DAY
COMMENT 'Events as funnel steps (bots left out): site, step key, time and visitor hash; read by the funnel view.';

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.funnel_steps_mv TO {db}.funnel_steps AS
SELECT site_id, if(type = 'pageview', path, name) AS step_key, ts,
       reinterpretAsUInt128(sipHash128(visitor_id)) AS visitor_hash
FROM {db}.events
WHERE is_bot = 0;

INSERT INTO {db}.funnel_steps
SELECT site_id, if(type = 'pageview', path, name), ts, reinterpretAsUInt128(sipHash128(visitor_id))
FROM {db}.events
WHERE is_bot = 0;

CREATE OR REPLACE VIEW {db}.funnel AS
SELECT step, sumIf(visitors_at_level, level >= step) AS visitors,
       round(visitors / max(visitors) OVER (), 4) AS rate_from_first_step
FROM
(
    SELECT level, count() AS visitors_at_level
    FROM
    (
        SELECT visitor_hash,
               windowFunnel({{window_seconds:UInt32}})(
                   toDateTime(ts),
                   step_key = {{step1:String}},
                   step_key = {{step2:String}} AND {{step2:String}} != '',
                   step_key = {{step3:String}} AND {{step3:String}} != '',
                   step_key = {{step4:String}} AND {{step4:String}} != '') AS level
        FROM {db}.funnel_steps
        WHERE site_id = {{site:String}}
          AND ts >= {{date_from:DateTime}} AND ts < {{date_to:DateTime}}
          AND step_key IN ({{step1:String}}, {{step2:String}}, {{step3:String}},
                           {{step4:String}})
        GROUP BY visitor_hash
    )
    GROUP BY level
)
ARRAY JOIN [1, 2, 3, 4] AS step
GROUP BY step
ORDER BY step
COMMENT 'Funnel with windowFunnel: visitors reaching each of up to four ordered steps (a page path or an event / conversion name; pass an empty string for unused steps) within window_seconds of step 1. Parameters: site, date_from, date_to, window_seconds, step1..step4. Reads funnel_steps; a replayed event cannot change a funnel level. Bots excluded.';

-- Real-time traffic windows, written by the stream worker (streams/traffic, docs/traffic.md).
-- One row per site, minute (event time), source partition, dimension and value; the worker
-- re-emits a row whenever it changes, with version = the raw offset it has read up to, so
-- the newest version replaces the older ones: read with FINAL. Rows whose value left the
-- top N are re-emitted with zeros (they are then in "(other)").
CREATE TABLE IF NOT EXISTS {db}.traffic_1m
(
    site_id LowCardinality(String),
    window_start DateTime64(3, 'UTC') COMMENT 'start of the one-minute window (event time)',
    kafka_partition UInt16 COMMENT 'raw-topic partition: each worker partition writes its own rows; visitors never span partitions',
    dimension LowCardinality(String) COMMENT 'empty for the totals row; else path, channel, source, medium, campaign, country, device_type',
    value String COMMENT 'the dimension value, or (other) for everything outside the top N',
    pageviews UInt64,
    events UInt64,
    sessions UInt64 COMMENT 'sessions whose first event (session_seq 1) is in this window and value',
    bounces UInt64 COMMENT 'of those sessions, the ones not engaged (GA4: <= 10 s, no conversion, < 2 pageviews)',
    conversions UInt64,
    revenue Decimal(18, 4),
    visitors Array(UInt64) COMMENT 'exact set of visitor hashes: count with uniqExactArray(visitors) over any rows',
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (site_id, window_start, dimension, value, kafka_partition)
TTL toDateTime(window_start) + INTERVAL {events_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Traffic per site and minute (bots and internal traffic excluded), total and top N per dimension. Query with FINAL.';

CREATE OR REPLACE VIEW {db}.traffic_1h AS
SELECT site_id, toStartOfHour(window_start) AS hour, dimension, value,
       sum(pageviews) AS pageviews, sum(events) AS events,
       uniqExactArray(visitors) AS visitors,
       sum(sessions) AS sessions, sum(bounces) AS bounces,
       sum(conversions) AS conversions, sum(revenue) AS revenue
FROM {db}.traffic_1m FINAL
GROUP BY site_id, hour, dimension, value
HAVING events > 0
COMMENT 'traffic_1m per hour: exact totals and unique visitors (not a sum of per-minute uniques). A view over FINAL, so replaced minute rows never count twice.';

CREATE OR REPLACE VIEW {db}.traffic_1d AS
SELECT site_id, toDate(window_start) AS day, dimension, value,
       sum(pageviews) AS pageviews, sum(events) AS events,
       uniqExactArray(visitors) AS visitors,
       sum(sessions) AS sessions, sum(bounces) AS bounces,
       sum(conversions) AS conversions, sum(revenue) AS revenue
FROM {db}.traffic_1m FINAL
GROUP BY site_id, day, dimension, value
HAVING events > 0
COMMENT 'traffic_1m per UTC day: exact totals and unique visitors. A view over FINAL, so replaced minute rows never count twice.';

-- Traffic windows, new layout (streams/traffic, docs/traffic.md): the worker no longer
-- re-sends whole visitor sets. Counters stay in traffic_1m (ReplacingMergeTree(version),
-- read with FINAL); visitor hashes go, only the ones new to a window and value, to
-- traffic_visitors_1m, an AggregatingMergeTree whose rows merge into the union of their
-- arrays: adding a hash twice changes nothing, so replays need no version.
-- Retention of both tables: rollup_ttl_days (sinks/migrate.py TTL_TABLES keeps it in line).

-- One row per site, minute, source partition, dimension and value -- every value, not only
-- the top N: which values a minute lists on their own is decided by traffic_1m (a value
-- without a traffic_1m row of its own counts in "(other)"), see traffic_minutes below.
CREATE TABLE IF NOT EXISTS {db}.traffic_visitors_1m
(
    site_id LowCardinality(String),
    window_start DateTime64(3, 'UTC') COMMENT 'start of the one-minute window (event time)',
    kafka_partition UInt16 COMMENT 'raw-topic partition: visitors never span partitions',
    dimension LowCardinality(String) COMMENT 'empty for the totals row; else path, channel, source, medium, campaign, country, device_type',
    value String COMMENT 'the dimension value (every value; "(other)" only in sets copied from traffic_1m)',
    visitors SimpleAggregateFunction(groupUniqArrayArray, Array(UInt64)) COMMENT 'visitor hashes (site + visitor id): count with uniqExactArray(visitors) over any rows'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (site_id, window_start, dimension, value, kafka_partition)
TTL toDateTime(window_start) + INTERVAL {rollup_ttl_days} DAY
COMMENT 'Unique visitors of the traffic windows per site, minute, partition, dimension and value: the union of all rows of a key (merged in the background; uniqExactArray is exact before and after).';

-- What the sink writes (topic <prefix>.traffic): counter rows and visitor-hash rows
-- (hashes_only = 1), split by the two materialized views below -- one insert per flush.
-- Rows in the old layout (counters and visitor sets in one row) go to both tables.
CREATE TABLE IF NOT EXISTS {db}.traffic_in
(
    site_id String,
    window_start DateTime64(3, 'UTC'),
    kafka_partition UInt16,
    dimension String,
    value String,
    pageviews UInt64,
    events UInt64,
    sessions UInt64,
    bounces UInt64,
    conversions UInt64,
    revenue Decimal(18, 4),
    visitors Array(UInt64),
    version UInt64,
    hashes_only UInt8 DEFAULT 0 COMMENT '1: a row of visitor hashes only (for traffic_visitors_1m)'
)
ENGINE = Null
COMMENT 'Entry point of traffic_1m and traffic_visitors_1m (stores nothing itself).';

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.traffic_in_counters_mv TO {db}.traffic_1m AS
SELECT site_id, window_start, kafka_partition, dimension, value, pageviews, events, sessions,
       bounces, conversions, revenue, visitors, version
FROM {db}.traffic_in
WHERE hashes_only = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.traffic_in_visitors_mv TO {db}.traffic_visitors_1m AS
SELECT site_id, window_start, kafka_partition, dimension, value, visitors
FROM {db}.traffic_in
WHERE notEmpty(visitors);

-- Visitor sets stored in the old layout: copied once.
INSERT INTO {db}.traffic_visitors_1m
SELECT site_id, window_start, kafka_partition, dimension, value, visitors
FROM {db}.traffic_1m FINAL
WHERE notEmpty(visitors);

-- traffic_1m as it was, with each row's exact visitor set: a value's own hashes in the
-- minutes it has a row of its own, everything else under "(other)". Every table is read in
-- a subquery of its own (the joins run where the query runs: also right on a cluster).
CREATE OR REPLACE VIEW {db}.traffic_minutes AS
SELECT c.site_id AS site_id, c.window_start AS window_start,
       c.kafka_partition AS kafka_partition, c.dimension AS dimension, c.value AS value,
       c.pageviews AS pageviews, c.events AS events, c.sessions AS sessions,
       c.bounces AS bounces, c.conversions AS conversions, c.revenue AS revenue,
       v.visitors AS visitors
FROM
(
    SELECT site_id, window_start, kafka_partition, dimension, value, pageviews, events,
           sessions, bounces, conversions, revenue
    FROM {db}.traffic_1m FINAL
    WHERE events > 0
) AS c
LEFT JOIN
(
    SELECT h.site_id AS site_id, h.window_start AS window_start,
           h.kafka_partition AS kafka_partition, h.dimension AS dimension,
           if(own.listed = 1, h.value, '(other)') AS label,
           groupUniqArrayArray(h.visitors) AS visitors
    FROM
    (
        SELECT site_id, window_start, kafka_partition, dimension, value, visitors
        FROM {db}.traffic_visitors_1m
    ) AS h
    LEFT JOIN
    (
        SELECT site_id, window_start, kafka_partition, dimension, value, toUInt8(1) AS listed
        FROM {db}.traffic_1m FINAL
        WHERE events > 0 AND value != '(other)'
    ) AS own
    ON h.site_id = own.site_id AND h.window_start = own.window_start
       AND h.kafka_partition = own.kafka_partition AND h.dimension = own.dimension
       AND h.value = own.value
    GROUP BY site_id, window_start, kafka_partition, dimension, label
) AS v
ON c.site_id = v.site_id AND c.window_start = v.window_start
   AND c.kafka_partition = v.kafka_partition AND c.dimension = v.dimension
   AND c.value = v.label
COMMENT 'traffic_1m FINAL (rows with events) with the exact visitor set of every row, from traffic_visitors_1m: count with uniqExactArray(visitors).';

CREATE OR REPLACE VIEW {db}.traffic_1h AS
SELECT site_id, toStartOfHour(window_start) AS hour, dimension, value,
       sum(pageviews) AS pageviews, sum(events) AS events,
       uniqExactArray(visitors) AS visitors,
       sum(sessions) AS sessions, sum(bounces) AS bounces,
       sum(conversions) AS conversions, sum(revenue) AS revenue
FROM {db}.traffic_minutes
GROUP BY site_id, hour, dimension, value
COMMENT 'traffic_minutes per hour: exact totals and unique visitors (not a sum of per-minute uniques).';

CREATE OR REPLACE VIEW {db}.traffic_1d AS
SELECT site_id, toDate(window_start) AS day, dimension, value,
       sum(pageviews) AS pageviews, sum(events) AS events,
       uniqExactArray(visitors) AS visitors,
       sum(sessions) AS sessions, sum(bounces) AS bounces,
       sum(conversions) AS conversions, sum(revenue) AS revenue
FROM {db}.traffic_minutes
GROUP BY site_id, day, dimension, value
COMMENT 'traffic_minutes per UTC day: exact totals and unique visitors.';

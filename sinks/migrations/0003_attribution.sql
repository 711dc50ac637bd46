-- Conversions and their attribution under every model, written by the stream worker.
CREATE TABLE IF NOT EXISTS {db}.conversions
(
    conversion_id UUID,
    site_id LowCardinality(String),
    visitor_id String,
    user_id String,
    ts DateTime64(3, 'UTC'),
    name LowCardinality(String),
    revenue Decimal(18, 4),
    currency LowCardinality(String),
    order_id String,
    session_id String,
    path_length UInt16,
    time_to_convert_ms UInt64,
    first_channel LowCardinality(String),
    last_channel LowCardinality(String),
    path Array(LowCardinality(String)) COMMENT 'channels of the touchpoints in the window, oldest first'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (site_id, toDate(ts), conversion_id)
TTL toDateTime(ts) + INTERVAL {rollup_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'One row per attributed conversion: path length and time to convert. Query with FINAL.';

CREATE TABLE IF NOT EXISTS {db}.attribution
(
    conversion_id UUID,
    site_id LowCardinality(String),
    conversion_ts DateTime64(3, 'UTC'),
    model LowCardinality(String),
    touch_index UInt16,
    touch_ts DateTime64(3, 'UTC'),
    channel LowCardinality(String),
    source LowCardinality(String),
    medium LowCardinality(String),
    campaign LowCardinality(String),
    term String,
    content String,
    landing_page String,
    session_id String,
    credit Float64 COMMENT 'share of the conversion; sums to 1 per conversion and model',
    revenue_credit Decimal(18, 4) COMMENT 'share of the revenue; sums exactly to it',
    currency LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(conversion_ts)
ORDER BY (site_id, toDate(conversion_ts), conversion_id, model, touch_index)
TTL toDateTime(conversion_ts) + INTERVAL {rollup_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Credit of each conversion per model (first/last touch, last non-direct, linear, time decay, position based) and touchpoint. Query with FINAL.';

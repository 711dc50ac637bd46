-- Sessions: one row per session, re-emitted as the session grows (version = events so far).
CREATE TABLE IF NOT EXISTS {db}.sessions
(
    session_id String,
    site_id LowCardinality(String),
    visitor_id String,
    user_id String,
    first_seen DateTime64(3, 'UTC') COMMENT 'time of the first event seen: fixed, so replacing works',
    started_at DateTime64(3, 'UTC'),
    ended_at DateTime64(3, 'UTC'),
    duration_ms UInt64,
    pageviews UInt32,
    events UInt32,
    conversions UInt32,
    revenue Decimal(18, 4),
    entry_path String,
    exit_path String,
    source LowCardinality(String),
    medium LowCardinality(String),
    campaign LowCardinality(String),
    channel LowCardinality(String),
    referrer_host LowCardinality(String),
    device_type LowCardinality(String),
    browser LowCardinality(String),
    os LowCardinality(String),
    country LowCardinality(String),
    is_engaged UInt8,
    is_bounce UInt8,
    version UInt32
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(first_seen)
ORDER BY (site_id, toDate(first_seen), visitor_id, session_id)
TTL toDateTime(first_seen) + INTERVAL {events_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'One row per session (GA4 engagement: > 10 s, a conversion or >= 2 pageviews; bounce = not engaged). Rows are re-emitted as sessions grow: query with FINAL.';

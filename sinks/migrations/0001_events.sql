-- Events and dead letters. {db} and {*_ttl_days} are filled in by `clickstream migrate`.
CREATE DATABASE IF NOT EXISTS {db};

CREATE TABLE IF NOT EXISTS {db}.events
(
    event_id UUID,
    site_id LowCardinality(String),
    type LowCardinality(String),
    name LowCardinality(String),
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    received_at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    visitor_id String,
    user_id String,
    session_id String,
    session_seq UInt32,
    url String CODEC(ZSTD(3)),
    host LowCardinality(String),
    path String,
    title String CODEC(ZSTD(3)),
    referrer String CODEC(ZSTD(3)),
    referrer_host LowCardinality(String),
    referrer_medium LowCardinality(String),
    referrer_source LowCardinality(String),
    search_term String,
    utm_source LowCardinality(String),
    utm_medium LowCardinality(String),
    utm_campaign LowCardinality(String),
    utm_term String,
    utm_content String,
    click_id_type LowCardinality(String),
    source LowCardinality(String),
    medium LowCardinality(String),
    channel LowCardinality(String),
    revenue Decimal(18, 4),
    currency LowCardinality(String),
    props Map(LowCardinality(String), String),
    screen LowCardinality(String),
    lang LowCardinality(String),
    browser LowCardinality(String),
    browser_version LowCardinality(String),
    os LowCardinality(String),
    os_version LowCardinality(String),
    device_type LowCardinality(String),
    is_bot UInt8,
    country LowCardinality(String),
    region LowCardinality(String),
    city LowCardinality(String),
    contract_version UInt8 DEFAULT 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (site_id, toDate(ts), visitor_id, ts, event_id)
TTL toDateTime(ts) + INTERVAL {events_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'One row per accepted event, enriched (no IP). Replays of an event_id replace it: query with FINAL for exact counts.';

CREATE TABLE IF NOT EXISTS {db}.invalid_events
(
    dead_letter_id UUID,
    received_at DateTime64(3, 'UTC'),
    failed_at DateTime64(3, 'UTC'),
    processor LowCardinality(String),
    processor_version LowCardinality(String),
    step LowCardinality(String),
    reason String,
    site_id LowCardinality(String),
    payload String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (toDate(received_at), processor, dead_letter_id)
TTL toDateTime(received_at) + INTERVAL {invalid_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Dead letters: every rejected event with the processor, step and reason (payload truncated, never an IP).';

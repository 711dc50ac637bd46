-- Audit trail of `clickstream erase`: who was erased when, and how many rows, never the id.
CREATE TABLE IF NOT EXISTS {db}.erasure_log
(
    erased_at DateTime64(3, 'UTC') DEFAULT now64(3),
    site_id LowCardinality(String),
    subject_kind LowCardinality(String) COMMENT 'visitor or user',
    subject_hash String COMMENT 'sha256 of site and id: proves what was erased without keeping it',
    rows_deleted Map(LowCardinality(String), UInt64),
    requested_by String
)
ENGINE = MergeTree
ORDER BY (site_id, erased_at)
COMMENT 'GDPR erasure requests carried out by clickstream erase.';

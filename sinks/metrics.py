"""Prometheus metrics of the ClickHouse sink (clickstream_sink_*)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS_WRITTEN = Counter("clickstream_sink_rows_written_total", "Rows inserted, by table.",
                       ["table"])
BATCH_ROWS = Histogram("clickstream_sink_batch_rows", "Rows per insert, by table.", ["table"],
                       buckets=(1, 10, 100, 1000, 5000, 10_000, 25_000, 50_000, 100_000))
INSERT_SECONDS = Histogram("clickstream_sink_insert_seconds", "Insert latency, by table.",
                           ["table"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
RETRIES = Counter("clickstream_sink_retries_total", "Insert attempts that failed and were "
                  "retried, by table.", ["table"])
DEAD_LETTERS = Counter("clickstream_sink_dead_letters_total",
                       "Rows ClickHouse rejected, sent to invalid_events, by table.", ["table"])
CONSUMER_LAG = Gauge("clickstream_sink_consumer_lag_records",
                     "Records in Kafka not yet written to ClickHouse, by topic.", ["topic"])
BACKPRESSURE = Counter("clickstream_sink_backpressure_total",
                       "Times reading from Kafka paused because the buffer was full.")

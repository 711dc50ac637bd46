"""Prometheus metrics of the collector (clickstream_collector_*).

Labels are low-cardinality only: route templates, status codes and reason codes from a
fixed set. Never site ids, IPs or free text (per-site counts live in ClickHouse)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("clickstream_collector_requests_total", "HTTP requests by route and status.",
                   ["route", "status"])
LATENCY = Histogram("clickstream_collector_request_seconds", "Request latency by route.",
                    ["route"], buckets=(.0005, .001, .0025, .005, .01, .02, .05, .1, .25, .5, 1,
                                        2.5, 5))
EVENTS_ACCEPTED = Counter("clickstream_collector_events_accepted_total",
                          "Valid events accepted into the delivery buffer (answered 2xx).")
EVENTS_REJECTED = Counter(
    "clickstream_collector_events_rejected_total",
    "Events rejected, by reason: per event (dead-lettered: invalid_event, unknown_site, "
    "origin_not_allowed) or with their whole request (the request's reason code).",
    ["reason"])
REQUESTS_REJECTED = Counter("clickstream_collector_requests_rejected_total",
                            "Requests rejected as a whole (4xx/503), by reason.", ["reason"])
DNT_REQUESTS = Counter("clickstream_collector_dnt_requests_total",
                       "Ingestion requests with DNT: 1 or Sec-GPC: 1 (IP dropped, UA reduced).")
BUFFER_EVENTS = Gauge("clickstream_collector_buffer_events",
                      "Events and dead letters buffered, not yet acknowledged by Kafka.")
BUFFER_BYTES = Gauge("clickstream_collector_buffer_bytes", "Bytes of buffered records.")
DELIVERED = Counter("clickstream_collector_records_delivered_total",
                    "Events and dead letters acknowledged by Kafka (a Kafka record can "
                    "carry several events of one visitor).")
PRODUCE_ERRORS = Counter("clickstream_collector_produce_errors_total",
                         "Failed attempts to connect or deliver to Kafka (each is retried).")

"""Prometheus metrics of the collector (clickstream_collector_*). No site ids in labels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("clickstream_collector_requests_total", "HTTP requests by route and status.",
                   ["route", "status"])
EVENTS_ACCEPTED = Counter("clickstream_collector_events_accepted_total",
                          "Events accepted and produced to the raw topic.")
EVENTS_REJECTED = Counter("clickstream_collector_events_rejected_total",
                          "Events rejected at the edge, by reason.", ["reason"])
LATENCY = Histogram("clickstream_collector_request_seconds", "Request latency by route.",
                    ["route"], buckets=(.0005, .001, .0025, .005, .01, .02, .05, .1, .25, .5, 1,
                                        2.5, 5))
PRODUCE_ERRORS = Counter("clickstream_collector_produce_errors_total",
                         "Failed produce attempts to Kafka.")
IN_FLIGHT = Gauge("clickstream_collector_in_flight_events",
                  "Events handed to the Kafka producer and not yet acknowledged.")

"""Prometheus metrics of the stream worker (clickstream_worker_*)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.pipeline import Ctx

EVENTS_IN = Counter("clickstream_worker_events_in_total", "Raw events read from Kafka.")
EVENTS_OUT = Counter("clickstream_worker_events_out_total", "Enriched events emitted.")
REJECTED = Counter("clickstream_worker_events_rejected_total",
                   "Events sent to the dead-letter topic, by step and reason.",
                   ["step", "reason"])
STEP_SECONDS = Counter("clickstream_worker_step_seconds_total",
                       "CPU-ish wall time spent in each ingestion step.", ["step"])
BATCH_SIZE = Histogram("clickstream_worker_batch_events", "Events per processed batch.",
                       buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000))


class WorkerMetrics:
    def step_done(self, step: str, seconds: float, events: int) -> None:
        STEP_SECONDS.labels(step).inc(seconds)

    def batch_done(self, ctxs: Sequence[Ctx]) -> None:
        EVENTS_IN.inc(len(ctxs))
        ok = 0
        for ctx in ctxs:
            if ctx.ok:
                ok += 1
            else:
                REJECTED.labels(ctx.reject_step, ctx.reject_reason.split(":", 1)[0][:40]).inc()
        EVENTS_OUT.inc(ok)
        BATCH_SIZE.observe(len(ctxs))


class ConsumerLagCollector(Collector):
    """clickstream_worker_consumer_lag_records{group,topic,partition}: end offset minus
    committed offset of every partition the worker consumes, read from Faust's monitor at
    scrape time (no per-message cost). End offsets are refreshed whenever records arrive."""

    def __init__(self) -> None:
        self._apps: weakref.WeakSet[Any] = weakref.WeakSet()

    def watch(self, app: Any) -> None:
        self._apps.add(app)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for app in list(self._apps):
            monitor = app.monitor
            ends, committed = monitor.tp_end_offsets, monitor.tp_committed_offsets
            for tp, end in list(ends.items()):
                done = committed.get(tp)
                if done is not None:
                    family.add_metric([app.conf.id, tp.topic, str(tp.partition)],
                                      max(0, end - done))
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("clickstream_worker_consumer_lag_records",
                                 "Records not yet processed and committed, by consumer group, "
                                 "topic and partition.", labels=["group", "topic", "partition"])


CONSUMER_LAG = ConsumerLagCollector()
REGISTRY.register(CONSUMER_LAG)


def watch_consumer_lag(app: Any) -> None:
    """Export the consumer lag of this Faust app on the worker's /metrics."""
    CONSUMER_LAG.watch(app)

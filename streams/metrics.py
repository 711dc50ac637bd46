"""Prometheus metrics of the stream worker (clickstream_worker_*)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Histogram

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

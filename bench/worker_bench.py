"""Stream worker throughput: one worker, pinned to one core, full pass (validate, enrich,
sessions, dedup) over preloaded raw events on the embedded broker.

    python -m bench.worker_bench [--events 100000] [--events-format arrow|ndjson]
    python -m bench.worker_bench --emit-only [--events 26000] [--rounds 30] [--emit-batch N]

--emit-only times, in this process, what the worker does with a batch's accepted events
for each events format (encode per source partition, append to producer batches), both
formats interleaved round by round, on loadgen traffic run through the worker's steps.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from bench.common import cpu_seconds, envelopes, loadgen_records, write_result
from clickstream.embedded_broker import EmbeddedBroker, free_port
from clickstream.settings import CommonSettings, WorkerSettings
from clickstream.stack import Service
from clickstream.topics import create_topics_sync
from producers.collector.records import bundle_value
from streams import events_out
from streams.enrichment import Enricher
from streams.pipeline import Ctx, Pipeline
from streams.steps import default_steps, expand
from streams.visitor import SaltStore


async def preload(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=512 * 1024)
    await producer.start()
    futures = [await producer.send(topic, v, key=k) for k, v in records]
    await asyncio.gather(*futures)
    await producer.stop()


def bundled(records: list[tuple[bytes, bytes]], size: int, partitions: int
            ) -> list[tuple[bytes, bytes]]:
    """Consecutive records of one partition (Kafka's default partitioner) as bundles."""
    parts: dict[int, list[tuple[bytes, bytes]]] = {}
    for key, value in records:
        parts.setdefault((murmur2(key) & 0x7FFFFFFF) % partitions, []).append((key, value))
    out = []
    for recs in parts.values():
        for i in range(0, len(recs), size):
            chunk = recs[i:i + size]
            out.append((chunk[0][0], bundle_value([v for _, v in chunk])))
    return out


def metric_sum(text: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in re.finditer(rf'^{name}\{{step="([^"]+)"\}} ([0-9.e+-]+)$', text, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def events_per_batch(text: str) -> int | None:
    """Mean events per batch the worker took (its batch-size histogram)."""
    found = [re.search(rf"^clickstream_worker_batch_events_{k} ([0-9.e+]+)$", text, re.M)
             for k in ("sum", "count")]
    if found[0] is None or found[1] is None or not float(found[1].group(1)):
        return None
    return round(float(found[0].group(1)) / float(found[1].group(1)))


def watch(worker: Service, port: int, core: int, events: int
          ) -> tuple[tuple[float, float, int] | None, float, float, float, float, str]:
    """Pin the worker to `core` and poll its /metrics until it has taken `events`: the
    first batch seen (time, CPU, events), start and end times, CPU then, the last metrics."""
    assert worker.process is not None
    os.sched_setaffinity(worker.process.pid, {core})
    worker.wait_healthy()
    url = f"http://127.0.0.1:{port}"
    start, cpu0 = time.monotonic(), cpu_seconds(worker.process.pid)
    first_seen = None
    while True:  # a loaded machine can keep the worker from answering for a while
        text = urllib.request.urlopen(url + "/metrics", timeout=60).read().decode()
        m = re.search(r"^clickstream_worker_events_in_total ([0-9.e+]+)$", text, re.M)
        done = int(float(m.group(1))) if m else 0
        if done and first_seen is None:
            first_seen = (time.monotonic(), cpu_seconds(worker.process.pid), done)
        if done >= events:
            break
        if time.monotonic() - start > 600:
            raise SystemExit(f"worker stalled at {done:,} events; see {worker.log_path}")
        time.sleep(0.2)
    return first_seen, start, time.monotonic(), cpu0, cpu_seconds(worker.process.pid), text


def emit_contexts(events: int) -> list[Ctx]:
    """Accepted contexts of loadgen traffic after the worker's steps (sessions filled in as
    the session step would: the encoders only read them)."""
    settings = WorkerSettings(home=Path(tempfile.mkdtemp(prefix="bench-emit-")))
    steps = default_steps(settings, SaltStore(settings.home / "salts.json"), Enricher.load())
    ctxs = [c for i, (key, value) in enumerate(loadgen_records(events))
            for c in expand(value, key, i % settings.topic_partitions, i)]
    Pipeline(steps).run(ctxs)
    ok = [c for c in ctxs if c.ok]
    for i, c in enumerate(ok):
        c.row["session_id"], c.row["session_seq"] = ("", 0) if c.row["is_bot"] else (
            f"s{i // 5}", i % 5 + 1)
    shutil.rmtree(settings.home, ignore_errors=True)
    return ok


def emit_cost(ctxs: list[Ctx], batch: int, rounds: int) -> dict[str, Any]:
    """CPU µs per event of encoding each batch's events per partition and appending the
    messages to producer batches (as streams/batch_send.py does), per format: the median
    and the lowest of `rounds` interleaved rounds, and bytes per event."""
    from aiokafka.producer.message_accumulator import BatchBuilder

    def one_round(encode: events_out.Encoder) -> tuple[float, int]:
        size = 0
        c0 = time.process_time()
        for i in range(0, len(ctxs), batch):
            by_partition: dict[int, list[Ctx]] = {}
            for c in ctxs[i:i + batch]:
                by_partition.setdefault(c.partition, []).append(c)
            for group in by_partition.values():
                builder = BatchBuilder(512 * 1024, 0)
                for value in encode(group):
                    size += len(value)
                    if builder.append(timestamp=None, key=None, value=value) is None:
                        builder = BatchBuilder(512 * 1024, 0)
                        builder.append(timestamp=None, key=None, value=value)
                builder._build()
        return time.process_time() - c0, size

    ts_ms = [c.row["_ts_ms"] for c in ctxs]
    times: dict[str, list[float]] = {"ndjson": [], "arrow": []}
    sizes: dict[str, int] = {}
    for _ in range(rounds):
        for name in times:
            cpu, sizes[name] = one_round(events_out.encoder(name))
            times[name].append(cpu / len(ctxs) * 1e6)
            for c, ms in zip(ctxs, ts_ms, strict=True):  # the NDJSON encoder pops it
                c.row["_ts_ms"] = ms
    return {name: {"cpu_us_per_event_median": round(statistics.median(t), 2),
                   "cpu_us_per_event_min": round(min(t), 2),
                   "bytes_per_event": round(sizes[name] / len(ctxs))}
            for name, t in times.items()} | {"events": len(ctxs), "batch": batch,
                                             "rounds": rounds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--core", type=int, default=0, help="CPU core to pin the worker to")
    ap.add_argument("--grouped", action="store_true",
                    help="one raw message per visitor per request (as the collector groups)")
    ap.add_argument("--no-traffic", action="store_true",
                    help="enrichment, sessions and attribution only (issue 5's scope): the "
                    "worker runs with CLICKSTREAM_WORKER_TRAFFIC_WINDOWS=false")
    ap.add_argument("--loadgen", action="store_true",
                    help="`clickstream loadgen` traffic (more varied) instead of demo traffic")
    ap.add_argument("--bundle", type=int, default=0,
                    help="bundle this many consecutive records of a partition into one "
                    "message, as the collector does when records queue up under load")
    ap.add_argument("--events-format", choices=("arrow", "ndjson"), default=None,
                    help="CLICKSTREAM_WORKER_EVENTS_FORMAT for the worker (default: the "
                    "setting's default)")
    ap.add_argument("--emit-only", action="store_true",
                    help="only the in-process cost of the events output, both formats")
    ap.add_argument("--rounds", type=int, default=30, help="rounds of --emit-only")
    ap.add_argument("--emit-batch", type=int, default=13_000,
                    help="events per batch of --emit-only (the full pass with --bundle 25 "
                    "takes ~13,000 per batch: 1,000 messages)")
    args = ap.parse_args()
    if args.emit_only:
        result = emit_cost(emit_contexts(args.events), args.emit_batch, args.rounds)
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        print(f"wrote {write_result('worker_emit', result)}")
        return
    events_format = args.events_format or WorkerSettings.model_fields[
        "worker_events_format"].default
    home = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    with EmbeddedBroker() as broker:
        settings = CommonSettings(home=home, kafka_bootstrap=broker.bootstrap,
                                  broker_profile="embedded", topic_prefix="bench")
        create_topics_sync(settings)
        records = (loadgen_records(args.events) if args.loadgen
                   else envelopes(args.events, grouped=args.grouped))
        if args.bundle > 1:
            records = bundled(records, args.bundle, settings.topic_partitions)
        print(f"preloading {args.events:,} raw events in {len(records):,} messages ...")
        asyncio.run(preload(broker.bootstrap, settings.topic("raw"), records))
        port = free_port()
        env = {**os.environ, "CLICKSTREAM_HOME": str(home),
               "CLICKSTREAM_KAFKA_BOOTSTRAP": broker.bootstrap,
               "CLICKSTREAM_BROKER_PROFILE": "embedded", "CLICKSTREAM_TOPIC_PREFIX": "bench",
               "CLICKSTREAM_WORKER_WEB_PORT": str(port), "CLICKSTREAM_LOG_LEVEL": "WARNING",
               "CLICKSTREAM_WORKER_ID": "bench-worker",
               "CLICKSTREAM_WORKER_TRAFFIC_WINDOWS": "false" if args.no_traffic else "true",
               "CLICKSTREAM_WORKER_EVENTS_FORMAT": events_format}
        worker = Service("worker", "streams", port, "/healthz", env, home / "worker.log")
        worker.start()
        try:
            first_seen, start, end, cpu0, cpu1, text = watch(worker, port, args.core,
                                                             args.events)
        finally:  # also when the watch fails: no worker left running without its broker
            worker.stop()
    # measure from the first processed batch: startup and group join are not throughput
    t0, c0, n0 = first_seen or (start, cpu0, 0)
    n = args.events - n0
    wall, cpu = end - t0, cpu1 - c0
    steps = metric_sum(text, "clickstream_worker_step_seconds_total")
    result = {
        "events": args.events, "messages": len(records), "grouped": args.grouped,
        "bundle": args.bundle, "traffic": "loadgen" if args.loadgen else "demo",
        "traffic_windows": not args.no_traffic, "events_format": events_format,
        "measured_events": n, "wall_seconds": round(wall, 2),
        "events_per_second": round(n / wall), "cpu_seconds": round(cpu, 2),
        "events_per_cpu_second": round(n / cpu) if cpu else None,
        "cpu_us_per_event": round(cpu / n * 1e6, 1),
        "events_per_batch": events_per_batch(text),
        "step_us_per_event": {k: round(v / args.events * 1e6, 2) for k, v in steps.items()},
        "target_events_per_core_second": 15_000,
    }
    name = "worker" + ("_grouped" if args.grouped else "") + ("_loadgen" if args.loadgen else "") \
        + ("_bundled" if args.bundle else "") + ("_no_windows" if args.no_traffic else "") \
        + (f"_{args.events_format}" if args.events_format else "")
    path = write_result(name, result)
    print(f"{n:,} events in {wall:.1f} s: {n / wall:,.0f} events/s wall, "
          f"{result['events_per_cpu_second']:,} events per CPU-second "
          f"({result['cpu_us_per_event']} us/event; target 15,000/s per core)")
    for step, us in result["step_us_per_event"].items():
        print(f"  {step:10s} {us:7.2f} us/event")
    print(f"wrote {path}")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

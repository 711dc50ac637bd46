"""Stream worker throughput: one worker, pinned to one core, full pass (validate, enrich,
sessions, dedup) over preloaded raw events on the embedded broker.

    python -m bench.worker_bench [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from bench.common import cpu_seconds, envelopes, loadgen_records, write_result
from clickstream.embedded_broker import EmbeddedBroker, free_port
from clickstream.settings import CommonSettings
from clickstream.stack import Service
from clickstream.topics import create_topics_sync
from producers.collector.records import bundle_value


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
    args = ap.parse_args()
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
               "CLICKSTREAM_WORKER_TRAFFIC_WINDOWS": "false" if args.no_traffic else "true"}
        worker = Service("worker", "streams", port, "/healthz", env, home / "worker.log")
        worker.start()
        assert worker.process is not None
        os.sched_setaffinity(worker.process.pid, {args.core})
        worker.wait_healthy()
        url = f"http://127.0.0.1:{port}"
        start, cpu0 = time.monotonic(), cpu_seconds(worker.process.pid)
        first_seen = None
        while True:
            text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
            m = re.search(r"^clickstream_worker_events_in_total ([0-9.e+]+)$", text, re.M)
            done = int(float(m.group(1))) if m else 0
            if done and first_seen is None:
                first_seen = (time.monotonic(), cpu_seconds(worker.process.pid), done)
            if done >= args.events:
                break
            if time.monotonic() - start > 600:
                raise SystemExit(f"worker stalled at {done:,} events; see {worker.log_path}")
            time.sleep(0.2)
        end, cpu1 = time.monotonic(), cpu_seconds(worker.process.pid)
        steps = metric_sum(text, "clickstream_worker_step_seconds_total")
        worker.stop()
    # measure from the first processed batch: startup and group join are not throughput
    t0, c0, n0 = first_seen or (start, cpu0, 0)
    n = args.events - n0
    wall, cpu = end - t0, cpu1 - c0
    result = {
        "events": args.events, "messages": len(records), "grouped": args.grouped,
        "bundle": args.bundle, "traffic": "loadgen" if args.loadgen else "demo",
        "traffic_windows": not args.no_traffic,
        "measured_events": n, "wall_seconds": round(wall, 2),
        "events_per_second": round(n / wall), "cpu_seconds": round(cpu, 2),
        "events_per_cpu_second": round(n / cpu) if cpu else None,
        "cpu_us_per_event": round(cpu / n * 1e6, 1),
        "step_us_per_event": {k: round(v / args.events * 1e6, 2) for k, v in steps.items()},
        "target_events_per_core_second": 15_000,
    }
    name = "worker" + ("_grouped" if args.grouped else "") + ("_loadgen" if args.loadgen else "") \
        + ("_bundled" if args.bundle else "") + ("_no_windows" if args.no_traffic else "")
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

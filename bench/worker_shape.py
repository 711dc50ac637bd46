"""Worker CPU per event on a busy site's traffic shape: pageviews from a large visitor
population, so nearly every event of a batch is a different visitor's (about one event per
visitor per batch), as bench/traffic_bench.py posts them. The worker's own batch code (the
`enrich` agent) runs in-process with Kafka replaced by a producer that drops what it is
sent (bench/worker_memory.py); CPU time is reported per event for the whole batch and per
part (pipeline steps, traffic fold, emit, state commits; garbage collections, which
the parts include, per generation), after a warm-up that gives every
visitor a state.

    python -m bench.worker_shape [--events 60000] [--visitors 5000] [--warmup 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from aiokafka.partitioner import murmur2

from bench.common import write_result
from bench.soak_bench import rss_mb
from bench.traffic_bench import BROWSER, PATHS, PER_REQUEST, QUERIES, SITE
from bench.worker_memory import START_MS, DropProducer, _Event
from clickstream.settings import WorkerSettings
from producers.collector.records import RecordMaker, bundle_value


def records(seed: int, visitors: int, rate: float, partitions: int
            ) -> Iterator[tuple[int, bytes, int]]:
    """(partition, bundle value, events in it): requests of PER_REQUEST pageviews from random
    visitors, their records bundled per partition as the collector does."""
    rng = random.Random(seed)
    now = float(START_MS)
    while True:
        events = [{"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                   "type": "pageview", "site_id": SITE,
                   "anonymous_id": f"v{rng.randrange(visitors)}", "ts": int(now),
                   "url": f"https://{SITE}{rng.choice(PATHS)}{rng.choice(QUERIES)}"}
                  for _ in range(PER_REQUEST)]
        maker = RecordMaker("raw", "invalid", int(now), "203.0.113.9", BROWSER, False)
        by_partition: dict[int, list[bytes]] = {}
        counts: dict[int, int] = {}
        for rec in maker.raws(events):
            p = (murmur2(rec.key) & 0x7FFFFFFF) % partitions
            by_partition.setdefault(p, []).append(rec.value)
            counts[p] = counts.get(p, 0) + rec.value.count(b'"type"')
        for p, values in by_partition.items():
            yield p, bundle_value(values), counts[p]
        now += PER_REQUEST * 1000 / rate


class ShapeStream:
    """What the agent iterates: batches of about `batch` events."""

    def __init__(self, source: Iterator[tuple[int, bytes, int]], events: int, batch: int,
                 on_batch: Callable[[int], None]) -> None:
        self.source, self.events, self.batch, self.on_batch = source, events, batch, on_batch
        self.offsets: dict[int, int] = {}
        self.done = 0

    async def take_events(self, n: int, within: float) -> AsyncIterator[list[_Event]]:
        while self.done < self.events:
            batch, size = [], 0
            for partition, value, count in self.source:
                offset = self.offsets[partition] = self.offsets.get(partition, -1) + 1
                batch.append(_Event(value, partition, offset))
                size += count
                if size >= self.batch:
                    break
            self.done += size
            yield batch
            self.on_batch(self.done)


def timed(seconds: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` (sync or async) with its CPU time added to seconds[name]."""
    if asyncio.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return await fn(*args, **kwargs)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.process_time() - t0
        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        t0 = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.process_time() - t0
    return run


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import streams.app as worker
    from streams.sessionize import Sessionizer
    from streams.traffic.stream import TrafficWindows

    seconds: dict[str, float] = {}
    gc_started = [0.0]

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.process_time()
        else:
            name = f"gc.gen{info['generation']}"
            seconds[name] = seconds.get(name, 0.0) + time.process_time() - gc_started[0]

    gc.callbacks.append(gc_timer)
    patched = [(TrafficWindows, "fold"), (TrafficWindows, "emit"), (TrafficWindows, "commit"),
               (Sessionizer, "session_rows"), (Sessionizer, "commit")]
    originals = [(cls, name, getattr(cls, name)) for cls, name in patched]
    for cls, name, fn in originals:
        setattr(cls, name, timed(seconds, f"{cls.__name__}.{name}", fn))
    home = Path(tempfile.mkdtemp(prefix="bench-shape-"))
    try:
        settings = WorkerSettings(home=home, kafka_bootstrap="127.0.0.1:9",
                                  worker_store=args.store, topic_prefix="shape",
                                  worker_traffic_windows=not args.no_traffic)
        app = worker.create_app(settings)
        app.producer = DropProducer(settings.topic_partitions)  # type: ignore[assignment]
        if not args.default_gc:  # as `python -m streams` sets it up (streams/__main__.py)
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 50, 1_000)
        agent = next(a for a in app.agents.values() if a.name.endswith("enrich"))
        pipeline = app.clickstream_pipeline
        if args.state_cache is not None:
            pipeline.steps[-1].run.table.cache.size = args.state_cache
        mark: dict[str, Any] = {}

        def on_batch(done: int) -> None:
            if not mark and done >= args.warmup:
                mark.update(done=done, cpu=time.process_time(), wall=time.perf_counter(),
                            steps=dict(pipeline.seconds), parts=dict(seconds))

        stream = ShapeStream(records(args.seed, args.visitors, args.rate,
                                     settings.topic_partitions),
                             args.warmup + args.events, args.batch, on_batch)
        await agent.fun(stream)
        cpu = time.process_time() - mark["cpu"]
        rss = rss_mb(os.getpid())
        events = stream.done - mark["done"]
    finally:
        gc.callbacks.remove(gc_timer)
        for cls, name, fn in originals:
            setattr(cls, name, fn)
        shutil.rmtree(home, ignore_errors=True)

    def us(now: dict[str, float], before: dict[str, float]) -> dict[str, float]:
        return {k: round((v - before.get(k, 0.0)) * 1e6 / events, 2) for k, v in now.items()}

    cache = getattr(pipeline.steps[-1].run.table, "cache", None)
    return {"events": events, "visitors": args.visitors, "batch": args.batch,
            "state_cache": None if cache is None else {"hits": cache.hits,
                                                       "misses": cache.misses},
            "store": args.store, "traffic_windows": not args.no_traffic,
            "us_per_event": round(cpu * 1e6 / events, 2), "rss_mb": rss,
            "steps_us": us(pipeline.seconds, mark["steps"]),
            "parts_us": us(seconds, mark["parts"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=60_000, help="measured events")
    ap.add_argument("--warmup", type=int, default=20_000, help="events before measuring")
    ap.add_argument("--visitors", type=int, default=5_000)
    ap.add_argument("--batch", type=int, default=1_000, help="events per batch")
    ap.add_argument("--rate", type=float, default=5_000.0, help="simulated events per second")
    ap.add_argument("--store", default="memory://", help="memory:// or rocksdb://")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-traffic", action="store_true", help="without traffic windows")
    ap.add_argument("--default-gc", action="store_true",
                    help="keep Python's GC settings (the worker freezes and tunes them)")
    ap.add_argument("--state-cache", type=int, default=None,
                    help="decoded visitor states kept (default: the worker's; 0: none)")
    ap.add_argument("--name", default="", help="result name suffix")
    args = ap.parse_args()
    result = asyncio.run(run(args))
    print(f"{result['us_per_event']:.1f} us/event over {result['events']:,} events "
          f"({args.visitors:,} visitors, batches of {args.batch:,}), RSS {result['rss_mb']} MB, "
          f"state cache {result['state_cache']}")
    for k, v in {**result["steps_us"], **result["parts_us"]}.items():
        print(f"  {k:28s} {v:7.2f} us/event")
    print(f"wrote {write_result('worker_shape' + (f'_{args.name}' if args.name else ''), result)}")


if __name__ == "__main__":
    main()

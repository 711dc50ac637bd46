"""Worker memory: the worker's own batch code (the `enrich` agent of streams/app.py) run
in-process over load-generator traffic whose visitors keep arriving and whose clock moves,
with Kafka replaced by a producer that drops what it is sent. RSS and (optionally) the
top tracemalloc allocation sites are sampled every --every events.

    python -m bench.worker_memory [--events 1000000] [--store rocksdb://] [--tracemalloc]

--rate is the simulated arrival rate (events per second of event and receive time): at the
soak's 500/s one million events are 33 minutes; at 50/s they are 5.5 hours, long enough
for the session, dedup and traffic-window horizons to pass.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import linecache
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.common import write_result
from bench.soak_bench import rss_mb
from clickstream.settings import WorkerSettings
from producers.collector.records import RecordMaker
from producers.loadgen.model import JourneyMaker

START_MS = 1_795_430_400_000  # a fixed start: runs compare


class DropProducer:
    """Stands in for Faust's producer and the aiokafka producer behind it (streams/
    batch_send.py asks for both): every send is acknowledged at once and forgotten."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.sent = 0

    def _ensure_producer(self) -> DropProducer:
        return self

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> _Batch:
        return _Batch()

    def _done(self, topic: str, partition: int | None) -> asyncio.Future[Any]:
        self.sent += 1
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(SimpleNamespace(topic=topic, partition=partition or 0, offset=self.sent))
        return fut

    async def send_batch(self, batch: _Batch, topic: str, partition: int) -> asyncio.Future[Any]:
        return self._done(topic, partition)

    async def send(self, topic: str, *args: Any, partition: int | None = None,
                   **kwargs: Any) -> asyncio.Future[Any]:
        return self._done(topic, partition if partition is not None else
                          (args[3] if len(args) > 3 else 0))


class _Batch:
    """An aiokafka BatchBuilder that takes up to 256 records."""

    def __init__(self) -> None:
        self.n = 0

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: Any) -> object | None:
        if self.n >= 256:
            return None
        self.n += 1
        return self


def records(seed: int, rate: float, partitions: int) -> Iterator[tuple[int, bytes]]:
    """(partition, raw record value) in arrival order: journeys of new visitors, each sent
    at its anchor time, the clock moving 1/rate seconds per event."""
    from aiokafka.partitioner import murmur2

    maker = JourneyMaker(seed)
    now, index = float(START_MS), 0
    while True:
        journey = maker.make(index, int(now))
        index += 1
        v = journey.visitor
        for request in journey.requests:
            for rec in RecordMaker("raw", "invalid", int(now), v.ip, v.ua, False).raws(request):
                yield (murmur2(rec.key) & 0x7FFFFFFF) % partitions, rec.value
            now += len(request) * 1000 / rate


class _Event:
    __slots__ = ("key", "message", "value")

    def __init__(self, value: bytes, partition: int, offset: int) -> None:
        self.key, self.value = None, value
        self.message = SimpleNamespace(partition=partition, offset=offset)


class FakeStream:
    """What the agent iterates: `take_events` batches from `records`."""

    def __init__(self, source: Iterator[tuple[int, bytes]], events: int, batch: int,
                 on_batch: Any) -> None:
        self.source, self.events, self.batch, self.on_batch = source, events, batch, on_batch
        self.offsets: dict[int, int] = {}

    async def take_events(self, n: int, within: float) -> AsyncIterator[list[_Event]]:
        done = 0
        while done < self.events:
            batch = []
            for partition, value in self.source:
                offset = self.offsets[partition] = self.offsets.get(partition, -1) + 1
                batch.append(_Event(value, partition, offset))
                if len(batch) >= self.batch:
                    break
            done += sum(value.count(b'"type"') for value in (e.value for e in batch))
            yield batch
            await self.on_batch(done)


def top_allocations(snapshot: tracemalloc.Snapshot, base: tracemalloc.Snapshot | None,
                    limit: int = 12) -> list[dict[str, Any]]:
    """Allocation sites by size (grown since `base` when given)."""
    filters = [tracemalloc.Filter(False, tracemalloc.__file__),
               tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    snap = snapshot.filter_traces(filters)
    if base is not None:
        stats = snap.compare_to(base.filter_traces(filters), "lineno")
        rows = [(s.traceback[0], s.size_diff, s.count_diff) for s in stats[:limit]]
    else:
        rows = [(s.traceback[0], s.size, s.count) for s in snap.statistics("lineno")[:limit]]
    return [{"where": f"{Path(f.filename).name}:{f.lineno}", "kb": round(size / 1024),
             "count": count, "line": linecache.getline(f.filename, f.lineno).strip()[:80]}
            for f, size, count in rows]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import streams.app as worker

    home = Path(tempfile.mkdtemp(prefix="bench-wmem-"))
    settings = WorkerSettings(home=home, kafka_bootstrap="127.0.0.1:9",
                              worker_store=args.store, topic_prefix="wmem",
                              worker_traffic_windows=not args.no_traffic)
    app = worker.create_app(settings)
    producer = DropProducer(settings.topic_partitions)
    app.producer = producer  # type: ignore[assignment]
    agent = next(a for a in app.agents.values() if a.name.endswith("enrich"))
    samples: list[dict[str, Any]] = []
    next_at = [args.every]
    base: list[tracemalloc.Snapshot | None] = [None]
    t0 = time.monotonic()

    sweep = None if args.no_sweep else getattr(app, "clickstream_sweep", None)
    sweep_at = [0]
    # the sweep timer's period, in simulated time
    sweep_every = max(1, int(args.rate * (args.sweep_seconds
                                          or getattr(worker, "SWEEP_EVERY_S", 10.0))))

    async def after_batch(done: int) -> None:
        if sweep is not None and done >= sweep_at[0]:  # what the Faust timer does
            sweep_at[0] = done + sweep_every
            await sweep.step(range(settings.topic_partitions))
        sample(done)

    def sample(done: int) -> None:
        if done < next_at[0]:
            return
        next_at[0] += args.every
        gc.collect()
        row: dict[str, Any] = {"events": done, "rss_mb": rss_mb_self(),
                               "seconds": round(time.monotonic() - t0, 1),
                               **rocksdb_mb(app)}
        if args.tracemalloc:
            snap = tracemalloc.take_snapshot()
            row["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
            row["top"] = top_allocations(snap, base[0])
            if base[0] is None:
                base[0] = snap
        samples.append(row)
        write_result(result_name(args), {"partial": True, "samples": samples})
        print(f"{done:>9,} events  rss {row['rss_mb']:7.1f} MB  "
              + "".join(f"{k} {v} MB  " for k, v in row.items() if k.startswith("rocksdb"))
              + (f"traced {row['traced_mb']:.1f} MB  " if args.tracemalloc else "")
              + f"{row['seconds']:.0f} s", flush=True)
        if args.tracemalloc and len(samples) > 1:
            for top in row["top"][:6]:
                print(f"      {top['kb']:>+8,} kB {top['count']:>+8,}  {top['where']}: "
                      f"{top['line']}")

    if args.tracemalloc:
        tracemalloc.start()
    stream = FakeStream(records(args.seed, args.rate, settings.topic_partitions), args.events,
                        settings.worker_batch_size, after_batch)
    await agent.fun(stream)
    if args.tracemalloc:
        tracemalloc.stop()
    shutil.rmtree(home, ignore_errors=True)
    caches = {}
    for step in app.clickstream_pipeline.steps:  # the enrichment caches, filled and hit
        owner = getattr(step.run, "__self__", None)
        for name in ("_url_parts", "_source_cols"):
            info = getattr(getattr(owner, name, None), "cache_info", None)
            if info is not None:
                caches[name] = info()._asdict()
    print("enrichment caches:", caches)
    swept = {} if sweep is None else {"trimmed": sweep.trimmed, "deleted": sweep.deleted,
                                      "passes": sweep.passes}
    return {"events": args.events, "store": args.store, "rate": args.rate,
            "simulated_hours": round(args.events / args.rate / 3600, 1),
            "traffic_windows": not args.no_traffic, "sweep": swept, "caches": caches,
            "samples": samples}


def rocksdb_mb(app: Any) -> dict[str, float]:
    """Memtables and block caches of every RocksDB database the tables opened."""
    mem = cache = 0
    for table in app.tables.values():
        for db in getattr(table.data, "_dbs", {}).values():
            mem += db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0
            cache += db.property_int_value("rocksdb.block-cache-usage") or 0
    if not mem and not cache:
        return {}
    return {"rocksdb_memtables_mb": round(mem / 2**20, 1),
            "rocksdb_block_cache_mb": round(cache / 2**20, 1)}


def rss_mb_self() -> float:
    import os
    return rss_mb(os.getpid()) or 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--every", type=int, default=100_000, help="sample every this many events")
    ap.add_argument("--store", default="memory://", help="memory:// or rocksdb://")
    ap.add_argument("--rate", type=float, default=500.0,
                    help="simulated events per second (event and receive time)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also trace Python allocations (slow: ~2-3x)")
    ap.add_argument("--sweep-seconds", type=float, default=0.0,
                    help="simulated seconds between state sweeps (default: the worker's timer)")
    ap.add_argument("--no-sweep", action="store_true", help="never sweep visitor state")
    ap.add_argument("--no-traffic", action="store_true", help="without traffic windows")
    ap.add_argument("--name", default="", help="result name suffix")
    args = ap.parse_args()
    result = asyncio.run(run(args))
    s = result["samples"]
    if len(s) >= 2:
        first, last = s[0]["rss_mb"], s[-1]["rss_mb"]
        result["rss_growth_after_first_sample"] = round((last - first) / first, 3)
        print(f"RSS {first:.0f} -> {last:.0f} MB ({(last - first) / first:+.0%}) from "
              f"{s[0]['events']:,} to {s[-1]['events']:,} events")
    print(f"wrote {write_result(result_name(args), result)}")


def result_name(args: argparse.Namespace) -> str:
    return "worker_memory" + (f"_{args.name}" if args.name else "")


if __name__ == "__main__":
    main()

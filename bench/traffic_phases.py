"""Where the event -> live latency goes: raw record -> its window's counter row in Kafka
(collector hand-off, worker batch, traffic commit), read back from the topics after a run.

For each raw record produced in the run, the first `<prefix>.traffic` counter message of
its partition whose version (the raw offset it counts up to) reaches the record's offset;
latency = that message's Kafka timestamp - the raw record's. The rest of the event -> live
latency is the sink (flush interval, inserts) and the live query.
"""

from __future__ import annotations

import bisect
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition


async def _read(bootstrap: str, topic: str, since_ms: int) -> list[tuple[int, int, int, bytes]]:
    """(partition, offset, timestamp ms, value) of every record of `topic` from since_ms."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        out = []
        while batch := await consumer.getmany(timeout_ms=1500, max_records=20_000):
            out += [(tp.partition, m.offset, m.timestamp, m.value or b"")
                    for tp, msgs in batch.items() for m in msgs if m.timestamp >= since_ms]
        return out
    finally:
        await consumer.stop()


def _counter_version(value: bytes) -> tuple[int, int] | None:
    """(raw partition, version) of a counter-row message (None: visitor hashes)."""
    first = orjson.loads(value.split(b"\n", 1)[0])
    if first.get("hashes_only"):
        return None
    return int(first["kafka_partition"]), int(first["version"])


async def worker_latency(bootstrap: str, prefix: str, since_ms: int) -> dict[str, Any] | None:
    """Percentiles (s) of raw record -> counter row in Kafka, for records since since_ms."""
    raw = await _read(bootstrap, f"{prefix}.raw", since_ms)
    rows = await _read(bootstrap, f"{prefix}.traffic", since_ms)
    reached: dict[int, list[tuple[int, int]]] = {}  # partition -> (version, ts) by version
    for _, _, ts, value in rows:
        counted = _counter_version(value)
        if counted is not None:
            reached.setdefault(counted[0], []).append((counted[1], ts))
    firsts: dict[int, tuple[list[int], list[int]]] = {}
    for p, pairs in reached.items():
        pairs.sort()
        earliest, soonest = [], float("inf")
        for _, ts in reversed(pairs):  # the earliest message at or above each version
            soonest = min(soonest, ts)
            earliest.append(int(soonest))
        firsts[p] = ([v for v, _ in pairs], earliest[::-1])
    latencies = []
    for p, offset, ts, _ in raw:
        versions, earliest = firsts.get(p, ([], []))
        i = bisect.bisect_left(versions, offset)
        if i < len(versions):
            latencies.append((earliest[i] - ts) / 1000)
    if not latencies:
        return None
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 3)

    return {"p50": pct(0.5), "p99": pct(0.99), "records": len(latencies),
            "of_records": len(raw)}

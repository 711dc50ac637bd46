"""The collector's Kafka side: records grouped per partition into batches, acks=all.

Records are partitioned with Kafka's default (murmur2) partitioner on the key, like a plain
`send(key=...)` would, but appended to one BatchBuilder per partition: far fewer futures and
coroutine hops per event than one `send()` each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from clickstream.settings import CollectorSettings
from producers.collector.records import BUNDLE_HEAD, BUNDLE_TAIL, Record, bundle_value


class Producer(Protocol):
    """What the delivery buffer needs; tests inject an in-memory fake."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send_batch(self, records: Sequence[Record]) -> None: ...
    async def reachable(self) -> bool: ...


class PartialDelivery(Exception):
    """Some records were not acknowledged; `failed` are the ones to send again."""

    def __init__(self, failed: list[Record], cause: BaseException) -> None:
        super().__init__(f"{len(failed)} records not acknowledged: {cause!r}")
        self.failed = failed
        self.cause = cause


#: keys per round of the partition-hash cache: at most twice this many are kept (~150 B
#: each); 200,000 in one dict grew the collector ~1 MB a minute for half an hour in the soak
HASH_ROUND_KEYS = 16_384


class KafkaSink:
    """`send_batch` returns only when Kafka has acknowledged every record (acks=all)."""

    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        # key -> murmur2 (10 µs in Python): this round's keys, and the last round's; a key
        # used again moves up, one unused for a whole round goes (bounded, recent keys kept)
        self._hashes: dict[bytes, int] = {}
        self._old_hashes: dict[bytes, int] = {}

    async def start(self) -> None:
        producer = self.new_producer()
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer

    def new_producer(self) -> AIOKafkaProducer:
        settings = self.settings
        # Big batches: fewer round trips per partition. Kafka's default broker limit
        # (message.max.bytes) is 1,048,588; one record (a body plus headers) must always fit.
        batch_size = max(1_000_000, 2 * settings.collector_max_body_bytes + 64 * 1024)
        return AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            linger_ms=2,
            max_batch_size=batch_size,
            max_request_size=max(1024 * 1024, batch_size + 64 * 1024),
            request_timeout_ms=10_000,
            retry_backoff_ms=200,
            compression_type=settings.kafka_compression_type,
            # Idempotence needs InitProducerId, which the embedded broker rejects.
            enable_idempotence=not settings.embedded_broker,
        )

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("producer not started")
        return self._producer

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    def _hash(self, key: bytes) -> int:
        h = self._hashes.get(key)
        if h is None:
            h = self._old_hashes.pop(key, None)
            if h is None:
                h = murmur2(key) & 0x7FFFFFFF
            if len(self._hashes) >= HASH_ROUND_KEYS:
                self._old_hashes, self._hashes = self._hashes, {}
            self._hashes[key] = h
        return h

    async def send_batch(self, records: Sequence[Record]) -> None:
        producer = self.producer
        partitions: dict[str, list[int]] = {}
        groups: dict[tuple[str, int], list[Record]] = defaultdict(list)
        for rec in records:
            parts = partitions.get(rec.topic)
            if parts is None:
                parts = partitions[rec.topic] = sorted(await producer.partitions_for(rec.topic))
            groups[rec.topic, parts[self._hash(rec.key) % len(parts)]].append(rec)
        # Partitions progress concurrently: a partition's next batch waits (in aiokafka)
        # until its previous one is sent, and under HTTP load each wait costs a full turn
        # of the event loop.
        results = await asyncio.gather(*(self._send_partition(topic, partition, recs)
                                         for (topic, partition), recs in groups.items()))
        failed = [rec for recs, _ in results for rec in recs]
        if failed:
            cause = next(exc for _, exc in results if exc is not None)
            raise PartialDelivery(failed, cause)

    def _units(self, topic: str, recs: list[Record]) -> list[tuple[bytes, bytes, list[Record]]]:
        """(key, value, records it carries): raw records bundled up to the bundle size (a
        bundle keeps the first record's key; all of them map to this partition anyway)."""
        limit = self.settings.collector_bundle_bytes
        if topic != self.settings.topic("raw") or not limit or len(recs) == 1:
            return [(r.key, r.value, [r]) for r in recs]
        units: list[tuple[bytes, bytes, list[Record]]] = []
        members: list[Record] = []
        size = len(BUNDLE_HEAD) + len(BUNDLE_TAIL)
        for rec in recs:
            if members and size + len(rec.value) + 1 > limit:
                units.append(self._unit(members))
                members, size = [], len(BUNDLE_HEAD) + len(BUNDLE_TAIL)
            members.append(rec)
            size += len(rec.value) + 1
        units.append(self._unit(members))
        return units

    @staticmethod
    def _unit(members: list[Record]) -> tuple[bytes, bytes, list[Record]]:
        if len(members) == 1:
            return members[0].key, members[0].value, members
        return members[0].key, bundle_value([m.value for m in members]), members

    async def _send_partition(self, topic: str, partition: int, recs: list[Record]
                              ) -> tuple[list[Record], BaseException | None]:
        """Send one partition's records in as few batches as fit; returns what failed."""
        producer = self.producer
        units = self._units(topic, recs)
        pending: list[tuple[asyncio.Future[object], list[Record]]] = []
        failed: list[Record] = []
        cause: BaseException | None = None
        start = 0
        while start < len(units):
            batch = producer.create_batch()
            end = start
            while end < len(units) and batch.append(
                    key=units[end][0], value=units[end][1], timestamp=None) is not None:
                end += 1
            if end == start:  # cannot happen: batch_size is above any record's size
                raise ValueError(f"record of {len(units[start][1])} bytes too large")
            carried = [r for unit in units[start:end] for r in unit[2]]
            try:
                fut = await producer.send_batch(batch, topic, partition=partition)
            except Exception as exc:
                failed += carried
                cause = exc
            else:
                pending.append((fut, carried))
            start = end
        results = await asyncio.gather(*(f for f, _ in pending), return_exceptions=True)
        for (_, batch_recs), result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                failed += batch_recs
                cause = result
        return failed, cause

    async def reachable(self) -> bool:
        """Cluster metadata answers within 2 s."""
        if self._producer is None:
            return False
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), 2.0)
        except Exception:
            return False
        return True

"""The worker's outputs as whole record batches, one future per batch.

`producer.send()` costs a coroutine, a future and a partitioner call per record; a batch of
the worker writes hundreds of records (rows, changelog states), so that was a sixth of its
CPU. Records are appended to aiokafka `BatchBuilder`s for an explicit partition instead
(as the collector does, producers/collector/kafka_out.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

Record = tuple[bytes | None, bytes | None]  # key, value (None: a tombstone)


class BatchSender:
    """Appends records per (topic, partition) and sends them as batches."""

    def __init__(self, app: Any) -> None:
        self.app = app  # a faust.App: its producer is started by the worker
        self._partitions: dict[str, int] = {}

    @property
    def producer(self) -> Any:
        return self.app.producer._ensure_producer()  # the aiokafka producer Faust runs

    async def partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = self._partitions[topic] = len(await self.producer.partitions_for(topic))
        return count

    async def send(self, topic: str, partition: int, records: Iterable[Record]
                   ) -> list[asyncio.Future[Any]]:
        """Send `records` to `partition` (taken modulo the topic's partition count) in
        order; one future per batch, resolving to the batch's metadata (its first offset)."""
        producer = self.producer
        partition %= await self.partition_count(topic)
        futures: list[asyncio.Future[Any]] = []
        batch = producer.create_batch()
        appended = 0
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is not None:
                appended += 1
                continue
            if appended:  # full: send it and start the next one
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch, appended = producer.create_batch(), 0
                if batch.append(key=key, value=value, timestamp=None) is not None:
                    appended = 1
                    continue
            # larger than a whole batch: send() gives the usual error for it
            futures.append(await producer.send(topic, value, key=key, partition=partition))
        if appended:
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

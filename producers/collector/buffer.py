"""Bounded in-memory buffer between the HTTP side and Kafka.

A 202 means "in this buffer, and will be delivered": one task sends the head of the queue
to Kafka and removes records only once Kafka has acknowledged them, retrying (with backoff)
for as long as it takes. When the buffer is full the HTTP side answers 503 + Retry-After.
Delivery is at least once: a retry after a lost ack can duplicate a record, and the
pipeline deduplicates on event_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from itertools import islice
from operator import itemgetter

from producers.collector.kafka_out import PartialDelivery, Producer
from producers.collector.metrics import BUFFER_BYTES, BUFFER_EVENTS, DELIVERED, PRODUCE_ERRORS
from producers.collector.records import Record

log = logging.getLogger(__name__)


def size_of(records: list[Record]) -> int:
    """Bytes a list of records holds (values and keys), counted in C loops."""
    return sum(map(len, map(_VALUE, records))) + sum(map(len, map(_KEY, records)))


def events_in(records: list[Record]) -> int:
    return sum(map(_EVENTS, records))


_KEY, _VALUE, _EVENTS = itemgetter(1), itemgetter(2), itemgetter(3)


class DeliveryBuffer:
    def __init__(self, producer: Producer, *, max_events: int, max_bytes: int,
                 chunk: int = 25_000, max_backoff: float = 2.0) -> None:
        self.producer = producer
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.chunk = chunk
        self.max_backoff = max_backoff
        self.accepting = True
        self.connected = False  # the producer has started
        self.failing = False  # the last delivery attempt failed
        self.delivered = 0
        self._queue: deque[Record] = deque()
        self._bytes = 0
        self._events = 0  # events in the queue (a record can carry several)
        self._wake = asyncio.Event()
        self._stopping = False
        self._stop = asyncio.Event()  # interrupts backoff sleeps
        self._task: asyncio.Task[None] | None = None
        BUFFER_EVENTS.set_function(lambda: self._events)
        BUFFER_BYTES.set_function(lambda: self._bytes)

    def __len__(self) -> int:
        """Events buffered."""
        return self._events

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def has_room(self) -> bool:
        return self._events < self.max_events and self._bytes < self.max_bytes

    def offer(self, records: list[Record]) -> bool:
        """Take all the records, or none (False: full or stopping)."""
        if not self.accepting:
            return False
        size = size_of(records)
        count = events_in(records)
        if self._queue and (self._events + count > self.max_events
                            or self._bytes + size > self.max_bytes):
            return False
        self._queue.extend(records)
        self._bytes += size
        self._events += count
        self._wake.set()
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="delivery")

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            if self._stopping and not self._queue:
                return
            if not self.connected:
                try:
                    await self.producer.start()
                    self.connected = True
                except Exception as exc:
                    self._failed(f"cannot connect to Kafka: {exc!r}")
                    await self._pause(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            chunk = list(islice(self._queue, self.chunk))
            try:
                await self.producer.send_batch(chunk)
            except Exception as exc:
                failed = exc.failed if isinstance(exc, PartialDelivery) else chunk
                self._done(chunk, failed)
                self._failed(f"{len(failed)} of {len(chunk)} records not delivered: {exc!r}")
                await self._pause(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            self._done(chunk, [])
            if self.failing:
                log.info("Kafka delivery recovered; %d events buffered", self._events)
            self.failing = False
            backoff = 0.05

    async def _pause(self, seconds: float) -> None:
        """Back off; a stop cuts the pause short (the loop then ends if nothing is left)."""
        if self._stopping:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _done(self, chunk: list[Record], failed: list[Record]) -> None:
        """Drop the chunk from the head of the queue, putting `failed` back in order."""
        for _ in range(len(chunk)):
            self._queue.popleft()
        self._queue.extendleft(reversed(failed))
        self._bytes += size_of(failed) - size_of(chunk)
        delivered = events_in(chunk) - events_in(failed)
        self._events -= delivered
        self.delivered += delivered
        DELIVERED.inc(delivered)

    def _failed(self, what: str) -> None:
        PRODUCE_ERRORS.inc()
        if not self.failing:
            log.warning("Kafka delivery failing, buffering (%d events): %s",
                        self._events, what)
        self.failing = True

    async def drain(self, timeout: float) -> bool:
        """Stop accepting, deliver what is buffered within `timeout` s, stop the producer.
        True when nothing was left behind."""
        self.accepting = False
        self._stopping = True
        self._stop.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        left = self._events
        if left:
            log.error("stopping with %d events not delivered to Kafka", left)
        if self.connected:
            with contextlib.suppress(Exception):
                await self.producer.stop()
            self.connected = False
        return left == 0

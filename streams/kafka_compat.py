"""Compatibility layer for the embedded Tansu broker (off for real Kafka).

Tansu 0.6.0 (memory storage) answers ListOffsets(latest) with the first offset of the last
record batch + 1 instead of the last offset + 1. Faust trusts that figure as the changelog
"highwater", stops table recovery early and comes back with lost updates. `TrueEndOffsets`
corrects it: from the reported end - 1 it fetches forward until nothing more comes back,
and returns the last offset seen + 1. The `tansu://` Faust transport uses it.

Both of the worker's transports (`tansu://`, and `clickstream+kafka://` for real Kafka) also
close a loss in Faust + aiokafka that does not depend on the broker: records fetched while a
rebalance or recovery stops the flow are dropped, and Faust then seeks each partition back to
its committed offset. aiokafka's `seek_to_committed` skips partitions with no commit (or a
commit of 0), so those stay past the dropped records, which are never processed. Found by an
integration test that restarts the worker while a new partition gets its first records.
`_ReseekConsumerThread` sends such partitions of the agents' topics back to their start
(`auto_offset_reset` is "earliest"); every write downstream is idempotent, so a re-read of a
partition's first, uncommitted records is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.drivers import by_url as _transports

log = logging.getLogger(__name__)


class TrueEndOffsets:
    """Reads true end offsets with its own group-less consumer."""

    def __init__(self, bootstrap: str, *, max_seconds: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.max_seconds = max_seconds
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                fetch_max_wait_ms=20, group_id=None, auto_offset_reset="earliest",
                request_timeout_ms=2000, connections_max_idle_ms=60_000,
            )
            await self._consumer.start()
        return self._consumer

    async def correct(self, reported: Mapping[Any, int]) -> dict[Any, int]:
        """Map of partition -> reported end to partition -> true end."""
        todo = {tp: end for tp, end in reported.items() if end and end > 0}
        result = dict(reported)
        if not todo:
            return result
        async with self._lock:
            consumer = await self._ensure()
            tps = {tp: TopicPartition(tp.topic, tp.partition) for tp in todo}
            wanted = set(tps.values())
            assigned = consumer.assignment()
            if not wanted <= assigned:  # grow only: each assign() logs the whole set at INFO
                assigned = assigned | wanted
                consumer.assign(list(assigned))
                consumer.pause(*assigned)
            consumer.resume(*wanted)
            for tp, end in todo.items():
                consumer.seek(tps[tp], end - 1)
            last: dict[TopicPartition, int] = {}
            deadline = time.monotonic() + self.max_seconds
            empty_rounds = 0
            while empty_rounds < 2 and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=50, max_records=100_000)
                if not any(batch.values()):
                    empty_rounds += 1
                    continue
                empty_rounds = 0
                for ktp, records in batch.items():
                    if records:
                        last[ktp] = max(last.get(ktp, -1), records[-1].offset)
            consumer.pause(*wanted)
        for tp, end in todo.items():
            seen = last.get(tps[tp], end - 1)
            result[tp] = max(end, seen + 1)
            if result[tp] != end:
                log.debug("true end of %s is %d (broker said %d)", tp, result[tp], end)
        return result

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        consumer = await self._ensure()
        reported = await consumer.end_offsets(list(partitions))
        return await self.correct(reported)

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


#: Longest wait of the worker's fetches on Tansu (ms). Faust hard-codes 1,500, and Tansu
#: answers a fetch that found no records after about half of its wait even when records
#: arrive meanwhile, so each idle fetch would add ~0.7 s to the live view's freshness.
FETCH_WAIT_MS = 200


async def seek_to_committed_or_start(consumer: AIOKafkaConsumer,
                                     committing: Callable[[str], bool]) -> dict[Any, int | None]:
    """Seek every assigned partition to its committed offset, and those of the topics whose
    offsets the group commits (`committing(topic)`) that have no commit to their start."""
    committed: dict[Any, int | None] = await consumer.seek_to_committed()
    uncommitted = [tp for tp, offset in committed.items()
                   if (offset is None or offset <= 0) and committing(tp.topic)]
    if uncommitted:
        log.debug("no committed offset: reading %s from the start", uncommitted)
        await consumer.seek_to_beginning(*uncommitted)
    return committed


class _ReseekConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[Any, int]:
        # the agents' topics: the ones whose offsets Faust commits (not changelogs)
        return await self.call_thread(seek_to_committed_or_start, self._ensure_consumer(),
                                      self.app.topics.acks_enabled_for)


class _TansuConsumerThread(_ReseekConsumerThread):
    _true_ends: TrueEndOffsets | None = None

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(self.app, "fetch_wait_ms", None) or FETCH_WAIT_MS
        consumer._fetch_max_wait_ms = int(wait)  # read when the consumer starts its fetcher
        return consumer

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        reported = await super()._highwaters(partitions)
        if self._true_ends is None:
            urls = self.app.conf.broker_consumer
            self._true_ends = TrueEndOffsets(",".join(f"{u.host}:{u.port}" for u in urls))
        return await self._true_ends.correct(reported)

    async def on_thread_stop(self) -> None:
        if self._true_ends is not None:
            await self._true_ends.close()
            self._true_ends = None
        await super().on_thread_stop()


class _TansuConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _TansuConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _KafkaConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ReseekConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with true end offsets: broker URL `tansu://host:port`."""

    Consumer = _TansuConsumer


class KafkaTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport for real Kafka: broker URL `clickstream+kafka://host:port`."""

    Consumer = _KafkaConsumer


def register() -> None:
    """Make the worker's broker URL schemes resolve to these transports."""
    aliases = _transports.__self__.aliases  # type: ignore[attr-defined]
    aliases.setdefault("tansu", f"{__name__}:Transport")
    aliases.setdefault("clickstream+kafka", f"{__name__}:KafkaTransport")

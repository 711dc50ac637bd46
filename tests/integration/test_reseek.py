"""Records Faust drops during a rebalance must be read again, also from partitions that have
no committed offset yet (streams/kafka_compat.py). The worker-level case is in
tests/integration/test_attribution_stream.py (a restart while a new partition gets its first
records); this is the same loss at the consumer, deterministically."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from clickstream.embedded_broker import EmbeddedBroker
from streams.kafka_compat import seek_to_committed_or_start

pytestmark = pytest.mark.integration


async def _offsets_read_again(bootstrap: str, reseek: bool) -> dict[int, list[int]]:
    """Partition 1: three records, two of them committed. Partition 2: two records, never
    committed. Partition 3: one record, of a topic the group does not commit. The consumer
    fetches everything (Faust would drop it: the flow stopped), then seeks back."""
    topic, other, group = f"rs-{uuid.uuid4().hex[:8]}", f"rs-o-{uuid.uuid4().hex[:8]}", "rs-g"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 4, 1), NewTopic(other, 4, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    for partition, n in ((1, 3), (2, 2)):
        for i in range(n):
            await producer.send_and_wait(topic, b"%d" % i, partition=partition)
    await producer.send_and_wait(other, b"x", partition=3)
    await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=f"{group}-{topic}",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(4)] + [TopicPartition(other, 3)]
        consumer.assign(tps)
        seen = 0
        for _ in range(50):
            seen += sum(len(r) for r in (await consumer.getmany(timeout_ms=200)).values())
            if seen == 6:
                break
        assert seen == 6
        await consumer.commit({TopicPartition(topic, 1): OffsetAndMetadata(2, "")})
        if reseek:
            await seek_to_committed_or_start(consumer, lambda t: t == topic)
        else:
            await consumer.seek_to_committed()
        again: dict[int, list[int]] = {}
        for _ in range(10):
            batch: dict[Any, Any] = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                again.setdefault(tp.partition + (10 if tp.topic == other else 0), []).extend(
                    r.offset for r in records)
        return again
    finally:
        await consumer.stop()


def test_partitions_without_a_commit_are_read_from_their_start(broker: EmbeddedBroker) -> None:
    # aiokafka alone: partition 2's records are never read again
    assert asyncio.run(_offsets_read_again(broker.bootstrap, reseek=False)) == {1: [2]}
    # ours: from the commit, and from the start where there is none (only the topic the
    # group commits: partition 3 of the other topic stays where it was)
    assert asyncio.run(_offsets_read_again(broker.bootstrap, reseek=True)) == {1: [2],
                                                                               2: [0, 1]}

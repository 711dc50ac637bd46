"""`clickstream topics create`: partitions, replication factor, retention and compaction come
from the settings; the worker's changelog topics are compacted and co-partitioned."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from clickstream.embedded_broker import EmbeddedBroker
from clickstream.settings import CommonSettings
from clickstream.topics import PIPELINE_TOPICS, WORKER_TABLES, create_topics, topic_specs


def test_specs_follow_settings() -> None:
    settings = CommonSettings(kafka_bootstrap="k1:9092,k2:9092,k3:9092", broker_profile="kafka",
                              topic_partitions=24, topic_retention_hours=48,
                              topic_raw_retention_hours=6)
    specs = {s.name: s for s in topic_specs(settings, worker_id="w")}
    assert len(specs) == len(PIPELINE_TOPICS) + len(WORKER_TABLES)
    assert {s.partitions for s in specs.values()} == {24}
    assert {s.replication_factor for s in specs.values()} == {3}
    assert specs["clickstream.raw"].config["retention.ms"] == str(6 * 3_600_000)
    assert specs["clickstream.events"].config["retention.ms"] == str(48 * 3_600_000)
    assert specs["clickstream.events"].config["cleanup.policy"] == "delete"
    assert specs["clickstream.events"].config["min.insync.replicas"] == "2"
    for table in WORKER_TABLES:
        changelog = specs[f"w-{table}-changelog"]
        assert changelog.config["cleanup.policy"] == "compact"
        assert "retention.ms" not in changelog.config


def test_embedded_broker_gets_one_replica() -> None:
    settings = CommonSettings(broker_profile="embedded", topic_replication_factor=3)
    assert {s.replication_factor for s in topic_specs(settings, "w")} == {1}


@pytest.mark.integration
def test_create_on_a_real_broker(broker: EmbeddedBroker, unique: str) -> None:
    """Against the embedded Kafka-protocol broker: every topic is created with the
    configured partitions; a single broker caps the replication factor; a second run
    creates nothing."""
    settings = CommonSettings(kafka_bootstrap=broker.bootstrap, broker_profile="kafka",
                              topic_prefix=unique, topic_partitions=3)

    async def scenario() -> tuple[list[str], list[str], dict[str, int]]:
        first = await create_topics(settings, worker_id=f"{unique}-w")
        again = await create_topics(settings, worker_id=f"{unique}-w")
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(first)
        finally:
            await admin.close()
        return first, again, {t["topic"]: len(t["partitions"]) for t in described}

    first, again, partitions = asyncio.run(scenario())
    assert sorted(first) == sorted(s.name for s in topic_specs(settings, f"{unique}-w"))
    assert again == []
    assert set(partitions.values()) == {3}

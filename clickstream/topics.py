"""The pipeline's Kafka topics and their creation.

`clickstream topics create` creates every pipeline topic with the configured partitions,
replication factor and retention, and the worker's changelog topics compacted, before any
service starts (production brokers run with `auto.create.topics.enable=false`). The raw topic,
the worker's state changelogs and the tables they feed must have the same partition count:
one visitor lives in one partition of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field, replace

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from clickstream.settings import CommonSettings, WorkerSettings

log = logging.getLogger(__name__)

#: Topic suffixes (full name: <prefix>.<suffix>) and what flows through them.
PIPELINE_TOPICS: dict[str, str] = {
    "raw": "collector envelopes (event + receive time, IP, UA); short retention, holds IPs",
    "events": "validated, enriched events (no IP)",
    "invalid": "dead letters: processor, version, reason, truncated payload",
    "sessions": "session rows, re-emitted as sessions grow",
    "traffic": "real-time traffic windows",
    "conversions": "one record per attributed conversion (path length, time to convert)",
    "attribution": "conversion credits per model and touchpoint",
    "identity": "internal: touchpoints and conversions of identified users, keyed by site + "
    "user (cross-device attribution)",
}

#: Faust tables of the worker (streams/app.py, streams/identity.py, streams/traffic); Faust
#: names their changelog topics `<worker_id>-<table>-changelog`.
WORKER_TABLES: tuple[str, ...] = ("visitor-state", "user-state", "traffic-windows")

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class TopicSpec:
    """One topic as this project creates it."""

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


def changelog_topic(worker_id: str, table: str) -> str:
    return f"{worker_id}-{table}-changelog"


def topic_specs(settings: CommonSettings, worker_id: str | None = None) -> list[TopicSpec]:
    """Every topic of the pipeline: the data topics (time retention, `delete` policy) and the
    worker's changelog topics (compacted: only the latest state per key is needed)."""
    rf = 1 if settings.embedded_broker else settings.topic_replication_factor
    parts = settings.topic_partitions
    # With replication 3, acks=all survives one broker down; min ISR 1 below 3 replicas.
    min_isr = {"min.insync.replicas": str(2 if rf >= 3 else 1)}
    specs = []
    for suffix in PIPELINE_TOPICS:
        hours = (settings.topic_raw_retention_hours if suffix == "raw"
                 else settings.topic_retention_hours)
        specs.append(TopicSpec(settings.topic(suffix), parts, rf, {
            "cleanup.policy": "delete", "retention.ms": str(hours * HOUR_MS), **min_isr}))
    wid = worker_id or WorkerSettings().worker_id
    for table in WORKER_TABLES:
        specs.append(TopicSpec(changelog_topic(wid, table), parts, rf, {
            "cleanup.policy": "compact", "min.compaction.lag.ms": str(HOUR_MS), **min_isr}))
    return specs


async def create_topics(settings: CommonSettings, *, timeout: float = 30.0,
                        worker_id: str | None = None) -> list[str]:
    """Create the pipeline topics that do not exist yet; return the names created.

    Existing topics are left as they are (partitions are never changed here: adding
    partitions to a keyed topic moves visitors to other partitions and their state with it).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        brokers = len((await admin.describe_cluster()).get("brokers") or []) or 1
        missing = [s for s in topic_specs(settings, worker_id) if s.name not in existing]
        if missing and missing[0].replication_factor > brokers:
            # A single-broker cluster (compose, a test broker) cannot hold 3 replicas.
            log.warning("replication factor %d > %d broker(s): creating topics with %d",
                        missing[0].replication_factor, brokers, brokers)
            missing = [replace(s, replication_factor=brokers, config={
                **s.config, "min.insync.replicas": "1"}) for s in missing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([
                    NewTopic(s.name, s.partitions, s.replication_factor,
                             topic_configs=dict(s.config))
                    for s in missing
                ])
            log.info("created topics %s", ", ".join(s.name for s in missing))
        return [s.name for s in missing]
    finally:
        await admin.close()


def create_topics_sync(settings: CommonSettings) -> list[str]:
    return asyncio.run(create_topics(settings))

"""The pipeline's Kafka topics and their creation."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from clickstream.settings import CommonSettings

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


async def create_topics(settings: CommonSettings, *, timeout: float = 30.0) -> list[str]:
    """Create the pipeline topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.topic(s) for s in PIPELINE_TOPICS]
        missing = [t for t in wanted if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(t, settings.topic_partitions, 1) for t in missing]
                )
            log.info("created topics %s", ", ".join(missing))
        return missing
    finally:
        await admin.close()


def create_topics_sync(settings: CommonSettings) -> list[str]:
    return asyncio.run(create_topics(settings))

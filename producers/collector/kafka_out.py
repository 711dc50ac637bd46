"""The collector's Kafka side: keyed envelopes to clickstream.raw, dead letters to .invalid."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from clickstream.settings import CollectorSettings
from producers.collector.metrics import IN_FLIGHT, PRODUCE_ERRORS


def partition_key(event: Any, ip: str, ua: str) -> bytes:
    """site_id + visitor: all events of one visitor land in one partition, in order.
    Cookieless events (no anonymous_id) are keyed by a hash of IP and user agent, which
    groups them exactly as the stream worker's daily-salted visitor id will."""
    if not isinstance(event, dict):
        return b""
    site = event.get("site_id")
    site = site if isinstance(site, str) else ""
    anon = event.get("anonymous_id")
    if isinstance(anon, str) and anon:
        return f"{site}|{anon}".encode()
    digest = hashlib.blake2b(f"{ip}\x1f{ua}".encode(), digest_size=8).hexdigest()
    return f"{site}|~{digest}".encode()


class RawProducer:
    """Produces with acks=all; `send_batch` returns only when Kafka has every record."""

    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.raw_topic = settings.topic("raw")
        self.invalid_topic = settings.topic("invalid")
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        settings = self.settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            linger_ms=2,
            max_batch_size=256 * 1024,
            request_timeout_ms=10_000,
            # Idempotence needs InitProducerId, which the embedded broker rejects.
            enable_idempotence=not settings.embedded_broker,
        )
        await self._producer.start()

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("producer not started")
        return self._producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send_batch(self, records: Sequence[tuple[str, bytes, dict[str, Any]]]) -> None:
        """records: (topic kind 'raw'|'invalid', key, value) -> wait for all acks."""
        futures = []
        IN_FLIGHT.inc(len(records))
        try:
            for kind, key, value in records:
                topic = self.raw_topic if kind == "raw" else self.invalid_topic
                futures.append(await self.producer.send(topic, orjson.dumps(value), key=key))
            await asyncio.gather(*futures)
        except Exception:
            PRODUCE_ERRORS.inc()
            raise
        finally:
            IN_FLIGHT.dec(len(records))

    async def reachable(self) -> bool:
        try:
            await self.producer.client.fetch_all_metadata()
        except Exception:
            return False
        return True

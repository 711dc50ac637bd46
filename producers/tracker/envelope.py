"""The raw-topic record the collector writes, re-made for trusted backends writing to Kafka.

Mirrors `producers.collector.kafka_out` (envelope and partition key) without importing it:
that module pulls in aiokafka and registers the collector's Prometheus metrics in the host
application. `tests/unit/test_tracker_envelope.py` checks both keys agree.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

ENVELOPE_VERSION = 1


def partition_key(event: dict[str, Any], ip: str, ua: str) -> bytes:
    """site_id|anonymous_id, or site_id|~hash(ip, ua) for cookieless events (as the collector)."""
    site = event.get("site_id")
    site = site if isinstance(site, str) else ""
    anon = event.get("anonymous_id")
    if isinstance(anon, str) and anon:
        return f"{site}|{anon}".encode()
    digest = hashlib.blake2b(f"{ip}\x1f{ua}".encode(), digest_size=8).hexdigest()
    return f"{site}|~{digest}".encode()


def envelope(event: dict[str, Any], *, received_at: int, ip: str = "",
             ua: str = "") -> dict[str, Any]:
    return {"v": ENVELOPE_VERSION, "received_at": received_at, "ip": ip, "ua": ua, "event": event}


def encode_record(event: dict[str, Any], *, received_at: int, ip: str = "",
                  ua: str = "") -> tuple[bytes, bytes]:
    """(key, value) of one clickstream.raw record."""
    value = orjson.dumps(envelope(event, received_at=received_at, ip=ip, ua=ua))
    return partition_key(event, ip, ua), value

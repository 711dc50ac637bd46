"""The raw-topic record the collector writes, made by a trusted backend writing to Kafka.

The key comes from the collector's own function (`producers.collector.records`, a light
module: no aiokafka, no metrics), so a visitor's events share a partition whichever way
they come in.
"""

from __future__ import annotations

from typing import Any

import orjson

from producers.collector.records import partition_key

ENVELOPE_VERSION = 1

__all__ = ["ENVELOPE_VERSION", "encode_record", "envelope", "partition_key"]


def envelope(event: dict[str, Any], *, received_at: int, ip: str = "",
             ua: str = "") -> dict[str, Any]:
    """{"v": 1, "received_at": epoch ms, "ip", "ua", "event"}: what the stream worker reads."""
    return {"v": ENVELOPE_VERSION, "received_at": received_at, "ip": ip, "ua": ua, "event": event}


def encode_record(event: dict[str, Any], *, received_at: int, ip: str = "",
                  ua: str = "") -> tuple[bytes, bytes]:
    """(key, value) of one clickstream.raw record."""
    value = orjson.dumps(envelope(event, received_at=received_at, ip=ip, ua=ua))
    return partition_key(event, ip, ua), value

"""Dead-letter envelope: every rejected event, with who rejected it and why.

A bad event is never silently dropped: it goes to `clickstream.invalid` (and from there to
ClickHouse `invalid_events`) as this record. The payload is truncated and never holds an IP.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

MAX_PAYLOAD_CHARS = 4096
_NS = uuid.UUID("5b1c0a8e-6a43-4a4f-9a6f-2f3f1de0b5a1")


def truncate_payload(payload: bytes | str | Any) -> str:
    if isinstance(payload, bytes):
        text = payload[: MAX_PAYLOAD_CHARS * 4].decode("utf-8", "replace")
    elif isinstance(payload, str):
        text = payload
    else:
        text = orjson.dumps(payload, default=str).decode()
    return text[:MAX_PAYLOAD_CHARS]


def dead_letter(
    *, processor: str, version: str, step: str, reason: str, payload: bytes | str | Any,
    received_at: str, failed_at: str, site_id: str = "", origin: str,
) -> dict[str, Any]:
    """Build a dead-letter record. `origin` identifies the input deterministically (e.g.
    topic/partition/offset/index) so a replay produces the same dead_letter_id."""
    return {
        "dead_letter_id": str(uuid.uuid5(_NS, origin)),
        "processor": processor,
        "processor_version": version,
        "step": step,
        "reason": reason[:1000],
        "site_id": site_id[:64],
        "received_at": received_at,
        "failed_at": failed_at,
        "payload": truncate_payload(payload),
    }

"""Edge validation: request body -> list of items; one item -> None (valid) or a reason."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from producers.collector.errors import ApiError
from schemas.event import Event, describe_validation_error
from schemas.fastcheck import plainly_valid

MAX_REASON = 1000  # as the dead letter keeps
JSON_TYPES = ("application/json", "text/plain", "application/octet-stream", "")


def check_content_type(content_type: str) -> None:
    """JSON (fetch), text/plain (sendBeacon with a string; no CORS preflight), or none."""
    if content_type.lower() not in JSON_TYPES:
        raise ApiError(415, "unsupported_media_type",
                       f"Content-Type {content_type!r}: send application/json or text/plain")


def parse_batch(body: bytes, max_events: int) -> list[Any]:
    """Body -> list of (unvalidated) event items. A JSON array, {"events": [...]}, or one
    event object. Raises ApiError 400 when unparsable, 413 when over max_events."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc}") from None
    if isinstance(doc, dict) and "events" in doc:
        doc = doc["events"]
    elif isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise ApiError(400, "malformed_batch",
                       'expected a JSON array of events or {"events": [...]}')
    if len(doc) > max_events:
        raise ApiError(413, "too_many_events",
                       f"{len(doc)} events in one request; the limit is {max_events}",
                       events=len(doc))
    return doc


def event_problem(item: Any) -> str | None:
    """None when the item is a valid contract-v1 event, else the dead-letter reason."""
    if not isinstance(item, dict):
        return f"invalid: event must be a JSON object, got {_json_type(item)}"
    if plainly_valid(item):
        return None
    try:
        Event.model_validate(item)
    except ValidationError as exc:
        return f"invalid: {describe_validation_error(exc)}"[:MAX_REASON]
    except (ValueError, TypeError, ArithmeticError) as exc:  # a validator hit an edge case
        return f"invalid: {type(exc).__name__}: {exc}"[:300]
    return None


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)

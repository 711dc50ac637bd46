"""Tracker calls -> contract-v1 event dicts, checked by the same pydantic model as the collector."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError

from producers.tracker.errors import TrackerError
from schemas.event import Event, SiteId, describe_validation_error, parse_client_ts

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SITE_ID = TypeAdapter(SiteId)

Timestamp = datetime | int | float
Amount = int | float | Decimal


def now_ms() -> int:
    return (datetime.now(UTC) - _EPOCH) // timedelta(milliseconds=1)


def to_epoch_ms(ts: Timestamp | None) -> int:
    """None -> now; datetime (naive = UTC) or epoch milliseconds -> int epoch ms."""
    if ts is None:
        return now_ms()
    try:
        dt = parse_client_ts(ts)
    except ValueError as exc:
        raise TrackerError(f"ts: {exc}", ("ts",)) from None
    if isinstance(ts, int):
        return ts
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def check_site_id(site_id: str) -> str:
    try:
        return _SITE_ID.validate_python(site_id)
    except ValidationError as exc:
        raise TrackerError(f"site_id: {exc.errors()[0]['msg']} (got {site_id!r})",
                           ("site_id",)) from None


def revenue_dict(amount: Amount, currency: str | None) -> dict[str, Any]:
    """{"amount": JSON number, "currency": "EUR"}. Floats are rounded to the contract's six
    decimals (0.1 + 0.2 would be rejected otherwise); a Decimal must already fit."""
    if isinstance(amount, bool) or not isinstance(amount, int | float | Decimal):
        raise TrackerError(f"revenue: must be a number, got {type(amount).__name__}",
                           ("revenue.amount",))
    if not currency or not isinstance(currency, str):
        raise TrackerError("currency: required with revenue (ISO 4217 code, e.g. EUR)",
                           ("revenue.currency",))
    number: int | float
    if isinstance(amount, Decimal):
        if not amount.is_finite():
            raise TrackerError("revenue: must be finite", ("revenue.amount",))
        number = int(amount) if amount == amount.to_integral_value() else float(amount)
        if Decimal(repr(number)) != amount:
            raise TrackerError(f"revenue: {amount} has too many digits to send exactly",
                               ("revenue.amount",))
    elif isinstance(amount, float):
        if not math.isfinite(amount):
            raise TrackerError("revenue: must be finite", ("revenue.amount",))
        number = round(amount, 6)
    else:
        number = amount
    return {"amount": number, "currency": currency.strip().upper()}


def build_event(type_: str, site_id: str, *, ts: Timestamp | None = None,
                props: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A validated event dict, ready for JSON. Fields that are None are left out."""
    event: dict[str, Any] = {"event_id": str(uuid.uuid4()), "type": type_, "site_id": site_id,
                             "ts": to_epoch_ms(ts)}
    event.update({k: v for k, v in fields.items() if v is not None})
    if props:
        if not isinstance(props, Mapping):
            raise TrackerError(f"props: must be a mapping, got {type(props).__name__}",
                               ("props",))
        event["props"] = dict(props)
    try:
        Event.model_validate(event)
    except ValidationError as exc:
        names = tuple(".".join(str(p) for p in err["loc"]) or "event" for err in exc.errors())
        raise TrackerError(f"invalid {type_}: {describe_validation_error(exc)}",
                           names) from None
    return event

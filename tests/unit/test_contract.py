"""Event contract v1: what is accepted, what is rejected and why."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.event import Event, parse_client_ts
from schemas.export import SCHEMA_FILE, render

EID = "6f1c2f38-3b1e-4c5e-9a53-5d0c1f2b7a10"


def ev(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"event_id": EID, "type": "pageview", "site_id": "shop",
                            "ts": 1763900000123, "url": "https://shop.example/"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not ...}


def test_epoch_millis_and_rfc3339_give_the_same_instant() -> None:
    a = Event.model_validate(ev(ts=1763900000123))
    b = Event.model_validate(ev(ts="2025-11-23T12:13:20.123Z"))
    c = Event.model_validate(ev(ts="2025-11-23T13:13:20.123+01:00"))
    assert a.ts == b.ts == c.ts == datetime(2025, 11, 23, 12, 13, 20, 123000, tzinfo=UTC)


def test_full_conversion_is_accepted() -> None:
    e = Event.model_validate(ev(
        type="conversion", name="purchase", anonymous_id="v1", user_id="u1",
        referrer="https://www.google.com/", title="Thanks", screen="390x844", lang="de-DE",
        revenue={"amount": 19.99, "currency": "EUR"}, props={"plan": "pro", "seats": 3,
                                                             "trial": False, "score": 1.5},
    ))
    assert e.revenue is not None and e.revenue.amount == Decimal("19.99")
    assert e.props == {"plan": "pro", "seats": 3, "trial": False, "score": 1.5}


@pytest.mark.parametrize("over, fragment", [
    ({"ts": "1763900000123"}, "RFC 3339"),          # number as string
    ({"ts": True}, "not a boolean"),
    ({"ts": float("nan")}, "finite"),
    ({"ts": "2025-11-23T12:13:20"}, "RFC 3339"),     # no zone
    ({"ts": 5}, "out of range"),
    ({"ts": 99999999999999}, "out of range"),
    ({"event_id": "not-a-uuid"}, "event_id"),
    ({"event_id": ...}, "event_id"),
    ({"type": "click"}, "type"),
    ({"site_id": "bad site!"}, "site_id"),
    ({"site_id": ""}, "site_id"),
    ({"url": ...}, "needs url"),
    ({"type": "event"}, "needs name"),
    ({"type": "conversion"}, "needs name"),
    ({"type": "identify"}, "needs user_id"),
    ({"props": {"nested": {"a": 1}}}, "props"),
    ({"props": {"list": [1]}}, "props"),
    ({"props": {f"k{i}": i for i in range(51)}}, "at most 50"),
    ({"props": {"x": float("inf")}}, "finite"),
    ({"revenue": {"amount": "10", "currency": "EUR"}, "type": "conversion", "name": "p"},
     "amount"),
    ({"revenue": {"amount": 10, "currency": "eur"}, "type": "conversion", "name": "p"},
     "currency"),
    ({"revenue": {"amount": 10, "currency": "EUR"}}, "revenue is only allowed"),
    ({"unknown_field": 1}, "unknown_field"),
    ({"url": "x" * 3000}, "url"),
    ({"screen": "big"}, "screen"),
    ({"lang": "english please"}, "lang"),
    ({"anonymous_id": 42}, "anonymous_id"),
])
def test_invalid_events_are_rejected_with_a_reason(over: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        Event.model_validate(ev(**over))
    assert fragment in str(info.value)


def test_json_schema_file_is_fresh() -> None:
    assert SCHEMA_FILE.read_bytes() == render(), (
        "schemas/event-v1.schema.json is stale: run `python -m schemas.export`")


@given(st.integers(min_value=946684800000, max_value=4102444799999))
def test_any_epoch_ms_in_range_roundtrips(ms: int) -> None:
    dt = parse_client_ts(ms)
    assert abs(dt.timestamp() * 1000 - ms) < 1


@given(st.one_of(st.text(), st.floats(), st.booleans(), st.none(), st.lists(st.integers())))
def test_parse_ts_never_crashes_on_garbage(value: Any) -> None:
    try:
        dt = parse_client_ts(value)
    except ValueError:
        return
    assert dt.tzinfo is not None and not (isinstance(value, float) and math.isnan(value))

"""The worker's event view: the fast path (no pydantic) gives exactly what the model gives."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from pydantic import ValidationError

from schemas.event import Event
from schemas.event_view import EventView, event_view, plain_view
from schemas.timefmt import dt_to_ms
from tests.unit.test_collector_parts import near_events


def _model_view(ev: dict[str, Any]) -> EventView | None:
    try:
        return EventView.from_model(Event.model_validate(ev))
    except (ValidationError, ValueError, TypeError):
        return None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_events())
def test_fast_view_equals_the_models(ev: dict[str, Any]) -> None:
    fast, slow = plain_view(ev), _model_view(ev)
    event(f"fast={fast is not None} valid={slow is not None}")
    if fast is not None:
        assert fast == slow, ev


def test_the_usual_tracker_event_takes_the_fast_path() -> None:
    ev = {"event_id": "4735AF1C-A7A1-4490-B513-923715C1D2DF", "type": "pageview",
          "site_id": "shop", "ts": 1767225600123, "anonymous_id": "v1",
          "url": "https://shop.example/?utm_source=x", "referrer": "", "screen": "1440x900",
          "lang": "en-GB", "props": {"plan": "pro", "n": 3, "ok": True}}
    view = plain_view(ev)
    assert view is not None and view == _model_view(ev)
    assert view.event_id == "4735af1c-a7a1-4490-b513-923715c1d2df"
    assert view.ts_ms == 1767225600123


@pytest.mark.parametrize("change", [
    {"url": " https://shop.example/ "},  # the model strips it
    {"props": {"plan": " pro"}},
    {"ts": "2026-01-01T00:00:00.123Z"},
    {"type": "conversion", "name": "purchase", "revenue": {"amount": 9.99, "currency": "EUR"}},
])
def test_what_the_model_must_normalise_goes_through_it(change: dict[str, Any]) -> None:
    ev = {"event_id": str(uuid.uuid4()), "type": "pageview", "site_id": "shop",
          "ts": 1767225600000, "url": "https://shop.example/", **change}
    assert plain_view(ev) is None
    view = event_view(ev)
    assert view == _model_view(ev)
    if "revenue" in change:
        assert view.revenue == Decimal("9.99") and view.currency == "EUR"
    if "url" in change:
        assert view.url == "https://shop.example/"


def test_epoch_milliseconds_survive_exactly() -> None:
    """Float division used to turn some integer milliseconds into the one before."""
    for ms in range(1767225600000, 1767225600000 + 2000):
        ev = {"event_id": str(uuid.uuid4()), "type": "pageview", "site_id": "shop",
              "ts": ms, "url": "https://shop.example/"}
        assert dt_to_ms(Event.model_validate(ev).ts) == ms
        assert event_view(ev).ts_ms == ms

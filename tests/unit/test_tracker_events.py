"""Python tracker: events are built and validated with the contract's own model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from producers.tracker import Tracker, TrackerError, TransportStats
from producers.tracker.build import now_ms
from schemas.event import Event


class ListTransport:
    """Keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], str | None, str | None]] = []
        self.flushed: list[float | None] = []
        self.closed = False

    def send(self, event: dict[str, Any], *, ip: str | None = None,
             user_agent: str | None = None) -> None:
        self.sent.append((event, ip, user_agent))

    def flush(self, timeout: float | None = None) -> bool:
        self.flushed.append(timeout)
        return True

    def close(self, timeout: float | None = None) -> None:
        self.closed = True

    @property
    def stats(self) -> TransportStats:
        return TransportStats(enqueued=len(self.sent))

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for e, _, _ in self.sent]


@pytest.fixture
def sink() -> ListTransport:
    return ListTransport()


@pytest.fixture
def tracker(sink: ListTransport) -> Tracker:
    return Tracker("shop", transport=sink, anonymous_id="v-1")


def test_pageview_has_uuid_now_and_every_given_field(tracker: Tracker,
                                                     sink: ListTransport) -> None:
    before = now_ms()
    event_id = tracker.pageview("https://shop.example/a?x=1", referrer="https://google.com/",
                                title="A", props={"plan": "pro", "n": 2, "ok": True, "r": 0.5},
                                screen="1280x720", lang="de-CH", user_id="u-1")
    after = now_ms()
    [event] = sink.events
    assert event["event_id"] == event_id and uuid.UUID(event_id).version == 4
    assert isinstance(event["ts"], int) and before <= event["ts"] <= after
    assert {k: v for k, v in event.items() if k not in ("event_id", "ts")} == {
        "type": "pageview", "site_id": "shop", "anonymous_id": "v-1", "user_id": "u-1",
        "url": "https://shop.example/a?x=1", "referrer": "https://google.com/", "title": "A",
        "props": {"plan": "pro", "n": 2, "ok": True, "r": 0.5}, "screen": "1280x720",
        "lang": "de-CH",
    }
    assert Event.model_validate(event).type == "pageview"  # what the collector will do


def test_absent_fields_are_left_out_and_per_call_ids_win(tracker: Tracker,
                                                         sink: ListTransport) -> None:
    tracker.event("signup")
    tracker.event("signup", anonymous_id="v-2")
    first, second = sink.events
    assert set(first) == {"event_id", "type", "site_id", "anonymous_id", "ts", "name"}
    assert first["anonymous_id"] == "v-1" and second["anonymous_id"] == "v-2"
    assert first["event_id"] != second["event_id"]


def test_ts_given_as_datetime_or_epoch_ms(tracker: Tracker, sink: ListTransport) -> None:
    when = datetime(2026, 1, 31, 12, 0, 0, 123_000, tzinfo=UTC)
    tracker.event("a", ts=when)
    tracker.event("b", ts=when.astimezone(timezone(timedelta(hours=2))))
    tracker.event("c", ts=1_769_860_800_123)
    tracker.event("d", ts=datetime(2026, 1, 31, 12, 0, 0, 123_000))  # naive = UTC
    assert [e["ts"] for e in sink.events] == [1_769_860_800_123] * 4


@pytest.mark.parametrize(("call", "field", "text"), [
    (lambda t: t.pageview(""), "event", "pageview needs url"),
    (lambda t: t.pageview("https://x.example/" + "a" * 2100), "url", "at most 2048"),
    (lambda t: t.event(""), "event", "needs name"),
    (lambda t: t.event("x", {"nested": {"a": 1}}), "props.nested", "props.nested"),
    (lambda t: t.event("x", {str(i): i for i in range(51)}), "props", "at most 50 props"),
    (lambda t: t.event("x", {"v": float("nan")}), "props", "finite"),
    (lambda t: t.event("x", ts=True), "ts", "not a boolean"),
    (lambda t: t.event("x", ts=12), "ts", "out of range"),
    (lambda t: t.pageview("https://x.example/", screen="big"), "screen", "screen"),
    (lambda t: t.pageview("https://x.example/", lang="english!"), "lang", "lang"),
    (lambda t: t.identify(""), "event", "identify needs user_id"),
    (lambda t: t.conversion("buy", revenue=10, currency="euro"), "revenue.currency",
     "revenue.currency"),
    (lambda t: t.conversion("buy", revenue=10), "revenue.currency", "currency: required"),
    (lambda t: t.conversion("buy", currency="EUR"), "revenue", "without revenue"),
    (lambda t: t.conversion("buy", revenue="10", currency="EUR"), "revenue.amount",
     "must be a number"),
    (lambda t: t.conversion("buy", revenue=True, currency="EUR"), "revenue.amount",
     "must be a number"),
    (lambda t: t.conversion("buy", revenue=float("inf"), currency="EUR"), "revenue.amount",
     "finite"),
    (lambda t: t.conversion("buy", revenue=Decimal("1.1234567"), currency="EUR"),
     "revenue.amount", "revenue"),
])
def test_bad_calls_raise_naming_the_field_and_send_nothing(
        tracker: Tracker, sink: ListTransport, call: Any, field: str, text: str) -> None:
    with pytest.raises(TrackerError) as info:
        call(tracker)
    assert isinstance(info.value, ValueError)
    assert field in info.value.fields or field in str(info.value)
    assert text in str(info.value)
    assert sink.sent == []


def test_bad_site_id_fails_at_construction(sink: ListTransport) -> None:
    with pytest.raises(TrackerError, match="site_id") as info:
        Tracker("no spaces allowed", transport=sink)
    assert info.value.fields == ("site_id",)


def test_conversion_revenue_is_a_json_number_with_upper_case_currency(
        tracker: Tracker, sink: ListTransport) -> None:
    tracker.conversion("purchase", revenue=42.5, currency="eur", props={"order": "A1"})
    tracker.conversion("purchase", revenue=0.1 + 0.2, currency="USD")  # rounded to 6 places
    tracker.conversion("purchase", revenue=Decimal("19.99"), currency="CHF")
    tracker.conversion("refund", revenue=-5, currency="EUR")
    tracker.conversion("trial")
    money = [e.get("revenue") for e in sink.events]
    assert money == [{"amount": 42.5, "currency": "EUR"}, {"amount": 0.3, "currency": "USD"},
                     {"amount": 19.99, "currency": "CHF"}, {"amount": -5, "currency": "EUR"},
                     None]
    assert sink.events[0]["props"] == {"order": "A1"} and sink.events[0]["name"] == "purchase"
    assert Event.model_validate(sink.events[2]).revenue.amount == Decimal("19.99")  # type: ignore[union-attr]


def test_identify_and_context_reach_the_transport(tracker: Tracker, sink: ListTransport) -> None:
    tracker.identify("user-42", ip="203.0.113.9", user_agent="UA/1")
    [(event, ip, ua)] = sink.sent
    assert (event["type"], event["user_id"], event["anonymous_id"]) == ("identify", "user-42",
                                                                       "v-1")
    assert (ip, ua) == ("203.0.113.9", "UA/1")


def test_flush_close_and_context_manager_delegate(sink: ListTransport) -> None:
    with Tracker("shop", transport=sink) as t:
        assert t.flush(3.0) is True
        assert t.stats.enqueued == 0
    assert sink.flushed == [3.0] and sink.closed

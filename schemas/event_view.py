"""The validated, normalised event as the stream worker reads it.

Most events are plainly valid (schemas/fastcheck.py) and carry nothing that validation
would change; for those the view is built straight from the JSON dict, without pydantic
(a quarter of the worker's per-event cost before). Everything else goes through the
pydantic model and is converted, so both paths give the same view (a differential
property test holds them to it).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from schemas.event import Event
from schemas.fastcheck import plainly_valid
from schemas.timefmt import dt_to_ms

#: text fields whose value the model strips; the fast path takes them only when unchanged
_STRIPPED = ("anonymous_id", "user_id", "name", "url", "referrer", "title")


class EventView:
    """A valid contract-v1 event: ids as canonical text, time as epoch milliseconds."""

    __slots__ = ("anonymous_id", "currency", "event_id", "lang", "name", "props", "referrer",
                 "revenue", "screen", "site_id", "title", "ts_ms", "type", "url", "user_id")

    def __init__(self, event_id: str, type: str, site_id: str, ts_ms: int,
                 anonymous_id: str | None = None, user_id: str | None = None,
                 name: str | None = None, url: str | None = None, referrer: str | None = None,
                 title: str | None = None, screen: str | None = None, lang: str | None = None,
                 props: dict[str, Any] | None = None, revenue: Decimal | None = None,
                 currency: str = "") -> None:
        self.event_id = event_id
        self.type = type
        self.site_id = site_id
        self.ts_ms = ts_ms
        self.anonymous_id = anonymous_id
        self.user_id = user_id
        self.name = name
        self.url = url
        self.referrer = referrer
        self.title = title
        self.screen = screen
        self.lang = lang
        self.props = props if props is not None else {}
        self.revenue = revenue  # the amount (currency in `currency`), None when absent
        self.currency = currency

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EventView) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__)

    def __repr__(self) -> str:
        return "EventView(" + ", ".join(f"{s}={getattr(self, s)!r}" for s in self.__slots__) + ")"

    @classmethod
    def from_model(cls, ev: Event) -> EventView:
        return cls(
            str(ev.event_id), ev.type, ev.site_id, dt_to_ms(ev.ts), ev.anonymous_id,
            ev.user_id, ev.name, ev.url, ev.referrer, ev.title, ev.screen, ev.lang,
            dict(ev.props), ev.revenue.amount if ev.revenue is not None else None,
            ev.revenue.currency if ev.revenue is not None else "")


def plain_view(item: dict[str, Any]) -> EventView | None:
    """The view of a plainly valid event that validation would leave as it is; None when
    the event needs the model (to be checked, or to be normalised)."""
    if not plainly_valid(item):
        return None
    get = item.get
    for field in _STRIPPED:
        value = get(field)
        if value is not None and value.strip() != value:
            return None
    props = get("props")
    if props:
        for value in props.values():
            if type(value) is str and value.strip() != value:
                return None
    event_id = item["event_id"]
    return EventView(
        event_id.lower(), item["type"], item["site_id"], item["ts"], get("anonymous_id"),
        get("user_id"), get("name"), get("url"), get("referrer"), get("title"),
        get("screen"), get("lang"), props if props is not None else {})


def event_view(item: dict[str, Any]) -> EventView:
    """The view of any event; raises pydantic's ValidationError when it is invalid."""
    return plain_view(item) or EventView.from_model(Event.model_validate(item))

"""GET /v1/pixel.gif: one event from query parameters, for no-JS pages and e-mail opens.

Parameters are the contract's fields (`type` defaults to pageview, `event_id` to a new
UUID, `ts` to now, `url` to the Referer header), `p.<key>=value` for string props,
`revenue=49.9&currency=EUR` for money (currency defaults to EUR, like the JS tracker).
`utm_*` parameters are folded into the url's query (the stream reads campaigns from the
url), unless the url already has that parameter; with no url at all they become props.
Other parameters (cache busters) are ignored. The answer is always a 1x1 GIF.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from multidict import MultiDict, MultiMapping

from producers.collector.records import safe_text

# 1x1 transparent GIF89a: header, logical screen, 2-colour table, graphic control extension
# (transparency), image descriptor, LZW data for one pixel, trailer.
GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
       b"!\xf9\x04\x01\x00\x00\x00\x00"
       b",\x00\x00\x00\x00\x01\x00\x01\x00\x00"
       b"\x02\x02D\x01\x00;")

NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}

FIELDS = ("type", "site_id", "name", "url", "referrer", "anonymous_id", "user_id",
          "event_id", "ts", "title", "screen", "lang")
UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id")
_JSON_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$")


def _number(text: str) -> Any:
    """A JSON-number-looking string -> int/float; anything else stays a string (and then
    fails validation with a clear reason)."""
    if len(text) <= 40 and _JSON_NUMBER.match(text):
        if text.lstrip("-").isdigit() and len(text) <= 18:
            return int(text)
        return float(text)  # as a JSON parser reads big numbers: no ints over 64 bits
    return text


def fold_utm(url: str, utm: Mapping[str, str]) -> str | None:
    """Add the utm_* parameters the url's query lacks; None when the url cannot be parsed."""
    try:
        parts = urlsplit(url)
        present = {k for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    except ValueError:
        return None
    extra = {k: v for k, v in utm.items() if k not in present}
    if not extra:
        return url
    query = f"{parts.query}&{urlencode(extra)}" if parts.query else urlencode(extra)
    return urlunsplit(parts._replace(query=query))


def pixel_event(query: MultiMapping[str], referer: str | None, now_ms: int) -> dict[str, Any]:
    """Query parameters -> an event object (not yet validated). First value of a repeated
    parameter wins."""
    if not all(k.isascii() and v.isascii() for k, v in query.items()):
        query = MultiDict((safe_text(k), safe_text(v)) for k, v in query.items())
    event: dict[str, Any] = {}
    for field in FIELDS:
        value = query.get(field)
        if value is not None:
            event[field] = value
    event.setdefault("type", "pageview")
    event.setdefault("event_id", str(uuid.uuid4()))
    event["ts"] = _number(event["ts"]) if "ts" in event else now_ms
    if "url" not in event and referer:
        event["url"] = referer
    props: dict[str, Any] = {}
    for key, value in query.items():
        if key.startswith("p.") and key[2:] not in props:
            props[key[2:]] = value
    utm = {k: query[k] for k in UTM if k in query}
    if utm:
        folded = fold_utm(event["url"], utm) if "url" in event else None
        if folded is None:
            props.update({k: v for k, v in utm.items() if k not in props})
        else:
            event["url"] = folded
    if props:
        event["props"] = props
    if "revenue" in query:
        event["revenue"] = {"amount": _number(query["revenue"]),
                            "currency": query.get("currency", "EUR")}
    return event

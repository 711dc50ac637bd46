"""Small helpers shared by the tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import requests

T = TypeVar("T")


def wait_until(fn: Callable[[], T], timeout: float = 60.0, interval: float = 0.25,
               what: str = "condition") -> T:
    """Poll fn until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as exc:  # the system under test may not be ready yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


def make_event(site: str = "site-a", **fields: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "type": "pageview", "site_id": site,
        "anonymous_id": "visitor-1", "ts": int(time.time() * 1000),
        "url": f"https://{site}.example/page",
    }
    ev.update(fields)
    return ev


def post_events(base_url: str, events: list[Any], **headers: str) -> requests.Response:
    return requests.post(f"{base_url}/v1/events", data=orjson.dumps(events),
                         headers={"Content-Type": "text/plain", **headers}, timeout=30)

"""Retry rules of the HTTP transport (the same as the browser tracker's)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: Statuses worth another try: server trouble, rate limiting, request timeout.
RETRYABLE = frozenset({408, 429})


def retryable(status: int | None) -> bool:
    """None is a network error (no answer at all)."""
    return status is None or status >= 500 or status in RETRYABLE


def backoff_delay(attempt: int, base: float, cap: float,
                  rand: Callable[[], float] = random.random) -> float:
    """Jittered exponential backoff: base * 2**attempt, capped, times 0.5-1.5."""
    return min(cap, base * 2 ** min(attempt, 30)) * (0.5 + rand())


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as delay seconds or an HTTP date -> seconds from now (>= 0), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())

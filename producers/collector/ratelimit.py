"""Per-client token buckets, kept in a bounded LRU (memory stays flat under IP floods).

A bucket left alone for burst / rate seconds is full again, the same as a new one, so such
buckets are dropped as they come up at the old end of the LRU: memory holds the clients
active within that time, not every client seen since the start (the 30-minute soak grew
the collector by ~40 MB of buckets before `max_clients` was reached)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict


class RateLimiter:
    """`rate` tokens/s refill, `burst` tokens at most; one token per request."""

    def __init__(self, rate: float, burst: int, max_clients: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._refill = burst / rate if rate > 0 else 0.0  # seconds from empty to full
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, client: str, now: float | None = None) -> float:
        """0.0 when allowed (a token is taken), else the seconds until a token is there."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        buckets = self._buckets
        self._forget_full(now)
        entry = buckets.get(client)
        if entry is None:
            tokens = self.burst
            if len(buckets) >= self.max_clients:
                buckets.popitem(last=False)  # evicting a bucket only ever favours a client
        else:
            tokens, last = entry
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            buckets.move_to_end(client)
        if tokens >= 1.0:
            buckets[client] = (tokens - 1.0, now)
            return 0.0
        buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float, most: int = 4) -> None:
        """Drop up to `most` least recently used buckets that are full again by now (a call
        adds at most one bucket, so a few per call keep up)."""
        buckets = self._buckets
        for _ in range(most):
            if not buckets:
                return
            _, last = buckets[next(iter(buckets))]
            if now - last < self._refill:
                return
            buckets.popitem(last=False)

    @staticmethod
    def retry_after(wait: float) -> int:
        return max(1, math.ceil(wait))

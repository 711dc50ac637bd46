"""Delivery counters shared by the transports (thread-safe)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TransportStats:
    """A snapshot: `enqueued` events handed to the transport, `sent` ones the collector or
    Kafka acknowledged, `dropped` ones given up on, by reason; `pending` not yet settled."""

    enqueued: int = 0
    sent: int = 0
    retries: int = 0
    pending: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None

    @property
    def failed(self) -> int:
        return sum(self.dropped.values())


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.enqueued = 0
        self.sent = 0
        self.retries = 0
        self.dropped: Counter[str] = Counter()
        self.last_error: str | None = None

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def drop(self, reason: str, n: int = 1, error: str | None = None) -> None:
        with self._lock:
            self.dropped[reason] += n
            self.last_error = error or reason

    def snapshot(self, pending: int) -> TransportStats:
        with self._lock:
            return TransportStats(enqueued=self.enqueued, sent=self.sent, retries=self.retries,
                                  pending=pending, dropped=dict(self.dropped),
                                  last_error=self.last_error)

"""Kafka transport for trusted backends: the collector's raw envelope, straight to Kafka.

Uses kafka-python's KafkaProducer (its own sender thread does batching, compression and
retries). acks="all": an event counts as sent once every in-sync replica has it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer
from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd
from kafka.errors import KafkaError

from producers.tracker.base import ExitHook
from producers.tracker.build import now_ms
from producers.tracker.envelope import encode_record
from producers.tracker.errors import TrackerError
from producers.tracker.stats import Counters, TransportStats

log = logging.getLogger("clickstream.tracker")

_CODECS: dict[str, Callable[[], bool]] = {
    "gzip": has_gzip, "lz4": has_lz4, "zstd": has_zstd, "snappy": has_snappy,
}


def check_compression(name: str | None) -> str | None:
    """None, or a codec kafka-python can use here (lz4/zstd/snappy need their packages)."""
    if name is None or name == "none":
        return None
    if name not in _CODECS:
        raise TrackerError(f"compression must be one of {sorted(_CODECS)} or None, got {name!r}",
                           ("compression",))
    if not _CODECS[name]():
        package = {"lz4": "lz4", "zstd": "zstandard", "snappy": "python-snappy"}[name]
        raise TrackerError(f"compression {name!r} needs the {package!r} package",
                           ("compression",))
    return name


def best_compression() -> str:
    """zstd, else lz4, else gzip: the best codec importable here."""
    return next(c for c in ("zstd", "lz4", "gzip") if _CODECS[c]())


class KafkaTransport:
    """Writes `{"v":1,"received_at","ip","ua","event"}` to `<prefix>.raw`, keyed by site +
    visitor like the collector, so a visitor's events stay in one partition, in order.

    `ip` and `user_agent` fill the envelope (for geo, device and cookieless visitor ids) and
    can be given per event. Idempotence stays off by default: the embedded broker (Tansu)
    rejects InitProducerId; the pipeline deduplicates by event_id anyway.
    """

    def __init__(self, bootstrap_servers: str | list[str], topic: str = "clickstream.raw", *,
                 ip: str = "", user_agent: str = "", linger_ms: int = 20,
                 batch_size: int = 256 * 1024, compression: str | None = "gzip",
                 enable_idempotence: bool = False, request_timeout_ms: int = 10_000,
                 max_block_ms: int = 5_000, exit_timeout: float = 10.0,
                 producer_factory: Callable[..., Any] = KafkaProducer,
                 **producer_config: Any) -> None:
        self.topic = topic
        self.ip = ip
        self.user_agent = user_agent
        self._counters = Counters()
        self._closed = False
        self._producer = producer_factory(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            linger_ms=linger_ms,
            batch_size=batch_size,
            compression_type=check_compression(compression),
            enable_idempotence=enable_idempotence,
            request_timeout_ms=request_timeout_ms,
            max_block_ms=max_block_ms,
            client_id="clickstream-python-tracker",
            **producer_config,
        )
        # registered after the producer's own hook, so it runs first (atexit is LIFO)
        self._exit_hook = ExitHook(self, "close", exit_timeout)

    def send(self, event: dict[str, Any], *, ip: str | None = None,
             user_agent: str | None = None) -> None:
        """Hand one event to the producer; blocks only when its buffer is full or the topic's
        metadata is unknown (up to max_block_ms), then counts the event as dropped."""
        if self._closed:
            self._counters.drop("closed", error="send after close")
            return
        key, value = encode_record(event, received_at=now_ms(),
                                   ip=self.ip if ip is None else ip,
                                   ua=self.user_agent if user_agent is None else user_agent)
        self._counters.add("enqueued")
        try:
            future = self._producer.send(self.topic, value=value, key=key)
        except KafkaError as exc:
            log.warning("event not handed to Kafka: %r", exc)
            self._counters.drop(type(exc).__name__, error=repr(exc))
            return
        future.add_callback(self._delivered)
        future.add_errback(self._failed)

    def _delivered(self, _metadata: Any) -> None:
        self._counters.add("sent")

    def _failed(self, exc: BaseException) -> None:
        log.warning("Kafka did not take an event: %r", exc)
        self._counters.drop(type(exc).__name__, error=repr(exc))

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything buffered and wait for the acks (or failures); False on timeout."""
        try:
            self._producer.flush(timeout)
        except KafkaError as exc:
            log.warning("Kafka flush did not finish: %r", exc)
            return False
        return True

    def close(self, timeout: float | None = 10.0) -> None:
        self._exit_hook.cancel()
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._producer.close(timeout=5.0 if timeout is None else timeout)

    @property
    def stats(self) -> TransportStats:
        s = self._counters.snapshot(0)
        pending = max(0, s.enqueued - s.sent - s.failed)
        return TransportStats(enqueued=s.enqueued, sent=s.sent, retries=s.retries,
                              pending=pending, dropped=s.dropped, last_error=s.last_error)

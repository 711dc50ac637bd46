"""HTTP transport: batched POSTs to the collector's /v1/events from one background thread.

At-least-once within limits: a batch is retried (jittered backoff, Retry-After honoured) on
network errors, 5xx, 408 and 429, up to `max_retries`; other 4xx answers are final and the
events are counted as dropped with the status as reason. The queue is bounded: when full, the
oldest event is dropped (reason `queue_full`). The collector deduplicates nothing, but the
pipeline does (by event_id), so a retried batch that had in fact arrived is harmless.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping
from email.message import Message
from typing import Any

import orjson

from clickstream import __version__
from producers.tracker.backoff import backoff_delay, parse_retry_after, retryable
from producers.tracker.base import ExitHook
from producers.tracker.errors import TrackerError
from producers.tracker.stats import Counters, TransportStats

log = logging.getLogger("clickstream.tracker")

DEFAULT_USER_AGENT = f"clickstream-python-tracker/{__version__}"
_OPEN, _CLOSE = b'{"events":[', b"]}"

# (status or None for a network error, response headers, body or error text)
_Answer = tuple[int | None, Message | None, str]


class HttpTransport:
    """Sends events to a collector over HTTP. Thread-safe; `send` never blocks on the network.

    Batches hold at most `batch_size` events and `max_batch_bytes` of body (the collector's
    defaults are 100 events and 64 KiB) and leave after `flush_interval` seconds at most.
    """

    def __init__(self, collector_url: str, *, batch_size: int = 50,
                 max_batch_bytes: int = 60_000, flush_interval: float = 1.0,
                 max_queue: int = 10_000, max_retries: int = 8, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, max_retry_after: float = 300.0,
                 timeout: float = 10.0, user_agent: str = DEFAULT_USER_AGENT,
                 headers: Mapping[str, str] | None = None, exit_timeout: float = 5.0) -> None:
        if not collector_url.startswith(("http://", "https://")):
            raise TrackerError(f"collector_url must be http(s)://..., got {collector_url!r}",
                               ("collector_url",))
        if batch_size < 1 or max_queue < 1 or max_batch_bytes < 1024:
            raise TrackerError("batch_size and max_queue must be >= 1, max_batch_bytes >= 1024")
        self.endpoint = collector_url.rstrip("/") + "/v1/events"
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", "User-Agent": user_agent,
                        **(headers or {})}
        # (sequence number, monotonic enqueue time, encoded event)
        self._queue: deque[tuple[int, float, bytes]] = deque()
        self._cond = threading.Condition()
        self._seq = 0  # last sequence number handed out
        self._done = 0  # every event up to this sequence number is sent or dropped
        self._inflight = 0
        self._urgent = 0  # flush() wants events up to this number sent without waiting
        self._closed = False
        self._abort = threading.Event()
        self._counters = Counters()
        self._warned_context = False
        self._thread = threading.Thread(target=self._run, name="clickstream-tracker-http",
                                        daemon=True)
        self._thread.start()
        self._exit_hook = ExitHook(self, "close", exit_timeout)

    # -- the caller's side -------------------------------------------------------------------

    def send(self, event: dict[str, Any], *, ip: str | None = None,
             user_agent: str | None = None) -> None:
        if (ip or user_agent) and not self._warned_context:
            self._warned_context = True
            log.warning("HttpTransport cannot forward a per-event ip/user_agent (the collector "
                        "sees this process); use KafkaTransport for that")
        data = orjson.dumps(event)
        with self._cond:
            if self._closed:
                self._counters.drop("closed", error="send after close")
                return
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self._counters.drop("queue_full", error=f"queue full ({self.max_queue} events)")
            self._seq += 1
            self._queue.append((self._seq, time.monotonic(), data))
            self._counters.add("enqueued")
            if len(self._queue) == 1 or len(self._queue) >= self.batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued before this call now; wait until it is sent or dropped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._seq
            self._urgent = max(self._urgent, target)
            self._cond.notify_all()
            while not self._settled(target):
                if not self._thread.is_alive():
                    return False
                left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout: float | None = 10.0) -> None:
        """Flush for up to `timeout` seconds, then stop; events still unsent are dropped."""
        self._exit_hook.cancel()
        with self._cond:
            if self._closed:
                return
        ok = self.flush(timeout)
        with self._cond:
            self._closed = True
            if not ok:
                self._abort.set()
            self._cond.notify_all()
        self._thread.join(1.0)

    @property
    def stats(self) -> TransportStats:
        with self._cond:
            pending = len(self._queue) + self._inflight
        return self._counters.snapshot(pending)

    def _settled(self, target: int) -> bool:
        return self._done >= target or (not self._queue and not self._inflight)

    # -- the sender thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            try:
                self._deliver([data for _, _, data in batch])
            except Exception as exc:  # the sender thread must survive anything
                log.exception("clickstream tracker: sending a batch failed")
                self._counters.drop("internal_error", len(batch), repr(exc))
            with self._cond:
                self._inflight = 0
                self._done = max(self._done, batch[-1][0])
                self._cond.notify_all()

    def _next_batch(self) -> list[tuple[int, float, bytes]]:
        """Wait until a batch is due (full, old enough, flushed or closing) and take it."""
        with self._cond:
            while True:
                if self._abort.is_set():
                    if self._queue:
                        self._counters.drop("shutdown", len(self._queue),
                                            "close timed out before these were sent")
                        self._queue.clear()
                    self._done = self._seq
                    self._cond.notify_all()
                    return []
                if not self._queue:
                    if self._closed:
                        return []
                    self._cond.wait()
                    continue
                wait = self._queue[0][1] + self.flush_interval - time.monotonic()
                if (wait <= 0 or self._closed or len(self._queue) >= self.batch_size
                        or self._queue[0][0] <= self._urgent):
                    break
                self._cond.wait(wait)
            batch: list[tuple[int, float, bytes]] = []
            size = len(_OPEN) + len(_CLOSE)
            while self._queue and len(batch) < self.batch_size:
                item_size = len(self._queue[0][2]) + 1
                if batch and size + item_size > self.max_batch_bytes:
                    break
                batch.append(self._queue.popleft())
                size += item_size
            self._inflight = len(batch)
            return batch

    def _deliver(self, payloads: list[bytes]) -> None:
        n = len(payloads)
        body = _OPEN + b",".join(payloads) + _CLOSE
        attempt = 0
        while True:
            status, headers, text = self._post(body)
            if status is not None and 200 <= status < 300:
                self._accepted(n, text)
                return
            what = f"HTTP {status}" if status is not None else f"network error {text}"
            if not retryable(status):
                log.warning("collector refused %d events (%s), dropped: %s", n, what, text[:300])
                self._counters.drop(f"http_{status}", n, f"{what}: {text[:200]}")
                return
            if attempt >= self.max_retries:
                log.error("gave up on %d events after %d attempts: %s", n, attempt + 1, what)
                self._counters.drop("retries_exhausted", n, what)
                return
            delay = parse_retry_after(headers.get("Retry-After") if headers else None)
            if delay is None:
                delay = backoff_delay(attempt, self.backoff_base, self.backoff_max)
            delay = min(delay, self.max_retry_after)
            attempt += 1
            self._counters.add("retries")
            log.info("collector: %s; retry %d in %.2f s", what, attempt, delay)
            if self._abort.wait(delay):
                self._counters.drop("shutdown", n, f"closed while retrying after {what}")
                return

    def _accepted(self, n: int, text: str) -> None:
        try:
            answer = orjson.loads(text)
            accepted, rejected = int(answer["accepted"]), int(answer["rejected"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            accepted, rejected, answer = n, 0, {}
        self._counters.add("sent", accepted)
        if rejected:
            errors = answer.get("errors") or []
            first = errors[0].get("reason", "") if errors and isinstance(errors[0], dict) else ""
            log.warning("collector rejected %d of %d events: %s", rejected, n, first)
            self._counters.drop("rejected", rejected, first or "rejected by the collector")

    def _post(self, body: bytes) -> _Answer:
        req = urllib.request.Request(self.endpoint, data=body, method="POST",
                                     headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.headers, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read().decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                text = ""
            finally:
                exc.close()
            return exc.code, exc.headers, text
        except (OSError, http.client.HTTPException) as exc:
            return None, None, repr(exc)

"""Python tracker, HTTP transport, against a scripted local collector (http.server in a thread):
batching, retry and no-retry rules, bounded queue, thread safety, flush at exit."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from clickstream.embedded_broker import free_port
from producers.tracker import HttpTransport, Tracker

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Request:
    at: float
    headers: dict[str, str]
    events: list[dict[str, Any]]
    size: int


@dataclass
class Reply:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None  # None: the collector's 202 answer for the batch


class ScriptedCollector:
    """Answers POST /v1/events with the scripted replies in order, then 202 for everything."""

    def __init__(self, port: int = 0) -> None:
        self.script: list[Reply] = []
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                events = orjson.loads(body)["events"]
                with outer.lock:
                    outer.requests.append(Request(time.monotonic(), dict(self.headers), events,
                                                  len(body)))
                    reply = outer.script.pop(0) if outer.script else Reply()
                answer = reply.body if reply.body is not None else {
                    "accepted": len(events), "rejected": 0, "errors": []}
                data = orjson.dumps(answer)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for r in self.requests for e in r.events]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[ScriptedCollector]:
    c = ScriptedCollector()
    yield c
    c.close()


def fast(url: str, **kw: Any) -> HttpTransport:
    """A transport with short timers for tests."""
    opts: dict[str, Any] = {"flush_interval": 0.2, "backoff_base": 0.01, "backoff_max": 0.05,
                            "timeout": 5.0, **kw}
    return HttpTransport(url, **opts)


def track(transport: HttpTransport, n: int, name: str = "e") -> list[str]:
    tracker = Tracker("shop", transport=transport, anonymous_id="v")
    return [tracker.event(f"{name}{i}") for i in range(n)]


def test_events_leave_in_batches_of_batch_size_then_after_the_interval(
        collector: ScriptedCollector) -> None:
    transport = fast(collector.url, batch_size=10, flush_interval=0.5)
    t0 = time.monotonic()
    ids = track(transport, 23)
    deadline = time.monotonic() + 5
    while len(collector.events) < 23 and time.monotonic() < deadline:
        time.sleep(0.02)
    sizes = [len(r.events) for r in collector.requests]
    assert sizes == [10, 10, 3]
    assert collector.requests[1].at - t0 < 0.4  # full batches do not wait for the timer
    assert collector.requests[2].at - t0 >= 0.45  # the rest waits for flush_interval
    assert [e["event_id"] for e in collector.events] == ids  # in order, nothing doubled
    headers = collector.requests[0].headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("clickstream-python-tracker/")
    stats = transport.stats
    assert (stats.enqueued, stats.sent, stats.failed, stats.pending) == (23, 23, 0, 0)
    transport.close()


def test_flush_sends_now_and_waits(collector: ScriptedCollector) -> None:
    transport = fast(collector.url, flush_interval=60)
    track(transport, 3)
    t0 = time.monotonic()
    assert transport.flush(5) is True
    assert time.monotonic() - t0 < 1.0
    assert len(collector.events) == 3 and transport.stats.sent == 3
    transport.close()


def test_batches_stay_under_max_batch_bytes(collector: ScriptedCollector) -> None:
    transport = fast(collector.url, batch_size=100, max_batch_bytes=4096)
    tracker = Tracker("shop", transport=transport, anonymous_id="v")
    for i in range(12):
        tracker.event(f"e{i}", {"blob": "x" * 500})
    assert transport.flush(5)
    assert all(r.size <= 4096 for r in collector.requests)
    assert sum(r.size for r in collector.requests) > 4096  # so it had to be split
    assert len(collector.requests) >= 2 and len(collector.events) == 12
    transport.close()


@pytest.mark.parametrize("status", [400, 413, 403])
def test_client_errors_are_never_retried_and_counted_with_reason(
        collector: ScriptedCollector, status: int, caplog: pytest.LogCaptureFixture) -> None:
    collector.script = [Reply(status, body={"error": "nope", "message": "bad batch"})]
    transport = fast(collector.url)
    track(transport, 4)
    assert transport.flush(5)
    track(transport, 1)  # the next batch goes through
    assert transport.flush(5)
    assert [len(r.events) for r in collector.requests] == [4, 1]
    stats = transport.stats
    assert stats.dropped == {f"http_{status}": 4} and stats.sent == 1 and stats.retries == 0
    assert "bad batch" in (stats.last_error or "")
    assert f"HTTP {status}" in caplog.text
    transport.close()


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_server_errors_are_retried_with_the_same_events(collector: ScriptedCollector,
                                                        status: int) -> None:
    collector.script = [Reply(status), Reply(status)]
    transport = fast(collector.url)
    ids = track(transport, 3)
    assert transport.flush(5)
    assert len(collector.requests) == 3
    assert all([e["event_id"] for e in r.events] == ids for r in collector.requests)
    stats = transport.stats
    assert (stats.sent, stats.retries, stats.failed) == (3, 2, 0)
    transport.close()


def test_backoff_grows_exponentially(collector: ScriptedCollector) -> None:
    collector.script = [Reply(500)] * 4
    transport = fast(collector.url, backoff_base=0.1, backoff_max=10)
    track(transport, 1)
    assert transport.flush(10)
    at = [r.at for r in collector.requests]
    gaps = [b - a for a, b in itertools.pairwise(at)]
    # base * 2**n * (0.5..1.5): 0.05-0.15, 0.1-0.3, 0.2-0.6, 0.4-1.2 (+ request time, with
    # slack for a busy machine; the exact values are checked in test_tracker_backoff.py)
    for n, gap in enumerate(gaps):
        assert 0.1 * 2**n * 0.5 <= gap <= 0.1 * 2**n * 1.5 + 0.5, gaps
    transport.close()


def test_429_honours_retry_after(collector: ScriptedCollector) -> None:
    collector.script = [Reply(429, {"Retry-After": "1"})]
    transport = fast(collector.url)
    track(transport, 2)
    assert transport.flush(5)
    first, second = collector.requests
    assert 0.95 <= second.at - first.at < 1.6  # not the 0.01 s backoff
    assert transport.stats.sent == 2 and transport.stats.retries == 1
    transport.close()


def test_network_errors_are_retried_until_the_collector_is_up() -> None:
    port = free_port()
    transport = fast(f"http://127.0.0.1:{port}", backoff_base=0.05, backoff_max=0.2,
                     max_retries=50)
    ids = track(transport, 2)
    time.sleep(0.5)  # a few refused connections
    assert transport.stats.retries >= 2 and transport.stats.sent == 0
    late = ScriptedCollector(port)
    try:
        assert transport.flush(5)
        assert [e["event_id"] for e in late.events] == ids
        assert transport.stats.sent == 2 and transport.stats.failed == 0
    finally:
        transport.close()
        late.close()


def test_retries_give_up_after_max_retries(collector: ScriptedCollector) -> None:
    collector.script = [Reply(503)] * 10
    transport = fast(collector.url, max_retries=2)
    track(transport, 3)
    assert transport.flush(5)
    assert len(collector.requests) == 3  # the first try and two retries
    stats = transport.stats
    assert stats.dropped == {"retries_exhausted": 3} and stats.sent == 0 and stats.retries == 2
    transport.close()


def test_events_the_collector_rejects_are_counted(collector: ScriptedCollector) -> None:
    collector.script = [Reply(202, body={"accepted": 2, "rejected": 1, "errors": [
        {"index": 1, "reason": "invalid: unknown site"}]})]
    transport = fast(collector.url)
    track(transport, 3)
    assert transport.flush(5)
    stats = transport.stats
    assert stats.sent == 2 and stats.dropped == {"rejected": 1}
    assert stats.last_error == "invalid: unknown site"
    transport.close()


def test_full_queue_drops_the_oldest_events(collector: ScriptedCollector) -> None:
    collector.script = [Reply(503, {"Retry-After": "1"})]  # holds the first batch for 1 s
    transport = fast(collector.url, batch_size=2, max_queue=5, flush_interval=0.01)
    first = track(transport, 2, "a")
    deadline = time.monotonic() + 5
    while not collector.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    later = track(transport, 8, "b")  # 5 fit in the queue while the first batch waits
    assert transport.stats.dropped == {"queue_full": 3}
    assert transport.flush(5)
    sent = [e["event_id"] for e in collector.events]
    assert sent[:2] == first and sent[2:4] == first  # the retried batch, then...
    assert sent[4:] == later[3:]  # ...only the newest five of the rest
    transport.close()


def test_close_gives_up_after_its_timeout(collector: ScriptedCollector) -> None:
    collector.script = [Reply(503, {"Retry-After": "30"})]
    transport = fast(collector.url)
    track(transport, 2)
    t0 = time.monotonic()
    assert transport.flush(0.5) is False
    transport.close(0.3)
    assert time.monotonic() - t0 < 3
    assert transport.stats.dropped == {"shutdown": 2}
    track(transport, 1)
    assert transport.stats.dropped == {"shutdown": 2, "closed": 1}


def test_many_threads_tracking_at_once_lose_and_double_nothing(
        collector: ScriptedCollector) -> None:
    transport = fast(collector.url, batch_size=37, max_queue=100_000)
    tracker = Tracker("shop", transport=transport)
    ids: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def work(n: int) -> None:
        start.wait()
        for i in range(250):
            ids[n].append(tracker.event("tick", {"i": i}, anonymous_id=f"v{n}"))
            if i % 100 == 99:
                tracker.flush(10)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert tracker.flush(10)
    got = [e["event_id"] for e in collector.events]
    assert len(got) == 2000 and set(got) == {i for part in ids for i in part}
    for n in range(8):  # each thread's events arrive in the order it tracked them
        mine = [e["props"]["i"] for e in collector.events if e["anonymous_id"] == f"v{n}"]
        assert mine == list(range(250))
    stats = transport.stats
    assert (stats.enqueued, stats.sent, stats.failed, stats.pending) == (2000, 2000, 0, 0)
    assert max(len(r.events) for r in collector.requests) <= 37
    transport.close()


def test_queued_events_are_sent_at_interpreter_exit(collector: ScriptedCollector) -> None:
    script = textwrap.dedent(f"""
        from producers.tracker import HttpTransport, Tracker
        t = Tracker("shop", transport=HttpTransport({collector.url!r}, flush_interval=600))
        for i in range(5):
            t.event("bye", {{"i": i}}, anonymous_id="v")
        # no flush, no close: the atexit hook must send them
    """)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)
    assert time.monotonic() - t0 < 20
    assert [e["props"]["i"] for e in collector.events] == [0, 1, 2, 3, 4]

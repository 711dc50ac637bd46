"""Python tracker, Kafka transport: the collector's envelope and key, producer config, stats."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka.errors import KafkaTimeoutError, NotLeaderForPartitionError
from kafka.future import Future

from producers.collector.records import RecordMaker
from producers.tracker import KafkaTransport, Tracker, TrackerError, best_compression
from producers.tracker.build import now_ms
from producers.tracker.envelope import encode_record, partition_key
from producers.tracker.kafka_transport import check_compression

ROOT = Path(__file__).resolve().parents[2]


class FakeProducer:
    """Stands in for kafka.KafkaProducer: records config and sends, resolves futures on demand."""

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes, bytes, Future]] = []
        self.lock = threading.Lock()
        self.fail_send: Exception | None = None
        self.flush_error: Exception | None = None
        self.closed_with: float | None = None

    def send(self, topic: str, value: bytes, key: bytes) -> Future:
        if self.fail_send:
            raise self.fail_send
        future = Future()
        with self.lock:
            self.sent.append((topic, key, value, future))
        return future

    def flush(self, timeout: float | None = None) -> None:
        if self.flush_error:
            raise self.flush_error

    def close(self, timeout: float | None = None) -> None:
        self.closed_with = timeout


def make(**kw: Any) -> tuple[KafkaTransport, FakeProducer]:
    holder: list[FakeProducer] = []

    def factory(**config: Any) -> FakeProducer:
        holder.append(FakeProducer(**config))
        return holder[0]

    transport = KafkaTransport("127.0.0.1:9", "t1.raw", producer_factory=factory, **kw)
    return transport, holder[0]


def test_record_is_the_collectors_envelope_keyed_by_site_and_visitor() -> None:
    event = {"event_id": "e", "type": "event", "site_id": "shop", "anonymous_id": "v-9",
             "name": "x", "ts": 1}
    key, value = encode_record(event, received_at=1_700_000_000_123, ip="203.0.113.5",
                               ua="UA/2")
    assert key == b"shop|v-9"
    assert orjson.loads(value) == {"v": 1, "received_at": 1_700_000_000_123,
                                   "ip": "203.0.113.5", "ua": "UA/2", "event": event}
    cookieless = {k: v for k, v in event.items() if k != "anonymous_id"}
    key2, _ = encode_record(cookieless, received_at=1, ip="203.0.113.5", ua="UA/2")
    assert key2.startswith(b"shop|~") and len(key2) == len("shop|~") + 16
    assert key2 != encode_record(cookieless, received_at=1, ip="203.0.113.5", ua="UA/3")[0]


def test_record_equals_what_the_collector_writes_for_the_same_event() -> None:
    for event in ({"event_id": "e1", "type": "event", "site_id": "shop", "name": "x", "ts": 1,
                   "anonymous_id": "v-1", "props": {"a": "é"}},
                  {"event_id": "e2", "type": "event", "site_id": "shop", "name": "x", "ts": 1}):
        maker = RecordMaker("t.raw", "t.invalid", 1_700_000_000_001, "192.0.2.1", "UA/9",
                            dnt=False)
        theirs = maker.raw(event)
        key, value = encode_record(event, received_at=1_700_000_000_001, ip="192.0.2.1",
                                   ua="UA/9")
        assert key == theirs.key
        assert orjson.loads(value) == orjson.loads(theirs.value)


def test_producer_is_configured_for_acks_all_batching_and_no_idempotence() -> None:
    _, producer = make(linger_ms=7, batch_size=1234)
    cfg = producer.config
    assert cfg["acks"] == "all" and cfg["enable_idempotence"] is False
    assert (cfg["linger_ms"], cfg["batch_size"], cfg["compression_type"]) == (7, 1234, "gzip")
    assert cfg["bootstrap_servers"] == "127.0.0.1:9"
    _, producer = make(compression=None, enable_idempotence=True, retries=3)
    assert producer.config["compression_type"] is None
    assert producer.config["enable_idempotence"] is True and producer.config["retries"] == 3


def test_unavailable_codecs_are_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    from producers.tracker import kafka_transport

    monkeypatch.setitem(kafka_transport._CODECS, "zstd", lambda: False)
    monkeypatch.setitem(kafka_transport._CODECS, "lz4", lambda: False)
    with pytest.raises(TrackerError, match="zstandard"):
        check_compression("zstd")
    with pytest.raises(TrackerError, match="compression must be one of"):
        check_compression("brotli")
    assert best_compression() == "gzip"
    monkeypatch.setitem(kafka_transport._CODECS, "lz4", lambda: True)
    assert best_compression() == "lz4" and check_compression("lz4") == "lz4"


def test_send_writes_envelope_with_transport_or_per_event_context() -> None:
    transport, producer = make(ip="10.0.0.1", user_agent="Backend/1")
    tracker = Tracker("shop", transport=transport)
    before = now_ms()
    tracker.pageview("https://shop.example/", anonymous_id="v-1")
    tracker.event("cookieless", ip="198.51.100.7", user_agent="Mozilla/5.0 X")
    after = now_ms()
    (topic, key1, value1, _), (_, key2, value2, _) = producer.sent
    env1, env2 = orjson.loads(value1), orjson.loads(value2)
    assert topic == "t1.raw" and key1 == b"shop|v-1"
    assert (env1["ip"], env1["ua"]) == ("10.0.0.1", "Backend/1")
    assert before <= env1["received_at"] <= after and isinstance(env1["received_at"], int)
    assert env1["event"]["url"] == "https://shop.example/"
    assert (env2["ip"], env2["ua"]) == ("198.51.100.7", "Mozilla/5.0 X")
    assert key2 == partition_key(env2["event"], "198.51.100.7", "Mozilla/5.0 X")


def test_delivery_callbacks_count_successes_and_failures() -> None:
    transport, producer = make()
    tracker = Tracker("shop", transport=transport, anonymous_id="v")
    for i in range(4):
        tracker.event(f"e{i}")
    assert transport.stats.pending == 4 and transport.stats.sent == 0
    futures = [f for *_, f in producer.sent]
    futures[0].success("meta")
    futures[1].success("meta")
    futures[2].failure(NotLeaderForPartitionError("gone"))
    stats = transport.stats
    assert (stats.enqueued, stats.sent, stats.failed, stats.pending) == (4, 2, 1, 1)
    assert stats.dropped == {"NotLeaderForPartitionError": 1}
    assert "gone" in (stats.last_error or "")


def test_send_that_cannot_reach_kafka_is_counted_not_raised() -> None:
    transport, producer = make()
    producer.fail_send = KafkaTimeoutError("no metadata after 5000 ms")
    Tracker("shop", transport=transport).event("x", anonymous_id="v")
    assert transport.stats.dropped == {"KafkaTimeoutError": 1}
    assert transport.stats.pending == 0


def test_flush_timeout_returns_false_and_close_stops_sending() -> None:
    transport, producer = make()
    producer.flush_error = KafkaTimeoutError("flush")
    assert transport.flush(0.1) is False
    producer.flush_error = None
    assert transport.flush(0.1) is True
    transport.close(2.0)
    assert producer.closed_with == 2.0
    Tracker("shop", transport=transport).event("late", anonymous_id="v")
    assert producer.sent == [] and transport.stats.dropped == {"closed": 1}


def test_buffered_events_are_flushed_at_interpreter_exit(tmp_path: Path) -> None:
    out = tmp_path / "flushed.txt"
    script = textwrap.dedent(f"""
        from producers.tracker import KafkaTransport, Tracker

        class Producer:
            def __init__(self, **config):
                self.sent = []
            def send(self, topic, value, key):
                from kafka.future import Future
                self.sent.append(key)
                return Future()
            def flush(self, timeout=None):
                with open({str(out)!r}, "w") as f:
                    f.write(f"{{len(self.sent)}} {{timeout}}")
            def close(self, timeout=None):
                pass

        t = Tracker("shop", transport=KafkaTransport("x:9", producer_factory=Producer,
                                                       exit_timeout=3.5))
        for i in range(3):
            t.event("e", anonymous_id=str(i))
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)
    assert out.read_text() == "3 3.5"

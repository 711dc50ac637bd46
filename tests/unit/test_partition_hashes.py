"""The collector's cache of partition hashes (producers/collector/kafka_out.py): always
Kafka's murmur2, never more than two rounds of keys, and a key in use is not hashed again."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from clickstream.settings import CollectorSettings
from producers.collector import kafka_out
from producers.collector.kafka_out import KafkaSink


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=400), st.integers(1, 8))
def test_hashes_are_murmur2_and_bounded(keys: list[int], round_keys: int) -> None:
    sink = KafkaSink(CollectorSettings(kafka_bootstrap="127.0.0.1:9"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kafka_out, "HASH_ROUND_KEYS", round_keys)
        for k in keys:
            key = f"site|v{k}".encode()
            assert sink._hash(key) == murmur2(key) & 0x7FFFFFFF
            assert len(sink._hashes) <= round_keys
            assert len(sink._old_hashes) <= round_keys


def test_a_key_used_every_round_is_hashed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []

    def counting(key: bytes) -> int:
        calls.append(key)
        return murmur2(key)

    monkeypatch.setattr(kafka_out, "murmur2", counting)
    monkeypatch.setattr(kafka_out, "HASH_ROUND_KEYS", 100)
    sink = KafkaSink(CollectorSettings(kafka_bootstrap="127.0.0.1:9"))
    hot = b"site|regular"
    for i in range(10_000):  # one new visitor per request, and the regular every 50th
        sink._hash(f"site|once-{i}".encode())
        if i % 50 == 0:
            sink._hash(hot)
    assert calls.count(hot) == 1
    assert len(calls) == 10_001

"""CLICKSTREAM_KAFKA_COMPRESSION reaches both producers (collector, worker), and the codec
it names can run here (aiokafka's lz4/zstd/snappy need cramjam)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import codec
from pydantic import ValidationError

from clickstream.settings import CollectorSettings, WorkerSettings
from producers.collector.kafka_out import KafkaSink
from streams.app import create_app


def test_default_is_zstd_and_none_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CollectorSettings().kafka_compression_type == "zstd"
    monkeypatch.setenv("CLICKSTREAM_KAFKA_COMPRESSION", "none")
    assert CollectorSettings().kafka_compression_type is None
    monkeypatch.setenv("CLICKSTREAM_KAFKA_COMPRESSION", "brotli")
    with pytest.raises(ValidationError, match="kafka_compression"):
        CollectorSettings()


@pytest.mark.parametrize("name", ["zstd", "lz4", "snappy", "gzip"])
def test_every_codec_is_installed(name: str) -> None:
    assert getattr(codec, f"has_{name}")()
    payload = b'{"site_id":"s","path":"/p"}\n' * 200
    assert getattr(codec, f"{name}_decode")(getattr(codec, f"{name}_encode")(payload)) == payload


def test_collector_and_worker_producers_use_it(tmp_path: Path) -> None:
    async def collector_codec() -> str:
        producer = KafkaSink(CollectorSettings(kafka_bootstrap="127.0.0.1:9",
                                               kafka_compression="lz4")).new_producer()
        await producer.stop()  # never started: only closes its client
        return str(producer._compression_type)

    assert asyncio.run(collector_codec()) == "lz4"
    app = create_app(WorkerSettings(kafka_bootstrap="127.0.0.1:9", home=tmp_path,
                                    kafka_compression="snappy"))
    assert app.conf.producer_compression_type == "snappy"

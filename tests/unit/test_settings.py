"""Settings: env prefix, defaults, documentation, embedded-broker decision."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from clickstream.settings import CollectorSettings, CommonSettings, SinkSettings, WorkerSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CLICKSTREAM_KAFKA_BOOTSTRAP", "CLICKSTREAM_CLICKHOUSE_URL", "CLICKSTREAM_HOME"):
        monkeypatch.delenv(var, raising=False)
    s = CollectorSettings()
    assert s.home == Path(".clickstream")
    assert s.kafka_bootstrap is None and s.embedded_broker
    assert s.clickhouse_url is None and s.chdb_path == Path(".clickstream/chdb")
    assert (s.collector_host, s.collector_port) == ("127.0.0.1", 8080)
    assert s.topic("raw") == "clickstream.raw"


def test_env_prefix_and_server_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKSTREAM_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("CLICKSTREAM_CLICKHOUSE_URL", "clickhouse://writer:s3cret@ch:9000/analytics")
    monkeypatch.setenv("CLICKSTREAM_COLLECTOR_PORT", "9999")
    s = CollectorSettings()
    assert not s.embedded_broker
    assert s.database == "analytics"
    assert s.collector_port == 9999


def test_broker_profile_overrides_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    monkeypatch.setenv("CLICKSTREAM_BROKER_PROFILE", "embedded")
    assert WorkerSettings().embedded_broker


@pytest.mark.parametrize("var, value", [
    ("CLICKSTREAM_CLICKHOUSE_URL", "http://ch:8123"),
    ("CLICKSTREAM_COLLECTOR_PORT", "70000"),
    ("CLICKSTREAM_BROKER_PROFILE", "redpanda"),
    ("CLICKSTREAM_SINK_BATCH_ROWS", "0"),
])
def test_bad_values_fail_clearly(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError):
        CollectorSettings() if "COLLECTOR" in var else SinkSettings()


def test_settings_are_frozen() -> None:
    s = CommonSettings()
    with pytest.raises(ValidationError):
        s.home = Path("/elsewhere")  # type: ignore[misc]


@pytest.mark.parametrize("cls", [CommonSettings, CollectorSettings, WorkerSettings, SinkSettings])
def test_every_field_is_documented(cls: type[CommonSettings]) -> None:
    undocumented = [n for n, f in cls.model_fields.items() if not f.description]
    assert not undocumented

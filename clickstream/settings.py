"""One frozen settings object per service, read from `CLICKSTREAM_*` environment variables.

Every field's description is its documentation (`clickstream settings` prints them all).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, computed_field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Settings every service shares: where the broker and the store are."""

    model_config = SettingsConfigDict(env_prefix="CLICKSTREAM_", frozen=True, extra="ignore")

    sites_file: Path | None = Field(
        default=None,
        description="Site registry (TOML or JSON): site ids, their allowed origins (collector) "
        "and per-site time zone, session timeout, attribution lookback and goals (worker; "
        "docs/collector.md, streams/site_options.py). Unset: open mode (any site id, any "
        "origin, settings-wide defaults), for development and `clickstream up --demo`.",
    )

    home: Path = Field(
        default=Path(".clickstream"),
        description="Working directory for embedded data (chDB store, salts, run state, logs).",
    )
    kafka_bootstrap: str | None = Field(
        default=None,
        description="Kafka bootstrap servers, host:port[,host:port]. Unset: `clickstream up` "
        "starts the embedded Tansu broker and sets this for its services.",
    )
    broker_profile: Literal["auto", "kafka", "embedded"] = Field(
        default="auto",
        description="`embedded` turns on the compatibility layer for the embedded Tansu broker "
        "(true end offsets; short group timeouts). `kafka` for real Kafka. `auto`: embedded "
        "when kafka_bootstrap is unset or points at a broker `clickstream up` started.",
    )
    kafka_compression: Literal["none", "zstd", "lz4", "snappy", "gzip"] = Field(
        default="zstd",
        description="Compression of the record batches the collector and the worker write "
        "(consumers read any). zstd packs the JSON rows ~10x at ~300 MB/s: the embedded "
        "broker, which keeps every batch in memory as it came, grew 3.9x slower at "
        "1,000 events/s, for ~10 us more worker CPU per event. `none`: least CPU.",
    )
    clickhouse_url: str | None = Field(
        default=None,
        description="clickhouse://user:pass@host:9000/db for a ClickHouse server (native "
        "protocol via clickhouse-driver). Unset: embedded chDB in $CLICKSTREAM_HOME/chdb.",
    )
    clickhouse_cluster: str = Field(
        default="",
        description="ClickHouse cluster name (remote_servers) for the replicated, sharded "
        "schema: migrations run ON CLUSTER, each table becomes a Replicated*MergeTree "
        "`<table>_local` plus a Distributed table under its name (docs/production.md). "
        "Set it for every sink and `clickstream migrate`. Empty: one server (or chDB).",
    )
    topic_prefix: str = Field(
        default="clickstream", description="Prefix of every Kafka topic (clickstream.raw, ...)."
    )
    topic_partitions: int = Field(
        default=4, ge=1, le=1024,
        description="Partitions of the pipeline topics when this project creates them.",
    )
    topic_replication_factor: int = Field(
        default=3, ge=1, le=16,
        description="Replication factor of the topics this project creates on real Kafka "
        "(the worker's changelog topics too); the embedded broker always uses 1.",
    )
    topic_retention_hours: int = Field(
        default=7 * 24, ge=1,
        description="Retention of the pipeline topics (events, sessions, attribution, ...).",
    )
    topic_raw_retention_hours: int = Field(
        default=24, ge=1,
        description="Retention of clickstream.raw, which holds client IPs: keep it short.",
    )
    log_json: bool = Field(default=False, description="Log one JSON object per line.")
    log_level: str = Field(default="INFO", description="Python log level.")
    events_ttl_days: int = Field(
        default=400, ge=0, description="Retention of `events` (days; 0 keeps rows forever). "
        "Applied by `clickstream migrate` and at sink start, also to existing tables.",
    )
    sessions_ttl_days: int = Field(
        default=800, ge=0, description="Retention of `sessions` (days; 0 = forever).",
    )
    attribution_ttl_days: int = Field(
        default=800, ge=0,
        description="Retention of `conversions` and `attribution` (days; 0 = forever).",
    )
    rollup_ttl_days: int = Field(
        default=1100, ge=0, description="Retention of rollup (pre-aggregated) tables "
        "(days; 0 = forever).",
    )
    invalid_ttl_days: int = Field(
        default=90, ge=0, description="Retention of `invalid_events` dead letters (days; "
        "0 = forever).",
    )

    @field_validator("clickhouse_url")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        if v and urlsplit(v).scheme not in ("clickhouse", "clickhouses"):
            raise ValueError("clickhouse_url must look like clickhouse://user:pass@host:9000/db")
        return v or None

    @field_validator("clickhouse_cluster")
    @classmethod
    def _check_cluster(cls, v: str) -> str:
        if v and not re.fullmatch(r"[A-Za-z0-9_.-]+|\{[A-Za-z0-9_]+\}", v):
            raise ValueError("clickhouse_cluster must be a cluster name of remote_servers "
                             "(letters, digits, _ . -) or a macro such as {cluster}")
        return v

    @computed_field  # type: ignore[prop-decorator]
    @property
    def embedded_broker(self) -> bool:
        """True when the Tansu compatibility layer is on."""
        if self.broker_profile == "auto":
            return self.kafka_bootstrap is None
        return self.broker_profile == "embedded"

    @property
    def kafka_compression_type(self) -> str | None:
        """The producers' `compression_type` (None: uncompressed)."""
        return None if self.kafka_compression == "none" else self.kafka_compression

    @property
    def chdb_path(self) -> Path:
        return self.home / "chdb"

    @property
    def database(self) -> str:
        if self.clickhouse_url:
            db = urlsplit(self.clickhouse_url).path.strip("/")
            return unquote(db) or "clickstream"
        return "clickstream"

    def topic(self, name: str) -> str:
        """Full topic name: raw -> clickstream.raw."""
        return f"{self.topic_prefix}.{name}"


class CollectorSettings(CommonSettings):
    """HTTP collector: the only internet-facing service."""

    collector_host: str = Field(default="127.0.0.1", description="Collector listen address.")
    collector_port: int = Field(default=8080, ge=0, le=65535, description="Collector port.")
    collector_max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest accepted request body (413 above)."
    )
    collector_max_events: int = Field(
        default=100, ge=1, description="Most events in one request (413 above)."
    )
    collector_trust_forwarded_for: bool = Field(
        default=False,
        description="Legacy switch: with no collector_trusted_proxies set, trust every hop of "
        "X-Forwarded-For (spoofable). Prefer collector_trusted_proxies.",
    )
    collector_trusted_proxies: str = Field(
        default="",
        description="Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is "
        "honoured (e.g. 10.0.0.0/8,127.0.0.1/32); the client IP is the right-most untrusted "
        "address. Empty: the TCP peer address is the client IP.",
    )
    collector_rate_limit_per_second: float = Field(
        default=200.0, ge=0,
        description="Requests per second per client IP on the ingestion routes (token bucket "
        "refill rate); 0 turns rate limiting off.",
    )
    collector_rate_limit_burst: int = Field(
        default=400, ge=1, description="Token bucket size per client IP (largest burst)."
    )
    collector_rate_limit_clients: int = Field(
        default=100_000, ge=1,
        description="Most client IPs whose buckets are kept (least recently seen are evicted).",
    )
    collector_buffer_max_events: int = Field(
        default=50_000, ge=1,
        description="Most events (and dead letters) held in memory waiting for Kafka; above "
        "it the collector answers 503 with Retry-After.",
    )
    collector_buffer_max_bytes: int = Field(
        default=128 * 1024 * 1024, ge=1024,
        description="Most bytes of serialized records held in memory waiting for Kafka.",
    )
    collector_bundle_bytes: int = Field(
        default=256 * 1024, ge=0, le=768 * 1024,
        description="Raw records bound for one partition in one send are bundled into one "
        "Kafka record of up to this many bytes (0: one record each). Bundles only form when "
        "records queue up, so they add no latency; they spare the stream worker its "
        "per-record cost, its largest.",
    )
    collector_retry_after_seconds: int = Field(
        default=5, ge=1, description="Retry-After sent with 503 answers (buffer full, stopping)."
    )
    collector_drain_seconds: float = Field(
        default=10.0, ge=0,
        description="On SIGTERM: longest time spent delivering buffered events before exiting.",
    )


class WorkerSettings(CommonSettings):
    """Faust stream worker."""

    worker_id: str = Field(default="clickstream-streams", description="Faust app id / group.")
    worker_web_port: int = Field(
        default=6066, ge=0, le=65535, description="Port of the worker's /metrics and /healthz."
    )
    worker_web_host: str = Field(default="127.0.0.1", description="Worker web listen address.")
    worker_batch_size: int = Field(
        default=1000, ge=1, description="Most events handled per batch (one state write each)."
    )
    worker_batch_seconds: float = Field(
        default=0.2, gt=0, description="Longest wait to fill a batch."
    )
    worker_fetch_wait_ms: int = Field(
        default=200, ge=1, le=10_000,
        description="Longest wait of a worker fetch on the embedded broker (Tansu answers "
        "an empty fetch after about half of it, even when records arrive meanwhile): shorter "
        "means fresher live numbers, longer fewer idle requests. Faust's own is 1,500 ms.",
    )
    worker_state_cache: int = Field(
        default=10_000, ge=0, le=10_000_000,
        description="Decoded visitor states kept in memory, so a visitor seen again soon is "
        "not decoded again (~3 kB each with one session: ~30 MB by default). 0: off.",
    )
    worker_traffic_windows: bool = Field(
        default=True,
        description="Keep the real-time traffic windows (traffic_1m and the live view) in "
        "this worker. Off: enrichment, sessions and attribution only.",
    )
    worker_store: str = Field(
        default="memory://",
        description="Faust table store: memory:// (state rebuilt from the changelog at every "
        "start) or rocksdb:// (on disk under CLICKSTREAM_HOME/faust via rocksdict; restarts "
        "replay only the changelog tail: use it in production).",
    )
    worker_max_ts_skew_seconds: int = Field(
        default=300, ge=0,
        description="Client timestamps further in the future than this use the receive time.",
    )
    worker_events_format: Literal["arrow", "ndjson"] = Field(
        default="ndjson",
        description="How enriched events go to the events topic: Arrow IPC stream messages "
        "(columns; the sink inserts them at a fraction of the CPU) or NDJSON rows.",
    )
    worker_faust_metrics: bool = Field(
        default=False,
        description="Also export Faust's per-message sensor metrics (clickstream_worker_faust_*)"
        "; costs CPU on every message.",
    )
    session_timeout_minutes: int = Field(
        default=30, ge=1, le=24 * 60, description="Inactivity that ends a session."
    )
    session_split_on_campaign: bool = Field(
        default=True, description="Start a new session when a new campaign/referrer arrives."
    )
    session_split_at_midnight: bool = Field(
        default=True, description="Start a new session at midnight in session_timezone."
    )
    session_timezone: str = Field(
        default="UTC", description="IANA time zone of the midnight split (e.g. Europe/Paris)."
    )
    session_lateness_minutes: int = Field(
        default=360, ge=0,
        description="How late an event may arrive and still join its session.",
    )
    dedup_window_minutes: int = Field(
        default=60, ge=1, description="An event id seen this recently is dropped as duplicate."
    )
    attribution_lookback_days: int = Field(
        default=30, ge=1, le=90, description="Touchpoints older than this before a conversion "
        "get no credit."
    )
    attribution_half_life_days: float = Field(
        default=7.0, gt=0, description="Half-life of the time-decay attribution model."
    )
    attribution_max_touchpoints: int = Field(
        default=50, ge=2, le=1000,
        description="Touchpoints kept per visitor (the first and the latest always stay).",
    )
    attribution_goals: str = Field(
        default="", description="Extra conversions, comma separated: event:NAME or "
        "pageview:/path (events of type conversion always count)."
    )
    worker_max_ts_age_days: int = Field(
        default=7, ge=0,
        description="Client timestamps older than this (vs. receive time) use the receive time.",
    )
    traffic_lateness_seconds: int = Field(
        default=120, ge=0, le=3600,
        description="Traffic windows (1 min, event time): an event received this long after "
        "its minute ended still updates it; later ones are only counted as dropped-late.",
    )
    traffic_top_n: int = Field(
        default=10, ge=1, le=1000,
        description="Values kept per traffic window and dimension (path, channel, source, ...); "
        "the rest are summed into an '(other)' row so totals stay exact.",
    )
    traffic_internal_networks: str = Field(
        default="",
        description="Internal traffic left out of the traffic windows: client IP ranges, "
        "comma separated, for all sites (10.0.0.0/8) or one site (shop.example=192.0.2.0/24).",
    )

    @field_validator("session_timezone")
    @classmethod
    def _check_tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (use an IANA name)") from exc
        return v


class SinkSettings(CommonSettings):
    """ClickHouse sink: Kafka -> ClickHouse in batches."""

    sink_group: str = Field(default="clickstream-sink", description="Kafka consumer group.")
    sink_batch_rows: int = Field(
        default=50_000, ge=1, description="Flush when this many rows are buffered."
    )
    sink_flush_seconds: float = Field(
        default=1.0, gt=0, description="Flush at least this often when rows are buffered."
    )
    sink_traffic_flush_seconds: float = Field(
        default=0.25, gt=0,
        description="Flush interval of the traffic windows' rows (traffic_1m and the live "
        "view): small rows, flushed more often than the large tables.",
    )
    sink_port: int = Field(
        default=8124, ge=0, le=65535,
        description="Port of the sink's /metrics, /healthz and local query endpoint.",
    )
    sink_host: str = Field(default="127.0.0.1", description="Sink HTTP listen address.")
    sink_max_retry_seconds: float = Field(
        default=30.0, gt=0, description="Longest backoff between insert retries."
    )

"""Observability contract: the metric names dashboards and alerts use are exported by the
services, names follow clickstream_<service>_<what>_<unit>, consumer lag is exported, and the
Prometheus config passes `promtool check config`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import faust
import pytest
import yaml
from faust.sensors.prometheus import FaustMetrics
from faust.types import TP
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

import producers.collector.metrics
import sinks.metrics
import streams.metrics
from streams.metrics import ConsumerLagCollector, watch_consumer_lag

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERVICE_MODULES = (producers.collector.metrics, streams.metrics, sinks.metrics)
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "inf", "nan"}
#: Series Prometheus makes itself for every target.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def _sample_names(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry can expose, labelled metrics without children included."""
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "untyped": ("",),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}
    names = set()
    for family in registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names


def faust_sensor_enabled_in_deploy() -> bool:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    env = compose["services"]["worker"]["environment"]
    return str(env.get("CLICKSTREAM_WORKER_FAUST_METRICS", "")).lower() == "true"


def exported_metric_names() -> set[str]:
    """Names on the services' /metrics: each service's module registers on the default
    registry (with the process collector); Faust's sensor only when deploy/ enables it."""
    names = _sample_names(REGISTRY)
    if faust_sensor_enabled_in_deploy():
        names |= _sample_names(_faust_registry())
    return names | PROMETHEUS_OWN


def _faust_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    FaustMetrics.create(registry, "clickstream_worker_faust")  # as streams/app.py does
    return registry


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (labels, ranges, strings and functions removed)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    names = set()
    for m in re.finditer(r"(?<![\w$.])[A-Za-z_:][\w:]*", s):
        if s[m.end():].lstrip().startswith("(") or m.group().lower() in PROMQL_WORDS:
            continue
        names.add(m.group())
    return names


def test_promql_metric_names() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, table) (rate(clickstream_sink_insert_seconds'
            '_bucket{table=~".*[.]events"}[$__rate_interval]))) / on (job) up')
    assert promql_metric_names(expr) == {"clickstream_sink_insert_seconds_bucket", "up"}


def test_service_metrics_follow_the_naming_scheme() -> None:
    pattern = re.compile(r"^clickstream_(collector|worker|sink)_[a-z0-9_]+$")
    ours = [f.name for m in SERVICE_MODULES for f in _module_families(m)]
    assert len(ours) >= 15
    bad = [n for n in ours if not pattern.match(n)]
    assert not bad, bad


def _module_families(module: object) -> list[Metric]:
    """Families of the metrics (and custom collectors) a service module defines."""
    out = []
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase | ConsumerLagCollector):
            out.extend(value.describe())
    return out


def test_worker_exports_consumer_lag_from_faust_monitor() -> None:
    """End offset minus committed offset per partition, from the app's real Faust monitor."""
    app = faust.App("lag-test-group", broker="kafka://127.0.0.1:1")
    watch_consumer_lag(app)
    tp = TP("clickstream.raw", 3)
    app.monitor.track_tp_end_offset(tp, 1_000)
    app.monitor.on_tp_commit({tp: 250})
    text = generate_latest(REGISTRY).decode()
    assert ('clickstream_worker_consumer_lag_records{group="lag-test-group",partition="3",'
            'topic="clickstream.raw"} 750.0') in text
    app.monitor.on_tp_commit({tp: 1_000})
    assert ('clickstream_worker_consumer_lag_records{group="lag-test-group",partition="3",'
            'topic="clickstream.raw"} 0.0') in generate_latest(REGISTRY).decode()


def test_alert_rules_use_exported_metrics() -> None:
    exported = exported_metric_names()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "clickstream.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert exprs
    for expr in exprs:
        missing = promql_metric_names(expr) - exported
        assert not missing, f"{expr}: {missing}"


def test_prometheus_scrapes_every_service_on_its_port() -> None:
    from clickstream.settings import CollectorSettings, SinkSettings, WorkerSettings

    cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    ports = {}
    for job in cfg["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            ports[job["job_name"]] = sd["port"]
        for sc in job.get("static_configs", []):
            ports.setdefault(job["job_name"], int(sc["targets"][0].rsplit(":", 1)[1]))
    assert ports["clickstream-collector"] == CollectorSettings().collector_port
    assert ports["clickstream-worker"] == WorkerSettings().worker_web_port
    assert ports["clickstream-sink"] == SinkSettings().sink_port


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool (Debian package prometheus) not installed; "
                    "scripts/install-system-deps.sh installs it")
def test_promtool_accepts_config_and_rules() -> None:
    for args in (["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                 ["check", "rules", str(DEPLOY / "prometheus" / "rules" / "clickstream.yml")]):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr

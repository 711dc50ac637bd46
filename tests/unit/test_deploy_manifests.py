"""deploy/ is internally consistent: compose and Kubernetes manifests parse, every file they
reference exists, ports match the services' settings, every CLICKSTREAM_* variable is a real
setting, images are pinned, no secret is committed, and the dashboards are what
deploy/grafana/build_dashboards.py writes."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import yaml

from clickstream.settings import CollectorSettings, SinkSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SETTING_VARS = {f"CLICKSTREAM_{name.upper()}"
                for cls in (CollectorSettings, WorkerSettings, SinkSettings)
                for name in cls.model_fields}
DEFAULT_PORTS = {"collector": CollectorSettings().collector_port,
                 "worker": WorkerSettings().worker_web_port, "sink": SinkSettings().sink_port}
PINNED = re.compile(r"^[\w./-]+:(v?\d+(\.\d+)+[\w.-]*)$")


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def service_env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    return {k: str(v) for k, v in env.items()}


def test_compose_has_every_service_with_healthcheck_and_restart_policy() -> None:
    services = compose()["services"]
    assert {"kafka", "clickhouse", "prometheus", "grafana", "collector", "worker", "sink",
            "topics"} <= set(services)
    assert services["collector"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 2
    for name, svc in services.items():
        assert svc.get("restart") in ("unless-stopped", "always", "on-failure"), name
        if name != "topics":  # a one-shot job
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_compose_files_exist_and_images_are_pinned() -> None:
    doc = compose()
    for name, svc in doc["services"].items():
        image = svc["image"]
        assert PINNED.match(image), f"{name}: image {image} is not pinned to a version"
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("."):
                assert (DEPLOY / src).exists(), f"{name}: {src} does not exist"
        for env_file in svc.get("env_file", []):
            assert env_file == ".env", "secrets come from deploy/.env only"
        build = svc.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    assert (DEPLOY / ".env.example").is_file()
    assert not (DEPLOY / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text()


def test_compose_env_vars_are_real_settings_and_ports_match() -> None:
    services = compose()["services"]
    for name in ("collector", "worker", "sink", "topics"):
        env = service_env(services[name])
        unknown = {k for k in env if k.startswith("CLICKSTREAM_")} - SETTING_VARS
        assert not unknown, f"{name}: not settings: {unknown}"
        for key, value in env.items():  # values the settings accept
            if key.startswith("CLICKSTREAM_") and "${" not in value:
                cls = {"collector": CollectorSettings, "worker": WorkerSettings}.get(
                    name, SinkSettings)
                field = key.removeprefix("CLICKSTREAM_").lower()
                if field in cls.model_fields:
                    cls.model_validate({field: value})
    assert service_env(services["collector"])["CLICKSTREAM_COLLECTOR_PORT"] == str(
        DEFAULT_PORTS["collector"])
    assert services["collector"]["ports"] == [f"8080-8081:{DEFAULT_PORTS['collector']}"]
    assert service_env(services["worker"])["CLICKSTREAM_WORKER_WEB_PORT"] == str(
        DEFAULT_PORTS["worker"])
    assert service_env(services["sink"])["CLICKSTREAM_SINK_PORT"] == str(DEFAULT_PORTS["sink"])
    for name, port in DEFAULT_PORTS.items():  # health checks probe the service's own port
        assert f":{port}/" in " ".join(services[name]["healthcheck"]["test"]), name


def test_dockerfile_is_non_root_multi_stage_and_pinned() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(stages) >= 3 and all(PINNED.match(s) for s in stages), stages
    assert re.search(r"^USER\s+10001", text, re.M)
    assert "npm ci" in text and "producers/js" in text
    for src in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", text, re.M):
        for part in src.split():
            assert (ROOT / part).exists(), f"COPY source {part} missing"
    exposed = {int(p) for p in re.findall(r"^EXPOSE\s+(.+)$", text, re.M)[0].split()}
    assert exposed == set(DEFAULT_PORTS.values())


def test_env_example_has_every_variable_compose_requires() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = dict(line.split("=", 1) for line in (DEPLOY / ".env.example").read_text()
                   .splitlines() if line and not line.startswith("#"))
    assert required <= set(example)
    assert all("change-me" in v for v in example.values()), "no real secret in the example"
    users = (DEPLOY / "clickhouse" / "users.d" / "clickstream.xml").read_text()
    for var in re.findall(r'from_env="(\w+)"', users):
        assert var in example
    ds = (DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text()
    for line in ds.splitlines():
        if not line.lstrip().startswith("#"):
            for var in re.findall(r"\$(\w+)", line):
                assert var in example


def test_clickhouse_users_writer_and_read_only_analyst() -> None:
    users = (DEPLOY / "clickhouse" / "users.d" / "clickstream.xml").read_text()
    assert "GRANT SELECT ON clickstream.*" in users and "<readonly>1</readonly>" in users
    assert "GRANT ALL ON clickstream.*" in users
    assert "<password>" not in users  # passwords only from the environment


def test_k8s_manifests_reference_real_things() -> None:
    docs = k8s_docs()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for want in [("Deployment", "clickstream-collector"), ("Service", "clickstream-collector"),
                 ("HorizontalPodAutoscaler", "clickstream-collector"),
                 ("StatefulSet", "clickstream-worker"), ("Deployment", "clickstream-sink"),
                 ("ConfigMap", "clickstream-config"), ("Secret", "clickstream-secrets"),
                 ("Job", "clickstream-topics")]:
        assert want in kinds, want
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for res in kustomization["resources"]:
        assert (K8S / res).is_file(), res
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    unknown = {k for k in config if k.startswith("CLICKSTREAM_")} - SETTING_VARS
    assert not unknown, unknown
    secret = next(d for d in docs if d["kind"] == "Secret")["stringData"]
    assert set(secret) <= SETTING_VARS and "CHANGE-ME" in secret["CLICKSTREAM_CLICKHOUSE_URL"]
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    worker = next(d for d in docs if d["kind"] == "StatefulSet")
    assert worker["spec"]["replicas"] <= int(config["CLICKSTREAM_TOPIC_PARTITIONS"])
    names = {name for _, name in kinds}
    for d in docs:
        spec = d.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []):
            for src in c.get("envFrom", []):
                ref = src.get("configMapRef") or src.get("secretRef")
                assert ref["name"] in names, ref
            env = {e["name"] for e in c.get("env", [])}
            assert not {e for e in env if e.startswith("CLICKSTREAM_")} - SETTING_VARS
            service = c["args"][0]
            ports = {p["containerPort"] for p in c.get("ports", [])}
            if service in DEFAULT_PORTS:
                assert ports == {DEFAULT_PORTS[service]}, service
                port_var = {"collector": "CLICKSTREAM_COLLECTOR_PORT",
                            "worker": "CLICKSTREAM_WORKER_WEB_PORT",
                            "sink": "CLICKSTREAM_SINK_PORT"}[service]
                assert config[port_var] == str(DEFAULT_PORTS[service])
                ann = d["spec"]["template"]["metadata"]["annotations"]
                assert ann["prometheus.io/port"] == str(DEFAULT_PORTS[service])
            for vol in spec.get("volumes", []):
                claim = vol.get("persistentVolumeClaim")
                cm = vol.get("configMap")
                if claim:
                    assert claim["claimName"] in names
                if cm:
                    assert all(i["key"] in config for i in cm.get("items", []))


def test_sites_files_parse() -> None:
    from producers.collector.sites import load_sites

    load_sites(DEPLOY / "sites.toml")
    k8s_sites = next(d for d in k8s_docs() if d["kind"] == "ConfigMap")["data"]["sites.toml"]
    assert "[sites." in k8s_sites


def test_dashboards_are_what_the_generator_writes() -> None:
    module = runpy.run_path(str(DEPLOY / "grafana" / "build_dashboards.py"))
    rendered = module["render"]()
    committed = {p.name: p.read_text() for p in (DEPLOY / "grafana" / "dashboards")
                 .glob("*.json")}
    assert rendered == committed, "run python deploy/grafana/build_dashboards.py"


def test_grafana_provisioning_matches_dashboards_and_datasources() -> None:
    import json

    ds = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" /
                         "datasources.yml").read_text())
    uids = {d["uid"]: d["type"] for d in ds["datasources"]}
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        doc = json.loads(path.read_text())
        for panel in doc["panels"]:
            for target in panel["targets"]:
                assert uids.get(target["datasource"]["uid"]) == target["datasource"]["type"]
    plugin = compose()["services"]["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    assert plugin.startswith("grafana-clickhouse-datasource ")

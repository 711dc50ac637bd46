"""deploy/clickhouse/cluster/ agrees with itself, with the compose stack and with the
settings: the remote_servers hosts are the compose nodes, shards and replicas follow the
macros each node gets, the Keeper ensemble is the one the servers use, the sink migrates
ON CLUSTER with the cluster's name, Distributed inserts are synchronous for the writer,
and no secret is committed. (Loaded by ClickHouse itself: tests/integration/
test_cluster_chdb.py.)"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

from clickstream.settings import SinkSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CLUSTER_DIR = DEPLOY / "clickhouse" / "cluster"
PER_NODE_VARS = {"CLICKHOUSE_SHARD", "CLICKHOUSE_REPLICA", "KEEPER_SERVER_ID"}


def xml(path: str) -> ET.Element:
    return ET.parse(CLUSTER_DIR / path).getroot()


def override() -> dict[str, Any]:
    return yaml.safe_load((CLUSTER_DIR / "compose.cluster.yml").read_text())


def base() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def clickhouse_nodes() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in override()["services"].items()
            if str(s.get("image", "")).startswith("clickhouse/clickhouse-server")}


def test_remote_servers_are_the_compose_nodes_with_their_macros() -> None:
    config = xml("config.d/cluster.xml")
    (cluster,) = list(config.find("remote_servers"))
    assert cluster.tag == "clickstream"
    shards = cluster.findall("shard")
    assert len(shards) == 2 and all(len(s.findall("replica")) == 2 for s in shards)
    assert all(s.findtext("internal_replication") == "true" for s in shards)
    nodes = clickhouse_nodes()
    hosts = {}
    for number, shard in enumerate(shards, 1):
        for replica in shard.findall("replica"):
            hosts[replica.findtext("host")] = f"{number:02d}"
            assert replica.findtext("port") == "9000"
    assert set(hosts) == set(nodes)
    for name, node in nodes.items():
        env = node["environment"]
        assert env["CLICKHOUSE_SHARD"] == hosts[name] and env["CLICKHOUSE_REPLICA"] == name
        assert node["hostname"] == name  # replicas fetch parts from each other by this name
    macros = config.find("macros")
    assert macros.findtext("cluster") == cluster.tag
    assert macros.find("shard").get("from_env") == "CLICKHOUSE_SHARD"
    assert macros.find("replica").get("from_env") == "CLICKHOUSE_REPLICA"
    assert config.findtext("distributed_ddl/path")


def test_keeper_ensemble_is_the_one_the_servers_use() -> None:
    servers = {n.findtext("host") for n in xml("config.d/cluster.xml").iter("node")}
    raft = {s.findtext("hostname"): s.findtext("id")
            for s in xml("keeper/keeper_config.xml").iter("server")}
    keepers = {n: s for n, s in override()["services"].items() if n.startswith("keeper")}
    assert servers == set(raft) == set(keepers) and len(raft) == 3
    for name, svc in keepers.items():
        assert svc["environment"]["KEEPER_SERVER_ID"] == raft[name]
    assert xml("keeper/keeper_config.xml").find("keeper_server/server_id").get(
        "from_env") == "KEEPER_SERVER_ID"


def test_the_sink_migrates_on_the_cluster_and_inserts_synchronously() -> None:
    sink_env = override()["services"]["sink"]["environment"]
    name = sink_env["CLICKSTREAM_CLICKHOUSE_CLUSTER"]
    assert SinkSettings.model_validate({"clickhouse_cluster": name}).clickhouse_cluster == name
    assert name == next(iter(xml("config.d/cluster.xml").find("remote_servers"))).tag
    users = xml("users.d/cluster.xml")
    writer = users.find("users/writer")
    assert writer.get("replace") == "replace"
    grants = [q.text for q in writer.iter("query")]
    assert "GRANT CLUSTER ON *.*" in grants and "GRANT ALL ON clickstream.*" in grants
    profile = users.find(f"profiles/{writer.findtext('profile')}")
    assert profile.findtext("insert_distributed_sync") == "1"
    # the compose writer user it replaces: same password source and networks
    single = ET.parse(DEPLOY / "clickhouse" / "users.d" / "clickstream.xml").getroot()
    assert single.find("users/writer/password").attrib == writer.find("password").attrib


def test_override_mounts_exist_images_match_and_nothing_secret_is_committed() -> None:
    services = override()["services"]
    pinned = base()["services"]["clickhouse"]["image"]
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("."):  # relative to deploy/, like the base file's
                assert (DEPLOY / src).is_file(), f"{name}: {src}"
        image = svc.get("image")
        if image:
            assert re.fullmatch(r"clickhouse/clickhouse-(server|keeper):\d+\.\d+", image)
            assert image.split(":")[1] == pinned.split(":")[1], "one ClickHouse version"
    for node in clickhouse_nodes().values():
        mounts = {v.split(":")[1] for v in node["volumes"]}
        assert {"/etc/clickhouse-server/config.d/cluster.xml",
                "/etc/clickhouse-server/users.d/cluster.xml",
                "/etc/clickhouse-server/users.d/clickstream.xml"} <= mounts
    declared = set(override().get("volumes", {})) | set(base().get("volumes", {}))
    named = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])
             if not v.startswith(".")}
    assert named <= declared
    example = (DEPLOY / ".env.example").read_text()
    for path in CLUSTER_DIR.rglob("*.xml"):
        text = path.read_text()
        assert not re.search(r"<(password|secret)>[^<]", text), f"{path}: a literal secret"
        for var in set(re.findall(r'from_env="(\w+)"', text)) - PER_NODE_VARS:
            assert re.search(rf"^{var}=change-me", example, re.M), f"{var} not in .env.example"

"""Run SQL in a chDB that believes it is a node of a ClickHouse cluster, in a child process.

The config (written next to the data directory) defines `remote_servers` with two shards
that both point at this node (localhost:9000, so Distributed reads and writes stay in the
process), the macros {cluster}, {shard}, {replica}, and ZooKeeper as ClickHouse's in-memory
`testkeeper`, so ReplicatedMergeTree tables can be created. What chDB cannot do: ON CLUSTER
(no DDL worker: "Replicated DDL queries are disabled"), and writes or ALTERs on replicated
tables (their replicas stay read-only without a real Keeper session).

A child process because a chDB session is process-wide, and closing one that holds
replicated tables can hang: the child drops them first, and is killed on a timeout.

Usage: `run(statements, workdir)` -> one result per statement: {"ok", "out", "error"}.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

CLUSTER = "clickstream"
MACROS = {"shard": "01", "replica": "r1", "cluster": CLUSTER}


def config_xml(shards: int = 2) -> str:
    shard = "<shard><replica><host>localhost</host><port>9000</port></replica></shard>"
    macros = "".join(f"<{k}>{v}</{k}>" for k, v in MACROS.items())
    return (f"<clickhouse><tcp_port>9000</tcp_port><remote_servers><{CLUSTER}>"
            f"{shard * shards}</{CLUSTER}></remote_servers><macros>{macros}</macros>"
            "<zookeeper><implementation>testkeeper</implementation></zookeeper></clickhouse>")


def run(statements: list[str], workdir: Path, *, config: str | None = None,
        timeout: float = 120) -> list[dict[str, Any]]:
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "config.xml"
    if config is None:
        cfg.write_text(config_xml())
    else:
        cfg = Path(config)
    job = {"path": f"{workdir / 'data'}?config-file={cfg}", "statements": statements}
    proc = subprocess.run([sys.executable, __file__], input=json.dumps(job), text=True,
                          capture_output=True, timeout=timeout)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"chDB child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def _child() -> None:
    from chdb import session

    job = json.loads(sys.stdin.read())
    s = session.Session(job["path"])
    results = []
    for sql in job["statements"]:
        try:
            out = s.query(sql, "TSVRaw")
            results.append({"ok": True, "out": "" if out is None else str(out), "error": ""})
        except Exception as exc:  # chdb raises its own error types
            results.append({"ok": False, "out": "", "error": str(exc).strip()})
    replicated = s.query("SELECT database, name FROM system.tables WHERE engine LIKE "
                         "'Replicated%' AND database NOT IN ('system')", "TSV")
    for line in str(replicated).splitlines():  # closing with them attached can hang
        db, name = line.split("\t")
        s.query(f"DROP TABLE `{db}`.`{name}` SYNC")
    s.close()
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    _child()

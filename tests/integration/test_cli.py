"""The CLI as a newcomer uses it: `up --demo`, `sql` (with and without a running stack),
`migrate`, `status`, `settings`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from clickstream.embedded_broker import free_port
from clickstream.stack import Stack
from tests.helpers import make_event, post_events, wait_until

pytestmark = pytest.mark.integration


def cli(*args: str, home: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    environ.update({"CLICKSTREAM_HOME": str(home), "COLUMNS": "200", **env})
    return subprocess.run([sys.executable, "-m", "clickstream", *args], env=environ,
                          capture_output=True, text=True, timeout=timeout)


def test_up_demo_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    run = cli("up", "--demo", "--rate", "500", "--duration", "25", "--port", str(port),
              home=tmp_path, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"collector http://127.0.0.1:{port}" in run.stderr
    stored = int(re.search(r"([\d,]+) events stored", run.stderr).group(1).replace(",", ""))
    assert stored > 1000, run.stderr[-2000:]
    assert "stopped" in run.stderr
    assert not (tmp_path / "run" / "stack.json").exists()
    # after `up` ended, the same data is readable straight from the chDB directory
    out = cli("sql", "SELECT count() > 1000, countIf(channel = '') = 0 FROM clickstream.events",
              "--format", "tsv", home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "1\t1"  # >1000 rows, every one has a channel


def test_migrate_sql_status_without_a_stack(tmp_path: Path) -> None:
    first = cli("migrate", home=tmp_path)
    assert first.returncode == 0 and "0001_events" in first.stderr
    again = cli("migrate", home=tmp_path)
    assert again.returncode == 0 and "up to date" in again.stderr
    out = cli("sql", "SELECT version, name FROM clickstream.schema_migrations ORDER BY version",
              "--format",
              "json", home=tmp_path)
    assert orjson.loads(out.stdout.splitlines()[0]) == {"version": 1, "name": "events"}
    bad = cli("sql", "SELECT nope FROM clickstream.events", home=tmp_path)
    assert bad.returncode == 1 and "query failed" in bad.stderr
    status = cli("status", home=tmp_path)
    assert status.returncode == 0 and "no stack running" in status.stdout
    assert "events" in status.stdout


def test_sql_goes_through_the_running_stack(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    post_events(stack.collector_url, [make_event("cli-site") for _ in range(3)])
    env = {"CLICKSTREAM_KAFKA_BOOTSTRAP": stack.bootstrap,
           "CLICKSTREAM_BROKER_PROFILE": "embedded"}

    def count() -> bool:
        out = cli("sql", "SELECT count() FROM clickstream.events WHERE site_id = 'cli-site'",
                  "--format", "tsv", home=stack.home, **env)
        return out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "3"

    wait_until(count, timeout=60, what="3 rows visible through `clickstream sql`")
    status = cli("status", home=stack.home, **env)
    assert "healthy" in status.stdout and "collector" in status.stdout


def test_settings_lists_every_variable(tmp_path: Path) -> None:
    out = cli("settings", home=tmp_path)
    assert out.returncode == 0
    for var in ("CLICKSTREAM_KAFKA_BOOTSTRAP", "CLICKSTREAM_CLICKHOUSE_URL",
                "CLICKSTREAM_HOME", "CLICKSTREAM_COLLECTOR_PORT"):
        assert var in out.stdout

"""Load generator -> collector (HTTP) and Kafka -> worker -> sink -> chDB: what lands in
ClickHouse matches the generator's ground truth, event by event and session by session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from clickstream.stack import Stack
from producers.loadgen.truth import load
from tests.conftest import store_of
from tests.helpers import wait_until

pytestmark = pytest.mark.integration


def loadgen(*args: str, stack: Stack) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    env.update({"CLICKSTREAM_HOME": str(stack.home),
                "CLICKSTREAM_TOPIC_PREFIX": stack.settings.topic_prefix})
    return subprocess.run([sys.executable, "-m", "clickstream", "loadgen", "--quiet", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def test_http_load_matches_ground_truth(stack_factory: Callable[..., Stack],
                                        tmp_path: Path) -> None:
    stack = stack_factory(CLICKSTREAM_COLLECTOR_TRUSTED_PROXIES="127.0.0.1/32")
    truth_dir = tmp_path / "truth"
    run = loadgen("--url", stack.collector_url, "--visitors", "300", "--rate", "2000",
                  "--seed", "5", "--malformed-share", "0.05", "--truth", str(truth_dir),
                  stack=stack)
    assert run.returncode == 0, run.stderr[-2000:]
    truth = load(truth_dir)
    valid = [e for e in truth["events"] if e["valid"]]
    invalid = [e for e in truth["events"] if not e["valid"]]
    assert invalid and len(valid) > 1000
    assert truth["summary"]["accepted"] == len(valid)
    assert truth["summary"]["rejected"] == len(invalid)

    store = store_of(stack)
    db = stack.settings.database
    wait_until(lambda: store.query_rows(f"SELECT count() FROM {db}.events FINAL")[1][0][0]
               == len(valid), timeout=40, what=f"{len(valid)} events in ClickHouse")
    wait_until(lambda: store.query_rows(f"SELECT count() FROM {db}.invalid_events")[1][0][0]
               == len(invalid), timeout=20, what="dead letters")
    # every event id is there, with its visitor; bots flagged, countries from the IPs
    _, rows = store.query_rows(
        f"SELECT toString(event_id), visitor_id, is_bot, country, device_type "
        f"FROM {db}.events FINAL")
    stored = {r[0]: r for r in rows}
    assert set(stored) == {e["event_id"] for e in valid}
    visitors = {v["visitor"]: v for v in truth["visitors"]}
    assert all(stored[e["event_id"]][1] == e["visitor"] for e in valid)
    bots = {r[1] for r in rows if r[2]}
    assert bots == {v for v, t in visitors.items() if t["bot"]}
    geo_ok = sum(r[3] == visitors[r[1]]["country"] for r in rows)
    assert geo_ok >= 0.99 * len(rows)
    assert all(r[4] == visitors[r[1]]["device_type"] for r in rows)

    # sessions: one per ground-truth session (bots make none), same start, channel, counts
    human = [s for s in truth["sessions"] if not s["bot"]]

    def sessions() -> list[list]:
        got = store.query_rows(
            f"SELECT visitor_id, toUnixTimestamp64Milli(started_at), channel, pageviews, "
            f"events, conversions, toFloat64(revenue), is_engaged FROM {db}.sessions FINAL")[1]
        return got if len(got) >= len(human) else []

    got = wait_until(sessions, timeout=30, what=f"{len(human)} sessions")
    by_key = {(r[0], r[1]): r for r in got}
    assert len(by_key) == len(human)
    mismatches = []
    for s in human:
        r = by_key.get((s["visitor"], s["started_at"]))
        expect = [s["channel"], s["pageviews"], s["events"], s["conversions"],
                  round(s["revenue"], 2), int(s["engaged"])]
        if r is None or [r[2], r[3], r[4], r[5], round(r[6], 2), r[7]] != expect:
            mismatches.append((s, r))
    assert not mismatches, mismatches[:3]
    channels = Counter(s["channel"] for s in human)
    assert len(channels) >= 8  # search, social, e-mail, QR, paid, AI, referral, direct...
    # conversions after multi-touch paths: the last-touch credit is the converting session's
    n_conv = len(truth["conversions"])
    assert n_conv and any(len(c["path"]) > 1 for c in truth["conversions"])
    def conversions() -> int:  # another table's insert: it may land a flush after sessions
        return int(store.query_rows(f"SELECT count() FROM {db}.conversions FINAL")[1][0][0])

    wait_until(lambda: conversions() >= n_conv, timeout=30, what=f"{n_conv} conversions")
    assert conversions() == n_conv


def test_kafka_target_writes_collector_envelopes(stack_factory: Callable[..., Stack],
                                                 tmp_path: Path) -> None:
    stack = stack_factory()
    truth_dir = tmp_path / "truth"
    run = loadgen("--target", "kafka", "--bootstrap", stack.bootstrap, "--visitors", "150",
                  "--rate", "0", "--seed", "9", "--truth", str(truth_dir), stack=stack)
    assert run.returncode == 0, run.stderr[-2000:]
    truth = load(truth_dir)
    valid = {e["event_id"] for e in truth["events"] if e["valid"]}
    store = store_of(stack)
    db = stack.settings.database
    wait_until(lambda: store.query_rows(f"SELECT count() FROM {db}.events FINAL")[1][0][0]
               == len(valid), timeout=40, what=f"{len(valid)} events")
    _, rows = store.query_rows(f"SELECT visitor_id, country FROM {db}.events FINAL")
    countries = {v["visitor"]: v["country"] for v in truth["visitors"]}
    assert sum(c == countries[v] for v, c in rows) >= 0.99 * len(rows)

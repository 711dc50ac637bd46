"""Every ```sql block in docs/*.md runs against chDB on synthetic data: a documented query
that does not run fails the suite."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from schemas.timefmt import ms_to_text, now_ms
from sinks.migrate import migrate
from sinks.store import ChdbStore

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```sql\n(.*?)```", re.S)
CHANNELS = ["Direct", "Organic Search", "Paid Social", "Email", "Referral", "QR Code"]
#: landing source / medium / campaign per channel (campaigns for the paid and e-mail ones)
CAMPAIGNS = {"Direct": ("(direct)", "(none)", ""), "Organic Search": ("google", "organic", ""),
             "Paid Social": ("facebook", "paid_social", "spring_sale"),
             "Email": ("newsletter", "email", "may_news"),
             "Referral": ("news.example", "referral", ""), "QR Code": ("poster", "qr", "")}


def documented_queries() -> list[tuple[str, str]]:
    out = []
    for doc in sorted(DOCS.glob("*.md")):
        for i, sql in enumerate(BLOCK.findall(doc.read_text())):
            out.append((f"{doc.name}#{i + 1}", sql.strip()))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    s = ChdbStore(tmp_path_factory.mktemp("docs-chdb"))
    migrate(s, "clickstream")
    rng = random.Random(5)
    now = now_ms()
    events, sessions = [], []
    for v in range(200):
        visitor = f"v{v}"
        for _k in range(rng.randint(1, 3)):
            sid = uuid.uuid4().hex[:20]
            start = now - rng.randint(0, 6 * 86_400_000)
            channel = rng.choice(CHANNELS)
            source, medium, campaign = CAMPAIGNS[channel]
            tech = {"device_type": rng.choice(["desktop", "mobile"]),
                    "browser": rng.choice(["Chrome", "Firefox", "Safari"]),
                    "os": rng.choice(["Windows", "Android", "iOS"]), "country": "DE"}
            n = rng.randint(1, 6)
            conv = int(rng.random() < 0.2)
            for seq in range(1, n + 1):
                events.append({
                    "event_id": str(uuid.uuid4()), "site_id": "docs.example",
                    "type": "conversion" if conv and seq == n else "pageview",
                    "name": "purchase" if conv and seq == n else "",
                    "ts": ms_to_text(start + seq * 20_000), "received_at": ms_to_text(now),
                    "visitor_id": visitor, "session_id": sid, "session_seq": seq,
                    "url": f"https://docs.example/p{seq}", "host": "docs.example",
                    "path": f"/p{seq}", "channel": channel, "source": source,
                    "medium": medium, "utm_campaign": campaign, **tech,
                    "region": "Berlin", "city": "Berlin",
                    "revenue": "25.5" if conv and seq == n else "0",
                    "currency": "EUR" if conv and seq == n else "",
                })
            for version in (1, n):  # two versions of the same session, as the worker emits
                sessions.append({
                    "session_id": sid, "site_id": "docs.example", "visitor_id": visitor,
                    "first_seen": ms_to_text(start), "started_at": ms_to_text(start),
                    "ended_at": ms_to_text(start + version * 20_000),
                    "duration_ms": version * 20_000, "pageviews": version,
                    "events": version, "conversions": conv if version == n else 0,
                    "revenue": "25.5" if conv and version == n else "0",
                    "entry_path": "/p1", "exit_path": f"/p{version}", "channel": channel,
                    "is_engaged": int(version >= 2), "is_bounce": int(version < 2),
                    "version": version, "source": source, "medium": medium,
                    "campaign": campaign, **tech,
                })
    conversions, credits = [], []
    for c in range(60):
        path = [rng.choice(CHANNELS) for _ in range(rng.randint(1, 4))]
        ts = now - rng.randint(0, 20 * 86_400_000)
        cid = str(uuid.uuid4())
        conversions.append({
            "conversion_id": cid, "site_id": "docs.example", "visitor_id": f"v{c}",
            "ts": ms_to_text(ts), "name": "purchase", "revenue": "30", "currency": "EUR",
            "path_length": len(path), "time_to_convert_ms": rng.randint(0, 9 * 86_400_000),
            "first_channel": path[0], "last_channel": path[-1], "path": path,
        })
        for model in ("first_touch", "last_touch", "last_non_direct", "linear",
                      "time_decay", "position_based"):
            for i, channel in enumerate(path):
                credits.append({
                    "conversion_id": cid, "site_id": "docs.example",
                    "conversion_ts": ms_to_text(ts), "model": model, "touch_index": i,
                    "touch_ts": ms_to_text(ts - 1000), "channel": channel,
                    "source": channel.lower(), "medium": "x", "campaign": "c",
                    "credit": 1 / len(path), "revenue_credit": str(round(30 / len(path), 4)),
                    "currency": "EUR",
                })
    s.insert_json_rows("clickstream.conversions", [orjson.dumps(r) for r in conversions])
    s.insert_json_rows("clickstream.attribution", [orjson.dumps(r) for r in credits])
    s.insert_json_rows("clickstream.events", [orjson.dumps(e) for e in events])
    for first in (True, False):  # versions arrive in separate inserts, as from the sink
        s.insert_json_rows("clickstream.sessions", [
            orjson.dumps(r) for r in sessions[(0 if first else 1)::2]])
    yield s
    s.close()  # chDB serves one data directory per process: free it for the next module


@pytest.mark.parametrize("name, sql", documented_queries(), ids=lambda x: x if "#" in x else "")
def test_documented_query_runs(store: ChdbStore, name: str, sql: str) -> None:
    _names, rows = store.query_rows(sql)
    assert rows, f"{name} returned no rows on the synthetic data"


def test_final_collapses_session_versions(store: ChdbStore) -> None:
    _, raw = store.query_rows("SELECT count(), uniqExact(session_id) FROM clickstream.sessions")
    _, final = store.query_rows("SELECT count() FROM clickstream.sessions FINAL")
    assert raw[0][0] > raw[0][1] == final[0][0]

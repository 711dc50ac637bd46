"""The traffic windows' own CPU per event: `fold`, `emit` and `commit` of streams/traffic
over batches of 1,000 accepted events, as streams/app.py calls them, without Kafka (a
producer stand-in counts messages and bytes). Two kinds of traffic at 5,000 events/s:

- `journeys`: visitors with sessions of 1-10 events (45 % single-page), 500 pages (Zipf),
  a dozen sources and campaigns, 30 countries, conversions with revenue;
- `bench`: what bench/traffic_bench.py sends (5,000 visitors, pageviews, 40 pages).

    python -m bench.traffic_micro [--events 300000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import faust

from streams.pipeline import Ctx
from streams.traffic.internal import InternalTraffic
from streams.traffic.stream import TrafficWindows
from streams.traffic.table import TrafficStateTable

RATE = 5_000
BATCH = 1_000
PARTITIONS = 4
SOURCES = [("google", "organic", "Organic Search", ""), ("(direct)", "(none)", "Direct", ""),
           ("facebook", "cpc", "Paid Social", "blackfriday"), ("newsletter", "email", "Email",
           "nov"), ("google", "cpc", "Paid Search", "brand"), ("bing", "organic",
           "Organic Search", ""), ("t.co", "referral", "Organic Social", ""),
           ("chatgpt.com", "referral", "AI Assistants", ""), ("partner.example", "affiliate",
           "Affiliates", "spring"), ("qr", "qr", "QR Code", "flyer"), ("youtube", "cpc",
           "Paid Video", "launch"), ("news.ycombinator.com", "referral", "Referral", "")]
COUNTRIES = ["DE", "US", "FR", "GB", "NL", "ES", "IT", "PL", "SE", "AT", "CH", "BE", "DK",
             "NO", "FI", "IE", "PT", "CZ", "RO", "HU", "GR", "CA", "AU", "JP", "BR", "IN",
             "MX", "ZA", "TR", "KR"]


@dataclass
class _Meta:
    topic: str
    partition: int
    offset: int


class CountingProducer:
    """Stands in for the Kafka producer: acknowledges at once, counts what was sent."""

    def __init__(self) -> None:
        self.messages: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   partition: int | None, timestamp: Any, headers: Any) -> Any:
        kind = "changelog" if topic.endswith("-changelog") else topic.rsplit(".", 1)[-1]
        if value and b'"hashes_only":1' in value.split(b"\n", 1)[0]:
            kind += " (hashes)"
        self.messages[kind] += 1
        self.bytes[kind] += len(value or b"")
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(_Meta(topic, partition or 0, 0))
        return fut


def _ctx(row: dict[str, Any], partition: int, offset: int, received: int) -> Ctx:
    c = Ctx(b"", None, partition, offset)
    c.row = row
    c.envelope = {"received_at": received, "ip": "81.2.69.142"}
    return c


def _row(site: str, visitor: str, ts: int, kind: str, path: str, source: tuple[str, ...],
         country: str, device: str, sid: str, seq: int, revenue: str) -> dict[str, Any]:
    return {"site_id": site, "visitor_id": visitor, "type": kind, "revenue": revenue,
            "path": path, "channel": source[2], "source": source[0], "medium": source[1],
            "utm_campaign": source[3], "country": country, "device_type": device,
            "is_bot": 0, "session_id": sid, "session_seq": seq, "_ts_ms": ts}


class _Offsets:
    def __init__(self) -> None:
        self.next = [0] * PARTITIONS

    def take(self, visitor: str) -> tuple[int, int]:
        p = hash(visitor) % PARTITIONS
        self.next[p] += 1
        return p, self.next[p]


def journeys(n: int, seed: int = 7) -> list[Ctx]:
    rng = random.Random(seed)
    paths = [f"/p/{i}" for i in range(500)]
    weights = [1 / (i + 1) for i in range(500)]
    start = int(time.time() * 1000) // 60_000 * 60_000 - 120_000
    offsets = _Offsets()
    active: list[list[Any]] = []  # [visitor, sid, seq, planned length, source, country, device]
    out = []
    for i in range(n):
        ts = start + i * 1000 // RATE
        if not active or rng.random() < 0.3:
            visitor = f"v{rng.randrange(200_000)}"
            length = 1 if rng.random() < 0.45 else rng.randint(2, 10)
            active.append([visitor, f"s{i}", 0, length, rng.choice(SOURCES),
                           rng.choices(COUNTRIES, weights[:30])[0],
                           rng.choice(["desktop", "mobile", "mobile", "tablet"])])
        k = rng.randrange(len(active))
        sess = active[k]
        sess[2] += 1
        roll = rng.random()
        kind = "conversion" if roll < 0.02 else "event" if roll < 0.15 else "pageview"
        p, off = offsets.take(sess[0])
        out.append(_ctx(_row("shop.example", sess[0], ts, kind,
                             rng.choices(paths, weights)[0], sess[4], sess[5], sess[6],
                             sess[1], sess[2], "49.9" if kind == "conversion" else "0"),
                        p, off, ts + rng.randint(50, 500)))
        if sess[2] >= sess[3]:
            active[k] = active[-1]
            active.pop()
    return out


def bench_like(n: int, seed: int = 7) -> list[Ctx]:
    rng = random.Random(seed)
    paths = [f"/p/{i}" for i in range(40)]
    start = int(time.time() * 1000) // 60_000 * 60_000 - 120_000
    offsets = _Offsets()
    seq: Counter[str] = Counter()
    out = []
    for i in range(n):
        ts = start + i * 1000 // RATE
        visitor = f"v{rng.randrange(5000)}"
        seq[visitor] += 1
        source = rng.choice([SOURCES[1], SOURCES[1], SOURCES[3], SOURCES[4]])
        p, off = offsets.take(visitor)
        out.append(_ctx(_row("bench.example", visitor, ts, "pageview", rng.choice(paths),
                             source, "DE", "desktop", f"s-{visitor}", seq[visitor], "0"),
                        p, off, ts + rng.randint(50, 500)))
    return out


def _windows(producer: CountingProducer) -> TrafficWindows:
    app = faust.App(f"traffic-micro-{random.randrange(10**6)}", broker="kafka://127.0.0.1:9",
                    store="memory://")
    app.producer = producer  # type: ignore[assignment]
    return TrafficWindows(TrafficStateTable(app, "traffic", PARTITIONS), lateness_ms=120_000,
                          retention_ms=34 * 60_000, top_n=10, internal=InternalTraffic(""))


async def _run(ctxs: list[Ctx]) -> dict[str, Any]:
    producer = CountingProducer()
    w = _windows(producer)
    cpu = {"fold": 0.0, "emit": 0.0, "commit": 0.0}
    for i in range(0, len(ctxs), BATCH):
        batch = ctxs[i:i + BATCH]
        t0 = time.process_time()
        w.fold(batch)
        t1 = time.process_time()
        await asyncio.gather(*await w.emit(producer, "bench.traffic"))
        t2 = time.process_time()
        await w.commit()
        t3 = time.process_time()
        cpu["fold"] += t1 - t0
        cpu["emit"] += t2 - t1
        cpu["commit"] += t3 - t2
    n, batches = len(ctxs), -(-len(ctxs) // BATCH)
    us = {k: round(v / n * 1e6, 2) for k, v in cpu.items()}
    us["total"] = round(sum(cpu.values()) / n * 1e6, 2)
    return {"events": n, "batch": BATCH, "cpu_us_per_event": us,
            "messages_per_batch": {k: round(v / batches, 1)
                                   for k, v in sorted(producer.messages.items())},
            "kbytes_per_batch": {k: round(v / batches / 1024, 1)
                                 for k, v in sorted(producer.bytes.items())}}


def run(events: int) -> dict[str, Any]:
    """Both kinds of traffic; the CPU figures are process time (not wall clock)."""
    out = {}
    for name, make in (("journeys", journeys), ("bench", bench_like)):
        out[name] = asyncio.run(_run(make(events)))
        r = out[name]
        print(f"traffic micro ({name}): {r['cpu_us_per_event']} us/event CPU; per batch of "
              f"{BATCH}: messages {r['messages_per_batch']}, KB {r['kbytes_per_batch']}",
              flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    run(parser.parse_args().events)


if __name__ == "__main__":
    main()

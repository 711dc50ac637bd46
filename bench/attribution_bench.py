"""Attribution: conversions/s attributed with 10 touchpoints per visitor (the worker's code
path, in process), and the latency from a conversion event to its rows in ClickHouse through
the whole embedded stack.

    python -m bench.attribution_bench [--conversions 5000] [--latency-samples 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from bench.common import write_result
from clickstream.embedded_broker import EmbeddedBroker, free_port
from clickstream.settings import CollectorSettings
from clickstream.stack import Stack
from schemas.timefmt import now_ms
from sinks.store import RemoteStore
from streams.attribution.stream import Attributor

CHANNELS = ["Organic Search", "Paid Social", "Email", "Direct", "Referral", "Paid Search"]


def throughput(n: int) -> dict[str, Any]:
    attributor = Attributor()
    now = now_ms()
    states = [{"tp": [[now - (10 - i) * 86_400_000, CHANNELS[(v + i) % 6], "s", "m", "c", "",
                       "", "/", "", f"s{v}-{i}"] for i in range(10)]} for v in range(100)]
    rows = [{"event_id": str(uuid.uuid4()), "site_id": "b", "visitor_id": f"v{i}",
             "user_id": "", "name": "purchase", "path": "/buy", "revenue": "99.90",
             "currency": "EUR", "props": {}, "session_id": "x"} for i in range(n)]
    t0 = time.perf_counter()
    for i, row in enumerate(rows):
        attributor.convert(states[i % 100], row, now)
        if len(attributor.credits) > 10_000:
            attributor.begin_batch()
    elapsed = time.perf_counter() - t0
    return {"conversions": n, "touchpoints_per_conversion": 10,
            "conversions_per_second": round(n / elapsed),
            "us_per_conversion": round(elapsed / n * 1e6, 1)}


def envelope(visitor: str, ts: int, **event: Any) -> bytes:
    body = {"event_id": str(uuid.uuid4()), "site_id": "bench", "anonymous_id": visitor,
            "ts": ts, "url": "https://bench.example/", "type": "pageview", **event}
    return orjson.dumps({"v": 1, "received_at": ts, "ip": "", "ua": "bench", "event": body})


async def send(bootstrap: str, topic: str, key: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    await producer.send_and_wait(topic, value, key=key.encode())
    await producer.stop()


def latency(samples: int) -> dict[str, Any]:
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as home:
        settings = CollectorSettings(home=Path(home), kafka_bootstrap=broker.bootstrap,
                                     broker_profile="embedded")
        stack = Stack(settings, collector_port=free_port(),
                      extra_env={"CLICKSTREAM_SINK_FLUSH_SECONDS": "0.2"})
        stack.start()
        try:
            store = RemoteStore(stack.services["sink"].url)
            raw = settings.topic("raw")
            found: list[float] = []
            for i in range(samples):
                visitor = f"v{i}"
                now = now_ms()
                for k in range(10):  # ten earlier sessions = ten touchpoints
                    asyncio.run(send(broker.bootstrap, raw, f"bench|{visitor}", envelope(
                        visitor, now - (10 - k) * 86_400_000,
                        url=f"https://bench.example/?utm_source=s{k}&utm_medium=email")))
                conv = str(uuid.uuid4())
                sent = time.monotonic()
                asyncio.run(send(broker.bootstrap, raw, f"bench|{visitor}", envelope(
                    visitor, now_ms(), event_id=conv, type="conversion", name="purchase",
                    revenue={"amount": 10, "currency": "EUR"})))
                while time.monotonic() - sent < 30:
                    _, rows = store.query_rows(
                        f"SELECT count() FROM clickstream.attribution WHERE conversion_id = "
                        f"'{conv}' AND model = 'linear'")
                    if rows[0][0] >= 11:
                        found.append(time.monotonic() - sent)
                        break
                    time.sleep(0.02)
        finally:
            stack.stop()
    found.sort()
    return {"samples": samples, "seen": len(found),
            "latency_p50_s": round(statistics.median(found), 3) if found else None,
            "latency_p99_s": round(found[min(len(found) - 1, int(len(found) * 0.99))], 3)
            if found else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--conversions", type=int, default=5000)
    ap.add_argument("--latency-samples", type=int, default=40)
    args = ap.parse_args()
    result = {"throughput": throughput(args.conversions),
              "end_to_end": latency(args.latency_samples)}
    path = write_result("attribution", result)
    t, e = result["throughput"], result["end_to_end"]
    print(f"attribution: {t['conversions_per_second']:,} conversions/s with 10 touchpoints "
          f"each, all 6 models ({t['us_per_conversion']} us per conversion)")
    print(f"conversion event -> rows in ClickHouse: p50 {e['latency_p50_s']} s, "
          f"p99 {e['latency_p99_s']} s ({e['seen']}/{e['samples']} seen)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

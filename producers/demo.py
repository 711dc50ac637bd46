"""Synthetic traffic for `clickstream up --demo`: a few sites, visitors arriving from search,
social, e-mail, QR codes, paid clicks and direct, browsing and sometimes converting."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

SITES = ("shop.example", "blog.example", "docs.example")
ARRIVALS: tuple[tuple[str, str], ...] = (
    ("", "https://www.google.com/"),
    ("", "https://www.bing.com/search?q=analytics"),
    ("", "https://l.facebook.com/"),
    ("", "https://t.co/x1"),
    ("utm_source=newsletter&utm_medium=email&utm_campaign=november", ""),
    ("utm_source=poster&utm_medium=qr&utm_campaign=store-launch", ""),
    ("utm_source=google&utm_medium=cpc&utm_campaign=brand&gclid=abc", ""),
    ("", "https://chatgpt.com/"),
    ("", ""),
)
PAGES = ("/", "/pricing", "/features", "/blog/launch", "/docs/start", "/signup", "/cart")
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7; rv:132.0) Gecko/20100101 Firefox/132.0",
)


@dataclass
class DemoTraffic:
    """Deterministic for a seed: an endless iterator of event batches."""

    seed: int = 7
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def visit(self) -> list[dict[str, Any]]:
        rng = self.rng
        site = rng.choice(SITES)
        visitor = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        query, referrer = rng.choice(ARRIVALS)
        now = int(time.time() * 1000)
        events: list[dict[str, Any]] = []
        for i in range(rng.randint(1, 5)):
            page = rng.choice(PAGES)
            url = f"https://{site}{page}" + (f"?{query}" if query and i == 0 else "")
            ev: dict[str, Any] = {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "type": "pageview", "site_id": site, "anonymous_id": visitor,
                "ts": now + i * 1000, "url": url, "title": page.strip("/") or "home",
                "screen": "1920x1080", "lang": "en-US",
            }
            if i == 0 and referrer:
                ev["referrer"] = referrer
            events.append(ev)
        if rng.random() < 0.08:
            events.append({
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "type": "conversion", "site_id": site, "anonymous_id": visitor,
                "name": "purchase", "ts": now + 6000, "url": f"https://{site}/cart",
                "revenue": {"amount": round(rng.uniform(5, 200), 2), "currency": "EUR"},
            })
        return events

    def batches(self, size: int = 20) -> Iterator[list[dict[str, Any]]]:
        pending: list[dict[str, Any]] = []
        while True:
            while len(pending) < size:
                pending.extend(self.visit())
            yield pending[:size]
            pending = pending[size:]


@dataclass
class DemoStats:
    sent: int = 0
    accepted: int = 0
    failed_requests: int = 0


async def send_demo(collector_url: str, rate: float, stats: DemoStats,
                    stop: asyncio.Event, seed: int = 7, batch: int = 20) -> None:
    """POST batches to the collector at about `rate` events/s until `stop` is set."""
    traffic = DemoTraffic(seed)
    interval = batch / rate if rate > 0 else 0.0
    next_at = time.monotonic()
    async with aiohttp.ClientSession() as http:
        for events in traffic.batches(batch):
            if stop.is_set():
                return
            ua = traffic.rng.choice(USER_AGENTS)
            try:
                async with http.post(f"{collector_url}/v1/events", data=orjson.dumps(events),
                                     headers={"Content-Type": "text/plain", "User-Agent": ua}
                                     ) as resp:
                    body = await resp.json(loads=orjson.loads, content_type=None)
                    stats.sent += len(events)
                    stats.accepted += int(body.get("accepted", 0)) if resp.status == 202 else 0
                    if resp.status != 202:
                        stats.failed_requests += 1
            except (TimeoutError, aiohttp.ClientError):
                stats.failed_requests += 1
                await asyncio.sleep(0.5)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:  # fell behind: do not burst to catch up
                next_at = time.monotonic()

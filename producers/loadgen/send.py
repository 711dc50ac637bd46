"""Sending journeys at a controlled rate: over HTTP to a collector (one visitor per request,
as the JS tracker does) or straight into Kafka (raw envelopes as the collector writes them).

Concurrency: `concurrency` tasks each take the next journey and send its requests in order,
so one visitor never has two requests in flight (the worker sees each visitor's events in
order); a shared pacer spreads events evenly at `rate` events/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import orjson

from producers.loadgen.model import Journey, JourneyMaker
from producers.loadgen.truth import TruthWriter

if TYPE_CHECKING:
    from clickstream.settings import CollectorSettings

MAX_ATTEMPTS = 5


def now_ms() -> int:
    return int(time.time() * 1000)


class Pacer:
    """Shared slot reservation: each `take(n)` waits until n more events fit the rate.
    A sender that fell more than a second behind does not burst to catch up."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = time.monotonic()

    async def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        if self._next < now - 1.0:
            self._next = now
        at = self._next
        self._next = at + n / self.rate
        if at > now:
            await asyncio.sleep(at - now)


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    journeys: int = 0
    requests: int = 0
    events: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0  # events whose request failed after retries
    retries: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def as_dict(self) -> dict[str, Any]:
        return {"journeys": self.journeys, "requests": self.requests, "events": self.events,
                "accepted": self.accepted, "rejected": self.rejected, "failed": self.failed,
                "retries": self.retries, "statuses": dict(self.statuses),
                "seconds": round(self.elapsed, 3),
                "events_per_second": round(self.events / max(self.elapsed, 1e-9), 1)}


class Transport(Protocol):
    async def start(self) -> None: ...
    async def send(self, journey: Journey, events: list[dict[str, Any]], stats: Stats
                   ) -> int | str: ...
    async def flush(self) -> None: ...
    async def stop(self) -> None: ...


class HttpTransport:
    """POST /v1/events with the visitor's user agent, and its address in X-Forwarded-For
    (honoured when the collector trusts this host as a proxy: collector_trusted_proxies)."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.url = url.rstrip("/") + "/v1/events"
        self.concurrency = concurrency
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=30))

    async def send(self, journey: Journey, events: list[dict[str, Any]], stats: Stats
                   ) -> int | str:
        assert self.http is not None
        v = journey.visitor
        headers = {"Content-Type": "text/plain", "User-Agent": v.ua,
                   "X-Forwarded-For": v.ip, "Origin": f"https://{v.site.host}"}
        body = orjson.dumps(events)
        status: int | str = "error"
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                stats.retries += 1
            try:
                async with self.http.post(self.url, data=body, headers=headers) as resp:
                    status = resp.status
                    payload = await resp.read()
                    if status == 202:
                        answer = orjson.loads(payload)
                        stats.accepted += int(answer.get("accepted", 0))
                        stats.rejected += int(answer.get("rejected", 0))
                        return status
                    if status not in (429, 502, 503, 504):
                        break
                    wait = float(resp.headers.get("Retry-After", "1") or 1)
                    await asyncio.sleep(min(wait, 2.0) * (0.5 + attempt / 4))
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                status = type(exc).__name__
                await asyncio.sleep(0.2 * (attempt + 1))
        stats.failed += len(events)
        return status

    async def flush(self) -> None:
        return None

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()


class KafkaTransport:
    """Raw records on <prefix>.raw exactly as the collector writes them: RecordMaker (one
    record per visitor per request) and the collector's own Kafka side, which bundles the
    records that queue up for one partition. Malformed events go in too: the worker's
    validate step dead-letters them, as the collector would have."""

    def __init__(self, settings: CollectorSettings, *, flush_records: int = 2000,
                 flush_seconds: float = 0.02) -> None:
        self.settings = settings
        self.flush_seconds = flush_seconds  # at low rates, records wait no longer than this
        self._flushed_at = time.monotonic()
        self.raw_topic = settings.topic("raw")
        self.invalid_topic = settings.topic("invalid")
        self.flush_records = flush_records
        self.sink: Any = None
        self._records: list[Any] = []
        self._sending = asyncio.Lock()  # one send at a time keeps each partition in order

    async def start(self) -> None:
        from producers.collector.kafka_out import KafkaSink

        self.sink = KafkaSink(self.settings)
        await self.sink.start()

    async def send(self, journey: Journey, events: list[dict[str, Any]], stats: Stats
                   ) -> int | str:
        from producers.collector.records import RecordMaker

        v = journey.visitor
        maker = RecordMaker(self.raw_topic, self.invalid_topic, now_ms(), v.ip, v.ua, False)
        self._records += maker.raws(events)
        stats.accepted += len(events)
        due = (len(self._records) >= self.flush_records
               or time.monotonic() - self._flushed_at >= self.flush_seconds)
        if due and (not self._sending.locked()
                    or len(self._records) >= 10 * self.flush_records):
            await self.flush()
        return "kafka"

    async def flush(self) -> None:
        async with self._sending:
            self._flushed_at = time.monotonic()
            records, self._records = self._records, []
            if records:
                await self.sink.send_batch(records)

    async def stop(self) -> None:
        if self.sink is not None:
            await self.flush()
            await self.sink.stop()


@dataclass
class Limits:
    duration: float | None = None  # seconds: no new journey after this
    visitors: int | None = None  # journeys in all
    events: int | None = None  # no new journey once this many events went out


def prepare(maker: JourneyMaker, limits: Limits, clock: Callable[[], int] = now_ms,
            ) -> list[Journey]:
    """Every journey up to the visitor or event limit, made before anything is sent (so a
    benchmark's sender spends its CPU on sending, not on inventing visitors)."""
    if limits.visitors is None and limits.events is None:
        raise ValueError("preparing journeys needs a limit in visitors or events")
    journeys: list[Journey] = []
    events = 0
    while (limits.visitors is None or len(journeys) < limits.visitors) and (
            limits.events is None or events < limits.events):
        journeys.append(maker.make(len(journeys), clock()))
        events += journeys[-1].events
    return journeys


async def run(maker: JourneyMaker, transport: Transport, *, rate: float, limits: Limits,
              truth: TruthWriter, concurrency: int = 64, stop: asyncio.Event | None = None,
              clock: Callable[[], int] = now_ms,
              on_tick: Callable[[Stats], None] | None = None,
              prepared: list[Journey] | None = None) -> Stats:
    """Send journeys until a limit (or `stop`) is reached; journeys in flight are finished,
    so the ground truth holds whole journeys only. `prepared`: send these journeys (see
    `prepare`) instead of making them on the way."""
    stats = Stats()
    pacer = Pacer(rate)
    stop = stop or asyncio.Event()
    next_index = 0
    if prepared is not None:
        limits = Limits(None, len(prepared), None)  # all of them (or until `stop`)

    def more() -> bool:
        if stop.is_set():
            return False
        if limits.duration is not None and stats.elapsed >= limits.duration:
            return False
        if limits.visitors is not None and next_index >= limits.visitors:
            return False
        return limits.events is None or stats.events < limits.events

    async def sender() -> None:
        nonlocal next_index
        while more():
            index = next_index
            next_index += 1
            journey = prepared[index] if prepared is not None else maker.make(index, clock())
            truth.journey(journey)
            stats.journeys += 1
            for events in journey.requests:
                await pacer.take(len(events))
                sent_at = clock()
                status = await transport.send(journey, events, stats)
                stats.requests += 1
                stats.events += len(events)
                stats.statuses[str(status)] += 1
                truth.request(journey, events, sent_at, status)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.25)
            if on_tick:
                on_tick(stats)

    await transport.start()
    tick = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(sender() for _ in range(max(1, concurrency))))
        await transport.flush()
    finally:
        tick.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tick
        await transport.stop()
    if on_tick:
        on_tick(stats)
    return stats

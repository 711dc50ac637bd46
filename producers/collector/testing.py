"""Test support: an in-memory producer and a synchronous in-process client.

Fuzz tests drive thousands of requests through the real aiohttp app (TestServer on a
loopback port) with no Kafka: `MemoryProducer` stands in for it behind the same seam."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from clickstream.settings import CollectorSettings
from producers.collector.records import Record, envelopes
from producers.collector.sites import SiteRegistry


@dataclass
class MemoryProducer:
    """Keeps what it is sent. `down = True` makes every call fail, like Kafka gone."""

    records: list[Record] = field(default_factory=list)
    down: bool = False
    started: int = 0

    async def start(self) -> None:
        if self.down:
            raise ConnectionError("memory producer is down")
        self.started += 1

    async def stop(self) -> None:
        pass

    async def send_batch(self, records: Sequence[Record]) -> None:
        if self.down:
            raise ConnectionError("memory producer is down")
        self.records.extend(records)

    async def reachable(self) -> bool:
        return not self.down

    def values(self, topic_suffix: str) -> list[dict[str, Any]]:
        """Record values on the topic; raw groups split into one envelope per event."""
        return [env for r in self.records if r.topic.endswith(topic_suffix)
                for env in (envelopes(r.value) if topic_suffix.endswith("raw")
                            else [orjson.loads(r.value)])]


@dataclass
class Reply:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Harness:
    """The collector app on a loopback TestServer, driven synchronously (for hypothesis)."""

    def __init__(self, settings: CollectorSettings | None = None,
                 registry: SiteRegistry | None = None,
                 producer: MemoryProducer | None = None) -> None:
        from producers.collector.app import COLLECTOR, create_app

        self.settings = settings or CollectorSettings(kafka_bootstrap="unused:9092",
                                                      collector_rate_limit_per_second=0)
        self.producer = producer or MemoryProducer()
        self.app = create_app(self.settings, self.producer, registry)
        self.collector = self.app[COLLECTOR]
        self.runner = asyncio.Runner()
        self.client: TestClient[Any, Any] = self.runner.run(self._start())

    async def _start(self) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(self.app))
        await client.start_server()
        return client

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        async def go() -> Reply:
            async with self.client.request(method, path, **kwargs) as resp:
                return Reply(resp.status, CIMultiDict(resp.headers), await resp.read())
        return self.runner.run(go())

    def raw(self, head: bytes, body: bytes = b"") -> bytes:
        """Send bytes as they are (request line and headers without the final blank line;
        Content-Length and Connection: close are added) and return the whole answer."""
        async def go() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.client.port)
            writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                         % len(body) + body)
            answer = await reader.read()
            writer.close()
            return answer
        return self.runner.run(go())

    def post(self, body: bytes, **headers: str) -> Reply:
        return self.request("POST", "/v1/events", data=body,
                            headers={"Content-Type": "text/plain", **headers})

    def settle(self, timeout: float = 1.0) -> None:
        """Let the delivery task move everything buffered to the producer."""
        async def wait() -> None:
            for _ in range(int(timeout / 0.005)):
                if not len(self.collector.buffer) or self.producer.down:
                    return
                await asyncio.sleep(0.005)
        self.runner.run(wait())

    def close(self) -> None:
        self.runner.run(self.client.close())
        self.runner.close()


class LiveServer:
    """The collector app on 127.0.0.1:port in a background thread (for HTTP clients that
    are not asyncio, e.g. schemathesis)."""

    def __init__(self, settings: CollectorSettings, registry: SiteRegistry | None = None) -> None:
        import threading

        from aiohttp import web

        from clickstream.embedded_broker import free_port
        from producers.collector.app import COLLECTOR, create_app

        self.producer = MemoryProducer()
        self.app = create_app(settings, self.producer, registry)
        self.collector = self.app[COLLECTOR]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(self.app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        self.loop.run_until_complete(site.start())
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def settle(self, timeout: float = 5.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while len(self.collector.buffer) and time.monotonic() < deadline:
            time.sleep(0.002)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

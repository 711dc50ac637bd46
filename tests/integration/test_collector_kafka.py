"""The collector against the real embedded broker (Tansu): a live round trip, a Kafka
outage under load (through a TCP proxy the test cuts and restores), and SIGTERM with events
still buffered. In each: every event answered 2xx is read back from clickstream.raw."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer

from clickstream.embedded_broker import EmbeddedBroker, free_port, tansu_binary, wait_for_port
from clickstream.settings import CollectorSettings, CommonSettings
from clickstream.topics import create_topics
from producers.collector.app import COLLECTOR, create_app
from producers.collector.records import envelopes

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def event(i: int = 0, **fields: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "pageview", "site_id": f"site-{i % 3}",
            "anonymous_id": f"v{i % 50}", "ts": int(time.time() * 1000),
            "url": "https://shop.example/", **fields}


async def read_topic(bootstrap: str, topic: str, expect_ids: set[str] | None = None,
                     expect: int = 0, timeout: float = 30) -> list[dict[str, Any]]:
    """Everything on a topic; stops early once `expect_ids` (or `expect` records) are seen
    (plus a short grace period to catch duplicates)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            out += [env for msgs in batch.values() for m in msgs
                    for env in (envelopes(m.value) if topic.endswith("raw")
                                else [orjson.loads(m.value)])]
            seen = {r["event"]["event_id"] for r in out if "event" in r}
            if (expect_ids is not None and expect_ids <= seen) or (expect and len(out) >= expect):
                deadline = min(deadline, time.monotonic() + 0.5)
    finally:
        await consumer.stop()
    return out


class TcpProxy:
    """127.0.0.1:port -> target port. cut(): drop every connection and stop listening;
    restore(): listen again on the same port."""

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port,
                                                 reuse_address=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()

    async def restore(self) -> None:
        await self.start()


@pytest.fixture
def proxied_broker(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A Tansu of our own that advertises the proxy's port, so that every client
    connection (bootstrap and partition leaders) goes through the proxy.
    Yields (broker port, proxy port)."""
    port, proxy_port = free_port(), free_port()
    log = open(tmp_path / "tansu.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{proxy_port}",
         "--storage-engine", "memory://tansu/"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port)
        yield port, proxy_port
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def settings_for(bootstrap: str, prefix: str, **kw: Any) -> CollectorSettings:
    return CollectorSettings(kafka_bootstrap=bootstrap, broker_profile="embedded",
                             topic_prefix=prefix, topic_partitions=2,
                             collector_rate_limit_per_second=0, **kw)


async def serve_app(settings: CollectorSettings) -> tuple[web.AppRunner, str]:
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def wait_ready(http: aiohttp.ClientSession, url: str, want: int = 200,
                     timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url + "/readyz") as resp:
                if resp.status == want:
                    return
        await asyncio.sleep(0.1)
    raise AssertionError(f"/readyz never answered {want}")


def test_live_round_trip_through_the_real_broker(broker: EmbeddedBroker, unique: str) -> None:
    """Valid events to clickstream.raw (envelope with receive time, IP, UA), invalid ones
    and the pixel's to clickstream.invalid / .raw, all acknowledged by Tansu."""
    settings = settings_for(broker.bootstrap, unique)

    async def scenario() -> None:
        await create_topics(settings)
        runner, url = await serve_app(settings)
        try:
            async with aiohttp.ClientSession() as http:
                await wait_ready(http, url)
                good = [event(i) for i in range(5)]
                async with http.post(url + "/v1/events", data=orjson.dumps(
                        {"events": [*good, {"type": "pageview"}]}),
                        headers={"Content-Type": "text/plain", "User-Agent": "UA/1"}) as r:
                    assert r.status == 202 and (await r.json())["rejected"] == 1
                async with http.get(url + "/v1/pixel.gif?site_id=mail&type=event"
                                    "&name=email_open&utm_campaign=nov",
                                    headers={"DNT": "1"}) as r:
                    assert r.status == 200 and r.content_type == "image/gif"
        finally:
            await runner.cleanup()  # drains the buffer
        raw = await read_topic(broker.bootstrap, settings.topic("raw"), expect=6, timeout=15)
        dead = await read_topic(broker.bootstrap, settings.topic("invalid"), expect=1,
                                timeout=10)
        by_id = {r["event"]["event_id"]: r for r in raw}
        assert set(by_id) >= {e["event_id"] for e in good} and len(raw) == 6
        assert by_id[good[0]["event_id"]]["ip"] == "127.0.0.1"
        assert by_id[good[0]["event_id"]]["ua"] == "UA/1"
        pixel = next(r for r in raw if r["event"]["site_id"] == "mail")
        assert pixel["ip"] == "" and pixel["dnt"] is True
        assert pixel["event"]["props"] == {"utm_campaign": "nov"}
        assert len(dead) == 1 and dead[0]["processor"] == "collector"

    asyncio.run(scenario())


def test_kafka_outage_under_load_loses_nothing(proxied_broker: tuple[int, int],
                                               unique: str) -> None:
    """Kafka unreachable for a while under steady load: the collector keeps answering 202
    from its buffer, /readyz goes red, and once Kafka is back everything is delivered."""
    broker_port, proxy_port = proxied_broker
    bootstrap = f"127.0.0.1:{proxy_port}"
    settings = settings_for(bootstrap, unique)
    accepted: set[str] = set()
    statuses: dict[int, int] = {}
    readiness: list[int] = []

    async def sender(http: aiohttp.ClientSession, url: str, k: int, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            batch = [event(k * 1000 + n + i) for i in range(20)]
            n += 20
            async with http.post(url + "/v1/events", data=orjson.dumps(batch),
                                 headers={"Content-Type": "text/plain"}) as resp:
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.status == 202:
                    assert (await resp.json())["accepted"] == 20
                    accepted.update(e["event_id"] for e in batch)
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        proxy = TcpProxy(broker_port, proxy_port)
        await proxy.start()
        await create_topics(settings)
        runner, url = await serve_app(settings)
        try:
            async with aiohttp.ClientSession() as http:
                await wait_ready(http, url)
                stop = asyncio.Event()
                senders = [asyncio.create_task(sender(http, url, k, stop)) for k in range(4)]
                await asyncio.sleep(1.5)
                before_cut = len(accepted)
                await proxy.cut()
                await wait_ready(http, url, want=503, timeout=6)
                readiness.append(503)
                await asyncio.sleep(3)
                during = len(accepted) - before_cut
                collector = runner.app[COLLECTOR]  # type: ignore[union-attr]
                buffered = len(collector.buffer)
                await proxy.restore()
                await wait_ready(http, url, want=200, timeout=30)
                readiness.append(200)
                await asyncio.sleep(1)
                stop.set()
                await asyncio.gather(*senders)
                deadline = time.monotonic() + 30
                while len(collector.buffer) and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                assert len(collector.buffer) == 0, "buffer not drained after Kafka came back"
                assert during > 500, f"only {during} events accepted while Kafka was cut"
                assert buffered > 500, f"only {buffered} records buffered during the cut"
        finally:
            await runner.cleanup()
        raw = await read_topic(bootstrap, settings.topic("raw"), expect_ids=accepted)
        delivered = [r["event"]["event_id"] for r in raw]
        assert set(delivered) == accepted, (len(accepted), len(set(delivered)))
        print(f"outage: {len(accepted)} accepted, {len(delivered)} records read back "
              f"({len(delivered) - len(set(delivered))} duplicates), {buffered} buffered "
              f"at the end of the cut")
        await proxy.cut()

    asyncio.run(scenario())
    assert readiness == [503, 200]
    assert statuses.get(202, 0) > 50 and not any(s >= 500 for s in statuses if s != 503)


def test_sigterm_drains_the_buffer_before_exit(proxied_broker: tuple[int, int], unique: str,
                                               tmp_path: Path) -> None:
    """`python -m producers.collector` with events buffered (Kafka cut) gets SIGTERM: it
    answers 503 to new events while it drains, Kafka comes back, every 202'd event is
    delivered, and the process exits 0."""
    broker_port, proxy_port = proxied_broker
    bootstrap = f"127.0.0.1:{proxy_port}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    env.update({"CLICKSTREAM_KAFKA_BOOTSTRAP": bootstrap, "CLICKSTREAM_BROKER_PROFILE":
                "embedded", "CLICKSTREAM_TOPIC_PREFIX": unique, "CLICKSTREAM_TOPIC_PARTITIONS":
                "2", "CLICKSTREAM_COLLECTOR_PORT": str(port),
                "CLICKSTREAM_COLLECTOR_DRAIN_SECONDS": "15", "PYTHONUNBUFFERED": "1"})
    log_path = tmp_path / "collector.log"
    accepted: set[str] = set()

    async def post(http: aiohttp.ClientSession, n: int) -> int:
        batch = [event(i) for i in range(n)]
        async with http.post(url + "/v1/events", data=orjson.dumps(batch)) as resp:
            if resp.status == 202:
                accepted.update(e["event_id"] for e in batch)
            return resp.status

    async def scenario() -> int:
        proxy = TcpProxy(broker_port, proxy_port)
        await proxy.start()
        await create_topics(CommonSettings(kafka_bootstrap=bootstrap, topic_prefix=unique,
                                           topic_partitions=2))
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "producers.collector"], cwd=ROOT,
                                    env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            async with aiohttp.ClientSession() as http:
                await wait_ready(http, url)
                assert [await post(http, 20) for _ in range(5)] == [202] * 5
                await proxy.cut()
                assert [await post(http, 20) for _ in range(20)] == [202] * 20
                proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.5)
                assert await post(http, 1) == 503  # stopping: still listening, refusing
                async with http.get(url + "/readyz") as resp:
                    assert resp.status == 503
                await asyncio.sleep(1.0)
                assert proc.poll() is None, "exited before the buffer was delivered"
                await proxy.restore()
            deadline = time.monotonic() + 25
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            code = proc.poll()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        raw = await read_topic(bootstrap, settings_for(bootstrap, unique).topic("raw"),
                               expect_ids=accepted)
        assert {r["event"]["event_id"] for r in raw} == accepted
        await proxy.cut()
        return -1 if code is None else code

    code = asyncio.run(scenario())
    log = log_path.read_text()
    assert code == 0, log
    assert len(accepted) == 500 and "NOT delivered" not in log
    assert re.search(r"stopping: draining [1-9]\d* buffered", log), log
    assert re.search(r"drained [1-9]\d* records", log), log

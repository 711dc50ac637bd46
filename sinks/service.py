"""The sink service: Kafka topics -> ClickHouse tables, offsets committed only after
ClickHouse has the rows. Serves /healthz, /metrics and (embedded chDB only, on loopback) a
query endpoint so `clickstream sql` works while this process owns the chDB directory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from clickstream.settings import SinkSettings
from sinks.batches import decode
from sinks.live import add_live_routes
from sinks.metrics import BACKPRESSURE, CONSUMER_LAG
from sinks.migrate import migrate
from sinks.store import ChdbStore, ServerStore, Store, StoreError
from sinks.writer import Backpressure, BatchWriter
from streams.kafka_compat import TrueEndOffsets

log = logging.getLogger(__name__)


def topic_tables(settings: SinkSettings) -> dict[str, str]:
    """Which topic lands in which table."""
    db = settings.database
    return {settings.topic("events"): f"{db}.events",
            settings.topic("invalid"): f"{db}.invalid_events",
            settings.topic("sessions"): f"{db}.sessions",
            settings.topic("conversions"): f"{db}.conversions",
            settings.topic("attribution"): f"{db}.attribution",
            settings.topic("traffic"): f"{db}.traffic_in"}  # -> traffic_1m + traffic_visitors_1m


class SinkService:
    def __init__(self, settings: SinkSettings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or (ServerStore(settings.clickhouse_url) if settings.clickhouse_url
                               else ChdbStore(settings.chdb_path))
        self.tables = topic_tables(settings)
        self._stopping = asyncio.Event()
        self.writer = BatchWriter(
            self.store, max_rows=settings.sink_batch_rows,
            flush_seconds=settings.sink_flush_seconds,
            table_flush_seconds={self.tables[settings.topic("traffic")]:
                                 settings.sink_traffic_flush_seconds},
            max_retry_seconds=settings.sink_max_retry_seconds,
            dead_letter_table=f"{settings.database}.invalid_events",
            stopping=self._stopping.is_set,
        )
        self.consumer: AIOKafkaConsumer | None = None
        self._queries = 0  # statements run through /v1/query (any of them may write)
        self._pending: dict[TopicPartition, int] = {}
        self._ranges: dict[TopicPartition, tuple[int, int]] = {}

    async def run(self) -> None:
        await asyncio.to_thread(migrate, self.store, self.settings.database)
        self.consumer = AIOKafkaConsumer(
            *self.tables, bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.settings.sink_group, enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_interval_ms=3_600_000,
            session_timeout_ms=6000 if self.settings.embedded_broker else 30000,
            heartbeat_interval_ms=1000 if self.settings.embedded_broker else 3000,
            fetch_max_bytes=32 * 1024 * 1024, max_partition_fetch_bytes=8 * 1024 * 1024,
            # Tansu answers a fetch that finds no data after about half this wait, even
            # when records arrive meanwhile: keep it short so the live view's rows are quick
            fetch_max_wait_ms=100 if self.settings.embedded_broker else 500,
        )
        await self.consumer.start()
        lag_task = asyncio.create_task(self._report_lag())
        try:
            await self._consume()
        finally:
            lag_task.cancel()
            with contextlib.suppress(Exception):
                await self._flush_and_commit()
            await self.consumer.stop()

    async def _consume(self) -> None:
        assert self.consumer is not None
        while not self._stopping.is_set():
            due = self.writer.due_tables()
            if due:
                await self._flush_and_commit(due)
            timeout_ms = max(10, int(self.writer.seconds_until_due() * 1000))
            room = max(1, self.settings.sink_batch_rows - self.writer.buffered)
            batch = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=room)
            for tp, messages in batch.items():
                if not messages:
                    continue
                rows, arrow = decode([m.value for m in messages])  # NDJSON or Arrow
                first, last = messages[0].offset, messages[-1].offset
                origin = f"{tp.topic}/{tp.partition}/{first}-{last}"
                try:
                    self.writer.write(self.tables[tp.topic], rows, origin, arrow)
                except Backpressure:
                    BACKPRESSURE.inc()
                    await self._flush_and_commit()
                    self.writer.write(self.tables[tp.topic], rows, origin, arrow)
                self._pending[tp] = last + 1

    async def _flush_and_commit(self, tables: list[str] | None = None) -> None:
        """Flush the given tables (else all) and commit the offsets of their topics."""
        assert self.consumer is not None
        if self.writer.buffered:
            await self.writer.flush(tables)
        if tables is None:
            offsets, self._pending = self._pending, {}
        else:
            offsets = {tp: n for tp, n in self._pending.items()  # nothing of it left buffered
                       if self.tables[tp.topic] in tables
                       or not self.writer.holds(self.tables[tp.topic])}
            for tp in offsets:
                del self._pending[tp]
        if offsets:
            await self.consumer.commit(offsets)

    async def _report_lag(self) -> None:
        assert self.consumer is not None
        ends = TrueEndOffsets(self.settings.kafka_bootstrap or "") \
            if self.settings.embedded_broker else None
        try:
            while True:
                await asyncio.sleep(5)
                with contextlib.suppress(Exception):
                    tps = list(self.consumer.assignment())
                    if not tps:
                        continue
                    end = await (ends.end_offsets(tps) if ends
                                 else self.consumer.end_offsets(tps))
                    lag: dict[str, int] = {}
                    for tp in tps:
                        committed = await self.consumer.committed(tp) or 0
                        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, end[tp] - committed)
                    for topic, value in lag.items():
                        CONSUMER_LAG.labels(topic).set(value)
        finally:
            if ends:
                await ends.close()

    def stop(self) -> None:
        self._stopping.set()

    # --- HTTP -----------------------------------------------------------------------------

    def web_app(self) -> web.Application:
        async def healthz(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok", "service": "sink",
                                      "buffered": self.writer.buffered})

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(),
                                headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def query(request: web.Request) -> web.Response:
            doc = await request.json(loads=orjson.loads)
            sql = str(doc.get("sql", ""))
            self._queries += 1
            try:
                if doc.get("rows"):
                    names, rows = await asyncio.to_thread(self.store.query_rows, sql)
                    return web.Response(body=orjson.dumps({"names": names, "rows": rows},
                                                          default=str),
                                        content_type="application/json")
                text = await asyncio.to_thread(self.store.query_text, sql,
                                               str(doc.get("format", "TabSeparatedWithNames")))
            except StoreError as exc:
                return web.Response(status=400, text=str(exc))
            return web.Response(text=text)

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/metrics", metrics)
        version = None
        if isinstance(self.store, ChdbStore):  # this process is the store's only writer
            traffic = self.tables[self.settings.topic("traffic")]
            version = lambda: (self.writer.flushes.get(traffic, 0), self._queries)  # noqa: E731
        # GET /v1/stats/{site}/live (answers kept while `version` says nothing changed)
        add_live_routes(app, self.store, self.settings.database, version)
        if isinstance(self.store, ChdbStore):
            app.router.add_post("/v1/query", query)
        return app


async def serve(settings: SinkSettings) -> None:
    service = SinkService(settings)
    runner = web.AppRunner(service.web_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.sink_host, settings.sink_port)
    await site.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stop)
    try:
        await service.run()
    finally:
        await runner.cleanup()
        service.store.close()


def main() -> None:
    from clickstream.logs import setup_logging

    settings = SinkSettings()
    setup_logging(settings, "sink")
    if not settings.kafka_bootstrap:
        raise SystemExit("CLICKSTREAM_KAFKA_BOOTSTRAP is not set: start the stack with "
                         "`clickstream up`, or point it at your Kafka brokers")
    asyncio.run(serve(settings))



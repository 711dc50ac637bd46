"""The Faust app: clickstream.raw -> steps -> clickstream.events / clickstream.invalid.

Events are handled in batches (`take_events`): the steps run over the whole batch, and
per-visitor state is written once per visitor per batch (every table write is a changelog
record, so fewer, larger writes are where the speed is). The raw topic is keyed by site and
visitor, so one visitor's events are in one partition, in order: no repartition hop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from typing import Any

import faust
import orjson
from aiohttp.web import Response
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from clickstream import __version__
from clickstream.settings import WorkerSettings
from schemas.deadletter import dead_letter
from schemas.timefmt import ms_to_text, now_ms
from streams import events_out, kafka_compat, ndjson
from streams.attribution.stream import Attributor
from streams.batch_send import BatchSender
from streams.enrichment import Enricher
from streams.expiry import retention
from streams.identity import identity_key, register_identity_agent
from streams.metrics import WorkerMetrics, watch_consumer_lag
from streams.pipeline import Ctx, Pipeline, Step
from streams.sessionize import Sessionizer
from streams.sessions import SessionRules
from streams.site_options import load_site_options
from streams.state import VisitorStateTable
from streams.steps import default_steps, expand
from streams.sweep import VisitorSweep
from streams.traffic.stream import create_traffic
from streams.visitor import SaltStore

log = logging.getLogger(__name__)

PROCESSOR = "streams.enrich"
SWEEP_EVERY_S = 10.0  # one slice of each owned partition's visitor states per tick


def broker_url(settings: WorkerSettings) -> str:
    if not settings.kafka_bootstrap:
        raise SystemExit("CLICKSTREAM_KAFKA_BOOTSTRAP is not set: start the stack with "
                         "`clickstream up`, or point it at your Kafka brokers")
    scheme = "tansu" if settings.embedded_broker else "clickstream+kafka"  # streams/kafka_compat
    return ";".join(f"{scheme}://{h.strip()}" for h in settings.kafka_bootstrap.split(","))


def create_app(settings: WorkerSettings) -> faust.App:
    """Build the worker app from its settings."""
    kafka_compat.register()
    embedded = settings.embedded_broker
    extra: dict[str, Any] = {}
    if embedded:  # group join waits session_timeout/2: keep takeover quick on one laptop
        extra.update(broker_session_timeout=6, broker_heartbeat_interval=1,
                     broker_rebalance_timeout=6)
    # Faust's own files (table stores, leader state) under CLICKSTREAM_HOME, one directory
    # per worker process (a shared home must not mix two workers' RocksDB files)
    datadir = settings.home / "faust" / (
        f"{settings.worker_id}-{socket.gethostname()}-{settings.worker_web_port}")
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.worker_id,
        broker=broker_url(settings),
        store=settings.worker_store,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1 if embedded else settings.topic_replication_factor,
        consumer_auto_offset_reset="earliest",
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_bind=settings.worker_web_host,
        table_cleanup_interval=60.0,
        datadir=str(datadir),
        producer_linger_ms=5,
        producer_max_batch_size=512 * 1024,  # streams/batch_send.py fills whole batches
        producer_compression_type=settings.kafka_compression_type,
        stream_buffer_maxsize=max(4096, settings.worker_batch_size * 2),
        **extra,
    )
    app.fetch_wait_ms = settings.worker_fetch_wait_ms  # type: ignore[attr-defined]
    if settings.worker_faust_metrics:
        # Faust's own sensor: per-message counters and latencies under clickstream_worker_faust_*
        # (costs CPU on every message; off by default on the hot path).
        app.monitor = PrometheusMonitor(
            metrics=FaustMetrics.create(REGISTRY, "clickstream_worker_faust"))
    metrics = WorkerMetrics()
    watch_consumer_lag(app)
    salts = SaltStore(settings.home / "salts.json")
    site_options = load_site_options(settings.sites_file)  # per-site sessions/attribution
    rules = SessionRules(
        timeout_ms=settings.session_timeout_minutes * 60_000,
        split_on_campaign=settings.session_split_on_campaign,
        split_at_midnight=settings.session_split_at_midnight,
        timezone=settings.session_timezone,
        lateness_ms=settings.session_lateness_minutes * 60_000,
    )

    raw_topic = app.topic(settings.topic("raw"), key_serializer="raw", value_serializer="raw")
    events_topic = app.topic(settings.topic("events"), key_serializer="raw",
                             value_serializer="raw")
    invalid_topic = app.topic(settings.topic("invalid"), key_serializer="raw",
                              value_serializer="raw")
    sessions_topic = app.topic(settings.topic("sessions"), key_serializer="raw",
                               value_serializer="raw")
    sender = BatchSender(app)
    visitors = VisitorStateTable(app, "visitor-state", settings.topic_partitions, sender,
                                 cache_size=settings.worker_state_cache)
    attributor = Attributor(
        lookback_ms=settings.attribution_lookback_days * 86_400_000,
        half_life_ms=int(settings.attribution_half_life_days * 86_400_000),
        max_touchpoints=settings.attribution_max_touchpoints,
        goals=[g for g in settings.attribution_goals.split(",") if g.strip()],
        site_lookback_ms={site: o.attribution_lookback_days * 86_400_000
                          for site, o in site_options.items() if o.attribution_lookback_days},
        site_goals={site: o.goals for site, o in site_options.items() if o.goals is not None},
    )
    site_rules = {site: o.session_rules(rules) for site, o in site_options.items()}
    sessionizer = Sessionizer(visitors, rules, settings.dedup_window_minutes * 60_000,
                              attributor, site_rules)
    sweep = VisitorSweep(visitors, retention(
        settings.dedup_window_minutes * 60_000, [rules, *site_rules.values()],
        [attributor.lookback_ms, *attributor.site_lookback_ms.values()]),
        sessionizer.watermarks, sessionizer.in_batch)
    # one-minute traffic windows (streams/traffic), unless switched off
    traffic = create_traffic(app, settings) if settings.worker_traffic_windows else None
    traffic_name = settings.topic("traffic")
    identity_topic = app.topic(settings.topic("identity"), key_serializer="raw",
                               value_serializer="raw")
    conversions_topic = app.topic(settings.topic("conversions"), key_serializer="raw",
                                  value_serializer="raw")
    attribution_topic = app.topic(settings.topic("attribution"), key_serializer="raw",
                                  value_serializer="raw")
    steps = default_steps(settings, salts, Enricher.load())
    pipeline = Pipeline([*steps, Step("session", sessionizer)],
                        on_step_done=metrics.step_done)

    @app.agent(raw_topic, name="enrich")
    async def enrich(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.worker_batch_size,
                                              within=settings.worker_batch_seconds):
            ctxs = [ctx for ev in batch for ctx in expand(
                ev.value, ev.key, ev.message.partition, ev.message.offset)]
            sessionizer.begin_batch()
            pipeline.run(ctxs)
            if traffic is not None:
                traffic.fold(ctxs)
            deliveries = await emit(ctxs)
            for rec in sessionizer.identity:  # keyed by user: the identity agent's partitions
                deliveries.append(await app.producer.send(
                    identity_name, identity_key(rec["site_id"], rec["user"]), orjson.dumps(rec),
                    None, None, None))
            # rows whose partition does not matter (the sink replaces them by key and
            # version) go with the batch's first partition, as few NDJSON messages
            first = ctxs[0].partition if ctxs else 0
            for topic, rows in ((sessions_name, sessionizer.session_rows()),
                                (conversions_name, attributor.conversions),
                                (attribution_name, attributor.credits)):
                if rows:
                    deliveries += await sender.send(topic, first, (
                        (None, chunk) for chunk in ndjson.chunks(orjson.dumps(r) for r in rows)))
            if traffic is not None:
                deliveries += await traffic.emit(app.producer, traffic_name)
            metrics.batch_done(ctxs)
            # Visitor state (which marks events as seen) is written only after Kafka has
            # every output of the batch, and acks/offset commits come after that. Traffic
            # counter rows are the exception: they go out in traffic.commit(), after their
            # window state (streams/traffic/stream.py explains why).
            await asyncio.gather(*deliveries)
            if traffic is not None:  # before the visitor state: see streams/traffic/stream.py
                await traffic.commit()
            await sessionizer.commit()

    async def emit(ctxs: Sequence[Ctx]) -> list[Any]:
        failed_at = ms_to_text(now_ms())
        send = app.producer.send
        events_name, invalid_name = events_topic.get_topic_name(), invalid_topic.get_topic_name()
        deliveries = []
        by_partition: dict[int, list[Ctx]] = {}
        for ctx in ctxs:
            if ctx.ok:
                by_partition.setdefault(ctx.partition, []).append(ctx)
            elif ctx.reject_step != "session":  # duplicates are counted, not dead-lettered
                received = ctx.envelope.get("received_at")
                payload = ctx.envelope.get("event", ctx.raw) if ctx.envelope else ctx.raw
                site = payload.get("site_id") if isinstance(payload, dict) else ""
                record = dead_letter(
                    processor=PROCESSOR, version=__version__, step=ctx.reject_step,
                    reason=ctx.reject_reason, payload=payload,
                    received_at=ms_to_text(received) if isinstance(received, int)
                    else failed_at,
                    failed_at=failed_at, site_id=site if isinstance(site, str) else "",
                    origin=f"{settings.topic('raw')}/{ctx.partition}/{ctx.offset}/{ctx.index}",
                )
                deliveries.append(await send(invalid_name, ctx.key, orjson.dumps(record), None,
                                             None, None))
        encode = events_out.encoder(settings.worker_events_format)
        for partition, accepted in by_partition.items():  # many events per message
            deliveries += await sender.send(events_name, partition, (
                (None, value) for value in encode(accepted)))
        return deliveries

    @app.timer(interval=SWEEP_EVERY_S)
    async def sweep_visitor_state() -> None:
        """Trim or delete expired visitor states of the partitions this worker owns."""
        if app.rebalancing:
            return
        raw_name = raw_topic.get_topic_name()
        await sweep.step({tp.partition for tp in app.assignor.assigned_actives()
                          if tp.topic == raw_name})

    sessions_name = sessions_topic.get_topic_name()
    conversions_name = conversions_topic.get_topic_name()
    attribution_name = attribution_topic.get_topic_name()
    identity_name = identity_topic.get_topic_name()
    register_identity_agent(
        app, identity_topic, attributor.with_same_rules(),
        settings.topic_partitions,
        {"conversions": conversions_topic.get_topic_name(),
         "attribution": attribution_topic.get_topic_name()},
        settings.worker_batch_size, settings.worker_batch_seconds)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        return Response(body=generate_latest(REGISTRY),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "service": "worker"})

    @app.page("/v1/state")
    async def state(web: Any, request: Any) -> Any:
        """Summary of the worker's tables (for `clickstream status` and tests)."""
        return web.json(visitors.summary())

    app.clickstream_pipeline = pipeline  # type: ignore[attr-defined]
    app.clickstream_sweep = sweep  # type: ignore[attr-defined]
    return app

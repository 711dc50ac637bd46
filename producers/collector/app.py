"""HTTP collector: the only internet-facing part (API and limits: docs/collector.md).

`create_app(settings)` wires the routes; `main()` serves them and, on SIGTERM, stops
accepting (503), drains the delivery buffer to Kafka for a bounded time, then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from clickstream.settings import CollectorSettings
from producers.collector import openapi
from producers.collector.errors import ApiError, error_response
from producers.collector.handlers import Collector, count_rejection
from producers.collector.kafka_out import Producer
from producers.collector.metrics import LATENCY, REQUESTS
from producers.collector.sites import SiteRegistry, SitesFileError

log = logging.getLogger(__name__)

TRACKER_JS = Path(__file__).resolve().parents[1] / "js" / "dist" / "t.js"
COLLECTOR = web.AppKey("collector", Collector)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Tracker:
    """GET /t.js, read once per file change, with a content-hash ETag."""

    def __init__(self, path: Path = TRACKER_JS) -> None:
        self.path = path
        self._cached: tuple[float, bytes, str] | None = None

    async def handle(self, request: web.Request) -> web.Response:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            raise ApiError(404, "not_built", "tracker not built: run `make install`") from None
        if self._cached is None or self._cached[0] != mtime:
            body = self.path.read_bytes()
            self._cached = (mtime, body, f'"{hashlib.blake2b(body, digest_size=8).hexdigest()}"')
        _, body, etag = self._cached
        headers = {"ETag": etag, "Cache-Control": "public, max-age=86400",
                   "Access-Control-Allow-Origin": "*"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="application/javascript", headers=headers)


def _middleware(collector: Collector) -> Callable[[web.Request, Handler],
                                                  Awaitable[web.StreamResponse]]:
    children: dict[tuple[str, int], tuple[object, object]] = {}

    @web.middleware
    async def errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
        t0 = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        try:
            resp = await handler(request)
        except ApiError as exc:
            count_rejection(exc)
            headers = collector.cors.headers(request.headers.get("Origin")) \
                if route == "/v1/events" else None
            resp = error_response(exc, headers)
        except web.HTTPException as exc:  # 404, 405 from the router
            _observe(children, route, exc.status, t0)
            raise
        except Exception:
            log.exception("collector failed on %s %s", request.method, request.path)
            resp = error_response(ApiError(500, "internal_error", "unexpected error"))
        _observe(children, route, resp.status, t0)
        return resp

    return errors_and_metrics


def _observe(children: dict[tuple[str, int], tuple[object, object]], route: str, status: int,
             t0: float) -> None:
    pair = children.get((route, status))
    if pair is None:  # labels() costs a lock and a dict lookup: keep the children
        pair = children[route, status] = (LATENCY.labels(route), REQUESTS.labels(route, status))
    pair[0].observe(time.perf_counter() - t0)  # type: ignore[attr-defined]
    pair[1].inc()  # type: ignore[attr-defined]


def create_app(settings: CollectorSettings, producer: Producer | None = None,
               registry: SiteRegistry | None = None) -> web.Application:
    """`producer`: anything with start/stop/send_batch/reachable (default: Kafka)."""
    collector = Collector(settings, producer, registry)
    doc = openapi.render()

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi_json(request: web.Request) -> web.Response:
        return web.Response(body=doc, content_type="application/json")

    async def on_startup(app: web.Application) -> None:
        collector.buffer.start()

    async def on_cleanup(app: web.Application) -> None:
        await collector.buffer.drain(settings.collector_drain_seconds)

    app = web.Application(middlewares=[_middleware(collector)],
                          client_max_size=settings.collector_max_body_bytes + 1024)
    app[COLLECTOR] = collector
    app.router.add_post("/v1/events", collector.post_events)
    app.router.add_route("OPTIONS", "/v1/events", collector.preflight)
    app.router.add_get("/v1/pixel.gif", collector.pixel)
    app.router.add_get("/t.js", Tracker().handle)
    app.router.add_get("/healthz", collector.healthz)
    app.router.add_get("/readyz", collector.readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi_json)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def serve(settings: CollectorSettings, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or `stop`), then answer 503 while draining, then exit."""
    app = create_app(settings)
    collector = app[COLLECTOR]
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.collector_host, settings.collector_port)
    await site.start()
    log.info("collector listening on http://%s:%d (%s)", settings.collector_host,
             settings.collector_port, "open mode: any site, any origin"
             if collector.registry.open else f"{len(collector.registry.sites or {})} sites")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: draining %d buffered records", len(collector.buffer))
    delivered = collector.buffer.delivered
    ok = await collector.buffer.drain(settings.collector_drain_seconds)
    log.info("drained %d records%s", collector.buffer.delivered - delivered,
             "" if ok else f"; {len(collector.buffer)} NOT delivered")
    with contextlib.suppress(Exception):
        await runner.cleanup()


def main() -> None:
    from clickstream.logs import setup_logging

    settings = CollectorSettings()
    setup_logging(settings, "collector")
    if not settings.kafka_bootstrap:
        raise SystemExit("CLICKSTREAM_KAFKA_BOOTSTRAP is not set: start the stack with "
                         "`clickstream up`, or point it at your Kafka brokers")
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(settings))
    except SitesFileError as exc:
        raise SystemExit(f"collector: {exc}") from None
    except ValueError as exc:  # e.g. a bad CIDR in collector_trusted_proxies
        raise SystemExit(f"collector: bad setting: {exc}") from None


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (about a third less CPU per request), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]

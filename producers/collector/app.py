"""HTTP collector: the only internet-facing part.

POST /v1/events takes a JSON array of events or {"events": [...]} (application/json or
text/plain from sendBeacon), validates each event against contract v1, puts the good ones on
clickstream.raw (keyed by site + visitor) and every bad one on clickstream.invalid with its
reason, and answers 202 with the counts once Kafka has acknowledged everything.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from clickstream import __version__
from clickstream.settings import CollectorSettings
from producers.collector.kafka_out import RawProducer, partition_key
from producers.collector.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED, LATENCY, REQUESTS
from schemas.deadletter import dead_letter
from schemas.event import Event, describe_validation_error
from schemas.timefmt import ms_to_text

log = logging.getLogger(__name__)

PROCESSOR = "collector"
TRACKER_JS = Path(__file__).resolve().parents[1] / "js" / "dist" / "t.js"


class ApiError(Exception):
    """A request-level rejection, mapped to an HTTP status with a JSON body."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body),
                        content_type="application/json", headers=_cors())


def _cors() -> dict[str, str]:
    return {"Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type"}


def client_ip(request: web.Request, settings: CollectorSettings) -> str:
    if settings.collector_trust_forwarded_for:
        fwd = request.headers.get("X-Forwarded-For", "")
        if fwd:
            return fwd.split(",")[0].strip()
    return request.remote or ""


def parse_batch(body: bytes, max_events: int) -> list[Any]:
    """Request body -> list of (unvalidated) event objects, or ApiError."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc}") from None
    if isinstance(doc, dict) and "events" in doc:
        doc = doc["events"]
    elif isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise ApiError(400, "malformed_batch",
                       'expected a JSON array of events or {"events": [...]}')
    if len(doc) > max_events:
        raise ApiError(413, "too_many_events",
                       f"{len(doc)} events in one request; the limit is {max_events}")
    return doc


class Collector:
    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.producer = RawProducer(settings)

    async def handle_events(self, request: web.Request) -> web.Response:
        max_body = self.settings.collector_max_body_bytes
        if request.content_length is not None and request.content_length > max_body:
            raise ApiError(413, "body_too_large", f"body over {max_body} bytes")
        body = await request.content.read(max_body + 1)
        if len(body) > max_body:
            raise ApiError(413, "body_too_large", f"body over {max_body} bytes")
        items = parse_batch(body, self.settings.collector_max_events)
        received_ms = time.time_ns() // 1_000_000
        ip = client_ip(request, self.settings)
        ua = request.headers.get("User-Agent", "")
        records: list[tuple[str, bytes, dict[str, Any]]] = []
        errors = []
        for index, item in enumerate(items):
            reason = self._check(item)
            key = partition_key(item, ip, ua)
            if reason is None:
                records.append(("raw", key, {"v": 1, "received_at": received_ms, "ip": ip,
                                             "ua": ua, "event": item}))
            else:
                site = item.get("site_id") if isinstance(item, dict) else ""
                stamp = ms_to_text(received_ms)
                records.append(("invalid", key, dead_letter(
                    processor=PROCESSOR, version=__version__, step="validate", reason=reason,
                    payload=item, received_at=stamp, failed_at=stamp,
                    site_id=site if isinstance(site, str) else "",
                    origin=f"{PROCESSOR}/{received_ms}/{id(request)}/{index}",
                )))
                errors.append({"index": index, "reason": reason})
                EVENTS_REJECTED.labels("invalid_event").inc()
        await self.producer.send_batch(records)
        accepted = len(items) - len(errors)
        EVENTS_ACCEPTED.inc(accepted)
        return _json(202, {"accepted": accepted, "rejected": len(errors), "errors": errors})

    @staticmethod
    def _check(item: Any) -> str | None:
        if not isinstance(item, dict):
            return f"invalid: event must be a JSON object, got {type(item).__name__}"
        try:
            Event.model_validate(item)
        except ValidationError as exc:
            return f"invalid: {describe_validation_error(exc)}"
        return None

    async def handle_tracker(self, request: web.Request) -> web.StreamResponse:
        if not TRACKER_JS.exists():
            raise ApiError(404, "not_built", "tracker not built: run `make install`")
        body = TRACKER_JS.read_bytes()
        etag = f'"{hash(body) & 0xFFFFFFFF:08x}"'
        headers = {"ETag": etag, "Cache-Control": "public, max-age=86400",
                   "Access-Control-Allow-Origin": "*"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="application/javascript", headers=headers)


def create_app(settings: CollectorSettings) -> web.Application:
    collector = Collector(settings)

    @web.middleware
    async def errors_and_metrics(request: web.Request, handler: Any) -> web.StreamResponse:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource \
            else "unmatched"
        t0 = time.perf_counter()
        try:
            resp = await handler(request)
        except ApiError as exc:
            EVENTS_REJECTED.labels(exc.reason).inc()
            resp = _json(exc.status, {"error": exc.reason, "message": exc.message})
        except web.HTTPException as exc:
            resp = exc
        except Exception:
            log.exception("collector failed on %s", request.path)
            resp = _json(503, {"error": "unavailable",
                               "message": "could not store events now; retry later"})
            resp.headers["Retry-After"] = "5"
        LATENCY.labels(route).observe(time.perf_counter() - t0)
        REQUESTS.labels(route, str(resp.status)).inc()
        return resp

    async def healthz(request: web.Request) -> web.Response:
        return _json(200, {"status": "ok", "service": "collector"})

    async def readyz(request: web.Request) -> web.Response:
        ok = await collector.producer.reachable()
        return _json(200 if ok else 503, {"ready": ok})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def preflight(request: web.Request) -> web.Response:
        return web.Response(status=204, headers=_cors())

    async def on_startup(app: web.Application) -> None:
        await collector.producer.start()

    async def on_cleanup(app: web.Application) -> None:
        await collector.producer.stop()

    app = web.Application(middlewares=[errors_and_metrics],
                          client_max_size=settings.collector_max_body_bytes + 1024)
    app.router.add_post("/v1/events", collector.handle_events)
    app.router.add_route("OPTIONS", "/v1/events", preflight)
    app.router.add_get("/t.js", collector.handle_tracker)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def main() -> None:
    from clickstream.logs import setup_logging

    settings = CollectorSettings()
    setup_logging(settings, "collector")
    if not settings.kafka_bootstrap:
        raise SystemExit("CLICKSTREAM_KAFKA_BOOTSTRAP is not set: start the stack with "
                         "`clickstream up`, or point it at your Kafka brokers")
    web.run_app(create_app(settings), host=settings.collector_host,
                port=settings.collector_port, access_log=None, print=None,
                handle_signals=True, shutdown_timeout=10)

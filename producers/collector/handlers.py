"""The collector's HTTP handlers. Request-level problems raise ApiError (see errors.py)."""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from clickstream.settings import CollectorSettings
from producers.collector.buffer import DeliveryBuffer
from producers.collector.clientip import ClientIp, parse_networks
from producers.collector.cors import Cors
from producers.collector.errors import ApiError, error_response, json_response
from producers.collector.ingest import ingest
from producers.collector.kafka_out import KafkaSink, Producer
from producers.collector.metrics import (
    DNT_REQUESTS,
    EVENTS_ACCEPTED,
    EVENTS_REJECTED,
    REQUESTS_REJECTED,
)
from producers.collector.pixel import GIF, NO_CACHE, pixel_event
from producers.collector.privacy import dnt_requested, reduce_ua
from producers.collector.ratelimit import RateLimiter
from producers.collector.records import RecordMaker, safe_text
from producers.collector.sites import SiteRegistry, load_sites
from producers.collector.validation import check_content_type, parse_batch

log = logging.getLogger(__name__)


def count_rejection(exc: ApiError) -> None:
    REQUESTS_REJECTED.labels(exc.reason).inc()
    if exc.events:
        EVENTS_REJECTED.labels(exc.reason).inc(exc.events)


class Collector:
    """State shared by the handlers: settings, site registry, limiter, delivery buffer."""

    def __init__(self, settings: CollectorSettings, producer: Producer | None = None,
                 registry: SiteRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else load_sites(settings.sites_file)
        self.cors = Cors(self.registry)
        self.client_ip = ClientIp(parse_networks(settings.collector_trusted_proxies),
                                  trust_all=settings.collector_trust_forwarded_for)
        self.limiter = RateLimiter(settings.collector_rate_limit_per_second,
                                   settings.collector_rate_limit_burst,
                                   settings.collector_rate_limit_clients)
        self.buffer = DeliveryBuffer(producer if producer is not None else KafkaSink(settings),
                                     max_events=settings.collector_buffer_max_events,
                                     max_bytes=settings.collector_buffer_max_bytes)
        self.raw_topic = settings.topic("raw")
        self.invalid_topic = settings.topic("invalid")
        self.retry_after = settings.collector_retry_after_seconds
        self._probe: tuple[float, bool] = (0.0, False)
        self._rejected = {c: EVENTS_REJECTED.labels(c)
                          for c in ("invalid_event", "unknown_site", "origin_not_allowed")}

    # --- shared steps -------------------------------------------------------------------

    def admit(self, request: web.Request) -> str:
        """Stopping -> 503; over the client's rate -> 429. Returns the client IP."""
        if not self.buffer.accepting:
            raise ApiError(503, "shutting_down", "the collector is stopping; retry later",
                           retry_after=self.retry_after)
        ip = self.client_ip(request.remote or "", request.headers.get("X-Forwarded-For"))
        wait = self.limiter.acquire(ip)
        if wait:
            raise ApiError(429, "rate_limited", "too many requests from this address",
                           retry_after=RateLimiter.retry_after(wait))
        return ip

    def check_origin(self, origin: str | None) -> None:
        if origin is not None and not self.cors.allowed(origin):
            raise ApiError(403, "origin_not_allowed",
                           f"origin {origin[:200]!r} may not send events to this collector")

    def maker(self, request: web.Request, ip: str) -> RecordMaker:
        ua = safe_text(request.headers.get("User-Agent", ""))
        dnt = dnt_requested(request.headers)
        if dnt:
            DNT_REQUESTS.inc()
            ip, ua = "", reduce_ua(ua)
        return RecordMaker(self.raw_topic, self.invalid_topic, time.time_ns() // 1_000_000,
                           ip, ua, dnt)

    def store(self, items: list[Any], origin: str | None, maker: RecordMaker) -> dict[str, Any]:
        """Validate, buffer, count. Returns the 2xx answer body."""
        out = ingest(items, self.registry, origin, maker)
        if not self.buffer.offer(out.records):
            stopping = not self.buffer.accepting
            raise ApiError(503, "shutting_down" if stopping else "overloaded",
                           "the collector is stopping; retry later" if stopping else
                           "events cannot be buffered now (Kafka slow or down); retry later",
                           events=len(items), retry_after=self.retry_after)
        if out.accepted:
            EVENTS_ACCEPTED.inc(out.accepted)
        for err in out.errors:
            self._rejected[err["code"]].inc()
        return {"accepted": out.accepted, "rejected": out.rejected, "errors": out.errors}

    # --- routes -------------------------------------------------------------------------

    async def post_events(self, request: web.Request) -> web.Response:
        ip = self.admit(request)
        origin = request.headers.get("Origin")
        self.check_origin(origin)
        check_content_type(request.content_type)
        body = await read_body(request, self.settings.collector_max_body_bytes)
        items = parse_batch(body, self.settings.collector_max_events)
        answer = self.store(items, origin, self.maker(request, ip))
        return json_response(202, answer, self.cors.headers(origin))

    async def pixel(self, request: web.Request) -> web.Response:
        """Always a GIF; the status tells what happened (200 stored or dead-lettered, 403,
        429, 503), so a 2xx still means 'will be delivered'."""
        status, headers = 200, dict(NO_CACHE)
        try:
            ip = self.admit(request)
            origin = request.headers.get("Origin")
            self.check_origin(origin)
            maker = self.maker(request, ip)
            referer = request.headers.get("Referer")
            item = pixel_event(request.query, safe_text(referer) if referer else None,
                               maker.received_ms)
            self.store([item], origin, maker)
        except ApiError as exc:
            count_rejection(exc)
            status = exc.status
            headers.update(exc.headers())
        except Exception:  # a bug: still answer the image (and the 500 shows in metrics)
            log.exception("pixel failed on %s", request.query_string[:200])
            status = 500
        return web.Response(status=status, body=GIF, content_type="image/gif", headers=headers)

    async def preflight(self, request: web.Request) -> web.Response:
        headers = self.cors.preflight(request.headers.get("Origin"))
        if headers is None:
            exc = ApiError(403, "origin_not_allowed", "origin not allowed")
            count_rejection(exc)
            return error_response(exc, {"Vary": "Origin"})
        return web.Response(status=204, headers=headers)

    async def readyz(self, request: web.Request) -> web.Response:
        buf = self.buffer
        kafka = buf.connected and not buf.failing and await self.kafka_reachable()
        ready = kafka and buf.accepting and buf.has_room
        return json_response(200 if ready else 503, {
            "ready": ready, "kafka": kafka, "accepting": buf.accepting,
            "buffer_events": len(buf), "buffer_max_events": buf.max_events})

    async def kafka_reachable(self) -> bool:
        """Metadata probe, at most once a second (probes can come often)."""
        at, ok = self._probe
        now = time.monotonic()
        if now - at > 1.0:
            ok = await self.buffer.producer.reachable()
            self._probe = (time.monotonic(), ok)
        return ok

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response(200, {"status": "ok", "service": "collector"})


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it passes `limit` bytes (counted after any
    Content-Encoding is undone, so a compressed bomb is cut short too)."""
    too_large = ApiError(413, "body_too_large", f"body over {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)

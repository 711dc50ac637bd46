"""The collector's HTTP contract, in-process with an in-memory producer: statuses and their
bodies, site registry and CORS, rate limiting, buffering and 503, DNT, pixel, metrics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from clickstream.settings import CollectorSettings
from producers.collector.pixel import GIF
from producers.collector.testing import Harness, MemoryProducer


def ev(site: str = "shop", **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"event_id": str(uuid.uuid4()), "type": "pageview", "site_id": site,
                           "anonymous_id": "v1", "ts": int(time.time() * 1000),
                           "url": f"https://{site}.example/"}
    out.update(fields)
    return out


def settings(**kw: Any) -> CollectorSettings:
    return CollectorSettings(**{"kafka_bootstrap": "unused:9092", "topic_prefix": "t",
                                "collector_rate_limit_per_second": 0, **kw})


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness(settings())
    yield harness
    harness.close()


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "sites.toml"
    path.write_text('[sites.shop]\norigins = ["https://shop.example"]\n'
                    '[sites.blog]\norigins = ["https://blog.example"]\n')
    return path


def test_batch_forms_and_counts(h: Harness) -> None:
    good, bad = ev(), ev(type="event")  # an event without a name
    for body in (orjson.dumps([good, bad]), orjson.dumps({"events": [good, bad]})):
        r = h.post(body)
        assert r.status == 202, r.body
        assert r.json()["accepted"] == 1 and r.json()["rejected"] == 1
        assert r.json()["errors"][0]["index"] == 1
        assert r.json()["errors"][0]["code"] == "invalid_event"
    r = h.request("POST", "/v1/events", data=orjson.dumps(good),
                  headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status == 202 and r.json()["accepted"] == 1
    h.settle()
    raw, dead = h.producer.values(".raw"), h.producer.values(".invalid")
    assert len(raw) == 3 and len(dead) == 2
    assert raw[0]["event"] == good and raw[0]["ip"] == "127.0.0.1" and "dnt" not in raw[0]
    assert dead[0]["processor"] == "collector" and "needs name" in dead[0]["reason"]
    assert dead[0]["payload"].startswith("{") and dead[0]["dead_letter_id"] != \
        dead[1]["dead_letter_id"]


@pytest.mark.parametrize("body, status, code", [
    (b"", 400, "malformed_json"), (b"[1,", 400, "malformed_json"),
    (b'"text"', 400, "malformed_batch"), (b'{"events": 5}', 400, "malformed_batch"),
    (b"[NaN]", 400, "malformed_json"), (b"\xff\xfe[]", 400, "malformed_json"),
    (orjson.dumps([{}] * 101), 413, "too_many_events"),
    (b"[" + b" " * 70_000 + b"]", 413, "body_too_large"),
])
def test_request_level_rejections(h: Harness, body: bytes, status: int, code: str) -> None:
    r = h.post(body)
    assert r.status == status and r.json()["error"] == code and r.json()["message"]
    assert r.headers["Content-Type"].startswith("application/json")
    h.settle()
    assert h.producer.records == []


def test_chunked_and_form_bodies(h: Harness) -> None:
    async def chunks() -> Any:
        for _ in range(3):
            yield b" " * 30_000
        yield b"[]"
    r = h.request("POST", "/v1/events", data=chunks(), headers={"Content-Type": "text/plain"})
    assert r.status == 413 and r.json()["error"] == "body_too_large"
    r = h.request("POST", "/v1/events", data=b"[]",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 415


def test_unknown_site_and_origin_rules(registry_file: Path) -> None:
    h = Harness(settings(sites_file=registry_file))
    try:
        shop = {"Origin": "https://shop.example"}
        r = h.post(orjson.dumps([ev("shop"), ev("nope"), ev("blog")]), **shop)
        assert r.status == 202
        codes = [e["code"] for e in r.json()["errors"]]
        assert r.json()["accepted"] == 1 and codes == ["unknown_site", "origin_not_allowed"]
        assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        r = h.post(orjson.dumps([ev("nope"), ev("nope2")]), **shop)
        assert r.status == 403 and r.json()["error"] == "unknown_site"
        r = h.post(orjson.dumps([ev("blog")]), **shop)
        assert r.status == 403 and r.json()["error"] == "origin_not_allowed"
        r = h.post(orjson.dumps([ev("shop")]), Origin="https://evil.example")
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        assert h.post(orjson.dumps([ev("shop"), 5])).status == 202  # no Origin: server side
        r = h.post(orjson.dumps([5, {"no": "site"}]), **shop)
        assert r.status == 202 and r.json()["rejected"] == 2  # invalid, not a site problem
        h.settle()
        reasons = [d["reason"] for d in h.producer.values(".invalid")]
        assert any(x.startswith("unknown_site:") for x in reasons)
        assert any(x.startswith("origin_not_allowed:") for x in reasons)
        pix = h.request("GET", "/v1/pixel.gif?site_id=nope&type=event&name=x")
        assert pix.status == 403 and pix.body == GIF
    finally:
        h.close()


def test_cors_preflight_and_echo(registry_file: Path, h: Harness) -> None:
    r = h.request("OPTIONS", "/v1/events", headers={"Origin": "https://any.example"})
    assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "https://any.example"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert r.headers["Vary"] == "Origin"
    strict = Harness(settings(sites_file=registry_file))
    try:
        ok = strict.request("OPTIONS", "/v1/events", headers={
            "Origin": "https://blog.example", "Access-Control-Request-Method": "POST"})
        assert ok.status == 204 and ok.headers["Access-Control-Allow-Origin"] == \
            "https://blog.example"
        bad = strict.request("OPTIONS", "/v1/events", headers={"Origin": "https://x.example"})
        assert bad.status == 403 and "Access-Control-Allow-Origin" not in bad.headers
        no_origin = strict.post(b"[]")
        assert no_origin.status == 202 and "Access-Control-Allow-Origin" not in no_origin.headers
        assert no_origin.headers["Vary"] == "Origin"
    finally:
        strict.close()


def test_rate_limit_per_client_ip_with_retry_after() -> None:
    h = Harness(settings(collector_rate_limit_per_second=1, collector_rate_limit_burst=2,
                         collector_trusted_proxies="127.0.0.1/32"))
    try:
        a, b = {"X-Forwarded-For": "198.51.100.1"}, {"X-Forwarded-For": "198.51.100.2"}
        assert [h.post(b"[]", **a).status for _ in range(2)] == [202, 202]
        r = h.post(b"[]", **a)
        assert r.status == 429 and r.json()["error"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1
        assert h.post(b"[]", **b).status == 202  # another client is not affected
        pix = h.request("GET", "/v1/pixel.gif?site_id=s", headers=a)
        assert pix.status == 429 and pix.body == GIF and "Retry-After" in pix.headers
        assert h.request("GET", "/healthz").status == 200  # not rate limited
        metrics = h.request("GET", "/metrics").body.decode()
        assert 'clickstream_collector_requests_rejected_total{reason="rate_limited"}' in metrics
    finally:
        h.close()


def test_buffer_full_answers_503_and_nothing_2xx_is_lost() -> None:
    h = Harness(settings(collector_buffer_max_events=30, collector_retry_after_seconds=7))
    try:
        h.producer.down = True
        accepted: list[str] = []
        statuses = []
        for _ in range(5):
            batch = [ev() for _ in range(10)]
            r = h.post(orjson.dumps(batch))
            statuses.append(r.status)
            if r.status == 202:
                accepted += [e["event_id"] for e in batch]
            else:
                assert r.json()["error"] == "overloaded" and r.headers["Retry-After"] == "7"
        assert statuses == [202, 202, 202, 503, 503]
        ready = h.request("GET", "/readyz")
        assert ready.status == 503 and ready.json()["ready"] is False
        pix = h.request("GET", "/v1/pixel.gif?site_id=s")
        assert pix.status == 503 and pix.body == GIF
        h.producer.down = False
        h.settle()
        assert [v["event"]["event_id"] for v in h.producer.values(".raw")] == accepted
        assert h.request("GET", "/readyz").status == 200
        assert h.post(orjson.dumps([ev()])).status == 202
    finally:
        h.close()


def test_starts_without_kafka_then_catches_up() -> None:
    producer = MemoryProducer(down=True)
    h = Harness(settings(), producer=producer)
    try:
        ready = h.request("GET", "/readyz")
        assert ready.status == 503 and ready.json()["kafka"] is False
        assert h.request("GET", "/healthz").status == 200
        batch = [ev(), ev()]
        assert h.post(orjson.dumps(batch)).status == 202  # buffered while Kafka is away
        producer.down = False
        h.settle(timeout=5)
        assert [v["event"] for v in producer.values(".raw")] == batch
        assert h.collector.buffer.connected and not h.collector.buffer.failing
        t0 = time.monotonic()
        assert h.runner.run(h.collector.buffer.drain(10)) is True
        assert time.monotonic() - t0 < 1  # nothing buffered: no waiting on shutdown
    finally:
        h.close()


def test_draining_refuses_new_events(h: Harness) -> None:
    assert h.post(orjson.dumps([ev()])).status == 202
    assert h.runner.run(h.collector.buffer.drain(2.0)) is True
    r = h.post(orjson.dumps([ev()]))
    assert r.status == 503 and r.json()["error"] == "shutting_down" and "Retry-After" in r.headers
    assert h.request("GET", "/readyz").status == 503
    assert len(h.producer.values(".raw")) == 1


def test_dnt_and_gpc_drop_ip_and_reduce_ua(h: Harness) -> None:
    ua = "Mozilla/5.0 (Linux; Android 14; SM-S918B) Chrome/131.0.6778.135 Mobile Safari/537.36"
    cookieless = ev()
    cookieless.pop("anonymous_id")
    for header in ("DNT", "Sec-GPC"):
        assert h.post(orjson.dumps([cookieless]), **{header: "1", "User-Agent": ua}).status \
            == 202
    h.settle()
    for rec in h.producer.records:
        env = orjson.loads(rec.value)
        assert env["ip"] == "" and env["dnt"] is True and "SM-S918B" not in env["ua"]
        assert rec.key == f"shop|#{cookieless['event_id']}".encode()
    metrics = h.request("GET", "/metrics").body.decode()
    assert "clickstream_collector_dnt_requests_total" in metrics


def test_pixel_always_gif_and_dead_letters_invalid(h: Harness) -> None:
    r = h.request("GET", "/v1/pixel.gif?site_id=shop&type=event&name=email_open"
                  "&utm_campaign=nov&p.list=weekly", headers={"Referer": "https://mail.example/"})
    assert r.status == 200 and r.body == GIF and r.headers["Content-Type"] == "image/gif"
    assert "no-store" in r.headers["Cache-Control"] and r.headers["Pragma"] == "no-cache"
    bad = h.request("GET", "/v1/pixel.gif?type=event")  # no site_id, no name
    assert bad.status == 200 and bad.body == GIF
    odd = h.request("GET", "/v1/pixel.gif?site_id=%FF%FE&ts=NaN&revenue=1e999&p.=x")
    assert odd.status == 200 and odd.body == GIF
    big = h.request("GET", "/v1/pixel.gif?site_id=s&ts=123456789012345678901234567890"
                    "&revenue=99999999999999999999999")
    assert big.status == 200 and big.body == GIF
    h.settle()
    raw = h.producer.values(".raw")
    assert raw[0]["event"]["url"] == "https://mail.example/?utm_campaign=nov"
    assert raw[0]["event"]["props"] == {"list": "weekly"}
    assert len(h.producer.values(".invalid")) == 3


def test_health_metrics_openapi_tracker_routes(h: Harness) -> None:
    assert h.request("GET", "/healthz").json() == {"status": "ok", "service": "collector"}
    ready = h.request("GET", "/readyz")
    assert ready.status == 200 and ready.json()["kafka"] is True
    h.post(orjson.dumps([ev(), ev(type="event")]))
    h.request("GET", "/nope")
    text = h.request("GET", "/metrics").body.decode()
    assert 'clickstream_collector_requests_total{route="/v1/events",status="202"}' in text
    assert 'clickstream_collector_requests_total{route="unmatched",status="404"}' in text
    assert 'clickstream_collector_events_rejected_total{reason="invalid_event"}' in text
    for name in ("request_seconds_bucket", "buffer_events", "records_delivered_total",
                 "produce_errors_total", "events_accepted_total"):
        assert f"clickstream_collector_{name}" in text
    assert "site_id" not in text.split("clickstream_collector_")[1]  # no site labels
    doc = h.request("GET", "/openapi.json")
    assert doc.status == 200 and doc.json()["openapi"] == "3.1.0"
    js = h.request("GET", "/t.js")
    if js.status == 200:  # dist/ is built by `make install`
        again = h.request("GET", "/t.js", headers={"If-None-Match": js.headers["ETag"]})
        assert again.status == 304
    else:
        assert js.status == 404 and js.json()["error"] == "not_built"

"""Collector building blocks: sites, client IP, rate limiter, privacy, pixel parsing,
OpenAPI document, and the fast pre-check against pydantic (differential)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from multidict import MultiDict
from pydantic import ValidationError

from clickstream.settings import CollectorSettings
from producers.collector import openapi
from producers.collector.clientip import ClientIp, parse_networks
from producers.collector.pixel import GIF, fold_utm, pixel_event
from producers.collector.privacy import dnt_requested, reduce_ua
from producers.collector.ratelimit import RateLimiter
from producers.collector.records import Record, RecordMaker, envelopes, partition_key
from producers.collector.sites import OriginRule, SitesFileError, load_sites
from schemas.event import Event
from schemas.fastcheck import plainly_valid

# --- site registry -------------------------------------------------------------------------


def test_sites_file_toml_and_origin_rules(tmp_path: Path) -> None:
    path = tmp_path / "sites.toml"
    path.write_text('[sites.shop]\norigins = ["https://shop.example", "https://*.shop.example",'
                    ' "shop-staging.example"]\n[sites.any]\norigins = ["*"]\n'
                    '[sites.server]\norigins = []\n')
    reg = load_sites(path)
    assert not reg.open and reg.known("shop") and not reg.known("nope")
    allowed = ["https://shop.example", "https://SHOP.example:443", "https://m.shop.example",
               "http://shop-staging.example:8080", "https://shop-staging.example"]
    refused = ["http://shop.example", "https://shop.example:8443", "https://shop.example.evil",
               "https://evilshop.example", "null", "garbage", "https://x.shop-staging.example"]
    assert all(reg.origin_allowed("shop", o) for o in allowed)
    assert not any(reg.origin_allowed("shop", o) for o in refused)
    assert reg.origin_allowed("any", "https://whatever.test")
    assert reg.origin_allowed("server", None) and not reg.origin_allowed("server", "https://a.b")
    assert reg.origin_allowed_anywhere("https://m.shop.example")


def test_sites_file_json_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "sites.json"
    good.write_text(json.dumps({"sites": {"blog": {"origins": ["blog.example"]}}}))
    assert load_sites(good).known("blog")
    assert load_sites(None).open
    for content in ('{"sites": []}', '{"sites": {"bad id!": {"origins": []}}}',
                    '{"sites": {"a": {"origins": "x"}}}', "not json",
                    '{"sites": {"a": {"origins": ["ftp://x"]}}}'):
        bad = tmp_path / "bad.json"
        bad.write_text(content)
        with pytest.raises(SitesFileError):
            load_sites(bad)
    with pytest.raises(SitesFileError):
        load_sites(tmp_path / "missing.toml")
    with pytest.raises(SitesFileError):
        OriginRule.parse("https://a.*.example")


# --- client IP -----------------------------------------------------------------------------


def test_forwarded_for_only_from_trusted_proxies_rightmost_untrusted() -> None:
    ip = ClientIp(parse_networks("10.0.0.0/8, 127.0.0.1/32"))
    assert ip("203.0.113.9", "1.2.3.4") == "203.0.113.9"  # peer not trusted: header ignored
    assert ip("127.0.0.1", None) == "127.0.0.1"
    assert ip("127.0.0.1", "1.2.3.4") == "1.2.3.4"
    # a client-supplied spoof on the left is skipped: right-most untrusted wins
    assert ip("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3") == "198.51.100.7"
    assert ip("127.0.0.1", "10.0.0.1, 10.0.0.2") == "10.0.0.1"  # all trusted: left-most
    assert ip("127.0.0.1", "garbage, 198.51.100.7") == "198.51.100.7"
    assert ip("127.0.0.1", "198.51.100.7, garbage") == "127.0.0.1"
    assert ip("127.0.0.1", "[2001:db8::1]:443") == "2001:db8::1"
    assert ip("127.0.0.1", "198.51.100.7:5555") == "198.51.100.7"
    assert ip("::ffff:127.0.0.1", "198.51.100.8") == "198.51.100.8"
    assert ClientIp(())("127.0.0.1", "1.2.3.4") == "127.0.0.1"
    legacy = ClientIp((), trust_all=True)
    assert legacy("203.0.113.9", "1.2.3.4, 5.6.7.8") == "1.2.3.4"
    with pytest.raises(ValueError):
        parse_networks("10.0.0.0/8, not-a-net")


# --- rate limiter --------------------------------------------------------------------------


def test_token_bucket_refills_and_lru_stays_bounded() -> None:
    rl = RateLimiter(rate=10, burst=3, max_clients=100)
    assert [rl.acquire("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = rl.acquire("a", now=0.0)
    assert wait == pytest.approx(0.1) and RateLimiter.retry_after(wait) == 1
    assert rl.acquire("a", now=0.1) == 0.0  # one token back after 1/rate s
    assert rl.acquire("b", now=0.0) == 0.0  # separate bucket
    for i in range(10_000):
        rl.acquire(f"ip{i}", now=1.0)
    assert len(rl) == 100
    assert RateLimiter(rate=0, burst=1, max_clients=1).acquire("x") == 0.0


@given(st.lists(st.tuples(st.integers(0, 2),
                          st.sampled_from([0.0, 0.0, 0.0, 0.05, 0.2, 0.45, 0.7, 1.5])),
                max_size=300))
@example([(0, 0.0)] * 5 + [(0, 0.45)] + [(0, 0.0)] * 2)  # drained, half refilled, drained
@settings(max_examples=300, deadline=None)
def test_dropping_full_buckets_changes_no_answer(calls: list[tuple[int, float]]) -> None:
    """Buckets idle until full again are dropped, and every client gets exactly what a
    limiter that keeps every bucket forever gives it; memory holds recent clients only."""
    kept, forgetting = RateLimiter(5, 4, 10**9), RateLimiter(5, 4, 10**9)
    kept._forget_full = lambda now: None  # type: ignore[method-assign]
    now = 0.0
    for client, step in calls:
        now += step
        assert forgetting.acquire(f"c{client}", now) == kept.acquire(f"c{client}", now)
    for i in range(8):  # long after: the next calls drop what is full again
        forgetting.acquire(f"late{i}", now + 100)
    assert len(forgetting) <= max(8, len(kept) - 4 * 8 + 8)


def test_idle_clients_are_forgotten() -> None:
    rl = RateLimiter(rate=10, burst=3, max_clients=100_000)
    for i in range(1000):
        rl.acquire(f"ip{i}", now=i / 5000)  # 1,000 clients within 0.2 s
    assert len(rl) == 1000
    for i in range(300):
        rl.acquire("steady", now=2.0 + i)  # 0.3 s from empty to full: the others go
    assert len(rl) == 1


# --- privacy -------------------------------------------------------------------------------


def test_dnt_headers_and_ua_reduction() -> None:
    assert dnt_requested({"DNT": "1"}) and dnt_requested({"Sec-GPC": " 1"})
    assert not dnt_requested({"DNT": "0"}) and not dnt_requested({})
    android = ("Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro Build/AP1A.240405.002) "
               "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.135 Mobile "
               "Safari/537.36")
    reduced = reduce_ua(android)
    assert "Pixel" not in reduced and "Build" not in reduced and "6778" not in reduced
    assert "Android 14; K)" in reduced and "Chrome/131.0.0.0" in reduced
    bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    assert "Googlebot/2.0" in reduce_ua(bot)  # the bot stays recognisable
    assert len(reduce_ua("x" * 5000)) == 512


def test_dnt_envelope_has_no_ip_and_cookieless_keys_spread() -> None:
    maker = RecordMaker("p.raw", "p.invalid", 1, "", reduce_ua("UA/1.2.3"), True)
    ev = {"site_id": "s", "event_id": "e1"}
    rec = maker.raw(ev)
    assert json.loads(rec.value) == {"v": 1, "received_at": 1, "ip": "", "ua": "UA/1.0.0",
                                     "dnt": True, "event": ev}
    assert rec.key == b"s|#e1"
    assert partition_key(ev, "1.2.3.4", "ua") == partition_key(
        {**ev, "event_id": "e2"}, "1.2.3.4", "ua")
    assert partition_key({"site_id": "s", "anonymous_id": "v"}, "", "") == b"s|v"
    assert partition_key(7, "", "") == b""


@given(st.lists(st.tuples(st.sampled_from(["a", "b", None]), st.sampled_from(["s", "t"])),
                min_size=1, max_size=30))
def test_request_events_grouped_per_visitor_in_order(spec: list[tuple[str | None, str]]
                                                     ) -> None:
    """One record per (site, visitor) key; splitting them back gives every event once, in
    request order within each visitor, each record's key that of all its events."""
    maker = RecordMaker("p.raw", "p.invalid", 5, "10.0.0.1", "UA", False)
    events = [{"site_id": site, "event_id": f"e{i}", **({"anonymous_id": anon} if anon else {})}
              for i, (anon, site) in enumerate(spec)]
    records = maker.raws(events)
    keys = {partition_key(ev, "10.0.0.1", "UA") for ev in events}
    assert len(records) == len(keys) and {r.key for r in records} == keys
    back = []
    for rec in records:
        envs = envelopes(rec.value)
        assert rec.events == len(envs)
        assert all(partition_key(e["event"], "10.0.0.1", "UA") == rec.key for e in envs)
        assert all(e["ip"] == "10.0.0.1" and e["received_at"] == 5 for e in envs)
        back += [e["event"] for e in envs]
    assert sorted(back, key=lambda e: int(e["event_id"][1:])) == events
    for rec in records:  # order inside a visitor is the request's order
        ids = [int(e["event"]["event_id"][1:]) for e in envelopes(rec.value)]
        assert ids == sorted(ids)


# --- pixel ---------------------------------------------------------------------------------


def test_pixel_query_to_event() -> None:
    q = MultiDict([("site_id", "shop"), ("type", "event"), ("name", "email_open"),
                   ("utm_campaign", "nov"), ("utm_source", "news"), ("p.list", "a"),
                   ("p.list", "b"), ("ts", "1767225600000"), ("cb", "123"),
                   ("revenue", "12.5"), ("currency", "USD")])
    ev = pixel_event(q, "https://shop.example/mail?utm_source=keep", now_ms=5)
    assert ev["url"] == "https://shop.example/mail?utm_source=keep&utm_campaign=nov"
    assert ev["props"] == {"list": "a"} and ev["ts"] == 1767225600000
    assert ev["revenue"] == {"amount": 12.5, "currency": "USD"}
    assert uuid.UUID(ev["event_id"]) and "cb" not in ev
    Event.model_validate(ev)
    bare = pixel_event(MultiDict([("site_id", "shop"), ("utm_medium", "email")]), None, 5)
    assert bare["type"] == "pageview" and bare["ts"] == 5 and "url" not in bare
    assert bare["props"] == {"utm_medium": "email"}
    assert pixel_event(MultiDict([("ts", "2026-01-01T00:00:00Z"), ("revenue", "x")]), None,
                       1)["revenue"]["amount"] == "x"
    assert fold_utm("http://[bad", {"utm_source": "a"}) is None
    assert fold_utm("https://a.example/", {"utm_source": "a b"}) == \
        "https://a.example/?utm_source=a+b"
    assert GIF.startswith(b"GIF89a\x01\x00\x01\x00") and GIF.endswith(b";")


# --- OpenAPI -------------------------------------------------------------------------------


def test_committed_openapi_document_is_current() -> None:
    committed = openapi.OPENAPI_FILE.read_bytes()
    assert committed == openapi.render(), (
        "producers/collector/openapi.json is stale: run "
        "`.venv/bin/python -m producers.collector.openapi` and commit it")
    doc = openapi.build()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {"/v1/events", "/v1/pixel.gif", "/t.js", "/healthz",
                                 "/readyz", "/metrics", "/openapi.json"}
    event = doc["components"]["schemas"]["Event"]
    assert "$defs" not in event and "ts" in event["properties"]
    assert "Revenue" in doc["components"]["schemas"]
    assert "#/$defs/" not in json.dumps(doc)


def test_new_settings_are_documented_and_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKSTREAM_SITES_FILE", "/etc/clickstream/sites.toml")
    monkeypatch.setenv("CLICKSTREAM_COLLECTOR_BUFFER_MAX_EVENTS", "10")
    s = CollectorSettings()
    assert s.sites_file == Path("/etc/clickstream/sites.toml")
    assert s.collector_buffer_max_events == 10
    assert s.collector_drain_seconds < 20  # the stack's stop() waits 20 s before SIGKILL


# --- fast pre-check == pydantic --------------------------------------------------------------

_EDGE_TEXT = ["", " ", "x", " pad ", "\u2003", "\x1c", "\n", "a" * 64, "a" * 65, "a" * 128,
              "a" * 129, "a" * 256, "a" * 257, "a" * 512, "a" * 513, "a" * 2048, "a" * 2049,
              "en-GB", "EN", "e", "en-", "1440x900", "\u0661\u0662x\u0663", "0x0",
              "123456x1", "1440x900\n", "shop\n", "https://s.example/"]
_text = st.one_of(st.text(max_size=5), st.sampled_from(_EDGE_TEXT))
_value = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                   st.floats(), _text, st.lists(st.integers(), max_size=2),
                   st.dictionaries(_text, st.integers(), max_size=2))
_good_text = st.one_of(st.text(st.characters(codec="utf-8", exclude_categories=["Zs", "Cc"]),
                               min_size=1, max_size=8),
                       st.sampled_from(["a" * 128, "https://s.example/p?q=1", "a b"]))
_NEEDS = {"pageview": "url", "event": "name", "conversion": "name", "identify": "user_id"}
_LIMITS = {"anonymous_id": 128, "user_id": 256, "name": 128, "url": 2048, "referrer": 2048,
           "title": 512}
_MUTANTS = {
    "event_id": st.one_of(_value, st.uuids().map(lambda u: str(u).upper()),
                          st.uuids().map(lambda u: u.hex), st.uuids().map(lambda u: f"{{{u}}}"),
                          st.uuids().map(lambda u: f" {u}"), st.uuids().map(lambda u: f"{u}\n")),
    "type": st.one_of(_value, st.sampled_from(["Pageview", " event", "event ", "identify\n"])),
    "site_id": st.one_of(_value, st.sampled_from(["a" * 64, "a" * 65, "-x", "s p", "s\n", ""])),
    "ts": st.one_of(_value, st.integers(946684800000 - 2, 946684800000 + 2),
                    st.integers(4102444800000 - 2, 4102444800000 + 2), st.floats(),
                    st.just("2026-01-01T00:00:00Z")),
    "props": st.one_of(_value, st.dictionaries(_text, _value, max_size=3),
                       st.dictionaries(st.text(min_size=1, max_size=3), st.integers(),
                                       min_size=49, max_size=51)),
}


@st.composite
def near_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event, then up to two fields changed to edge or wrong values (or removed,
    or an unknown field added)."""
    kind = draw(st.sampled_from(sorted(_NEEDS)))
    ev: dict[str, Any] = {
        "event_id": str(draw(st.uuids())), "type": kind,
        "site_id": draw(st.sampled_from(["shop", "a", "Z9", "a._-b", "x" * 64])),
        "ts": draw(st.integers(946684800000, 4102444800000 - 1)),
        _NEEDS[kind]: draw(_good_text),
    }
    for key, limit in _LIMITS.items():
        if key not in ev and draw(st.booleans()):
            ev[key] = draw(st.one_of(st.none(), _good_text.filter(
                lambda t, limit=limit: len(t) <= limit)))
    if draw(st.booleans()):
        ev["screen"] = draw(st.sampled_from(["1440x900", "1x1", "99999x99999"]))
    if draw(st.booleans()):
        ev["lang"] = draw(st.sampled_from(["en", "en-GB", "zh-Hant-TW", "deu"]))
    if draw(st.booleans()):
        ev["props"] = draw(st.dictionaries(_good_text.filter(lambda t: len(t) <= 64),
                                           st.one_of(st.booleans(), st.integers(-9, 9**9),
                                                     st.floats(allow_nan=False,
                                                               allow_infinity=False),
                                                     _good_text), max_size=4))
    fields = sorted({*ev, *_LIMITS, "screen", "lang", "extra", "revenue"})
    for key in draw(st.lists(st.sampled_from(fields), max_size=2)):
        action = draw(st.integers(0, 3))
        if action == 0:
            ev.pop(key, None)
        else:
            ev[key] = draw(_MUTANTS.get(key, st.one_of(_text, _value)))
    return ev


def _pydantic_ok(ev: dict[str, Any]) -> bool:
    try:
        Event.model_validate(ev)
    except (ValidationError, ValueError, TypeError):
        return False
    return True


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_events())
def test_fast_precheck_never_accepts_what_pydantic_rejects(ev: dict[str, Any]) -> None:
    fast, slow = plainly_valid(ev), _pydantic_ok(ev)
    event(f"fast={fast} pydantic={slow}")
    if fast:
        assert slow, ev


def test_fast_precheck_takes_the_usual_tracker_events() -> None:
    base = {"event_id": str(uuid.uuid4()), "site_id": "shop", "ts": 1767225600000,
            "anonymous_id": "v1", "url": "https://shop.example/", "referrer": "",
            "title": "T", "screen": "1440x900", "lang": "en-GB",
            "props": {"plan": "pro", "n": 3, "x": 1.5, "ok": True}}
    for extra in ({"type": "pageview"}, {"type": "event", "name": "signup"},
                  {"type": "identify", "user_id": "u1"}, {"type": "event", "name": "x",
                                                          "user_id": None}):
        ev = {**base, **extra}
        assert plainly_valid(ev) and _pydantic_ok(ev)
    assert not plainly_valid({**base, "type": "pageview", "url": "  "})
    assert not _pydantic_ok({**base, "type": "pageview", "url": "  "})


def test_raw_records_of_one_partition_are_bundled_up_to_the_size_limit() -> None:
    from producers.collector.kafka_out import KafkaSink

    settings = CollectorSettings(kafka_bootstrap="x:1", collector_bundle_bytes=1000)
    sink = KafkaSink(settings)
    raw = settings.topic("raw")
    recs = [Record(raw, f"s|v{i}".encode(), orjson.dumps({"event": {"i": i, "pad": "x" * 90}}))
            for i in range(25)]
    units = sink._units(raw, recs)
    assert len(units) > 1 and all(len(value) <= 1000 for _, value, _ in units)
    assert [r for _, _, members in units for r in members] == recs  # all, in order
    split = [env for _, value, _ in units for env in envelopes(value)]
    assert [e["event"]["i"] for e in split] == list(range(25))
    # dead letters, lone records and a switched-off limit are sent as they are
    invalid = settings.topic("invalid")
    assert [u[1] for u in sink._units(invalid, recs)] == [r.value for r in recs]
    assert [u[1] for u in sink._units(raw, recs[:1])] == [recs[0].value]
    off = KafkaSink(CollectorSettings(kafka_bootstrap="x:1", collector_bundle_bytes=0))
    assert [u[1] for u in off._units(raw, recs)] == [r.value for r in recs]

"""Worker steps on single events: timestamps, visitor ids (cookieless, DNT), dead letters."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson

from clickstream.settings import WorkerSettings
from streams.pipeline import Ctx, Pipeline, Step
from streams.steps import base_fields, decode, make_timestamp, make_visitor, validate
from streams.visitor import SaltStore

NOW = 1_763_900_000_000


def run(tmp_path: Path, event: dict[str, Any], **envelope: Any) -> Ctx:
    settings = WorkerSettings(home=tmp_path)
    steps = [Step("decode", decode), Step("validate", validate),
             Step("timestamp", make_timestamp(settings)),
             Step("visitor", make_visitor(SaltStore(tmp_path / "salts.json"))),
             Step("fields", base_fields)]
    env = {"v": 1, "received_at": NOW, "ip": "203.0.113.5", "ua": "UA", "event": event,
           **envelope}
    return Pipeline(steps).run([Ctx(orjson.dumps(env))])[0]


def event(**over: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "pageview", "site_id": "s",
            "ts": NOW - 5000, "url": "https://s.example/", **over}


def test_tracker_id_wins(tmp_path: Path) -> None:
    assert run(tmp_path, event(anonymous_id="abc")).row["visitor_id"] == "abc"


def test_cookieless_id_is_stable_per_ip_and_agent(tmp_path: Path) -> None:
    a = run(tmp_path, event()).row["visitor_id"]
    b = run(tmp_path, event()).row["visitor_id"]
    c = run(tmp_path, event(), ua="Other UA").row["visitor_id"]
    assert a == b != c and len(a) == 16 and "203.0.113.5" not in a


def test_do_not_track_links_nothing(tmp_path: Path) -> None:
    a = run(tmp_path, event(), dnt=True, ip="").row["visitor_id"]
    b = run(tmp_path, event(), dnt=True, ip="").row["visitor_id"]
    assert a != b and len(a) == 16


def test_client_clock_far_in_the_future_uses_receive_time(tmp_path: Path) -> None:
    ok = run(tmp_path, event(ts=NOW - 60_000)).row
    future = run(tmp_path, event(ts=NOW + 3600_000)).row
    assert ok["ts"].endswith(":13:20.000") is False and ok["_ts_ms"] == NOW - 60_000
    assert future["_ts_ms"] == NOW and future["ts"] == future["received_at"]


def test_invalid_events_carry_step_and_reason(tmp_path: Path) -> None:
    bad = run(tmp_path, event(type="event"))
    assert (bad.reject_step, bad.ok) == ("validate", False)
    assert "needs name" in bad.reject_reason
    garbage = Pipeline([Step("decode", decode)]).run([Ctx(b"{not json")])[0]
    assert garbage.reject_step == "decode" and garbage.reject_reason.startswith(
        "malformed_envelope")


def test_a_grouped_message_expands_to_one_context_per_event(tmp_path: Path) -> None:
    from streams.steps import expand

    events = [event(anonymous_id="g"), event(anonymous_id="g", type="event")]  # 2nd: no name
    raw = orjson.dumps({"v": 1, "received_at": NOW, "ip": "", "ua": "UA", "events": events})
    ctxs = expand(raw, b"s|g", 3, 41)
    assert [(c.partition, c.offset, c.index) for c in ctxs] == [(3, 41, 0), (3, 41, 1)]
    settings = WorkerSettings(home=tmp_path)
    out = Pipeline([Step("decode", decode), Step("validate", validate),
                    Step("timestamp", make_timestamp(settings))]).run(ctxs)
    assert out[0].ok and out[0].row["received_at"].startswith("2025-11-23")
    assert out[1].reject_step == "validate" and "needs name" in out[1].reject_reason


def test_malformed_groups_are_rejected_whole(tmp_path: Path) -> None:
    from streams.steps import expand

    for raw in (b'{"events": 5}', b'{"events": []}', b'{"events": [1', b'[{"events": 1}]'):
        ctxs = expand(raw, None, 0, 0)
        assert len(ctxs) == 1
        Pipeline([Step("decode", decode), Step("validate", validate)]).run(ctxs)
        assert not ctxs[0].ok, raw


def test_a_bundle_expands_in_order_and_rejects_only_its_bad_entries(tmp_path: Path) -> None:
    from producers.collector.records import bundle_value, envelopes
    from streams.steps import expand

    def env(**kw: Any) -> dict[str, Any]:
        return {"v": 1, "received_at": NOW, "ip": "", "ua": "UA", **kw}

    a, b, c = event(anonymous_id="a"), event(anonymous_id="b"), event(anonymous_id="b")
    values = [orjson.dumps(env(event=a)), orjson.dumps(env(events=[b, c])), b"7",
              orjson.dumps({"v": 1, "received_at": NOW})]
    raw = bundle_value(values)
    ctxs = expand(raw, b"s|a", 2, 9)
    assert [(c.offset, c.index) for c in ctxs] == [(9, i) for i in range(5)]
    Pipeline([Step("decode", decode), Step("validate", validate)]).run(ctxs)
    assert [c.ok for c in ctxs] == [True, True, True, False, False]
    assert [c.event.event_id for c in ctxs[:3]] == [e["event_id"] for e in (a, b, c)]
    assert all(c.reject_reason.startswith("malformed_envelope") for c in ctxs[3:])
    # the collector's own reader splits it the same way
    split = envelopes(raw)
    assert [e["event"] for e in split[:3]] == [a, b, c]
    assert split[3:] == [7, {"v": 1, "received_at": NOW}]

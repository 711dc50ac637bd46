"""The ingestion steps of the stream worker, in order (see `default_steps`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import orjson
from pydantic import ValidationError

from clickstream.settings import WorkerSettings
from schemas.event import CONTRACT_VERSION, Event, describe_validation_error
from schemas.event_view import EventView, plain_view
from schemas.timefmt import ms_to_text
from streams.enrichment import Enricher
from streams.pipeline import Ctx, Reject, Step
from streams.visitor import SaltStore, cookieless_id


def expand(raw: bytes, key: bytes | None, partition: int, offset: int) -> list[Ctx]:
    """One raw Kafka message -> one context per event. A message is one envelope
    {received_at, ip, ua, event}, a group {received_at, ip, ua, events: [...]} of one
    visitor's events from one request, or a bundle {"records": [...]} of envelopes and
    groups that the collector sent to this partition together (fewer, larger messages:
    Faust's per-message cost is the worker's largest). Anything else stays whole, for
    `decode` to reject."""
    if b'"events"' not in raw and b'"records"' not in raw:
        return [Ctx(raw, key, partition, offset)]
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    out: list[Ctx] = []
    bundle = doc.get("records") if isinstance(doc, dict) else None
    if isinstance(bundle, list) and "event" not in doc and "events" not in doc:
        for rec in bundle:
            if not _add_group(out, rec, raw, key, partition, offset):
                ctx = Ctx(raw, key, partition, offset, index=len(out))
                if isinstance(rec, dict) and "event" in rec:
                    ctx.envelope = rec  # parsed already; `decode` checks the rest
                else:
                    ctx.raw = orjson.dumps(rec)  # for `decode` to reject, with this entry
                out.append(ctx)
        return out
    if not _add_group(out, doc, raw, key, partition, offset):
        out.append(Ctx(raw, key, partition, offset))
    return out


def _add_group(out: list[Ctx], rec: object, raw: bytes, key: bytes | None, partition: int,
               offset: int) -> bool:
    """Append one context per event of a group record; False when `rec` is no group."""
    events = rec.get("events") if isinstance(rec, dict) else None
    if not isinstance(events, list) or not events:
        return False
    assert isinstance(rec, dict)
    head = {k: v for k, v in rec.items() if k != "events"}
    for event in events:
        ctx = Ctx(raw, key, partition, offset, index=len(out))
        ctx.envelope = {**head, "event": event}
        out.append(ctx)
    return True


def decode(ctx: Ctx) -> None:
    """Parse the collector envelope: {received_at, ip, ua, event}."""
    if ctx.envelope:  # already parsed by expand()
        if not isinstance(ctx.envelope.get("received_at"), int):
            raise Reject("malformed_envelope: expected an object with event and received_at")
        return
    try:
        env = orjson.loads(ctx.raw)
    except orjson.JSONDecodeError as exc:
        raise Reject(f"malformed_envelope: {exc}") from None
    if not isinstance(env, dict) or "event" not in env or not isinstance(
        env.get("received_at"), int
    ):
        raise Reject("malformed_envelope: expected an object with event and received_at")
    ctx.envelope = env


def validate(ctx: Ctx) -> None:
    """Check the event against contract v1 (the plainly valid ones without pydantic)."""
    body = ctx.envelope["event"]
    if not isinstance(body, dict):
        raise Reject(f"invalid: event must be a JSON object, got {type(body).__name__}")
    view = plain_view(body)
    if view is None:
        try:
            view = EventView.from_model(Event.model_validate(body))
        except ValidationError as exc:
            raise Reject(f"invalid: {describe_validation_error(exc)}") from None
        except (ValueError, TypeError, ArithmeticError) as exc:  # a validator's edge case
            raise Reject(f"invalid: {type(exc).__name__}: {exc}"[:300]) from None
    ctx.event = view


def make_timestamp(settings: WorkerSettings) -> Callable[[Ctx], None]:
    max_skew = settings.worker_max_ts_skew_seconds * 1000
    max_age = settings.worker_max_ts_age_days * 86_400_000

    def timestamp(ctx: Ctx) -> None:
        """Event time: the client's, unless it is too far from the receive time."""
        assert ctx.event is not None
        received = ctx.envelope["received_at"]
        client = ctx.event.ts_ms
        ts = client if received - max_age <= client <= received + max_skew else received
        ctx.row["ts"] = ms_to_text(ts)
        ctx.row["received_at"] = ms_to_text(received)
        ctx.row["_ts_ms"] = ts

    return timestamp


def make_visitor(salts: SaltStore) -> Callable[[Ctx], None]:
    def visitor(ctx: Ctx) -> None:
        """Visitor id: the tracker's anonymous_id, or a daily-salted cookieless hash."""
        assert ctx.event is not None
        ev = ctx.event
        if ev.anonymous_id:
            ctx.row["visitor_id"] = ev.anonymous_id
        elif ctx.envelope.get("dnt"):
            # Do Not Track / GPC without a tracker id: nothing links this event to any other
            ctx.row["visitor_id"] = hashlib.blake2b(
                bytes.fromhex(ev.event_id.replace("-", "")), digest_size=8).hexdigest()
        else:
            day = ctx.row["received_at"][:10]
            ip = str(ctx.envelope.get("ip") or "")
            ua = str(ctx.envelope.get("ua") or "")
            ctx.row["visitor_id"] = cookieless_id(salts, day, ev.site_id, ip, ua)

    return visitor


def base_fields(ctx: Ctx) -> None:
    """Copy the contract fields into the output row."""
    ev = ctx.event
    assert ev is not None
    row = ctx.row
    row["event_id"] = ev.event_id
    row["site_id"] = ev.site_id
    row["type"] = ev.type
    row["name"] = ev.name or ""
    row["user_id"] = ev.user_id or ""
    row["title"] = ev.title or ""
    row["screen"] = ev.screen or ""
    row["lang"] = ev.lang or ""
    row["contract_version"] = CONTRACT_VERSION
    if ev.revenue is not None:
        row["revenue"] = str(ev.revenue)
        row["currency"] = ev.currency
    else:
        row["revenue"] = "0"
        row["currency"] = ""
    row["props"] = {k: _prop_text(v) for k, v in ev.props.items()}


def _prop_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def default_steps(settings: WorkerSettings, salts: SaltStore, enricher: Enricher) -> list[Step]:
    """The ordered ingestion steps (each timed, each may reject with a named reason)."""
    return [
        Step("decode", decode),
        Step("validate", validate),
        Step("timestamp", make_timestamp(settings)),
        Step("visitor", make_visitor(salts)),
        Step("fields", base_fields),
        *enricher.steps(),
    ]

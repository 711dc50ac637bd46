"""What the collector writes to Kafka: raw envelopes and dead letters, keyed for ordering."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any, NamedTuple

import orjson

from clickstream import __version__
from schemas.deadletter import MAX_PAYLOAD_CHARS, dead_letter
from schemas.timefmt import ms_to_text

PROCESSOR = "collector"


def safe_text(text: str) -> str:
    """Header and query text decoded with surrogate escapes (invalid UTF-8 from the wire)
    -> valid text, invalid bytes replaced by U+FFFD (JSON encoders refuse surrogates)."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class Record(NamedTuple):
    topic: str
    key: bytes
    value: bytes
    events: int = 1  # events the value carries (a group holds several)


#: A bundle: raw record values of one partition, in order, as one Kafka record.
BUNDLE_HEAD, BUNDLE_TAIL = b'{"v":1,"records":[', b"]}"


def bundle_value(values: list[bytes]) -> bytes:
    """One bundle record's value from several raw record values (no re-encoding)."""
    return BUNDLE_HEAD + b",".join(values) + BUNDLE_TAIL


def envelopes(value: bytes) -> list[dict[str, Any]]:
    """A raw record's value -> one {received_at, ip, ua, [dnt], event} envelope per event
    (group records {..., "events": [...]} and bundles {"records": [...]} are split, as the
    stream worker does)."""
    doc = orjson.loads(value)
    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
        return [env for rec in doc["records"] for env in _split(rec)]
    return _split(doc)


def _split(doc: Any) -> list[dict[str, Any]]:
    if isinstance(doc, dict) and isinstance(doc.get("events"), list):
        head = {k: v for k, v in doc.items() if k != "events"}
        return [{**head, "event": event} for event in doc["events"]]
    return [doc]


def partition_key(event: Any, ip: str, ua: str, dnt: bool = False) -> bytes:
    """site_id + visitor: all events of one visitor land in one partition, in order.
    Cookieless events (no anonymous_id) are keyed by a hash of IP and user agent, which
    groups them as the stream worker's daily-salted visitor id will; under DNT there is no
    IP, so they are keyed by event id (spread, as there is no visitor to keep together)."""
    if not isinstance(event, dict):
        return b""
    site = event.get("site_id")
    site = site if isinstance(site, str) else ""
    anon = event.get("anonymous_id")
    if isinstance(anon, str) and anon:
        return f"{site}|{anon}".encode(errors="replace")
    if dnt:
        event_id = event.get("event_id")
        return f"{site}|#{event_id if isinstance(event_id, str) else ''}".encode(
            errors="replace")
    digest = hashlib.blake2b(f"{ip}\x1f{ua}".encode(errors="replace"),
                             digest_size=8).hexdigest()
    return f"{site}|~{digest}".encode(errors="replace")


def payload_text(item: Any) -> str:
    """JSON text of a rejected item, whatever it holds: orjson refuses ints over 64 bits
    and nesting deeper than 255, which a request may still carry (its parser allows 1024)."""
    try:
        return orjson.dumps(item, default=str).decode()
    except TypeError:
        out: list[str] = []
        _bounded_json(item, out, [MAX_PAYLOAD_CHARS], 0)
        return "".join(out)


def _bounded_json(value: Any, out: list[str], budget: list[int], depth: int) -> None:
    """Append JSON for value to out until budget[0] characters are spent (then stop);
    nesting past 100 levels is elided as "..."."""
    if budget[0] <= 0:
        return
    if depth > 100:
        text = '"..."'
    elif isinstance(value, dict):
        out.append("{")
        budget[0] -= 1
        for i, (key, val) in enumerate(value.items()):
            out.append(("," if i else "") + json.dumps(str(key)) + ":")
            _bounded_json(val, out, budget, depth + 1)
            if budget[0] <= 0:
                return
        text = "}"
    elif isinstance(value, list):
        out.append("[")
        budget[0] -= 1
        for i, val in enumerate(value):
            if i:
                out.append(",")
            _bounded_json(val, out, budget, depth + 1)
            if budget[0] <= 0:
                return
        text = "]"
    else:
        text = json.dumps(value, default=str)
    out.append(text)
    budget[0] -= len(text)


class RecordMaker:
    """Builds the records of one request (same receive time, IP, user agent, DNT flag)."""

    __slots__ = ("_prefix", "_request_id", "dnt", "invalid_topic", "ip", "raw_topic",
                 "received_ms", "ua")

    def __init__(self, raw_topic: str, invalid_topic: str, received_ms: int, ip: str, ua: str,
                 dnt: bool) -> None:
        self.raw_topic = raw_topic
        self.invalid_topic = invalid_topic
        self.received_ms = received_ms
        self.ip = ip
        self.ua = ua
        self.dnt = dnt
        self._request_id = ""
        head: dict[str, Any] = {"v": 1, "received_at": received_ms, "ip": ip, "ua": ua}
        if dnt:
            head["dnt"] = True
        # {"v":1,...,"ua":"..."} -> {"v":1,...,"ua":"...",   (then "event(s)":... and })
        self._prefix = orjson.dumps(head)[:-1] + b","

    def raw(self, event: dict[str, Any]) -> Record:
        value = self._prefix + b'"event":' + orjson.dumps(event) + b"}"
        return Record(self.raw_topic, partition_key(event, self.ip, self.ua, self.dnt), value)

    def raws(self, events: list[dict[str, Any]]) -> list[Record]:
        """One record per visitor key: a request's events of one visitor travel together
        (in request order) as {..., "events": [...]}, which saves the stream worker its
        per-message cost; a lone event keeps the one-event form."""
        if len(events) == 1:
            return [self.raw(events[0])]
        groups: dict[bytes, list[dict[str, Any]]] = {}
        for event in events:
            groups.setdefault(partition_key(event, self.ip, self.ua, self.dnt), []).append(event)
        out = []
        for key, group in groups.items():
            if len(group) == 1:
                value = self._prefix + b'"event":' + orjson.dumps(group[0]) + b"}"
            else:
                value = self._prefix + b'"events":' + orjson.dumps(group) + b"}"
            out.append(Record(self.raw_topic, key, value, len(group)))
        return out

    def dead(self, item: Any, reason: str, index: int) -> Record:
        if not self._request_id:
            self._request_id = uuid.uuid4().hex
        site = item.get("site_id") if isinstance(item, dict) else ""
        stamp = ms_to_text(self.received_ms)
        letter = dead_letter(
            processor=PROCESSOR, version=__version__, step="validate", reason=reason,
            payload=payload_text(item), received_at=stamp, failed_at=stamp,
            site_id=site if isinstance(site, str) else "",
            origin=f"{PROCESSOR}/{self.received_ms}/{self._request_id}/{index}",
        )
        return Record(self.invalid_topic, partition_key(item, self.ip, self.ua, self.dnt),
                      orjson.dumps(letter))

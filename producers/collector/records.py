"""What the collector writes to Kafka: raw envelopes and dead letters, keyed for ordering."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, NamedTuple

import orjson

from clickstream import __version__
from schemas.deadletter import dead_letter
from schemas.timefmt import ms_to_text

PROCESSOR = "collector"


class Record(NamedTuple):
    topic: str
    key: bytes
    value: bytes


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
        # {"v":1,...,"ua":"..."} -> {"v":1,...,"ua":"...","event":   (then event bytes and })
        self._prefix = orjson.dumps(head)[:-1] + b',"event":'

    def raw(self, event: dict[str, Any]) -> Record:
        value = self._prefix + orjson.dumps(event) + b"}"
        return Record(self.raw_topic, partition_key(event, self.ip, self.ua, self.dnt), value)

    def dead(self, item: Any, reason: str, index: int) -> Record:
        if not self._request_id:
            self._request_id = uuid.uuid4().hex
        site = item.get("site_id") if isinstance(item, dict) else ""
        stamp = ms_to_text(self.received_ms)
        letter = dead_letter(
            processor=PROCESSOR, version=__version__, step="validate", reason=reason,
            payload=item, received_at=stamp, failed_at=stamp,
            site_id=site if isinstance(site, str) else "",
            origin=f"{PROCESSOR}/{self.received_ms}/{self._request_id}/{index}",
        )
        return Record(self.invalid_topic, partition_key(item, self.ip, self.ua, self.dnt),
                      orjson.dumps(letter))

"""Session cutting: pure rules over one visitor's recent sessions.

A visitor's events become sessions by Matomo's/GA's published rules:
- a new session after `timeout` of inactivity (default 30 min);
- optionally on a new campaign: an event that arrives with its own external traffic source
  (UTM tags, a click id, or a referrer from another site) different from the session's;
- optionally at midnight in the site's time zone.
Out-of-order and late events (within `lateness`) join the session whose time span (widened
by the timeout) covers them instead of opening a new one; sessions are never merged
afterwards. Session ids derive from the visitor and the session's first event, so replaying
the same events over the same state gives the same ids.

Everything here is deterministic and works on plain dicts (the state is stored as JSON).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

ENGAGED_MS = 10_000


@dataclass(frozen=True)
class SessionRules:
    timeout_ms: int = 30 * 60_000
    split_on_campaign: bool = True
    split_at_midnight: bool = True
    timezone: str = "UTC"
    lateness_ms: int = 6 * 3600_000
    max_sessions: int = 8

    def local_day(self, ts_ms: int) -> str:
        # every UTC offset in use is a multiple of 15 minutes: cache per quarter hour
        return _local_day(self.timezone, ts_ms // 900_000)


@lru_cache(maxsize=65_536)
def _local_day(timezone: str, quarter: int) -> str:
    tz = UTC if timezone == "UTC" else ZoneInfo(timezone)
    return datetime.fromtimestamp(quarter * 900, tz).strftime("%Y-%m-%d")


class Hit(NamedTuple):
    """What sessionization needs to know about one event (a tuple: one is built per event,
    and a frozen dataclass costs several times as much to build)."""

    event_id: str
    ts_ms: int
    type: str
    path: str
    revenue: str
    source_key: str   # "" when the hit carries no new external source (direct/internal)
    source: str
    medium: str
    campaign: str
    channel: str
    referrer_host: str
    device_type: str
    browser: str
    os: str
    country: str
    user_id: str
    term: str = ""
    content: str = ""
    click_id: str = ""


def session_id(visitor_key: str, first_event_id: str) -> str:
    return hashlib.blake2b(f"{visitor_key}\x1f{first_event_id}".encode(),
                           digest_size=10).hexdigest()


def _new_session(visitor_key: str, hit: Hit, rules: SessionRules) -> dict[str, Any]:
    return {
        "id": session_id(visitor_key, hit.event_id), "first_seen": hit.ts_ms,
        "start": hit.ts_ms, "last": hit.ts_ms,
        "day": rules.local_day(hit.ts_ms), "n": 0, "pv": 0, "conv": 0, "rev": "0",
        "entry": hit.path, "exit": hit.path, "exit_ts": hit.ts_ms, "src_key": hit.source_key,
        "source": hit.source, "medium": hit.medium, "campaign": hit.campaign,
        "channel": hit.channel, "ref": hit.referrer_host, "device": hit.device_type,
        "term": hit.term, "content": hit.content, "click": hit.click_id,
        "browser": hit.browser, "os": hit.os, "country": hit.country, "user": hit.user_id,
    }


def assign(sessions: list[dict[str, Any]], visitor_key: str, hit: Hit,
           rules: SessionRules) -> tuple[dict[str, Any], int]:
    """Put `hit` into a session of `sessions` (mutated, oldest first); return the session
    and the hit's sequence number in it (1-based)."""
    target = None
    ts, timeout = hit.ts_ms, rules.timeout_ms
    for sess in reversed(sessions):  # the newest session whose span +- timeout covers it
        if sess["start"] - timeout <= ts <= sess["last"] + timeout:
            target = sess
            break
    if target is not None and ts >= target["last"] and _splits(target, hit, rules):
        target = None
    if target is None:
        target = _new_session(visitor_key, hit, rules)
        sessions.append(target)
        # stable sort by start: of sessions starting in the same millisecond the newer stays
        # later, so the lookup above (newest first) prefers it, as for any later event
        sessions.sort(key=lambda s: s["start"])
    _fold(target, hit)
    _prune(sessions, rules)
    return target, target["n"]


def _splits(sess: dict[str, Any], hit: Hit, rules: SessionRules) -> bool:
    if rules.split_on_campaign and hit.source_key and hit.source_key != sess["src_key"]:
        return True
    return rules.split_at_midnight and rules.local_day(hit.ts_ms) != sess["day"]


def _fold(sess: dict[str, Any], hit: Hit) -> None:
    sess["n"] += 1
    if hit.type == "pageview":
        sess["pv"] += 1
    if hit.type == "conversion":
        sess["conv"] += 1
    if hit.revenue and hit.revenue != "0":
        sess["rev"] = str(Decimal(sess["rev"]) + Decimal(hit.revenue))
    if hit.ts_ms < sess["start"]:  # a late event from before the first one seen
        sess["start"] = hit.ts_ms
        if hit.path:
            sess["entry"] = hit.path
    if hit.ts_ms >= sess["last"]:
        sess["last"] = hit.ts_ms
    if hit.path and hit.type == "pageview" and hit.ts_ms >= sess["exit_ts"]:
        sess["exit"], sess["exit_ts"] = hit.path, hit.ts_ms
    if hit.user_id:
        sess["user"] = hit.user_id


def _prune(sessions: list[dict[str, Any]], rules: SessionRules) -> None:
    """Keep sessions a late event could still join, and at most max_sessions."""
    if len(sessions) == 1:  # the usual case: a lone session is always kept
        return
    lasts = [s["last"] for s in sessions]
    horizon = max(lasts) - rules.lateness_ms - rules.timeout_ms
    if min(lasts) >= horizon and len(sessions) <= rules.max_sessions:
        return  # nothing to drop (the common case of several sessions)
    keep = [s for s in sessions if s["last"] >= horizon] or sessions[-1:]
    del keep[:-rules.max_sessions]
    sessions[:] = keep


def is_engaged(sess: dict[str, Any]) -> bool:
    """GA4: longer than 10 s, a conversion, or at least 2 pageviews."""
    return sess["last"] - sess["start"] > ENGAGED_MS or sess["conv"] > 0 or sess["pv"] >= 2

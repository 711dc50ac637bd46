"""Visitor journeys: who arrives, from where, on what, and what they do over one to four
sessions; each journey carries its own ground truth (sessions, expected channels,
conversions after multi-touch paths).

A journey is a pure function of (seed, index, anchor time): the same seed gives the same
visitors, ids, pages and arrivals; only absolute times move with the anchor (the moment the
journey starts being sent). Session times keep the worker's rules unambiguous: sessions are
more than 30 minutes apart, never cross midnight in the split time zone, and are at most five
days old (the worker accepts client times up to seven days back).
"""

from __future__ import annotations

import ipaddress
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

from producers.loadgen.catalog import (
    ARRIVALS,
    BOT_USER_AGENTS,
    CAMPAIGNS,
    COUNTRIES,
    DEVICES,
    ENGAGEMENT_EVENTS,
    SITES,
    Arrival,
    Country,
    Device,
    Site,
)

DAY_MS = 86_400_000
GAP_MIN_MS = 45 * 60_000  # between a visitor's sessions: > the 30 min session timeout
MALFORMED_KINDS = ("pageview_without_url", "ts_not_a_time", "event_without_name")


@dataclass(frozen=True)
class Options:
    bot_share: float = 0.03  # share of visitors that are bots
    malformed_share: float = 0.005  # share of requests carrying one malformed event
    batch_window_ms: int = 1000  # tracker batching: events within this window share a request
    batch_max: int = 10  # tracker batching: at most this many events per request
    split_timezone: str = "UTC"  # the worker's session_timezone (midnight split)
    sites: tuple[Site, ...] = SITES


@dataclass
class Visitor:
    visitor_id: str
    site: Site
    country: Country
    ip: str
    ua: str
    device_type: str
    screen: str
    is_bot: bool

    def truth(self) -> dict[str, Any]:
        return {"visitor": self.visitor_id, "site": self.site.site_id,
                "country": self.country.code, "timezone": self.country.timezone,
                "lang": self.country.lang, "ip": self.ip, "ua": self.ua,
                "device_type": self.device_type, "bot": self.is_bot}


@dataclass
class Journey:
    index: int
    visitor: Visitor
    requests: list[list[dict[str, Any]]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    conversions: list[dict[str, Any]] = field(default_factory=list)
    # event_id -> (session index or -1 for malformed, valid)
    event_meta: dict[str, tuple[int, bool]] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(len(r) for r in self.requests)


def _weights(items: tuple[Any, ...]) -> list[float]:
    return list(accumulate(i.weight for i in items))


@lru_cache(maxsize=8)
def _cum(kind: str, sites: tuple[Site, ...]) -> list[float]:
    table = {"site": sites, "country": COUNTRIES, "device": DEVICES, "arrival": ARRIVALS}
    return _weights(table[kind])


@lru_cache(maxsize=64)
def _block(cidr: str) -> tuple[int, int]:
    net = ipaddress.IPv4Network(cidr)
    return int(net.network_address), net.num_addresses


def _ip(rng: random.Random, country: Country) -> str:
    base, size = _block(rng.choice(country.blocks))
    return str(ipaddress.IPv4Address(base + rng.randrange(1, size - 1)))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _day(ts_ms: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz).strftime("%Y-%m-%d")


def _before_midnight(start: int, end: int, tz: ZoneInfo) -> int:
    """Shift a session [start, end] earlier so it does not cross midnight in tz: the
    worker's midnight split would cut it in two. Returns the new start."""
    if _day(start, tz) == _day(end, tz):
        return start
    local_end = datetime.fromtimestamp(end / 1000, tz)
    midnight = local_end.replace(hour=0, minute=0, second=0, microsecond=0)
    return start - (end - int(midnight.timestamp() * 1000)) - 1000


def _daytime(ts: int, tz: ZoneInfo, rng: random.Random) -> int:
    """Move a past session start into the visitor's local daytime (08-23 h), same day or
    the day before, so arrivals follow the visitors' time zones."""
    local = datetime.fromtimestamp(ts / 1000, tz)
    if 8 <= local.hour < 23:
        return ts
    day = local - timedelta(days=1) if local.hour < 8 else local
    target = day.replace(hour=rng.randint(9, 21), minute=rng.randrange(60))
    return int(target.timestamp() * 1000)


class JourneyMaker:
    """Makes journey number `index` for a seed; thread-free, allocation-light."""

    def __init__(self, seed: int, options: Options | None = None) -> None:
        self.seed = seed
        self.options = options or Options()
        self.split_tz = ZoneInfo(self.options.split_timezone)

    def make(self, index: int, anchor_ms: int) -> Journey:
        opts = self.options
        rng = random.Random(f"{self.seed}:{index}")
        site = rng.choices(opts.sites, cum_weights=_cum("site", opts.sites))[0]
        country = rng.choices(COUNTRIES, cum_weights=_cum("country", opts.sites))[0]
        bot = rng.random() < opts.bot_share
        if bot:
            device: Device | None = None
            ua, device_type, screen = rng.choice(BOT_USER_AGENTS), "bot", ""
        else:
            device = rng.choices(DEVICES, cum_weights=_cum("device", opts.sites))[0]
            ua, device_type, screen = rng.choice(device.user_agents), device.device_type, \
                device.screen
        visitor = Visitor(f"v-{_uuid(rng)[:23]}", site, country, _ip(rng, country), ua,
                          device_type, screen, bot)
        journey = Journey(index, visitor)
        if bot:
            plans = [self._bot_session(rng, visitor)]
        else:
            n_sessions = rng.choices((1, 2, 3, 4), weights=(60, 22, 12, 6))[0]
            converts = rng.random() < 0.02 + 0.06 * (n_sessions - 1)
            plans = [self._session(rng, visitor, converts=converts and i == n_sessions - 1)
                     for i in range(n_sessions)]
        self._place(rng, plans, anchor_ms, ZoneInfo(country.timezone))
        self._emit(rng, journey, plans)
        return journey

    # -- session plans: offsets relative to the session start -------------------------

    def _bot_session(self, rng: random.Random, visitor: Visitor) -> dict[str, Any]:
        site = visitor.site
        hits, t = [], 0
        for _ in range(rng.randint(1, 6)):
            hits.append((t, "pageview", rng.choice(site.pages), {}))
            t += rng.randint(200, 3000)
        return {"arrival": ARRIVALS[-1], "hits": hits, "campaign": ""}

    def _session(self, rng: random.Random, visitor: Visitor, converts: bool) -> dict[str, Any]:
        site = visitor.site
        arrival: Arrival = rng.choices(ARRIVALS,
                                       cum_weights=_cum("arrival", self.options.sites))[0]
        pageviews = min(12, 1 + int(rng.expovariate(1 / 2.2)))
        hits: list[tuple[int, str, str, dict[str, Any]]] = []
        t = 0
        page = "/" if rng.random() < 0.4 else rng.choice(site.pages)
        for i in range(pageviews):
            if i:
                t += rng.randint(4_000, 90_000)
                page = rng.choice(site.pages)
            hits.append((t, "pageview", page, {}))
            if rng.random() < 0.35:  # engagement on this page
                name = rng.choice(ENGAGEMENT_EVENTS)
                props: dict[str, Any] = {"depth": rng.choice((25, 50, 75, 100))} \
                    if name == "scroll" else {"target": f"https://partner.example/{i}"}
                hits.append((t + rng.randint(2_000, 30_000), name, page, props))
                t = hits[-1][0]
        if converts:
            t += rng.randint(10_000, 120_000)
            hits.append((t, "pageview", site.pages[-1], {}))
            t += rng.randint(5_000, 60_000)
            hits.append((t, "conversion", site.pages[-1], {}))
        return {"arrival": arrival, "hits": hits, "campaign": rng.choice(CAMPAIGNS)}

    def _place(self, rng: random.Random, plans: list[dict[str, Any]], anchor: int,
               local_tz: ZoneInfo) -> None:
        """Absolute start per session, newest (ending at the anchor) to oldest."""
        end_limit = anchor
        for n, plan in enumerate(reversed(plans)):
            length = plan["hits"][-1][0]
            start = end_limit - length
            if n:  # an earlier session: hours to a day before, in local daytime
                start = _daytime(start - rng.randint(0, 20 * 3600_000), local_tz, rng)
                start = min(start, end_limit - length)
            # only ever moved earlier: at most ~6 days back in all (the worker takes 7)
            start = _before_midnight(start, start + length, self.split_tz)
            plan["start"] = start
            end_limit = start - GAP_MIN_MS

    # -- events, requests and truth ---------------------------------------------------

    def _emit(self, rng: random.Random, journey: Journey, plans: list[dict[str, Any]]) -> None:
        visitor = journey.visitor
        site = visitor.site
        events: list[dict[str, Any]] = []
        path: list[str] = []
        for s_index, plan in enumerate(plans):
            arrival: Arrival = plan["arrival"]
            start = plan["start"]
            campaign = plan["campaign"] if "{c}" in arrival.query else ""
            query = arrival.query.format(c=campaign, id=_uuid(rng)[:12])
            prev_url = ""
            truth = {"site": site.site_id, "visitor": visitor.visitor_id, "session": s_index,
                     "started_at": start, "ended_at": start + plan["hits"][-1][0],
                     "arrival": arrival.kind, "channel": arrival.channel,
                     "source": arrival.source, "medium": arrival.medium, "campaign": campaign,
                     "pageviews": 0, "events": 0, "conversions": 0, "revenue": 0.0,
                     "country": visitor.country.code, "device_type": visitor.device_type,
                     "bot": visitor.is_bot}
            for n, (offset, kind, page, props) in enumerate(plan["hits"]):
                url = f"https://{site.host}{page}"
                ev: dict[str, Any] = {"event_id": _uuid(rng), "site_id": site.site_id,
                                      "anonymous_id": visitor.visitor_id, "ts": start + offset,
                                      "url": url, "lang": visitor.country.lang}
                if visitor.screen:
                    ev["screen"] = visitor.screen
                if kind == "pageview":
                    ev["type"] = "pageview"
                    ev["title"] = page.strip("/").replace("/", " - ") or "home"
                    if n == 0:
                        if query:
                            ev["url"] = f"{url}?{query}"
                        if arrival.referrer:
                            ev["referrer"] = arrival.referrer
                    elif prev_url:
                        ev["referrer"] = prev_url  # internal navigation (SPA or page load)
                    prev_url = url
                    truth["pageviews"] += 1
                elif kind == "conversion":
                    ev.update(type="conversion", name=site.goal)
                    if site.revenue[1] > 0:
                        amount = round(rng.uniform(*site.revenue), 2)
                        ev["revenue"] = {"amount": amount, "currency": site.currency}
                        truth["revenue"] = round(truth["revenue"] + amount, 2)
                    truth["conversions"] += 1
                    journey.conversions.append({
                        "event_id": ev["event_id"], "site": site.site_id,
                        "visitor": visitor.visitor_id, "name": site.goal, "ts": ev["ts"],
                        "revenue": ev.get("revenue", {}).get("amount", 0.0),
                        "currency": site.currency if "revenue" in ev else "",
                        "path": [*path, arrival.channel], "session": s_index})
                else:
                    ev.update(type="event", name=kind, props=props)
                truth["events"] += 1
                journey.event_meta[ev["event_id"]] = (s_index, True)
                events.append(ev)
            dur = truth["ended_at"] - truth["started_at"]
            truth["engaged"] = dur > 10_000 or truth["conversions"] > 0 \
                or truth["pageviews"] >= 2
            journey.sessions.append(truth)
            path.append(arrival.channel)
        journey.requests = self._batch(rng, events)
        for req in journey.requests:
            for ev in req:
                journey.event_meta.setdefault(ev["event_id"], (-1, False))

    def _batch(self, rng: random.Random, events: list[dict[str, Any]]) -> list[list[dict]]:
        """The tracker's batching: a request holds the events queued within the batch window
        (from its first event), at most batch_max; a few requests carry a malformed event."""
        opts = self.options
        out: list[list[dict[str, Any]]] = []
        for ev in events:
            if out and len(out[-1]) < opts.batch_max \
                    and ev["ts"] - out[-1][0]["ts"] <= opts.batch_window_ms:
                out[-1].append(ev)
            else:
                out.append([ev])
        for req in out:
            if rng.random() < opts.malformed_share:
                req.append(self._malformed(rng, req[0]))
        return out

    def _malformed(self, rng: random.Random, like: dict[str, Any]) -> dict[str, Any]:
        kind = rng.choice(MALFORMED_KINDS)
        ev = {"event_id": _uuid(rng), "site_id": like["site_id"],
              "anonymous_id": like["anonymous_id"], "ts": like["ts"], "type": "pageview",
              "url": like["url"]}
        if kind == "pageview_without_url":
            del ev["url"]
        elif kind == "ts_not_a_time":
            ev["ts"] = "yesterday afternoon"
        else:
            ev["type"] = "event"
        return ev


def malformed_count(journey: Journey) -> int:
    return sum(1 for _, valid in journey.event_meta.values() if not valid)

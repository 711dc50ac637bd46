"""Enrichment steps: URL hygiene, campaign, referrer, channel, user agent and bots, geo.

Each step fills columns of the output row; none raises on odd input (the libraries behind
them answer "unknown" instead), so enrichment never loses a valid event. The IP is read by
the geo step only and never copied into the row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from streams.enrich.bots import BotDetector
from streams.enrich.campaign import parse_campaign
from streams.enrich.channel import traffic_source
from streams.enrich.geo import GeoLookup
from streams.enrich.referrer import ReferrerClassifier
from streams.enrich.urlclean import clean_url
from streams.enrich.useragent import UserAgentParser
from streams.pipeline import Ctx, Step

#: entries per enrichment cache: the pages, referrers and IPs that repeat fit many times
#: over; URLs with a click id (a few % of events) never repeat, and at 65,536 entries
#: (~1.5 kB each) they grew the worker for hours before the cache was full
CACHE_ENTRIES = 8192

#: the columns the source step fills, in the order _compute_source returns them
SOURCE_COLUMNS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                  "click_id_type", "referrer", "referrer_host", "referrer_medium",
                  "referrer_source", "search_term", "source", "medium", "channel")


@dataclass
class Enricher:
    """Loaded once per worker: parsers, lists and databases."""

    referrers: ReferrerClassifier
    user_agents: UserAgentParser
    bots: BotDetector
    geo: GeoLookup
    #: url -> (url, host, path); referrer, url -> the source columns. Pure functions of
    #: their inputs, and pages, referrers and campaign links repeat across visitors.
    _url_parts: Any = field(init=False, repr=False)
    _source_cols: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._url_parts = lru_cache(maxsize=CACHE_ENTRIES)(self._compute_url_parts)
        self._source_cols = lru_cache(maxsize=CACHE_ENTRIES)(self._compute_source)

    @classmethod
    def load(cls) -> Enricher:
        try:
            referrers = ReferrerClassifier.from_data()
        except FileNotFoundError as exc:
            raise SystemExit(f"enrichment data missing ({exc}): run `make install`") from exc
        return cls(referrers, UserAgentParser(), BotDetector.from_data(),
                   GeoLookup.open(cache_size=CACHE_ENTRIES))  # keyed by IP: visitors' own

    def url(self, ctx: Ctx) -> None:
        """Normalised page URL without PII/click-id params; host and path."""
        assert ctx.event is not None
        row = ctx.row
        row["url"], row["host"], row["path"] = self._url_parts(ctx.event.url)

    @staticmethod
    def _compute_url_parts(url: str | None) -> tuple[str, str, str]:
        clean = clean_url(url)
        return clean.url, clean.host, clean.path if clean.url else ""

    def source(self, ctx: Ctx) -> None:
        """UTM tags, click ids, referrer class and the GA4 channel of this hit."""
        ev = ctx.event
        assert ev is not None
        ctx.row.update(zip(SOURCE_COLUMNS, self._source_cols(ev.url or "", ev.referrer,
                                                             ctx.row["host"]), strict=True))

    def _compute_source(self, url: str, referrer: str | None, host: str) -> tuple[str, ...]:
        campaign = parse_campaign(url)
        ref = self.referrers.classify(referrer, page_host=host)
        src = traffic_source(campaign, ref)
        return (campaign.source, campaign.medium, campaign.campaign, campaign.term,
                campaign.content, campaign.click_id_type,
                clean_url(referrer).url if referrer else "", ref.host, ref.medium, ref.source,
                ref.term, src.source, src.medium, src.channel)

    def device(self, ctx: Ctx) -> None:
        """Browser, OS, device type; bots flagged (kept, never dropped)."""
        ua = str(ctx.envelope.get("ua") or "")
        info = self.user_agents.parse(ua)
        bot = self.bots.reason(ua, info)
        row = ctx.row
        row["browser"] = info.browser
        row["browser_version"] = info.browser_version
        row["os"] = info.os
        row["os_version"] = info.os_version
        row["device_type"] = "bot" if bot else info.device_type
        row["is_bot"] = 1 if bot else 0

    def location(self, ctx: Ctx) -> None:
        """Country, region, city from the IP (the IP itself goes no further)."""
        geo = self.geo.lookup(ctx.envelope.get("ip") or None)
        row = ctx.row
        row["country"] = geo.country
        row["region"] = geo.region
        row["city"] = geo.city

    def steps(self) -> list[Step]:
        return [Step("url", self.url), Step("source", self.source),
                Step("device", self.device), Step("geo", self.location)]

"""Enrichment steps: URL hygiene, campaign, referrer, channel, user agent and bots, geo.

Each step fills columns of the output row; none raises on odd input (the libraries behind
them answer "unknown" instead), so enrichment never loses a valid event. The IP is read by
the geo step only and never copied into the row.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.enrich.bots import BotDetector
from streams.enrich.campaign import parse_campaign
from streams.enrich.channel import traffic_source
from streams.enrich.geo import GeoLookup
from streams.enrich.referrer import ReferrerClassifier
from streams.enrich.urlclean import clean_url
from streams.enrich.useragent import UserAgentParser
from streams.pipeline import Ctx, Step


@dataclass
class Enricher:
    """Loaded once per worker: parsers, lists and databases."""

    referrers: ReferrerClassifier
    user_agents: UserAgentParser
    bots: BotDetector
    geo: GeoLookup

    @classmethod
    def load(cls) -> Enricher:
        try:
            referrers = ReferrerClassifier.from_data()
        except FileNotFoundError as exc:
            raise SystemExit(f"enrichment data missing ({exc}): run `make install`") from exc
        return cls(referrers, UserAgentParser(), BotDetector.from_data(), GeoLookup.open())

    def url(self, ctx: Ctx) -> None:
        """Normalised page URL without PII/click-id params; host and path."""
        assert ctx.event is not None
        clean = clean_url(ctx.event.url)
        row = ctx.row
        row["url"] = clean.url
        row["host"] = clean.host
        row["path"] = clean.path if clean.url else ""

    def source(self, ctx: Ctx) -> None:
        """UTM tags, click ids, referrer class and the GA4 channel of this hit."""
        ev = ctx.event
        assert ev is not None
        row = ctx.row
        campaign = parse_campaign(ev.url or "")
        ref = self.referrers.classify(ev.referrer, page_host=row["host"])
        src = traffic_source(campaign, ref)
        row["utm_source"] = campaign.source
        row["utm_medium"] = campaign.medium
        row["utm_campaign"] = campaign.campaign
        row["utm_term"] = campaign.term
        row["utm_content"] = campaign.content
        row["click_id_type"] = campaign.click_id_type
        row["referrer"] = clean_url(ev.referrer).url if ev.referrer else ""
        row["referrer_host"] = ref.host
        row["referrer_medium"] = ref.medium
        row["referrer_source"] = ref.source
        row["search_term"] = ref.term
        row["source"] = src.source
        row["medium"] = src.medium
        row["channel"] = src.channel

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

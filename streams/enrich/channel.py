"""GA4 default channel group (plus "QR Code" and "AI Assistants") and session traffic source.

The rules follow Google's published GA4 default channel group definitions; the source-category
lists are our re-creation (streams/data/ga4_source_categories.json). Rule order, our two extra
channels and every decision are documented with examples in docs/channels.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import orjson

from streams import datafiles
from streams.enrich.campaign import Campaign
from streams.enrich.referrer import ReferrerInfo, load_ai_assistants, registered_domain

CHANNELS: tuple[str, ...] = (
    "Direct",
    "Cross-network",
    "Paid Shopping",
    "Paid Search",
    "Paid Social",
    "Paid Video",
    "Display",
    "Paid Other",
    "QR Code",
    "AI Assistants",
    "Organic Shopping",
    "Organic Social",
    "Organic Video",
    "Organic Search",
    "Referral",
    "Email",
    "Affiliates",
    "Audio",
    "SMS",
    "Mobile Push Notifications",
    "Unassigned",
)

_DISPLAY_MEDIUMS = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
_SOCIAL_MEDIUMS = frozenset(
    {"social", "social-network", "social-media", "sm", "social network", "social media"}
)
_EMAIL = frozenset({"email", "e-mail", "e_mail", "e mail"})
_REFERRAL_MEDIUMS = frozenset({"referral", "app", "link"})
_QR = frozenset({"qr", "qr-code", "qr_code", "qrcode", "qr code"})
_AI_MEDIUMS = frozenset({"ai", "ai-assistant", "ai_assistant", "ai assistant", "llm"})
_NOT_SET = frozenset({"", "(not set)", "(none)"})
# GA4's paid-medium regex ^(.*cp.*|ppc|retargeting|paid.*)$ as string tests.
_PAID_EXACT = frozenset({"ppc", "retargeting"})
# Default source for a click id that arrives without utm_source.
CLICK_ID_SOURCES: dict[str, str] = {
    "gclid": "google",
    "msclkid": "bing",
    "fbclid": "facebook",
    "ttclid": "tiktok",
    "li_fat_id": "linkedin",
}
_MAX_CACHED = 512  # longer inputs are evaluated without caching (bounded cache memory)
_NO_SHOP_PREFIX = frozenset("abcdfghijklmnopqrstuvwxyz")  # [a-df-z] in GA4's shop regex


@dataclass(frozen=True, slots=True)
class TrafficSource:
    """Session-style source/medium/campaign with its channel group."""

    source: str
    medium: str
    campaign: str
    term: str
    content: str
    channel: str
    click_id_type: str


class _Lists:
    """Source-category and AI-assistant lookups, loaded once."""

    def __init__(self, categories_json: Path, ai: list[dict]) -> None:
        data = orjson.loads(categories_json.read_bytes())
        self.category: dict[str, str] = {}
        for cat, names in data["categories"].items():
            for name in names:
                self.category.setdefault(name.strip().lower(), cat)
        self.ai_names: frozenset[str] = frozenset(
            n.strip().lower()
            for a in ai
            for n in (a["name"], *a["aliases"], *(h for h in a["hosts"] if "/" not in h))
        )
        self.ai_hosts: frozenset[str] = frozenset(
            h.lower() for a in ai for h in a["hosts"] if "/" not in h
        )


_lists: _Lists | None = None


def _get_lists() -> _Lists:
    global _lists
    if _lists is None:
        _lists = _Lists(datafiles.own("ga4_source_categories.json"), load_ai_assistants())
    return _lists


def _norm(value: str | None) -> str:
    """Case- and whitespace-insensitive form: casefolded, trimmed, inner runs collapsed."""
    if not value:
        return ""
    if not isinstance(value, str):
        value = str(value)
    return " ".join(value.split()).casefold()


def _is_hostlike(s: str) -> bool:
    return "." in s and " " not in s and "/" not in s


def source_category(source: str) -> str:
    """GA4 category of a normalised source: "shopping", "search", "social", "video" or ""."""
    if len(source) > _MAX_CACHED:
        return _source_category(source)
    return _source_category_cached(source)


def _source_category(source: str) -> str:
    cat = _get_lists().category
    hit = cat.get(source)
    if hit is not None or not _is_hostlike(source):
        return hit or ""
    host = source[4:] if source.startswith("www.") else source
    hit = cat.get(host)
    if hit is not None:
        return hit
    reg = registered_domain(host)
    hit = cat.get(reg)
    if hit is not None:
        return hit
    return cat.get(reg.split(".", 1)[0], "") if "." in reg else ""


_source_category_cached = lru_cache(maxsize=16384)(_source_category)


def is_ai_source(source: str) -> bool:
    """Normalised source names an AI assistant: alias, name, host or subdomain of a host."""
    if len(source) > _MAX_CACHED:
        return _is_ai_source(source)
    return _is_ai_source_cached(source)


def _is_ai_source(source: str) -> bool:
    lists = _get_lists()
    if source in lists.ai_names:
        return True
    if not _is_hostlike(source):
        return False
    h = source
    while "." in h:
        if h in lists.ai_hosts:
            return True
        h = h[h.find(".") + 1 :]
    return False


_is_ai_source_cached = lru_cache(maxsize=16384)(_is_ai_source)


def _is_paid(medium: str) -> bool:
    return "cp" in medium or medium in _PAID_EXACT or medium.startswith("paid")


def _is_shop_campaign(campaign: str) -> bool:
    """GA4's ``^(.*(([^a-df-z]|^)shop|shopping).*)$`` without a regex engine."""
    if "shopping" in campaign:
        return True
    i = campaign.find("shop")
    while i >= 0:
        if i == 0 or campaign[i - 1] not in _NO_SHOP_PREFIX:
            return True
        i = campaign.find("shop", i + 1)
    return False


def channel_group(source: str, medium: str, campaign: str = "", click_id_type: str = "") -> str:
    """GA4 default channel group of a source/medium/campaign; first matching rule wins.

    A click id with no medium counts as medium "cpc" (and, with no source, the click id's
    network as source), the same defaults ``traffic_source`` applies.
    """
    s, m, c, k = _norm(source), _norm(medium), _norm(campaign), _norm(click_id_type)
    if k and m in _NOT_SET:
        m = "cpc"
        if s in ("", "(direct)", "(not set)"):
            s = CLICK_ID_SOURCES.get(k, s)
    if len(s) + len(m) + len(c) > _MAX_CACHED:  # keep huge tag values out of the caches
        return _channel(s, m, c)
    return _channel_cached(s, m, c)


def _channel(s: str, m: str, c: str) -> str:
    if s == "(direct)" and m in _NOT_SET:
        return "Direct"
    if "cross-network" in c:
        return "Cross-network"
    cat = source_category(s) if s else ""
    paid = _is_paid(m)
    shop_campaign = _is_shop_campaign(c) if c else False
    if paid:
        if cat == "shopping" or shop_campaign:
            return "Paid Shopping"
        if cat == "search":
            return "Paid Search"
        if cat == "social":
            return "Paid Social"
        if cat == "video":
            return "Paid Video"
    if m in _DISPLAY_MEDIUMS:
        return "Display"
    if paid:
        return "Paid Other"
    if m in _QR or s in _QR:
        return "QR Code"
    if m in _AI_MEDIUMS or (s and is_ai_source(s)):
        return "AI Assistants"
    if cat == "shopping" or shop_campaign:
        return "Organic Shopping"
    if cat == "social" or m in _SOCIAL_MEDIUMS:
        return "Organic Social"
    if cat == "video" or "video" in m:
        return "Organic Video"
    if cat == "search" or m == "organic":
        return "Organic Search"
    if m in _REFERRAL_MEDIUMS:
        return "Referral"
    if m in _EMAIL or s in _EMAIL:
        return "Email"
    if m == "affiliate":
        return "Affiliates"
    if m == "audio":
        return "Audio"
    if m == "sms" or s == "sms":
        return "SMS"
    if m.endswith("push") or "mobile" in m or "notification" in m or s == "firebase":
        return "Mobile Push Notifications"
    return "Unassigned"


_channel_cached = lru_cache(maxsize=65536)(_channel)

# Referrer medium -> session medium when there are no campaign tags.
_REFERRER_MEDIUM = {
    "search": "organic",
    "social": "social",
    "email": "email",
    "ai": "ai",
    "paid": "cpc",
    "referral": "referral",
}


def traffic_source(campaign: Campaign, referrer: ReferrerInfo) -> TrafficSource:
    """Session source/medium like GA4: campaign tags, then click ids, then the referrer."""
    click = campaign.click_id_type
    if campaign.source or campaign.medium:
        source = campaign.source or "(not set)"
        medium = campaign.medium or ("cpc" if click else "(not set)")
        term = campaign.term
    elif click:
        source, medium, term = CLICK_ID_SOURCES.get(click, "(not set)"), "cpc", campaign.term
    elif campaign.ref:
        source, medium, term = campaign.ref, "referral", campaign.term
    else:
        r_medium = _REFERRER_MEDIUM.get(referrer.medium)
        if r_medium is None:  # direct, internal
            source, medium, term = "(direct)", "(none)", ""
        else:
            source = _norm(referrer.source or referrer.host) or "(not set)"
            medium = r_medium
            if medium == "social" and source_category(source) == "video":
                medium = "video"  # YouTube & co. are Organic Video in GA4, not Organic Social
            term = campaign.term or referrer.term
    channel = channel_group(source, medium, campaign.campaign, click)
    return TrafficSource(
        source=source,
        medium=medium,
        campaign=campaign.campaign,
        term=term,
        content=campaign.content,
        channel=channel,
        click_id_type=click,
    )

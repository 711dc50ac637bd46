"""GA4 default channel group (+ QR Code, AI Assistants) and traffic_source()."""

from __future__ import annotations

import dataclasses
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.enrich.campaign import NO_CAMPAIGN, parse_campaign
from streams.enrich.channel import (
    CHANNELS,
    _is_paid,
    _is_shop_campaign,
    channel_group,
    source_category,
    traffic_source,
)
from streams.enrich.referrer import ReferrerClassifier, ReferrerInfo

DATA = Path(__file__).parent / "data"
GROUP_ROWS: list[dict[str, Any]] = json.loads((DATA / "channels.json").read_text("utf-8"))
TS_ROWS: list[dict[str, Any]] = json.loads(
    (DATA / "channels_traffic_source.json").read_text("utf-8")
)


@lru_cache(maxsize=1)
def _classifier() -> ReferrerClassifier:
    return ReferrerClassifier.from_data()


def _id(row: dict[str, Any]) -> str:
    campaign, click = row.get("campaign", ""), row.get("click_id_type", "")
    return f"{row['source']}/{row['medium']}/{campaign}/{click}"


@pytest.mark.parametrize("row", GROUP_ROWS, ids=[_id(r) for r in GROUP_ROWS])
def test_channel_group_table(row: dict[str, Any]) -> None:
    got = channel_group(
        row["source"], row["medium"], row.get("campaign", ""), row.get("click_id_type", "")
    )
    assert got == row["channel"], row.get("note", "")


def test_table_covers_every_channel() -> None:
    assert {r["channel"] for r in GROUP_ROWS} == set(CHANNELS)


def test_channels_order_and_extras() -> None:
    assert CHANNELS[0] == "Direct" and CHANNELS[-1] == "Unassigned"
    paid_other = CHANNELS.index("Paid Other")
    assert CHANNELS.index("QR Code") == paid_other + 1
    assert CHANNELS.index("AI Assistants") == paid_other + 2
    assert CHANNELS.index("AI Assistants") < CHANNELS.index("Organic Shopping")
    assert CHANNELS.index("Referral") < CHANNELS.index("Email")
    assert len(set(CHANNELS)) == len(CHANNELS) == 21


@pytest.mark.parametrize("row", TS_ROWS, ids=[f"{r['url'][32:]}|{r['referrer']}" for r in TS_ROWS])
def test_traffic_source_table(row: dict[str, Any]) -> None:
    ref = _classifier().classify(row["referrer"], "shop.example.com")
    got = traffic_source(parse_campaign(row["url"]), ref)
    assert dataclasses.asdict(got) == row["expected"], row.get("note", "")
    # the channel is always reproducible from the stored fields
    assert got.channel == channel_group(got.source, got.medium, got.campaign, got.click_id_type)


_EXPECTED_BY_MEDIUM = {
    "search": {"Organic Search", "Organic Shopping"},
    "social": {"Organic Social", "Organic Video"},
    "email": {"Email"},
    "ai": {"AI Assistants"},
    "paid": {"Paid Search", "Paid Social", "Paid Shopping", "Paid Other"},
    "referral": {"Referral"},
}


def test_every_known_referrer_lands_in_its_channel() -> None:
    """Every entry of the combined referrer lists maps to the channel its medium implies."""
    wrong = []
    for host, rule in _classifier()._hosts.items():
        for medium, source in [(rule.medium, rule.source), *((m, s) for _, m, s in rule.paths)]:
            if medium in ("", "direct"):
                continue
            ts = traffic_source(NO_CAMPAIGN, ReferrerInfo(medium, source, host, ""))
            if ts.channel not in _EXPECTED_BY_MEDIUM[medium]:
                wrong.append((host, medium, source, ts.channel))
    assert wrong == []


@pytest.mark.parametrize(
    ("source", "category"),
    [
        ("google", "search"),
        ("www.google.co.uk", "search"),
        ("news.google.com", "search"),
        ("facebook.com", "social"),
        ("m.facebook.com", "social"),
        ("t.co", "social"),
        ("pinterest.de", "social"),
        ("youtube", "video"),
        ("amazon.co.uk", "shopping"),
        ("google shopping", "shopping"),
        ("example.org", ""),
        ("t", ""),
        ("", ""),
        ("a b.c", ""),
    ],
)
def test_source_category(source: str, category: str) -> None:
    assert source_category(source) == category


_PAID_RE = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
_SHOP_RE = re.compile(r"^(.*(([^a-df-z]|^)shop|shopping).*)$")
_ascii_words = st.text(alphabet="abcdefhopsiPCRtgn -_1é", max_size=20)


@settings(max_examples=500, deadline=None)
@given(_ascii_words)
def test_paid_and_shop_tests_match_ga4_regexes(value: str) -> None:
    assert _is_paid(value) == bool(_PAID_RE.match(value))
    assert _is_shop_campaign(value) == bool(_SHOP_RE.match(value))


_known = st.sampled_from(
    [
        "google",
        "Facebook",
        "(direct)",
        "chatgpt.com",
        "qr",
        "email",
        "sms",
        "amazon",
        "youtube",
        "cpc",
        "organic",
        "social",
        "referral",
        "display",
        "(none)",
        "affiliate",
        "push",
        "ai",
        "summer-shop",
        "cross-network",
        "",
        "firebase",
        "video",
        "audio",
        "QR-Code",
        "llm",
    ]
)
_field = st.one_of(_known, st.text(max_size=25))
_click = st.sampled_from(["", "gclid", "msclkid", "fbclid", "ttclid", "li_fat_id", "GCLID "])


@settings(max_examples=400, deadline=None)
@given(_field, _field, _field, _click)
def test_channel_group_properties(source: str, medium: str, campaign: str, click: str) -> None:
    got = channel_group(source, medium, campaign, click)
    assert got in CHANNELS
    assert channel_group(source, medium, campaign, click) == got  # deterministic
    variants = [
        (source.upper(), medium.upper(), campaign.upper(), click.upper()),
        (source.lower(), medium.lower(), campaign.lower(), click.lower()),
        (f"  {source}\t", f"\n{medium} ", f" {campaign}  ", f" {click} "),
    ]
    for v in variants:
        assert channel_group(*v) == got, v


def test_non_string_inputs_do_not_raise() -> None:
    assert channel_group(None, None) == "Unassigned"  # type: ignore[arg-type]


def test_long_inputs_bypass_the_caches_with_the_same_answer() -> None:
    long = "x" * 2000
    assert channel_group("google", "cpc", long + "-cross-network") == "Cross-network"
    assert channel_group(long + ".chatgpt.com", "referral") == "AI Assistants"
    assert channel_group("www." + long + ".google.com", "cpc") == "Paid Search"
    assert channel_group(long, long) == "Unassigned"


def test_path_only_ai_hosts_do_not_claim_the_whole_site() -> None:
    # huggingface.co/chat is HuggingChat, the rest of huggingface.co is not an assistant
    assert channel_group("huggingface.co", "referral") == "Referral"
    assert channel_group("huggingchat", "referral") == "AI Assistants"

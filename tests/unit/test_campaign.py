"""Campaign parameter parsing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.enrich.campaign import NO_CAMPAIGN, Campaign, parse_campaign


def C(
    source: str = "",
    medium: str = "",
    campaign: str = "",
    term: str = "",
    content: str = "",
    click: str = "",
    ref: str = "",
) -> Campaign:
    return Campaign(source, medium, campaign, term, content, click, ref)


CASES: list[tuple[str, Campaign]] = [
    # full UTM set, full URL
    (
        "https://shop.example.com/p?utm_source=Google&utm_medium=CPC&utm_campaign=Spring_Sale"
        "&utm_term=running+shoes&utm_content=ad%201",
        C("google", "cpc", "spring_sale", "running shoes", "ad 1"),
    ),
    # bare query string, with and without a leading "?"
    ("utm_source=newsletter&utm_medium=email", C("newsletter", "email")),
    ("?utm_source=newsletter&utm_medium=email", C("newsletter", "email")),
    # path plus query
    ("/landing?utm_medium=social&utm_source=facebook", C("facebook", "social")),
    # case and whitespace
    ("?UTM_SOURCE=%20Facebook%20&Utm_Medium=+Paid+Social+", C("facebook", "paid social")),
    ("?utm_source=\tBING\t", C("bing")),
    # encoded values, unicode, '+' as space, bad escapes kept
    ("?utm_campaign=%C3%A9t%C3%A9+2024", C(campaign="été 2024")),
    ("?utm_campaign=black%2Dfriday%26more", C(campaign="black-friday&more")),
    ("?utm_campaign=50%off", C(campaign="50%off")),
    ("?utm_campaign=%E2%82%AC", C(campaign="€")),
    ("?utm_campaign=%ZZ", C(campaign="%zz")),
    # repeated parameters: first non-empty wins
    ("?utm_source=a&utm_source=b", C("a")),
    ("?utm_source=&utm_source=b", C("b")),
    ("?utm_source=%20&utm_source=b", C("b")),
    # click ids
    ("?gclid=abc", C(click="gclid")),
    ("?gbraid=abc", C(click="gclid")),
    ("?wbraid=abc", C(click="gclid")),
    ("?msclkid=abc", C(click="msclkid")),
    ("?fbclid=IwAR0", C(click="fbclid")),
    ("?ttclid=E.C.P", C(click="ttclid")),
    ("?li_fat_id=1234", C(click="li_fat_id")),
    ("?fbclid=x&gclid=y", C(click="fbclid")),  # first in URL order
    ("?gclid=&msclkid=x", C(click="msclkid")),  # empty click id ignored
    ("?GCLID=abc", C(click="gclid")),
    ("?dclid=abc", NO_CAMPAIGN),  # not one of our click id types
    ("?utm_source=google&utm_medium=cpc&gclid=x", C("google", "cpc", click="gclid")),
    # ?ref= / ?source= fallback
    ("?ref=ProductHunt", C(ref="producthunt")),
    ("?source=hn", C(ref="hn")),
    ("?source=hn&ref=twitter", C(ref="twitter")),
    ("?ref=x&utm_source=y", C("y", ref="x")),
    # fragment: fills only what the query left empty
    ("https://a.example/#utm_source=mailchimp&utm_medium=email", C("mailchimp", "email")),
    ("https://a.example/#/pricing?utm_campaign=spa", C(campaign="spa")),
    ("https://a.example/?utm_source=q#utm_source=f&utm_medium=m", C("q", "m")),
    ("https://a.example/#gclid=abc", C(click="gclid")),
    ("https://a.example/?fbclid=1#gclid=2", C(click="fbclid")),
    ("https://a.example/#section-2", NO_CAMPAIGN),
    # nothing to read
    ("https://a.example/page", NO_CAMPAIGN),
    ("https://a.example/page?x=1&y=2", NO_CAMPAIGN),
    ("https://a.example/page?utm_source", NO_CAMPAIGN),
    ("", NO_CAMPAIGN),
    ("?", NO_CAMPAIGN),
    ("&&&==&", NO_CAMPAIGN),
    ("https://a.example/a=b", NO_CAMPAIGN),
    ("not a url", NO_CAMPAIGN),
    # other utm_* parameters are ignored
    ("?utm_id=1&utm_source_platform=x", NO_CAMPAIGN),
]


@pytest.mark.parametrize(("url", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_parse_campaign(url: str, expected: Campaign) -> None:
    assert parse_campaign(url) == expected


def test_none_and_non_str_are_empty() -> None:
    assert parse_campaign(None) == NO_CAMPAIGN  # type: ignore[arg-type]
    assert parse_campaign(123) == NO_CAMPAIGN  # type: ignore[arg-type]


def test_has_utm() -> None:
    assert parse_campaign("?utm_medium=email").has_utm
    assert not parse_campaign("?utm_campaign=x&gclid=1").has_utm


def test_long_values_are_kept_whole() -> None:
    value = "x" * 5000
    assert parse_campaign(f"?utm_campaign={value}").campaign == value


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_never_raises_and_values_are_normalised(url: str) -> None:
    got = parse_campaign(url)
    for value in (got.source, got.medium, got.campaign, got.term, got.content, got.ref):
        assert value == value.strip()
        assert value == value.lower()
    assert got.click_id_type in {"", "gclid", "msclkid", "fbclid", "ttclid", "li_fat_id"}


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != ""))
def test_round_trip_of_encoded_values(value: str) -> None:
    from urllib.parse import quote

    got = parse_campaign("?utm_campaign=" + quote(value, safe=""))
    assert got.campaign == value.strip().lower()

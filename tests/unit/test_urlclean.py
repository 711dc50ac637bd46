"""URL normalisation and parameter stripping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.enrich.urlclean import DEFAULT_STRIP_PARAMS, CleanUrl, clean_url

CASES: list[tuple[str, str, str, str]] = [
    # (input, url, host, path)
    (
        "https://Example.COM/Path?b=2&a=1",
        "https://example.com/Path?b=2&a=1",
        "example.com",
        "/Path",
    ),
    ("HTTPS://WWW.Example.com", "https://www.example.com/", "www.example.com", "/"),
    ("http://example.com:80/x", "http://example.com/x", "example.com", "/x"),
    ("https://example.com:443/x", "https://example.com/x", "example.com", "/x"),
    ("https://example.com:8443/x", "https://example.com:8443/x", "example.com", "/x"),
    ("http://example.com:443/x", "http://example.com:443/x", "example.com", "/x"),
    ("https://example.com:0443/", "https://example.com/", "example.com", "/"),
    ("https://example.com./a", "https://example.com/a", "example.com", "/a"),
    ("https://user:secret@example.com/a", "https://example.com/a", "example.com", "/a"),
    (
        "https://example.com/a%20b/%C3%A9",
        "https://example.com/a%20b/%C3%A9",
        "example.com",
        "/a%20b/%C3%A9",
    ),
    ("https://example.com/a#section", "https://example.com/a", "example.com", "/a"),
    ("https://example.com?x=1", "https://example.com/?x=1", "example.com", "/"),
    ("https://example.com/?", "https://example.com/", "example.com", "/"),
    ("https://example.com/?&&x=1&", "https://example.com/?x=1", "example.com", "/"),
    ("  https://example.com/a  ", "https://example.com/a", "example.com", "/a"),
    ("https://[2001:DB8::1]:8080/x", "https://[2001:db8::1]:8080/x", "[2001:db8::1]", "/x"),
    ("https://[::1]:443/", "https://[::1]/", "[::1]", "/"),
    ("https://bücher.de/", "https://bücher.de/", "bücher.de", "/"),
    # stripping: PII and click ids go, campaign tags and the rest stay in order
    (
        "https://example.com/?utm_source=x&email=a%40b.com&gclid=123&z=1",
        "https://example.com/?utm_source=x&z=1",
        "example.com",
        "/",
    ),
    (
        "https://example.com/?EMAIL=a@b.com&Token=t&page=2",
        "https://example.com/?page=2",
        "example.com",
        "/",
    ),
    (
        "https://example.com/?fbclid=1&msclkid=2&ttclid=3&li_fat_id=4&_hsenc=5&_hsmi=6&mc_eid=7",
        "https://example.com/",
        "example.com",
        "/",
    ),
    (
        "https://example.com/?password=x&q=shoes&sid=abc",
        "https://example.com/?q=shoes",
        "example.com",
        "/",
    ),
    ("https://example.com/?e%2Dmail=a", "https://example.com/", "example.com", "/"),
    ("https://example.com/?flag&name=bob", "https://example.com/?flag", "example.com", "/"),
    ("https://example.com/?a=1&a=2&b", "https://example.com/?a=1&a=2&b", "example.com", "/"),
]


@pytest.mark.parametrize(("raw", "url", "host", "path"), CASES, ids=[c[0][:60] for c in CASES])
def test_clean_url(raw: str, url: str, host: str, path: str) -> None:
    got = clean_url(raw)
    assert (got.url, got.host, got.path) == (url, host, path)


def test_query_holds_first_values_before_stripping() -> None:
    got = clean_url("https://example.com/?gclid=abc&utm_source=News+Letter&a=1&a=2&b&c=%E2%82%AC")
    assert got.query == {"gclid": "abc", "utm_source": "News Letter", "a": "1", "b": "", "c": "€"}
    assert got.url == "https://example.com/?utm_source=News+Letter&a=1&a=2&b&c=%E2%82%AC"


def test_custom_strip_params() -> None:
    got = clean_url("https://example.com/?utm_source=x&keep=1", frozenset({"utm_source"}))
    assert got.url == "https://example.com/?keep=1"
    assert clean_url("https://example.com/?email=a", frozenset()).url == (
        "https://example.com/?email=a"
    )


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("https://app.example.com/#/orders/1", "https://app.example.com/#/orders/1"),
        (
            "https://app.example.com/#/signup?email=a@b.c&plan=pro",
            "https://app.example.com/#/signup?plan=pro",
        ),
        ("https://app.example.com/#/signup?email=a", "https://app.example.com/#/signup"),
        (
            "https://app.example.com/cb#access_token=abc&state=1",
            "https://app.example.com/cb#state=1",
        ),
        ("https://app.example.com/?gclid=1#top", "https://app.example.com/#top"),
        ("https://app.example.com/#", "https://app.example.com/"),
    ],
)
def test_keep_fragment_for_hash_routing(raw: str, url: str) -> None:
    assert clean_url(raw, keep_fragment=True).url == url


def test_defaults_cover_the_brief() -> None:
    expected = {
        "email",
        "e-mail",
        "mail",
        "phone",
        "tel",
        "name",
        "first_name",
        "last_name",
        "password",
        "token",
        "access_token",
        "auth",
        "session",
        "sid",
        "gclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "fbclid",
        "ttclid",
        "li_fat_id",
        "mc_eid",
        "_hsenc",
        "_hsmi",
    }
    assert expected <= DEFAULT_STRIP_PARAMS
    assert all(p == p.lower() for p in DEFAULT_STRIP_PARAMS)
    assert not {"utm_source", "utm_medium", "utm_campaign", "ref", "q"} & DEFAULT_STRIP_PARAMS


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "not a url",
        "javascript:alert(1)",
        "mailto:a@b.c",
        "ftp://example.com/",
        "//example.com/x",
        "/relative/path?x=1",
        "https://",
        "https:///x",
        "https://:80/",
        "https://exa mple.com/",
        "https://example.com:abc/",
        "https://[::1/",
        "https://a..b/",
        "https://<x>/",
        "data:text/html,hi",
        "https://" + "a" * 300 + "/",
    ],
)
def test_garbage_gives_empty_fields(raw: str | None) -> None:
    assert clean_url(raw) == CleanUrl("", "", "", {})


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.builds(lambda s: "https://" + s, st.text(max_size=150))))
def test_never_raises_and_is_idempotent(raw: str) -> None:
    got = clean_url(raw)
    if got.url:
        assert got.url.startswith(("http://", "https://"))
        again = clean_url(got.url)
        assert (again.url, again.host, again.path) == (got.url, got.host, got.path)
    else:
        assert got == CleanUrl("", "", "", {})

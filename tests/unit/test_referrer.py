"""Referrer classification: table in data/referrers.json plus robustness properties."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.enrich.referrer import (
    DIRECT,
    MEDIUMS,
    ReferrerClassifier,
    ReferrerInfo,
    normalize_host,
    registered_domain,
)

DATA = Path(__file__).parent / "data"
ROWS: list[dict[str, Any]] = json.loads((DATA / "referrers.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def classifier() -> ReferrerClassifier:
    return ReferrerClassifier.from_data()


def test_table_is_big_and_covers_every_medium() -> None:
    assert len(ROWS) >= 100
    assert {r["medium"] for r in ROWS} == set(MEDIUMS)


@pytest.mark.parametrize("row", ROWS, ids=[repr(r["referrer"])[:60] for r in ROWS])
def test_referrer_table(classifier: ReferrerClassifier, row: dict[str, Any]) -> None:
    got = classifier.classify(
        row["referrer"], row.get("page_host", "shop.example.com"), row.get("site_domains", ())
    )
    assert got == ReferrerInfo(row["medium"], row["source"], row["host"], row["term"])


def test_no_page_context_means_no_internal(classifier: ReferrerClassifier) -> None:
    info = classifier.classify("https://blog.example.com/")
    assert info == ReferrerInfo("referral", "example.com", "blog.example.com", "")


def test_site_domains_alone_mark_internal(classifier: ReferrerClassifier) -> None:
    info = classifier.classify("https://a.example.com/", "", ["example.com"])
    assert info.medium == "internal"


def test_results_are_cached_per_host(classifier: ReferrerClassifier) -> None:
    first = classifier.classify("https://www.bing.com/search?q=one")
    second = classifier.classify("https://www.bing.com/search?q=two")
    assert (first.term, second.term) == ("one", "two")
    assert classifier._host_info.cache_info().hits >= 1


def test_explicit_data_path(tmp_path: Path) -> None:
    custom = tmp_path / "referrers.json"
    custom.write_text(json.dumps({"news.example": {"source": "Example News", "medium": "social"}}))
    c = ReferrerClassifier.from_data(custom)
    assert c.classify("https://news.example/") == ReferrerInfo(
        "social", "Example News", "news.example", ""
    )
    # our own lists still apply without Ghost's
    assert c.classify("https://chatgpt.com/").medium == "ai"


def test_missing_data_file_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ReferrerClassifier.from_data(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("blog.example.co.uk", "example.co.uk"),
        ("www.google.co.uk", "google.co.uk"),
        ("news.google.com", "google.com"),
        ("alice.github.io", "alice.github.io"),
        ("localhost", "localhost"),
        ("10.1.2.3", "10.1.2.3"),
        ("[::1]", "[::1]"),
        ("", ""),
    ],
)
def test_registered_domain(host: str, expected: str) -> None:
    assert registered_domain(host) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("WWW.Example.COM:8080", "example.com"),
        ("example.com.", "example.com"),
        ("[::1]:80", "[::1]"),
    ],
)
def test_normalize_host(raw: str, expected: str) -> None:
    assert normalize_host(raw) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.builds(lambda s: "https://" + s, st.text(max_size=100)),
        st.builds(lambda s: "android-app://" + s, st.text(max_size=60)),
    ),
    st.text(max_size=30),
)
def test_garbage_never_raises(referrer: str, page_host: str) -> None:
    info = _shared_classifier().classify(referrer, page_host, [page_host])
    assert info.medium in MEDIUMS
    if info.medium == "direct":
        assert info == DIRECT


@lru_cache(maxsize=1)
def _shared_classifier() -> ReferrerClassifier:
    """Hypothesis tests cannot take function-scoped fixtures."""
    return ReferrerClassifier.from_data()

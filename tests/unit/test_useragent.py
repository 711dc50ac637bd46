"""UA parsing: table in data/user_agents.json (browser, OS, device type, bot flag) + robustness."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.enrich.bots import BotDetector
from streams.enrich.useragent import (
    DEVICE_TYPES,
    MAX_UA_LENGTH,
    UNKNOWN_UA,
    UserAgentInfo,
    UserAgentParser,
)

DATA = Path(__file__).parent / "data"
ROWS: list[dict[str, Any]] = json.loads((DATA / "user_agents.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def parser() -> UserAgentParser:
    return UserAgentParser()


@pytest.fixture(scope="module")
def detector(parser: UserAgentParser) -> BotDetector:
    return BotDetector.from_data(parser=parser)


def test_table_is_big_and_diverse() -> None:
    assert len(ROWS) >= 200
    assert len({r["ua"] for r in ROWS}) == len(ROWS), "duplicate UA rows"
    devices = Counter(r["device_type"] for r in ROWS)
    assert set(devices) == set(DEVICE_TYPES)
    assert min(devices.values()) >= 10
    assert sum(r["is_bot"] for r in ROWS) >= 50
    families = {r["category"].split("-")[0] for r in ROWS}
    assert {"desktop", "iphone", "ipad", "android", "inapp", "tv", "console", "bot"} <= families
    assert {"headless", "http", "empty", "garbage"} <= families


@pytest.mark.parametrize("row", ROWS, ids=[f"{i}-{r['category']}" for i, r in enumerate(ROWS)])
def test_user_agent_table(
    parser: UserAgentParser, detector: BotDetector, row: dict[str, Any]
) -> None:
    info = parser.parse(row["ua"])
    expected = UserAgentInfo(
        row["browser"], row["browser_version"], row["os"], row["os_version"], row["device_type"]
    )
    assert info == expected
    assert detector.is_bot(row["ua"], info) is row["is_bot"]
    # Without the parsed info the detector parses itself and must agree.
    assert detector.is_bot(row["ua"]) is row["is_bot"]


@pytest.mark.parametrize("ua", [None, "", " ", "-", "\t\n"])
def test_empty_is_other(parser: UserAgentParser, ua: str | None) -> None:
    assert parser.parse(ua) == UNKNOWN_UA
    assert parser.parse(ua).device_type == "other"


def test_non_string_input_is_other(parser: UserAgentParser) -> None:
    assert parser.parse(b"curl/8.0") == UNKNOWN_UA  # type: ignore[arg-type]
    assert parser.parse(42) == UNKNOWN_UA  # type: ignore[arg-type]


def test_cache_returns_the_same_object(parser: UserAgentParser) -> None:
    ua = ROWS[0]["ua"]
    first = parser.parse(ua)
    hits = parser.cache_info().hits
    assert parser.parse(ua) is first
    assert parser.cache_info().hits == hits + 1
    assert parser.parse_uncached(ua) == first


def test_cache_is_bounded() -> None:
    small = UserAgentParser(cache_size=8)
    for i in range(50):
        small.parse(f"Mozilla/5.0 (X11; Linux x86_64; rv:{i}.0) Gecko/20100101 Firefox/{i}.0")
    assert small.cache_info().currsize == 8


def test_oversized_header_is_truncated(parser: UserAgentParser) -> None:
    ua = ROWS[0]["ua"] + " " + "x" * (10 * MAX_UA_LENGTH)
    info = parser.parse(ua)
    assert (info.browser, info.device_type) == ("Chrome", "desktop")


def test_lone_surrogates_do_not_break_the_rust_matcher(parser: UserAgentParser) -> None:
    info = parser.parse("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) \ud800")
    assert info.device_type == "mobile"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_parse_never_raises(parser: UserAgentParser, text: str) -> None:
    info = parser.parse(text)
    assert info.device_type in DEVICE_TYPES
    assert all(isinstance(v, str) for v in (info.browser, info.browser_version, info.os))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([r["ua"] for r in ROWS]), st.text(max_size=40))
def test_parse_never_raises_on_mutated_real_uas(
    parser: UserAgentParser, ua: str, noise: str
) -> None:
    assert parser.parse(ua + noise).device_type in DEVICE_TYPES
    assert parser.parse(noise + ua).device_type in DEVICE_TYPES

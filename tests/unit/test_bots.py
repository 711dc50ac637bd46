"""Bot detection: reasons, pattern loading and robustness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.enrich.bots import BotDetector
from streams.enrich.useragent import UserAgentInfo, UserAgentParser

REASONS = {"empty-ua", "headless", "http-library", "crawler-pattern", "spider-family"}

HUMANS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.40.108;FBDV/iPhone15,3]",
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Safari/537.36",
]

REASON_CASES = [
    (None, "empty-ua"),
    ("", "empty-ua"),
    ("   ", "empty-ua"),
    ("-", "empty-ua"),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/131.0.0.0 Safari/537.36",
        "headless",
    ),
    (
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
        "PhantomJS/2.1.1 Safari/538.1",
        "headless",
    ),
    ("curl/8.5.0", "http-library"),
    ("Wget/1.21.4", "http-library"),
    ("python-requests/2.32.3", "http-library"),
    ("Python-urllib/3.12", "http-library"),
    ("Python/3.12 aiohttp/3.10.5", "http-library"),
    ("python-httpx/0.27.2", "http-library"),
    ("Go-http-client/2.0", "http-library"),
    ("okhttp/4.12.0", "http-library"),
    ("Java/21.0.2", "http-library"),
    ("libwww-perl/6.72", "http-library"),
    ("axios/1.7.7", "http-library"),
    ("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "http-library"),
    ("Scrapy/2.11.2 (+https://scrapy.org)", "http-library"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "crawler-pattern"),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "crawler-pattern"),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
        "+https://openai.com/gptbot)",
        "crawler-pattern",
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; "
        "+claudebot@anthropic.com)",
        "crawler-pattern",
    ),
    (
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "crawler-pattern",
    ),
    # LinkedIn's fetcher mentions Apache-HttpClient mid-string: still a crawler, not a library.
    (
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "crawler-pattern",
    ),
    # Not in crawler-user-agents, but ua-parser's Spider family knows them.
    ("htdig/3.1.6 (webmaster@example.com)", "spider-family"),
    ("Mozilla/5.0 (compatible; AcmeBot/1.0; +https://acme.example/bot)", "spider-family"),
]


@pytest.fixture(scope="module")
def parser() -> UserAgentParser:
    return UserAgentParser()


@pytest.fixture(scope="module")
def detector(parser: UserAgentParser) -> BotDetector:
    return BotDetector.from_data(parser=parser)


def test_patterns_load_with_few_skips(detector: BotDetector) -> None:
    assert detector.pattern_count > 1000
    assert detector.skipped_count <= 10, detector.skipped_patterns


@pytest.mark.parametrize("ua", HUMANS)
def test_humans_pass(detector: BotDetector, parser: UserAgentParser, ua: str) -> None:
    assert detector.reason(ua) is None
    assert detector.is_bot(ua, parser.parse(ua)) is False


@pytest.mark.parametrize(
    ("ua", "reason"), REASON_CASES, ids=[repr(c[0])[:50] for c in REASON_CASES]
)
def test_reasons(detector: BotDetector, ua: str | None, reason: str) -> None:
    assert detector.reason(ua) == reason
    assert detector.is_bot(ua) is True


def test_spider_family_comes_from_the_parsed_info(detector: BotDetector) -> None:
    ua = HUMANS[0]
    spider = UserAgentInfo("Chrome", "131", "Windows", "10", "bot")
    assert detector.reason(ua, spider) == "spider-family"
    assert detector.reason(ua, UserAgentInfo("Chrome", "131", "Windows", "10", "desktop")) is None


def test_custom_pattern_file_skips_bad_entries(tmp_path: Path) -> None:
    data = [
        {"pattern": "AcmeCrawler\\/"},
        {"pattern": "(?<=x)lookbehind"},  # RE2 has no lookbehind
        {"pattern": "Mozilla"},  # would flag every browser
        {"pattern": ""},
        {"pattern": "x*"},  # matches the empty string
        {"pattern": "AcmeCrawler\\/"},  # duplicate, ignored
        {"url": "no pattern key"},
    ]
    path = tmp_path / "crawlers.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    det = BotDetector.from_data(path)
    assert det.pattern_count == 1
    assert det.skipped_count == 4
    assert {p for p, _ in det.skipped_patterns} == {"(?<=x)lookbehind", "Mozilla", "", "x*"}
    assert det.reason("Mozilla/5.0 (compatible; AcmeCrawler/2.0)") == "crawler-pattern"
    assert det.reason(HUMANS[0]) is None


def test_missing_pattern_file_keeps_markers(tmp_path: Path) -> None:
    det = BotDetector.from_data(tmp_path / "absent.json")
    assert det.pattern_count == 0
    assert det.reason("curl/8.5.0") == "http-library"
    assert det.reason("Mozilla/5.0 (compatible; Googlebot/2.1)") == "spider-family"
    assert det.reason(HUMANS[1]) is None


def test_verdicts_are_cached(detector: BotDetector) -> None:
    ua = "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)"
    detector.reason(ua)
    hits = detector.cache_info().hits
    assert detector.reason(ua) == "crawler-pattern"
    assert detector.cache_info().hits == hits + 1


def test_oversized_and_odd_input(detector: BotDetector) -> None:
    assert detector.reason("curl/8.5.0" + " " * 5000) == "http-library"
    assert detector.reason("Mozilla/5.0 \ud800 Googlebot/2.1") == "crawler-pattern"
    assert detector.reason(123) == "empty-ua"  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=500))
def test_never_raises_on_arbitrary_text(detector: BotDetector, text: str) -> None:
    reason = detector.reason(text)
    assert reason is None or reason in REASONS
    assert detector.is_bot(text) is (reason is not None)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(HUMANS), st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_never_raises_on_noisy_humans(detector: BotDetector, ua: str, noise: str) -> None:
    assert detector.reason(ua + noise) in REASONS | {None}

"""Bot detection from the User-Agent header.

Signals, in the order that names the reason:

1. ``empty-ua``: no header, whitespace or "-".
2. ``headless``: headless / automated browsers (HeadlessChrome, PhantomJS, Playwright...).
3. ``http-library``: HTTP clients and CLI tools (curl, python-requests, okhttp...).
4. ``crawler-pattern``: crawler-user-agents (MIT, github.com/monperrus/crawler-user-agents).
5. ``spider-family``: ua-parser's device family "Spider".

Signals 2-4 are one google-re2 alternation, so a human UA costs a single linear-time scan;
the smaller marker regexes only run to name the reason once something matched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import re2

from streams import datafiles
from streams.enrich.useragent import (
    MAX_UA_LENGTH,
    UserAgentInfo,
    UserAgentParser,
    is_blank_ua,
)

if TYPE_CHECKING:
    from functools import _CacheInfo

__all__ = ["BotDetector"]

log = logging.getLogger(__name__)

_HEADLESS = (
    r"Headless(?:Chrome|Edg)|PhantomJS|SlimerJS|\bPuppeteer|Playwright|Selenium|[Ww]eb[Dd]river|"
    r"\bCypress/|\bjsdom/|HtmlUnit|Zombie\.js|Lightpanda|(?i:\bsplash version/)"
)
_HTTP_LIBRARIES = (
    r"(?i:^curl/|^libcurl|pycurl|^wget/|python-requests|python-urllib|python-httpx|"
    r"aiohttp/|^python/|urllib3|httplib2|go-http-client|fasthttp|okhttp/|^java/|"
    r"java-http-client|^apache-httpclient|jakarta commons-httpclient|^ahc/|libwww-perl|"
    r"^lwp::|^mechanize|^axios/|node-fetch|^node$|^undici|^got \(|scrapy/|postmanruntime/|"
    r"^insomnia/|^httpie/|^faraday v|guzzlehttp|^php/|^dart/|^deno/|^bun/|^ruby$|"
    r"^rest-client/|^restsharp/|^typhoeus|^reqwest|^hyper/|^ureq/|^ktor-client|"
    r"^winhttp|^cpp-httplib|^aria2/|^colly|^lua-resty-http|^mojolicious)"
)

# Patterns that match one of these are skipped: a crawler entry must never flag a plain browser.
_CANARY_BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S928B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
)


def _options() -> re2.Options:
    opts = re2.Options()
    # 1.5k alternatives need more than RE2's 8 MiB default to keep the DFA from thrashing.
    opts.max_mem = 64 << 20
    opts.never_capture = True
    opts.log_errors = False
    return opts


def _utf8(ua: str) -> bytes:
    try:
        return ua.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return ua.encode("utf-8", "replace")


class BotDetector:
    """Cached bot verdicts; thread-safe, share one per worker process."""

    pattern_count: int  # crawler patterns compiled into the matcher
    skipped_patterns: tuple[tuple[str, str], ...]  # (pattern, why) left out

    def __init__(
        self,
        patterns: Iterable[str],
        *,
        parser: UserAgentParser | None = None,
        cache_size: int = 10_000,
    ) -> None:
        opts = _options()
        canaries = [c.encode() for c in _CANARY_BROWSERS]
        kept: list[str] = []
        skipped: list[tuple[str, str]] = []
        for pattern in dict.fromkeys(patterns):  # dedupe, keep order
            if not isinstance(pattern, str) or not pattern.strip():
                skipped.append((str(pattern), "empty"))
                continue
            try:
                compiled = re2.compile(pattern, opts)
            except re2.error as exc:
                skipped.append((pattern, f"re2: {exc}"))
                continue
            if compiled.search(b"") is not None:
                skipped.append((pattern, "matches empty string"))
            elif any(compiled.search(c) is not None for c in canaries):
                skipped.append((pattern, "matches a plain browser"))
            else:
                kept.append(pattern)
        self.pattern_count = len(kept)
        self.skipped_patterns = tuple(skipped)
        for pattern, why in skipped:
            log.warning("crawler pattern %r skipped: %s", pattern, why)

        alternatives = [_HEADLESS, _HTTP_LIBRARIES, *kept]
        self._any = re2.compile("|".join(f"(?:{a})" for a in alternatives), opts)
        self._headless = re2.compile(_HEADLESS, opts)
        self._http = re2.compile(_HTTP_LIBRARIES, opts)
        self._parser = parser if parser is not None else UserAgentParser(cache_size)
        self._text_reason = lru_cache(maxsize=cache_size)(self._text_reason_uncached)

    @classmethod
    def from_data(
        cls,
        path: Path | None = None,
        *,
        parser: UserAgentParser | None = None,
        cache_size: int = 10_000,
    ) -> BotDetector:
        """Load crawler-user-agents.json (default: the npm-installed copy)."""
        path = path if path is not None else datafiles.crawler_user_agents_json()
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
            patterns = [e["pattern"] for e in entries if isinstance(e, dict) and "pattern" in e]
        except (OSError, ValueError, TypeError) as exc:
            # Degrade rather than stop the stream: markers and ua-parser still catch most bots.
            log.warning("crawler patterns unavailable (%s): %s", path, exc)
            patterns = []
        detector = cls(patterns, parser=parser, cache_size=cache_size)
        log.info(
            "bot detector: %d crawler patterns from %s, %d skipped",
            detector.pattern_count,
            path,
            detector.skipped_count,
        )
        return detector

    @property
    def skipped_count(self) -> int:
        return len(self.skipped_patterns)

    def is_bot(self, ua: str | None, ua_info: UserAgentInfo | None = None) -> bool:
        return self.reason(ua, ua_info) is not None

    def reason(self, ua: str | None, ua_info: UserAgentInfo | None = None) -> str | None:
        """Why ``ua`` looks automated, or None for a (probable) human.

        Pass the ``ua_info`` already parsed for this event to skip a second cache lookup.
        """
        if not ua or not isinstance(ua, str):
            return "empty-ua"
        if len(ua) > MAX_UA_LENGTH:
            ua = ua[:MAX_UA_LENGTH]
        verdict = self._text_reason(ua)
        if verdict is not None:
            return verdict
        if ua_info is None:
            ua_info = self._parser.parse(ua)
        return "spider-family" if ua_info.device_type == "bot" else None

    def cache_info(self) -> _CacheInfo:
        return self._text_reason.cache_info()

    def _text_reason_uncached(self, ua: str) -> str | None:
        if is_blank_ua(ua):
            return "empty-ua"
        data = _utf8(ua)
        if self._any.search(data) is None:
            return None
        if self._headless.search(data) is not None:
            return "headless"
        if self._http.search(data) is not None:
            return "http-library"
        return "crawler-pattern"

"""User-agent parsing: browser, OS and a coarse device type.

Built on ua-parser 1.x (uap-core regexes, Rust ``regex`` fast path when ua-parser[regex] is
installed) plus a few markers ua-parser does not turn into a device class (TVs, consoles,
tablets). Results are LRU-cached on the raw string: real traffic repeats a small set of UAs.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import re2
import ua_parser
from ua_parser import Domain, Resolver

if TYPE_CHECKING:
    from functools import _CacheInfo

__all__ = [
    "DEVICE_TYPES",
    "MAX_UA_LENGTH",
    "UNKNOWN_UA",
    "UserAgentInfo",
    "UserAgentParser",
    "encodable",
    "is_blank_ua",
]

# Longer headers are truncated before parsing and caching: real UAs stay well under 1 KiB and
# this bounds both regex time and the memory a hostile client can pin in the caches.
MAX_UA_LENGTH = 1024

DEVICE_TYPES = ("desktop", "mobile", "tablet", "bot", "other")


@dataclass(frozen=True, slots=True)
class UserAgentInfo:
    browser: str  # ua-parser family: "Chrome", "Mobile Safari", "Samsung Internet"... ("" unknown)
    browser_version: str  # major version, e.g. "131" ("" unknown)
    os: str  # "Windows", "Mac OS X", "iOS", "Android", "Linux", "Chrome OS"... ("" unknown)
    os_version: str  # major(.minor), e.g. "10", "17.4" ("" unknown)
    device_type: str  # one of DEVICE_TYPES


UNKNOWN_UA = UserAgentInfo("", "", "", "", "other")

# Marker regexes run on cache misses only; RE2 because Python's backtracking engine is ~50x
# slower on long alternations like these.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.never_capture = True
# Living-room, game and VR devices. Checked first: several of them also claim Windows, Linux or
# "Mobile Safari" (Xbox, Fire TV WebView, Android TV boxes).
_OTHER_RE = re2.compile(
    r"(?i:smart-?tv|smart[ -]tv|hbbtv|netcast|web0s|webos[. ]tv|google ?tv|android ?tv|"
    r"\bbravia\b|\bvidaa\b|nettv|opera tv|freebox|\bviera\b|\bmibox\b|\broku\b|apple ?tv|"
    r"crkey|playstation|xbox|nintendo)|"
    r"\bAFT[A-Z0-9]{1,6}\b|\btvOS\b|\bTV Safari\b|OculusBrowser|\bQuest(?: [0-9]| Pro)\b|Pico Neo",
    _RE2_OPTIONS,
)
# iPad, Firefox's "Tablet" token, Kindle Fire (KF*) / Silk, old BlackBerry PlayBook.
# ("Tablet PC" is a Windows desktop capability token, not a tablet.)
_TABLET_RE = re2.compile(
    r"iPad|\bTablet(?:[;)/]|$)|\bKindle\b|\bKF[A-Z]{2,6}\b|\bSilk/|PlayBook", _RE2_OPTIONS
)
# "Mobi" is the cross-vendor mobile hint (MDN); the rest are phones that do not send it.
_MOBILE_RE = re2.compile(
    r"Mobi|iPhone|iPod|Windows Phone|IEMobile|BlackBerry|\bBB10\b|Opera Mini|KAIOS|Symbian|"
    r"Nokia|\bMIDP\b|Fennec",
    _RE2_OPTIONS,
)

_MOBILE_OSES = frozenset(
    {
        "iOS",
        "Windows Phone",
        "Windows Mobile",
        "Windows CE",
        "BlackBerry OS",
        "KaiOS",
        "Symbian OS",
        "Symbian^3",
        "Firefox OS",
        "Sailfish",
        "Ubuntu Touch",
        "Tizen",
    }
)
_DESKTOP_OSES = frozenset(
    {
        "Windows",
        "Mac OS X",
        "Mac OS",
        "Chrome OS",
        "Linux",
        "Ubuntu",
        "Kubuntu",
        "Xubuntu",
        "Debian",
        "Fedora",
        "Red Hat",
        "CentOS",
        "SUSE",
        "openSUSE",
        "Gentoo",
        "Mint",
        "Linux Mint",
        "Arch Linux",
        "Mandriva",
        "Mageia",
        "Slackware",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "Solaris",
        "SunOS",
    }
)
# In-app browsers uap-core does not name (checked on cache misses only): (regex, family).
_APP_OVERRIDES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\[LinkedInApp\](?:/(\d+))?"), "LinkedIn"),
)
# uap-core spellings that read as typos in reports.
_OS_ALIASES = {"Web0S": "webOS", "ATV OS X": "tvOS"}
# Chrome OS reports a platform build ("14541.0.0") whose minor part is always 0.
_MAJOR_ONLY_OSES = frozenset({"Chrome OS"})

_resolver: Resolver | None = None
_resolver_lock = threading.Lock()


def _shared_resolver() -> Resolver:
    """One compiled uap-core matcher set per process: building it takes ~0.25 s."""
    global _resolver
    with _resolver_lock:
        if _resolver is None:
            ctor = ua_parser.RegexResolver or ua_parser.Re2Resolver
            if ctor is not None:
                _resolver = ctor(ua_parser.load_lazy_builtins())
            else:  # pure-Python fallback, much slower
                _resolver = ua_parser.BasicResolver(ua_parser.load_builtins())
        return _resolver


def encodable(ua: str) -> str:
    """Replace lone surrogates, which cannot cross into the Rust / RE2 matchers (cold path)."""
    try:
        ua.encode("utf-8")
    except UnicodeEncodeError:
        return ua.encode("utf-8", "replace").decode("utf-8")
    return ua


def is_blank_ua(ua: str) -> bool:
    """Missing header, whitespace, or the "-" that log formats and proxies use for none."""
    s = ua.strip()
    return not s or s == "-"


def _version(major: str | None, minor: str | None, with_minor: bool) -> str:
    if not major:
        return ""
    if with_minor and minor:
        return f"{major}.{minor}"
    return major


def _device_type(ua: bytes, os_family: str, device_family: str) -> str:
    if device_family == "Spider":
        return "bot"
    if _OTHER_RE.search(ua):
        return "other"
    if device_family == "iPad" or _TABLET_RE.search(ua):
        return "tablet"
    if _MOBILE_RE.search(ua) or os_family in _MOBILE_OSES or device_family in ("iPhone", "iPod"):
        return "mobile"
    if os_family == "Android":
        # Android browsers omit "Mobile" on tablets (Chrome, Samsung Internet, WebView).
        return "tablet"
    if os_family in _DESKTOP_OSES or os_family.startswith("Windows"):
        return "desktop"
    return "other"


def _parse(resolver: Resolver, ua: str) -> UserAgentInfo:
    if is_blank_ua(ua):
        return UNKNOWN_UA
    ua = encodable(ua)
    res = resolver(ua, Domain.ALL)
    agent, os_, device = res.user_agent, res.os, res.device
    browser = browser_version = os_family = os_version = ""
    if agent is not None and agent.family != "Other":
        browser = agent.family
        browser_version = agent.major or ""
    for pattern, family in _APP_OVERRIDES:
        if m := pattern.search(ua):
            browser, browser_version = family, m.group(1) or ""
            break
    if os_ is not None and os_.family != "Other":
        os_family = _OS_ALIASES.get(os_.family, os_.family)
        os_version = _version(os_.major, os_.minor, os_family not in _MAJOR_ONLY_OSES)
    device_family = device.family if device is not None else "Other"
    device_type = _device_type(ua.encode("utf-8"), os_family, device_family)
    return UserAgentInfo(browser, browser_version, os_family, os_version, device_type)


class UserAgentParser:
    """Thread-safe, cached UA parser; share one per worker process."""

    def __init__(self, cache_size: int = 10_000) -> None:
        resolver = _shared_resolver()

        def uncached(ua: str) -> UserAgentInfo:
            return _parse(resolver, ua)

        self._uncached = uncached
        self._cached = lru_cache(maxsize=cache_size)(uncached)

    def parse(self, ua: str | None) -> UserAgentInfo:
        if not ua or not isinstance(ua, str):
            return UNKNOWN_UA
        if len(ua) > MAX_UA_LENGTH:
            ua = ua[:MAX_UA_LENGTH]
        return self._cached(ua)

    def parse_uncached(self, ua: str | None) -> UserAgentInfo:
        """Same as :meth:`parse` without the cache (benchmarks, one-off tools)."""
        if not ua or not isinstance(ua, str):
            return UNKNOWN_UA
        return self._uncached(ua[:MAX_UA_LENGTH])

    def cache_info(self) -> _CacheInfo:
        """functools cache statistics (hits, misses, currsize) for metrics."""
        return self._cached.cache_info()

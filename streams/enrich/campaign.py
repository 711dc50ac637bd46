"""Campaign parameters (utm_*, ad click ids, ?ref=) from a landing-page URL or query string.

Rules (see docs/channels.md):
- values are percent-decoded (``+`` is a space), trimmed and lower-cased; "" when absent;
- parameter names match case-insensitively; for repeated parameters the first non-empty
  value wins;
- the fragment is read too, as a fallback: ``#utm_source=x`` or hash routes such as
  ``#/page?utm_source=x`` fill only fields the query string left empty (some email tools and
  single-page apps put campaign tags there);
- ``click_id_type`` is the first ad click id in URL order (query before fragment);
  ``gbraid``/``wbraid`` count as ``gclid``; an empty click id is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote_plus

CLICK_ID_TYPES: dict[str, str] = {
    "gclid": "gclid",
    "gbraid": "gclid",
    "wbraid": "gclid",
    "msclkid": "msclkid",
    "fbclid": "fbclid",
    "ttclid": "ttclid",
    "li_fat_id": "li_fat_id",
}
_FIELDS: dict[str, str] = {
    "utm_source": "source",
    "utm_medium": "medium",
    "utm_campaign": "campaign",
    "utm_term": "term",
    "utm_content": "content",
    "ref": "ref",
    "source": "ref_source",
}
_WANTED = frozenset(_FIELDS) | frozenset(CLICK_ID_TYPES)
_MAX_CACHED = 2048  # longer inputs are parsed without caching (bounded cache memory)


@dataclass(frozen=True, slots=True)
class Campaign:
    """Campaign tags of one landing URL."""

    source: str
    medium: str
    campaign: str
    term: str
    content: str
    click_id_type: str  # "gclid" | "msclkid" | "fbclid" | "ttclid" | "li_fat_id" | ""
    ref: str  # ?ref= (or ?source=) fallback source

    @property
    def has_utm(self) -> bool:
        """True when utm_source or utm_medium was given (the GA4 "manual tagging" case)."""
        return bool(self.source or self.medium)


NO_CAMPAIGN = Campaign("", "", "", "", "", "", "")


def parse_campaign(url_or_query: str) -> Campaign:
    """Parse a full URL, a path with query, or a bare query string; never raises."""
    if not url_or_query or not isinstance(url_or_query, str):
        return NO_CAMPAIGN
    if "=" not in url_or_query:  # fast path: nothing to read
        return NO_CAMPAIGN
    try:
        if len(url_or_query) > _MAX_CACHED:  # keep huge URLs out of the cache
            return _parse(url_or_query)
        return _parse_cached(url_or_query)
    except Exception:  # defensive: enrichment must never drop an event
        return NO_CAMPAIGN


def _parse(s: str) -> Campaign:
    hash_i = s.find("#")
    main, frag = (s[:hash_i], s[hash_i + 1 :]) if hash_i >= 0 else (s, "")
    q_i = main.find("?")
    if q_i >= 0:
        query = main[q_i + 1 :]
    elif "://" not in main and not main.startswith("/"):
        query = main  # a bare query string "utm_source=x&utm_medium=y"
    else:
        query = ""
    values: dict[str, str] = {}
    click = _collect(query, values) if query else ""
    if frag and "=" in frag:
        f_q = frag.find("?")
        frag_query = frag[f_q + 1 :] if f_q >= 0 else frag
        frag_click = _collect(frag_query, values)
        click = click or frag_click
    if not values and not click:
        return NO_CAMPAIGN
    get = values.get
    return Campaign(
        source=get("source", ""),
        medium=get("medium", ""),
        campaign=get("campaign", ""),
        term=get("term", ""),
        content=get("content", ""),
        click_id_type=click,
        ref=get("ref", "") or get("ref_source", ""),
    )


_parse_cached = lru_cache(maxsize=4096)(_parse)  # URLs: the worker caches their results too


def _collect(query: str, values: dict[str, str]) -> str:
    """Fill ``values`` with fields not set yet; return the first click id type seen."""
    click = ""
    for part in query.split("&"):
        key, eq, raw = part.partition("=")
        if not eq:
            continue
        if "%" in key or "+" in key:
            key = unquote_plus(key, errors="replace")
        key = key.strip().lower()
        if key not in _WANTED:
            continue
        if key in CLICK_ID_TYPES:
            if not click and raw.strip():
                click = CLICK_ID_TYPES[key]
            continue
        field = _FIELDS[key]
        if field in values:
            continue
        value = _clean(raw)
        if value:
            values[field] = value
    return click


def _clean(raw: str) -> str:
    if "%" in raw or "+" in raw:
        raw = unquote_plus(raw, errors="replace")
    return raw.strip().lower()

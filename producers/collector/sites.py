"""Site registry: which site ids exist and which page origins may send events for each.

File (TOML or JSON, by extension), e.g. sites.toml:

    [sites.shop]
    origins = ["https://shop.example", "https://*.shop.example", "shop-staging.example"]

An origin entry is `*` (any), `scheme://host[:port]` (exact), `scheme://*.domain`
(subdomains), or a bare `host` / `*.domain` (http or https, any port). Without a file the
registry is open: every site id and every origin is accepted (development mode).
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # as in schemas/event.py


class SitesFileError(ValueError):
    """The sites file is missing or malformed."""


@dataclass(frozen=True)
class OriginRule:
    scheme: str | None  # None: http or https
    host: str  # lower case; "" with wildcard=True and any_origin=True means "*"
    port: int | None  # None: any port (bare host) or the scheme's default (origin form)
    wildcard: bool = False
    any_origin: bool = False

    @classmethod
    def parse(cls, text: str) -> OriginRule:
        text = text.strip().lower().rstrip("/")
        if text == "*":
            return cls(None, "", None, any_origin=True)
        scheme: str | None = None
        port: int | None = None
        if "://" in text:
            parts = urlsplit(text)
            if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path:
                raise SitesFileError(f"bad origin {text!r}: expected scheme://host[:port]")
            scheme, host = parts.scheme, parts.hostname
            port = parts.port or _DEFAULT_PORTS[scheme]
        else:
            host = text
        wildcard = host.startswith("*.")
        host = host[2:] if wildcard else host
        if not host or "*" in host or "/" in host:
            raise SitesFileError(f"bad origin {text!r}")
        return cls(scheme, host, port, wildcard)

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if self.any_origin:
            return True
        if self.scheme is None:
            if scheme not in _DEFAULT_PORTS:
                return False
        elif scheme != self.scheme or port != self.port:
            return False
        return host.endswith("." + self.host) if self.wildcard else host == self.host


def split_origin(origin: str) -> tuple[str, str, int] | None:
    """'https://Shop.example:8443' -> ('https', 'shop.example', 8443); None if unparsable."""
    try:
        parts = urlsplit(origin.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None
    return parts.scheme.lower(), host, port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)


class SiteRegistry:
    """`sites` None: open mode."""

    def __init__(self, sites: dict[str, tuple[OriginRule, ...]] | None = None) -> None:
        self.sites = sites
        self._origin_cache: dict[tuple[str, str], bool] = {}

    @property
    def open(self) -> bool:
        return self.sites is None

    def known(self, site_id: str) -> bool:
        return self.sites is None or site_id in self.sites

    def origin_allowed(self, site_id: str, origin: str | None) -> bool:
        """No Origin header (server-side senders, image requests): allowed."""
        if self.sites is None or origin is None:
            return True
        key = (site_id, origin)
        got = self._origin_cache.get(key)
        if got is None:
            rules = self.sites.get(site_id, ())
            split = split_origin(origin)
            got = split is not None and any(r.matches(*split) for r in rules)
            if len(self._origin_cache) > 10_000:
                self._origin_cache.clear()
            self._origin_cache[key] = got
        return got

    def origin_allowed_anywhere(self, origin: str) -> bool:
        """For CORS answers, before the events (and so their sites) are known."""
        if self.sites is None:
            return True
        return any(self.origin_allowed(site, origin) for site in self.sites)


def read_sites_table(path: Path) -> dict[str, Any]:
    """The file's `sites` table: site id -> its entry (origins, and the worker's per-site
    options: streams/site_options.py)."""
    try:
        raw = path.read_bytes()
        doc: Any = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (OSError, ValueError) as exc:
        raise SitesFileError(f"cannot read sites file {path}: {exc}") from exc
    table = doc.get("sites") if isinstance(doc, dict) else None
    if not isinstance(table, dict):
        raise SitesFileError(f"{path}: expected a table `sites` of site id -> {{origins}}")
    return table


def load_sites(path: Path | None) -> SiteRegistry:
    if path is None:
        return SiteRegistry(None)
    table = read_sites_table(path)
    sites: dict[str, tuple[OriginRule, ...]] = {}
    for site_id, entry in table.items():
        if not _SITE_ID.match(site_id):
            raise SitesFileError(f"{path}: {site_id!r} is not a valid site id")
        origins = entry.get("origins", []) if isinstance(entry, dict) else None
        if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
            raise SitesFileError(f"{path}: site {site_id!r} needs `origins = [\"...\"]`")
        sites[str(site_id)] = tuple(OriginRule.parse(o) for o in origins)
    return SiteRegistry(sites)

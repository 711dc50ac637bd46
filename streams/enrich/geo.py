"""IP -> country / region / city.

Primary source: DB-IP Lite city databases (CC-BY-4.0, attribution to https://db-ip.com) in the
ip-location-db MMDB layout: one file per address family, flat records
``{country_code, state1, state2, city, postcode, latitude, longitude, timezone}``.
Fallback when those files are absent: iptocc (country only, bundled data).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import maxminddb

from streams import datafiles

if TYPE_CHECKING:
    from functools import _CacheInfo

__all__ = ["EMPTY_GEO", "GeoInfo", "GeoLookup"]

log = logging.getLogger(__name__)

_MAX_IP_TEXT = 64  # longest IPv6 text (45) plus brackets and padding


@dataclass(frozen=True, slots=True)
class GeoInfo:
    country: str  # ISO 3166-1 alpha-2, upper case ("" unknown)
    region: str  # state / province name ("" unknown)
    city: str  # "" unknown


EMPTY_GEO = GeoInfo("", "", "")


def _ranges(*cidrs: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    nets = sorted(ipaddress.ip_network(c) for c in cidrs)
    return tuple(int(n.network_address) for n in nets), tuple(
        int(n.broadcast_address) for n in nets
    )


# Not globally reachable (IANA special-purpose registries), checked as integer ranges because
# ipaddress.is_global walks a list of networks per call (~10x slower).
_V4_BLOCKED = _ranges(
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",  # 6to4 relay anycast
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved + broadcast
)
# Inside 2000::/3 (global unicast); everything outside it is loopback, ULA, link-local,
# multicast, NAT64, discard... 2002::/16 (6to4) and 2001::/32 (Teredo) are unwrapped first.
_V6_BLOCKED = _ranges("2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20")


def _blocked(n: int, ranges: tuple[tuple[int, ...], tuple[int, ...]]) -> bool:
    starts, ends = ranges
    i = bisect_right(starts, n) - 1
    return i >= 0 and n <= ends[i]


def _v4_text(n: int) -> str:
    return socket.inet_ntop(socket.AF_INET, n.to_bytes(4, "big"))


def _routable(text: str) -> tuple[int, str] | None:
    """(family, address text for the reader) for a globally routable address, else None.

    IPv4 carried in IPv6 (mapped ``::ffff:a.b.c.d``, 6to4, Teredo client) is unwrapped.
    """
    text = text.strip()
    if ":" not in text:
        try:
            n = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        except (OSError, ValueError):  # ValueError: NUL, lone surrogates
            return None
        return None if _blocked(n, _V4_BLOCKED) else (4, text)
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        n = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, ValueError):  # also zone ids ("fe80::1%eth0"): link-local anyway
        return None
    if n >> 32 == 0xFFFF:  # ::ffff:0:0/96
        v4 = n & 0xFFFFFFFF
    elif n >> 112 == 0x2002:  # 6to4: 2002:AABB:CCDD::/48
        v4 = (n >> 80) & 0xFFFFFFFF
    elif n >> 96 == 0x20010000:  # Teredo: client address is the inverted low 32 bits
        v4 = ~n & 0xFFFFFFFF
    else:
        if n >> 125 != 1 or _blocked(n, _V6_BLOCKED):  # outside 2000::/3 or special
            return None
        return 6, text
    return None if _blocked(v4, _V4_BLOCKED) else (4, _v4_text(v4))


def _strip_district(city: str) -> str:
    """DB-IP appends a district: "Moscow (Tsentralnyy administrativnyy okrug)" -> "Moscow".

    Only a trailing, balanced " (...)" group is removed, so "Kempten (Allgau) (Ursulasried)"
    keeps "Kempten (Allgau)".
    """
    if not city.endswith(")"):
        return city
    depth = 0
    for i in range(len(city) - 1, -1, -1):
        ch = city[i]
        if ch == ")":
            depth += 1
        elif ch == "(":
            depth -= 1
            if depth == 0:
                base = city[:i].rstrip()
                return base if base and city[i - 1 : i] == " " else city
    return city


def _country(code: object) -> str:
    if isinstance(code, str) and len(code) == 2 and code.isalpha() and code.upper() != "ZZ":
        return code.upper()
    return ""


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _open_reader(path: Path) -> maxminddb.Reader:
    try:
        return maxminddb.open_database(str(path), maxminddb.MODE_MMAP_EXT)
    except (ImportError, ValueError):  # C extension unavailable
        return maxminddb.open_database(str(path), maxminddb.MODE_AUTO)


def _country_fallback() -> Callable[[str], str | None] | None:
    try:
        import iptocc
    except ImportError:
        return None
    return iptocc.country_code


class GeoLookup:
    """Cached IP geolocation; never raises on bad input. Thread-safe."""

    source: str  # "dbip-city" | "iptocc" | "none"

    def __init__(
        self,
        *,
        v4: maxminddb.Reader | None = None,
        v6: maxminddb.Reader | None = None,
        country_fallback: Callable[[str], str | None] | None = None,
        cache_size: int = 50_000,
    ) -> None:
        self._v4 = v4
        self._v6 = v6
        self._fallback = country_fallback
        if v4 is not None or v6 is not None:
            self.source = "dbip-city"
        elif country_fallback is not None:
            self.source = "iptocc"
        else:
            self.source = "none"
        self._cached = lru_cache(maxsize=cache_size)(self._lookup_uncached)

    @classmethod
    def open(
        cls, mmdb_dir_or_none: str | os.PathLike[str] | None = None, *, cache_size: int = 50_000
    ) -> GeoLookup:
        """DB-IP city files from ``mmdb_dir_or_none`` (default: the npm-installed package).

        A missing family file falls back to iptocc for that family; with neither file the
        lookup is country-only through iptocc, and "none" if iptocc is not installed either.
        """
        if mmdb_dir_or_none is None:
            paths = {4: datafiles.dbip_city_mmdb(4), 6: datafiles.dbip_city_mmdb(6)}
        else:
            base = Path(mmdb_dir_or_none)
            paths = {f: base / datafiles.dbip_city_mmdb(f).name for f in (4, 6)}
        readers: dict[int, maxminddb.Reader | None] = {}
        for family, path in paths.items():
            readers[family] = None
            if path.is_file():
                try:
                    readers[family] = _open_reader(path)
                except (OSError, maxminddb.InvalidDatabaseError) as exc:
                    log.warning("geo: cannot open %s: %s", path, exc)
        fallback = _country_fallback()
        geo = cls(v4=readers[4], v6=readers[6], country_fallback=fallback, cache_size=cache_size)
        if geo.source == "dbip-city":
            missing = [str(paths[f]) for f in (4, 6) if readers[f] is None]
            log.info(
                "geo source: dbip-city (DB-IP Lite, CC-BY-4.0) from %s%s",
                paths[4].parent,
                f"; missing {missing}, iptocc for that family" if missing else "",
            )
        elif geo.source == "iptocc":
            log.warning("geo source: iptocc (country only); no DB-IP mmdb in %s", paths[4].parent)
        else:
            log.warning("geo source: none; no DB-IP mmdb in %s and iptocc missing", paths[4].parent)
        return geo

    def lookup(self, ip: str | None) -> GeoInfo:
        if not ip or not isinstance(ip, str) or len(ip) > _MAX_IP_TEXT:
            return EMPTY_GEO
        return self._cached(ip)

    def cache_info(self) -> _CacheInfo:
        return self._cached.cache_info()

    def close(self) -> None:
        for reader in (self._v4, self._v6):
            if reader is not None:
                reader.close()
        self._v4 = self._v6 = None

    def __enter__(self) -> GeoLookup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _lookup_uncached(self, ip: str) -> GeoInfo:
        try:
            routable = _routable(ip)
            if routable is None:
                return EMPTY_GEO
            family, text = routable
            reader = self._v4 if family == 4 else self._v6
            if reader is not None:
                record = reader.get(text)
                if isinstance(record, dict) and (country := _country(record.get("country_code"))):
                    region = _text(record.get("state1"))
                    return GeoInfo(country, region, _strip_district(_text(record.get("city"))))
            # No DB-IP file for this family, or no record: country from iptocc.
            if self._fallback is not None and (country := _country(self._fallback(text))):
                return GeoInfo(country, "", "")
        except Exception:  # never let a corrupt record or library bug stop the stream
            log.debug("geo lookup failed for %r", ip, exc_info=True)
        return EMPTY_GEO

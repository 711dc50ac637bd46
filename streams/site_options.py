"""Per-site options of the stream worker, read from the site registry file.

The collector reads `origins` from the same file (producers/collector/sites.py); the worker
reads what changes per site how visits are cut and conversions attributed:

    [sites.shop]
    origins = ["https://shop.example"]
    timezone = "Europe/Berlin"          # sessions split at midnight in this zone
    session_timeout_minutes = 45        # inactivity that ends a session (1-1440)
    attribution_lookback_days = 60      # touchpoints older than this do not count (1-90)
    goals = ["event:signup", "pageview:/thank-you"]   # conversions besides type=conversion

Anything not given falls back to the worker's settings (CLICKSTREAM_SESSION_*,
CLICKSTREAM_ATTRIBUTION_*).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from producers.collector.sites import SitesFileError, read_sites_table
from streams.attribution.stream import parse_goals
from streams.sessions import SessionRules

MAX_LOOKBACK_DAYS = 90
KNOWN_KEYS = frozenset({"origins", "timezone", "session_timeout_minutes",
                        "attribution_lookback_days", "goals"})


@dataclass(frozen=True)
class SiteOptions:
    timezone: str | None = None
    session_timeout_minutes: int | None = None
    attribution_lookback_days: int | None = None
    goals: tuple[str, ...] | None = None

    def session_rules(self, default: SessionRules) -> SessionRules:
        rules = default
        if self.timezone is not None:
            rules = replace(rules, timezone=self.timezone)
        if self.session_timeout_minutes is not None:
            rules = replace(rules, timeout_ms=self.session_timeout_minutes * 60_000)
        return rules


def _int_in(where: str, value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise SitesFileError(f"{where}: expected a whole number from {low} to {high}, "
                             f"got {value!r}")
    return value


def parse_site_options(site_id: str, entry: dict[str, Any], where: str) -> SiteOptions:
    here = f"{where}: site {site_id!r}"
    unknown = sorted(set(entry) - KNOWN_KEYS)
    if unknown:
        raise SitesFileError(f"{here}: unknown option(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(KNOWN_KEYS))}")
    options: dict[str, Any] = {}
    if "timezone" in entry:
        tz = entry["timezone"]
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise SitesFileError(f"{here}: timezone {tz!r} is not an IANA zone name such as "
                                 "'Europe/Berlin'") from None
        options["timezone"] = tz
    if "session_timeout_minutes" in entry:
        options["session_timeout_minutes"] = _int_in(
            f"{here} session_timeout_minutes", entry["session_timeout_minutes"], 1, 1440)
    if "attribution_lookback_days" in entry:
        options["attribution_lookback_days"] = _int_in(
            f"{here} attribution_lookback_days", entry["attribution_lookback_days"], 1,
            MAX_LOOKBACK_DAYS)
    if "goals" in entry:
        goals = entry["goals"]
        if not isinstance(goals, list) or not all(isinstance(g, str) for g in goals):
            raise SitesFileError(f"{here}: goals must be a list of strings such as "
                                 "\"event:signup\" or \"pageview:/thank-you\"")
        try:
            parse_goals(goals)
        except ValueError as exc:
            raise SitesFileError(f"{here}: {exc}") from None
        options["goals"] = tuple(goals)
    return SiteOptions(**options)


def load_site_options(path: Path | None) -> dict[str, SiteOptions]:
    """Site id -> its options (only sites that set any). No file: no per-site options."""
    if path is None:
        return {}
    out = {}
    for site_id, entry in read_sites_table(path).items():
        options = parse_site_options(site_id, entry if isinstance(entry, dict) else {},
                                     str(path))
        if options != SiteOptions():
            out[site_id] = options
    return out
